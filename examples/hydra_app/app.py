"""An ordinary Hydra app (nothing harness-specific in it): fits y = w x to noisy data by gradient descent
and returns the final mean squared error, the job's return value.

    python examples/hydra_app/app.py                                  # one run, Hydra's usual outputs/
    python examples/hydra_app/app.py -m lr=0.01,0.1 seed=0,1,2 \\
        hydra/launcher=harness hydra.launcher.workers=2               # 6 jobs on the harness's pool

With the harness launcher every job is a child run of the multirun's parent run in MLflow (experiment
`app`, params = the job's overrides, metric `return_value`); kill the multirun and start it again and only
the jobs that had not finished run.  `ledger: PATH` appends one line per finished job to PATH (what the
end-to-end test counts); `sleep` makes each job take that long (seconds); `fail_once: PATH` makes the first
attempt of each job fail (it leaves PATH-<lr>-<seed> behind), for the test of the launcher's retries."""

import os
import random
import time

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig) -> float:
    rng = random.Random(cfg.seed)
    xs = [rng.uniform(-1, 1) for _ in range(cfg.n)]
    ys = [cfg.true_w * x + rng.gauss(0, cfg.noise) for x in xs]
    w = 0.0
    for _ in range(cfg.steps):
        grad = sum(2 * (w * x - y) * x for x, y in zip(xs, ys)) / cfg.n
        w -= cfg.lr * grad
    mse = sum((w * x - y) ** 2 for x, y in zip(xs, ys)) / cfg.n
    time.sleep(cfg.sleep)
    if cfg.fail_once and not os.path.exists(f"{cfg.fail_once}-{cfg.lr}-{cfg.seed}"):
        open(f"{cfg.fail_once}-{cfg.lr}-{cfg.seed}", "w").close()
        raise RuntimeError("failing once, as asked (fail_once)")
    if cfg.ledger:
        with open(cfg.ledger, "a") as f:
            f.write(f"lr={cfg.lr} seed={cfg.seed} pid={os.getpid()} gpu={os.environ.get('CUDA_VISIBLE_DEVICES', '')}\n")
    return mse


if __name__ == "__main__":
    main()
