"""optuna-dashboard over a suite's studies (`harness ui --optuna`, `make dashboard`): run as
`python -m harness.tune.dashboard STORAGE HOST PORT`, a process of its own that `harness ui` starts, waits
for and stops.  STORAGE: an Optuna storage URL or a journal file (the harness's default,
optuna-journal.log next to the MLflow store), opened as the tuning driver opens it."""

from __future__ import annotations

import sys

from optuna_dashboard import run_server

from harness.tune.trial import open_storage


def main(argv: list[str]) -> None:
    storage, host, port = argv
    run_server(open_storage(storage), host=host, port=int(port))


if __name__ == "__main__":
    main(sys.argv[1:])
