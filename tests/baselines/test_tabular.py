"""The tabular tasks: the latent-factor table (its structure and off-knob) and the bundled scikit-learn tables."""

import itertools

import pytest
import torch

import baselines  # noqa: F401
from baselines.tasks.labeled import LabeledTask, TableInput
from baselines.tasks.tabular import N_CARRIERS, LatentTableConfig, SklearnTableConfig
from harness.components import TASKS

torch.set_num_threads(1)

SMALL = dict(probe_train_size=600, probe_test_size=300)


def table(**kw):
    return TASKS.get("latent_table").build(LatentTableConfig(**{**SMALL, **kw}), 0)


def test_latent_table_interface_and_determinism():
    task = table()
    assert isinstance(task, LabeledTask) and isinstance(task.input_spec, TableInput) and task.n_classes == 2
    assert task.input_spec.n_features == 4 + 20 + 4 and task.input_spec.cardinalities.count(5) == 4
    fit = task.eval_splits()["train"]
    numeric = torch.tensor(task.input_spec.cardinalities) == 0
    assert fit.inputs.shape == (600, 28) and abs(fit.inputs[:, numeric].mean().item()) < 1e-5
    codes = fit.inputs[:, ~numeric]
    assert set(codes.unique().tolist()) == {0.0, 1.0, 2.0, 3.0, 4.0}  # equal-mass bins: every category occurs
    assert 0.4 < fit.labels.float().mean().item() < 0.6
    a = list(itertools.islice(task.train_batches(16, torch.Generator().manual_seed(1)), 2))
    b = list(itertools.islice(table().train_batches(16, torch.Generator().manual_seed(1)), 2))
    assert all(torch.equal(x.inputs, y.inputs) and torch.equal(x.labels, y.labels) for x, y in zip(a, b))
    assert torch.equal(table().eval_splits()["test"].inputs, task.eval_splits()["test"].inputs)  # fixed eval rows


def _max_cross_dependence(x: torch.Tensor) -> float:
    """Largest |corr| between a column and another column or its square (catches the square / sin views)."""
    feats = torch.cat([x, x**2], dim=1)
    c = torch.corrcoef(feats.T).abs()
    n = x.shape[1]
    c[torch.arange(n), torch.arange(n)] = 0
    c[torch.arange(n), torch.arange(n) + n] = 0  # a column and its own square
    c[torch.arange(n) + n, torch.arange(n)] = 0
    c[torch.arange(n) + n, torch.arange(n) + n] = 0
    return c.max().item()


def test_columns_share_factors_unless_independent():
    shared, independent = table(probe_train_size=3000), table(probe_train_size=3000, independent=True)
    assert _max_cross_dependence(shared.eval_splits()["train"].inputs) > 0.5
    assert _max_cross_dependence(independent.eval_splits()["train"].inputs) < 0.1
    for task in (shared, independent):  # the label stays a function of the carriers' factors in both
        fit = task.eval_splits()["train"]
        carriers = fit.inputs[:, :N_CARRIERS]
        score = carriers[:, 0] * carriers[:, 1] + torch.sin(carriers[:, 2]) + carriers[:, 3]
        assert ((score > 0).long() == fit.labels).float().mean() > 0.75  # noisy carriers, standardized


@pytest.mark.parametrize("dataset, rows, columns, classes", [
    ("breast_cancer", 569, 30, 2), ("wine", 178, 13, 3), ("digits", 1797, 64, 10), ("diabetes", 442, 10, 0)])
def test_sklearn_tables(dataset, rows, columns, classes):
    task = TASKS.get("sklearn_table").build(SklearnTableConfig(dataset=dataset), 0)
    splits = task.eval_splits()
    assert task.n_classes == classes and task.input_spec.n_features == columns
    assert len(splits["train"]) + len(splits["test"]) == rows
    assert abs(splits["train"].inputs.mean().item()) < 1e-4
    assert splits["train"].labels.dtype == (torch.float32 if classes == 0 else torch.long)
    batch = next(task.train_batches(32, torch.Generator().manual_seed(0)))
    assert batch.inputs.shape == (32, columns)
