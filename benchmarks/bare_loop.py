"""The reference of test_bench_backends: a suite's runs trained one after another in this one
process with the harness's own components (`harness.runner.build` + `harness.train.fit`), single
threaded like a worker, with no MLflow, no subprocesses and no checkpoints.

    python benchmarks/bare_loop.py SUITE [key.path=value ...]   -> prints the number of runs trained"""

import os
import sys

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def main(argv: list[str]) -> int:
    import torch

    from harness.runner import build, train_stream
    from harness.spec import load_and_expand
    from harness.train import fit, seed_everything

    torch.set_num_threads(1)
    _, runs = load_and_expand(argv[0], argv[1:])
    for r in runs:
        cfg = r.config
        seed_everything(cfg.seed)
        task, method = build(cfg)
        result = fit(method, train_stream(cfg, task, method), cfg)
        if result.status != "finished" or result.steps != cfg.training.steps:
            raise RuntimeError(f"{r.name}: {result.status} after {result.steps} steps")
    print(f"bare loop: {len(runs)} runs")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
