"""ONE training loop for every method: `fit(method, batches, cfg, callbacks)`."""

from harness.train.callbacks import Callback, EvalEvery
from harness.train.loop import FitResult, fit, seed_everything

__all__ = ["Callback", "EvalEvery", "FitResult", "fit", "seed_everything"]
