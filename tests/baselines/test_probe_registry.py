"""The registered probes (linear with a validation-chosen l2, knn, mlp, hgb, attentive), label subsets,
regression variants, and the evaluation that runs them on a representation."""

import pytest
import torch
from ssl_fakes import FakeImageTask, tiny_vit

import baselines  # noqa: F401
from baselines.methods.raw import RawConfig
from baselines.ssl.classifiers import knn_r2, ridge_r2
from baselines.ssl.evaluation import ProbedConfig, probe_metrics
from baselines.ssl.probes import PROBES, Features, LinearProbeConfig, split_index
from baselines.ssl.representation import Representation
from harness.components import METHODS

torch.set_num_threads(1)


def gaussian(n: int, d: int, seed: int) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def classes(n: int, seed: int, noise: float = 0.5) -> Features:
    """3 classes: the label is the argmax of 3 fixed directions of 10-dim features, plus label noise features."""
    x = gaussian(n, 10, seed)
    y = (x[:, :3] + noise * gaussian(n, 3, seed + 1)).argmax(1)
    return Features(x, y)


def regression(n: int, seed: int) -> Features:
    x = gaussian(n, 6, seed)
    return Features(x, x[:, 0] * 2 - x[:, 1] + 0.1 * gaussian(n, 1, seed + 1)[:, 0])


def run(cfg, fit, score, n_classes):
    return PROBES.get(cfg.name).build(cfg)(fit, score, n_classes)


def test_registry_names():
    assert PROBES.names() == ["attentive", "fewshot", "hgb", "knn", "linear", "mlp"]


@pytest.mark.parametrize("name", ["linear", "knn", "mlp", "hgb"])
def test_pooled_probes_beat_chance_and_fit_regression(name):
    cfg = PROBES.get(name).config(name=name)
    fit, score = classes(600, 0), classes(300, 10)
    acc = run(cfg, fit, score, 3).score
    assert acc > 0.6  # chance 1/3
    noise = Features(fit.x, fit.y[torch.randperm(600, generator=torch.Generator().manual_seed(0))])
    assert run(cfg, noise, score, 3).score < acc - 0.15  # shuffled labels: nothing to learn
    r2 = run(cfg, regression(600, 2), regression(300, 3), 0).score
    assert r2 > 0.5 if name != "knn" else r2 > 0.3


def test_linear_probe_chooses_l2_on_a_validation_split():
    fit, score = classes(400, 0), classes(300, 10)
    single = run(LinearProbeConfig(l2=[1e-4]), fit, score, 3)
    assert single.chosen == {"l2": 1e-4}
    grid = run(LinearProbeConfig(l2=[1e4, 1e-3]), fit, score, 3)  # a huge penalty scores ~chance on validation
    assert grid.chosen == {"l2": 1e-3} and grid.score == pytest.approx(run(LinearProbeConfig(l2=[1e-3]), fit, score, 3).score)
    strong = run(LinearProbeConfig(l2=[1e4]), fit, score, 3)
    assert strong.score < grid.score
    ridge = run(LinearProbeConfig(l2=[1e4, 1e-4]), regression(300, 2), regression(200, 3), 0)
    assert ridge.chosen == {"l2": 1e-4} and ridge.score > 0.9


def test_split_index_is_stratified_and_seeded():
    y = torch.arange(300) % 3
    kept, rest = split_index(y, 30, seed=0, classification=True)
    assert len(kept) == 30 and len(rest) == 270 and not set(kept) & set(rest)
    assert torch.bincount(y[kept]).tolist() == [10, 10, 10]
    assert (split_index(y, 30, 0, True)[0] == kept).all() and not (split_index(y, 30, 1, True)[0] == kept).all()


def test_attentive_probe_reads_tokens():
    """The label sits in one token (at a random position) of 12 noise tokens; the attentive probe finds it."""
    g = torch.Generator().manual_seed(0)

    def tokens(n):
        y = torch.randint(0, 2, (n,), generator=g)
        t = torch.randn(n, 12, 8, generator=g)
        t[torch.arange(n), torch.randint(0, 12, (n,), generator=g), 0] = 6.0 * (2 * y.float() - 1)  # one marked token
        return Features(t, y)

    fit, score = tokens(500), tokens(300)
    result = run(PROBES.get("attentive").config(name="attentive", steps=200), fit, score, 2)
    assert result.score > 0.85
    with torch.random.fork_rng():
        before = torch.get_rng_state()
        run(PROBES.get("attentive").config(name="attentive", steps=2), fit, score, 2)
        assert torch.equal(before, torch.get_rng_state())  # the training run's RNG stream is untouched


def test_probe_metrics_names_label_subsets_and_final_only():
    task = FakeImageTask(n_train=60, n_test=30)
    m = METHODS.get("mae").build(METHODS.get("mae").config(name="mae", decoder={"name": "concat", "d_model": 8, "n_heads": 2, "n_layers": 1, "joint": True}), tiny_vit(), task)
    cfg = ProbedConfig(name="x", probes=[{"name": "linear"}, {"name": "linear", "labels": 12}, {"name": "mlp"}, {"name": "knn", "k": 5}])
    during = probe_metrics(m.representation(), task, task.eval_splits(), cfg, final=False)
    assert {"probe/linear", "probe/linear_12", "probe/knn", "probe_chosen/linear_12_l2"} <= set(during)
    assert "probe/mlp" not in during  # final_only
    final = probe_metrics(m.representation(), task, task.eval_splits(), cfg, final=True)
    assert "probe/mlp" in final and final["probe/linear"] == during["probe/linear"]
    assert final["probe/linear_12"] != final["probe/linear"]  # fit on 12 of the 60 labels
    assert 0.0 <= final["collapse/content_share"] <= 1.0


def test_raw_method_probes_the_inputs():
    task = FakeImageTask()
    raw = METHODS.get("raw").build(RawConfig(name="raw"), tiny_vit(), task)
    assert list(raw.module.parameters()) == []
    b = task.eval_splits()["test"]
    torch.testing.assert_close(raw.representation().pooled(b), torch.cat([b.inputs[:, :, 2 * r:2 * r + 2, 2 * c:2 * c + 2].flatten(1)
                                                                         for r in range(4) for c in range(4)], dim=1))
    metrics = raw.evaluate()
    assert metrics["probe/linear"] > 0.5  # the brightness of the pixels carries the label (chance 1/3)


def test_ridge_and_knn_regression_numerics():
    x = gaussian(200, 3, 0)
    y = x @ torch.tensor([1.0, -2.0, 0.5])
    assert ridge_r2(x[:150], y[:150], x[150:], y[150:], l2=1e-8) == pytest.approx(1.0, abs=1e-6)
    assert knn_r2(x[:150], y[:150], x[150:], y[150:], k=5) > 0.5
    assert ridge_r2(x[:150], torch.randn(150), x[150:], y[150:]) < 0.2


def test_representation_without_module_is_the_identity_of_encode():
    rep = Representation(lambda x: x.flatten(1).unsqueeze(-1), None, "flatten", 4)  # one token per pixel
    b = FakeImageTask().eval_splits()["train"]
    assert torch.equal(rep.split_pooled(b), b.inputs.flatten(1)) and rep.split_tokens(b).shape == (60, 64, 1)
