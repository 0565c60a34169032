import itertools
from collections import Counter

import pytest
import torch
from pydantic import ValidationError
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

import baselines  # noqa: F401
from baselines.tasks.images import SHAPES, DigitsConfig, ImageTask, ShapesConfig, image_task
from baselines.tasks.labeled import LabeledBatch
from harness.components import TASKS

torch.set_num_threads(1)

SMALL_SHAPES = dict(name="shapes", probe_train_size=300, probe_test_size=200)


def digits(seed: int = 0, **kw):
    return TASKS.get("digits").build(DigitsConfig(name="digits", **kw), seed)


def shapes(seed: int = 0, **kw):
    return TASKS.get("shapes").build(ShapesConfig(**{**SMALL_SHAPES, **kw}), seed)


def batches(task, gen_seed: int, n: int = 3, batch_size: int = 16) -> list[LabeledBatch]:
    return list(itertools.islice(task.train_batches(batch_size, torch.Generator().manual_seed(gen_seed)), n))


def probe_accuracy(x: torch.Tensor, y: torch.Tensor, n_train: int) -> float:
    """Held-out accuracy of a logistic regression on features x [N, F]."""
    scaler = StandardScaler().fit(x[:n_train].numpy())
    clf = LogisticRegression(max_iter=500).fit(scaler.transform(x[:n_train].numpy()), y[:n_train].numpy())
    return clf.score(scaler.transform(x[n_train:].numpy()), y[n_train:].numpy())


@pytest.mark.parametrize("make", [digits, shapes])
def test_image_task_interface(make):
    task = make()
    assert isinstance(task, ImageTask) and image_task(task, "test") is task
    assert task.channels == 1 and task.image_size == 16
    batch = batches(task, 0, n=1)[0]
    assert batch.inputs.shape == (16, 1, 16, 16) and batch.inputs.dtype == torch.float32
    assert batch.labels.shape == (16,) and batch.labels.dtype == torch.long
    assert int(batch.labels.min()) >= 0 and int(batch.labels.max()) < task.n_classes
    assert len(batch) == 16 and len(batch.slice(2, 5)) == 3
    assert torch.equal(batch.to(torch.device("cpu")).inputs, batch.inputs)
    splits = task.eval_splits()
    assert set(splits) == {"train", "test"}
    train = splits["train"].inputs
    assert abs(train.mean().item()) < 0.05 and abs(train.std().item() - 1.0) < 0.05  # standardized on "train"


def test_image_task_rejects_token_tasks():
    token = TASKS.get("copy").build(TASKS.get("copy").config(name="copy", test_size=2), 0)
    with pytest.raises(TypeError, match="method jepa needs an image task; CopyingTask"):
        image_task(token, "method jepa")


@pytest.mark.parametrize("make", [digits, shapes])
def test_train_stream_deterministic_per_generator(make):
    task = make()
    a, b, c = batches(task, 1), batches(task, 1), batches(task, 2)
    for x, y in zip(a, b):
        assert torch.equal(x.inputs, y.inputs) and torch.equal(x.labels, y.labels)
    assert not torch.equal(a[0].inputs, c[0].inputs)
    assert not torch.equal(a[0].inputs, a[1].inputs)  # the stream moves on


@pytest.mark.parametrize("make", [digits, shapes])
def test_eval_splits_identical_across_run_seeds(make):
    a, b = make(seed=0).eval_splits(), make(seed=5).eval_splits()
    for split in ("train", "test"):
        assert torch.equal(a[split].inputs, b[split].inputs) and torch.equal(a[split].labels, b[split].labels)


def test_digits_split_is_stratified_and_disjoint():
    task = digits(test_fraction=0.25)
    train_idx, test_idx = set(task.train_index.tolist()), set(task.test_index.tolist())
    assert not train_idx & test_idx and len(train_idx | test_idx) == 1797
    splits = task.eval_splits()
    assert len(splits["test"]) == len(test_idx) == 450
    train_freq = torch.bincount(splits["train"].labels, minlength=10).double() / len(train_idx)
    test_freq = torch.bincount(splits["test"].labels, minlength=10).double() / len(test_idx)
    assert (test_freq - train_freq).abs().max() < 0.005  # same class proportions (random split: ~0.02)
    other = digits(split_seed=1)
    assert set(other.test_index.tolist()) != test_idx  # the split seed moves the split
    assert digits(image_size=8).eval_splits()["test"].inputs.shape == (450, 1, 8, 8)


def test_digits_train_batches_come_from_the_train_part_only():
    task = digits(image_size=8)
    train = task.eval_splits()["train"].inputs.flatten(1)  # [1347, 64]
    test = task.eval_splits()["test"].inputs.flatten(1)
    train_rows = set(map(tuple, train.tolist()))
    for batch in batches(task, 0, n=2, batch_size=200):
        assert all(row in train_rows for row in map(tuple, batch.inputs.flatten(1).tolist()))
    assert sum(row not in train_rows for row in map(tuple, test.tolist())) > 400  # (so the check above can fail)
    # an epoch is a permutation: every train image exactly once before any repeats
    epoch = next(iter(task.train_batches(1347, torch.Generator().manual_seed(3)))).inputs.flatten(1)
    assert Counter(map(tuple, epoch.tolist())) == Counter(map(tuple, train.tolist()))


def test_shapes_label_lives_in_the_shape_and_variance_in_the_texture():
    task = shapes()
    parts = task.components(1600, torch.Generator().manual_seed(0))
    y = parts["labels"]
    nuisance = parts["texture"] + parts["noise"]
    shape_var, nuisance_var = parts["shape"].var().item(), nuisance.var().item()
    assert nuisance_var > 15 * shape_var  # the label-free components dominate the pixel variance
    assert abs(parts["texture"].var().item() - 2.0) < 0.1 and abs(parts["noise"].var().item() - 1.0) < 0.1

    def spectrum(x: torch.Tensor) -> torch.Tensor:  # translation-invariant features: |FFT| [N, S * (S/2+1)]
        return torch.fft.rfft2(x[:, 0]).abs().flatten(1)

    chance = 1 / task.n_classes
    assert probe_accuracy(spectrum(parts["shape"]), y, 1200) > 0.95  # the label is in the shape...
    assert probe_accuracy(spectrum(nuisance), y, 1200) < chance + 0.08  # ... and not in texture + noise
    assert probe_accuracy(nuisance.flatten(1), y, 1200) < chance + 0.08


def test_shapes_texture_is_independent_of_the_label():
    parts = shapes().components(4000, torch.Generator().manual_seed(1))
    per_class = [parts["texture"][parts["labels"] == c].var().item() for c in range(5)]
    assert max(per_class) - min(per_class) < 0.15  # same grating statistics in every class
    areas = [(parts["shape"][parts["labels"] == c] > 0).float().mean().item() for c in range(5)]
    assert all(0.08 < a < 0.35 for a in areas)  # every shape is visible and fits


def test_shapes_config_knobs():
    quiet = shapes(texture_amplitude=0.0, noise_std=0.0).components(50, torch.Generator().manual_seed(0))
    assert quiet["texture"].abs().max() == 0 and quiet["noise"].abs().max() == 0
    assert set(quiet["shape"].unique().tolist()) == {0.0, 1.0}
    task = shapes(n_classes=len(SHAPES), image_size=32)
    assert task.eval_splits()["train"].inputs.shape == (300, 1, 32, 32) and task.n_classes == 6
    assert len(task.eval_splits()["test"]) == 200
    assert not torch.equal(shapes(eval_seed=1).eval_splits()["test"].inputs, shapes().eval_splits()["test"].inputs)


@pytest.mark.parametrize(
    "bad",
    [
        dict(n_classes=7),
        dict(texture_freq=(0.3, 0.6)),
        dict(shape_size=(0.3, 0.2)),
        dict(shape_size=(0.05, 0.2)),  # < 1.5 pixels on a 16-pixel image
        dict(shape_amplitude=0.0, texture_amplitude=0.0, noise_std=0.0),
        dict(noise_std=-1.0),
        dict(colour=1),
    ],
)
def test_shapes_config_rejects(bad):
    with pytest.raises(ValidationError):
        ShapesConfig(**{**SMALL_SHAPES, **bad})


@pytest.mark.parametrize("bad", [dict(test_fraction=0.0), dict(image_size=4), dict(extra=1)])
def test_digits_config_rejects(bad):
    with pytest.raises(ValidationError):
        DigitsConfig(name="digits", **bad)
