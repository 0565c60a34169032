"""The reference of test_bench_hydra: a Hydra app as users write one, run as a multirun with the joblib
launcher.  Its task function builds and trains one run with the harness's own components (the same model,
data and loop as `harness run`) and logs to MLflow the way users typically do: a run per job, the config as
params, every training value and every evaluation metric with `mlflow.log_metrics` at its step.

    python app.py --config-dir DIR --config-name config -m run.model.pos_emb=abs,rel_k run.seed=0,1 \
        hydra/launcher=joblib hydra.launcher.n_jobs=2 tracking_uri=sqlite:///DIR/mlflow.db

DIR/config.yaml holds `run:` (a resolved RunConfig, written by the benchmark from the smoke suite) and
`tracking_uri`.  Returns the final exact-match accuracy (Hydra's return value of the job)."""

import hydra
import mlflow
import torch
from omegaconf import DictConfig, OmegaConf


class LogEveryValue:
    def on_step(self, step: int, scalars: dict[str, float]) -> None:
        mlflow.log_metrics({f"train/{k}": v for k, v in scalars.items()}, step=step)

    def on_eval(self, step: int, metrics: dict[str, float]) -> None:
        mlflow.log_metrics(metrics, step=step)


@hydra.main(version_base="1.3", config_path=None, config_name=None)
def main(cfg: DictConfig) -> float:
    from harness.plugins import load_plugins
    from harness.runner import build, train_stream
    from harness.spec import Loc, validate_config
    from harness.train import fit, seed_everything

    torch.set_num_threads(1)
    load_plugins()
    run = validate_config(OmegaConf.to_container(cfg.run, resolve=True), lambda path: Loc("<hydra>", 0, str(path)))
    mlflow.set_tracking_uri(cfg.tracking_uri)
    mlflow.set_experiment("hydra_smoke")
    with mlflow.start_run():
        mlflow.log_params(run.flat())
        seed_everything(run.seed)
        task, method = build(run)
        result = fit(method, train_stream(run, task, method), run, callbacks=[LogEveryValue()])
    return result.metrics["exact/len_03"]


if __name__ == "__main__":
    main()
