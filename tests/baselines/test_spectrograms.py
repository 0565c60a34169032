"""The synthetic spectrograms of audio_jepa: interface, determinism, where the class lives, the off-knob."""

import itertools

import torch

import baselines  # noqa: F401
from baselines.ssl.classifiers import linear_probe
from baselines.tasks.labeled import GridInput
from baselines.tasks.spectrograms import SpectroConfig
from harness.components import TASKS

torch.set_num_threads(1)


def spectro(**kw):
    return TASKS.get("synth_spectro").build(SpectroConfig(**{"probe_train_size": 800, "probe_test_size": 400, **kw}), 0)


def test_interface_and_determinism():
    task = spectro()
    assert task.input_spec == GridInput(1, (32, 64), ("freq", "time")) and task.n_classes == 8
    fit = task.eval_splits()["train"]
    assert fit.inputs.shape == (800, 1, 32, 64) and abs(fit.inputs.mean().item()) < 1e-4
    assert abs(fit.inputs.std().item() - 1) < 1e-3 and set(fit.labels.unique().tolist()) == set(range(8))
    a = list(itertools.islice(task.train_batches(8, torch.Generator().manual_seed(1)), 2))
    b = list(itertools.islice(spectro().train_batches(8, torch.Generator().manual_seed(1)), 2))
    assert all(torch.equal(x.inputs, y.inputs) for x, y in zip(a, b))


def test_class_factors_are_visible_in_the_spectrum_and_the_envelope():
    fit = spectro().eval_splits()["train"]
    x, y = fit.inputs[:, 0], fit.labels  # [n, F, T]
    late = x[:, :, 32:]  # after every onset
    high_band = late[:, 16:].mean(dim=(1, 2)) - late[:, :16].mean(dim=(1, 2))  # the formant factor
    assert high_band[(y // 2) % 2 == 1].mean() > high_band[(y // 2) % 2 == 0].mean() + 0.3
    wobble = late.mean(dim=1).std(dim=1)  # temporal std of the band-averaged energy: the AM factor
    assert wobble[y // 4 == 1].mean() > 1.5 * wobble[y // 4 == 0].mean()


def test_harmonic_coupling_carries_the_harmonic_factor():
    """Raw spectra (time-averaged, after onset) separate all vs odd harmonics far better with the coupling."""
    accs = []
    for coupling in (True, False):
        splits = spectro(harmonic_coupling=coupling).eval_splits()
        fit, test = splits["train"], splits["test"]
        feats = [s.inputs[:, 0, :, 32:].mean(dim=2) for s in (fit, test)]  # [n, F] spectra
        accs.append(linear_probe(feats[0], fit.labels % 2, feats[1], test.labels % 2, n_classes=2))
    assert accs[0] > 0.9 and accs[0] > accs[1] + 0.15
