import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import baselines  # noqa: E402,F401  (fills the registries)


@pytest.fixture
def root() -> Path:
    return ROOT


class FakeTokenTask:
    """A token task with no data: enough to build sequence models in unit tests."""

    def __init__(self, vocab_size: int = 11, max_len: int = 40) -> None:
        self.vocab_size, self.max_len = vocab_size, max_len

    def train_batches(self, batch_size, generator):
        raise NotImplementedError("FakeTokenTask has no data")

    def eval_splits(self):
        return {}

    @staticmethod
    def examples_in(batch) -> int:
        return len(batch)
