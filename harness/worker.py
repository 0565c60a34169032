"""Worker process entry: `python -m harness.worker SPEC_JSON --uri URI --mlflow-id ID`.

The parent created the child run; the worker fills it in and terminates it FINISHED (also for a
diverged run, tagged outcome=diverged) or FAILED with the traceback as an artifact."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import traceback
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="harness.worker")
    ap.add_argument("spec", type=Path)
    ap.add_argument("--uri", required=True)
    ap.add_argument("--mlflow-id", required=True)
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(int(os.environ.get("HARNESS_THREADS", "1")))
    from harness.plugins import load_plugins
    from harness.runner import run_one
    from harness.spec.models import RunSpec
    from harness.track import RunLog

    load_plugins()
    spec = RunSpec.model_validate_json(args.spec.read_text())
    log = RunLog(args.uri, args.mlflow_id)
    try:
        with tempfile.TemporaryDirectory(prefix=f"run-{spec.run_id}-") as tmp:
            run_one(spec, log, Path(tmp))
    except Exception:
        tb = traceback.format_exc()
        sys.stderr.write(tb)
        log.flush()
        log.log_text(tb, "traceback.txt")
        log.set_tags({"outcome": "failed"})
        log.finish("FAILED")
        return 1
    log.finish("FINISHED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
