import math

import pytest
import torch

from baselines.ssl.classifiers import knn_accuracy, linear_probe
from baselines.ssl.collapse import collapse_stats

torch.set_num_threads(1)


def gaussian(n: int, d: int, seed: int) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def separable(n: int, d: int, n_classes: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels of a random linear map's argmax: linearly separable, with a margin-free boundary."""
    x = gaussian(n, d, seed)
    w = gaussian(d, n_classes, 100)
    return x, (x @ w).argmax(dim=1)


def test_linear_probe_on_separable_data():
    x, y = separable(1500, 16, 4, seed=0)
    acc = linear_probe(x[:1000], y[:1000], x[1000:], y[1000:], n_classes=4)
    assert acc > 0.95
    # invariant to a per-dimension affine change of the features (they are standardized)
    scale, shift = torch.logspace(-3, 3, 16), torch.linspace(-50, 50, 16)
    acc_scaled = linear_probe(x[:1000] * scale + shift, y[:1000], x[1000:] * scale + shift, y[1000:], n_classes=4)
    assert abs(acc_scaled - acc) < 0.02


def test_linear_probe_on_random_labels_is_at_chance():
    x = gaussian(1500, 16, seed=1)
    y = torch.randint(0, 4, (1500,), generator=torch.Generator().manual_seed(2))
    acc = linear_probe(x[:1000], y[:1000], x[1000:], y[1000:], n_classes=4)
    assert abs(acc - 0.25) < 0.07


def test_linear_probe_handles_collapsed_features_and_checks_inputs():
    x = torch.ones(40, 8)  # every dimension constant: nothing to learn, no division by zero
    y = torch.arange(40) % 2
    assert linear_probe(x[:20], y[:20], x[20:], y[20:], n_classes=2) == pytest.approx(0.5)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
        linear_probe(x, y + 1, x, y, n_classes=2)
    with pytest.raises(ValueError, match="labels must be"):
        linear_probe(x, y[:10], x, y, n_classes=2)


def test_linear_probe_weight_decay_shrinks_towards_chance():
    x, y = separable(600, 16, 3, seed=3)
    strong = linear_probe(x[:400], y[:400], x[400:], y[400:], n_classes=3, weight_decay=1e4)
    weak = linear_probe(x[:400], y[:400], x[400:], y[400:], n_classes=3, weight_decay=1e-4)
    assert weak > 0.9 and weak > strong  # tiny weights: the argmax is left to the biases


def clusters(n_per: int, n_classes: int, d: int, spread: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Points around n_classes random directions (cosine-separated), labels = the direction."""
    centres = torch.nn.functional.normalize(gaussian(n_classes, d, seed), dim=1) * 10
    y = torch.arange(n_classes).repeat_interleave(n_per)
    return centres[y] + spread * gaussian(len(y), d, seed + 1), y


def test_knn_exact_on_separated_clusters():
    x, y = clusters(50, 5, 32, spread=0.5, seed=0)
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    x, y = x[perm], y[perm]
    assert knn_accuracy(x[:150], y[:150], x[150:], y[150:], k=20) == 1.0
    assert knn_accuracy(x[:150], y[:150], x[150:], y[150:], k=1) == 1.0
    assert knn_accuracy(x[:150] * 7.0, y[:150], x[150:], y[150:], k=5, chunk=7) == 1.0  # cosine: scale-free


def test_knn_majority_vote_and_tie_break():
    train = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.8, 0.2], [0.0, 1.0], [0.1, 0.9]])
    train_y = torch.tensor([0, 0, 1, 1, 1])
    query = torch.tensor([[1.0, 0.01]])
    # k = 1: the nearest point; k = 3: classes 0, 0, 1 -> 0; k = 5: 2 vs 3 votes -> 1
    assert knn_accuracy(train, train_y, query, torch.tensor([0]), k=1, center=False) == 1.0
    assert knn_accuracy(train, train_y, query, torch.tensor([0]), k=3, center=False) == 1.0
    assert knn_accuracy(train, train_y, query, torch.tensor([1]), k=5, center=False) == 1.0
    # a 1 - 1 tie (k = 2 over classes 2 and 0, class 0 listed first): the class of the nearest neighbour wins
    tie_train = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    tie_y = torch.tensor([0, 2])
    assert knn_accuracy(tie_train, tie_y, torch.tensor([[1.0, 0.2]]), torch.tensor([2]), k=2, center=False) == 1.0
    assert knn_accuracy(tie_train, tie_y, torch.tensor([[0.2, 1.0]]), torch.tensor([0]), k=2, center=False) == 1.0
    assert knn_accuracy(train, train_y, query, torch.tensor([1]), k=500) == 1.0  # k capped at the train size


def test_knn_on_random_labels_is_at_chance():
    x = gaussian(1000, 16, seed=4)
    y = torch.randint(0, 5, (1000,), generator=torch.Generator().manual_seed(5))
    assert abs(knn_accuracy(x[:700], y[:700], x[700:], y[700:], k=20) - 0.2) < 0.08


def test_eff_rank_of_isotropic_and_low_rank_data():
    d = 32
    iso = collapse_stats(gaussian(4000, d, seed=6))["eff_rank"]
    assert 0.9 * d < iso <= d
    rank1 = gaussian(4000, 1, seed=7) @ gaussian(1, d, seed=8)  # [N, D] of rank 1
    assert collapse_stats(rank1)["eff_rank"] == pytest.approx(1.0, abs=0.01)
    rank4 = gaussian(4000, 4, seed=9) @ gaussian(4, d, seed=10)
    assert 2.5 < collapse_stats(rank4)["eff_rank"] < 4.01


def test_std_detects_collapse():
    d = 64
    healthy = collapse_stats(gaussian(2000, d, seed=11))
    assert healthy["std_mean"] == pytest.approx(1 / math.sqrt(d), rel=0.05)
    assert healthy["std_min"] > 0.8 / math.sqrt(d)
    centre = gaussian(1, d, seed=12)
    collapsed = collapse_stats(centre + 1e-3 * gaussian(2000, d, seed=13))  # every embedding ~ the same vector
    assert collapsed["std_mean"] < 1e-3 * healthy["std_mean"] * 10
    assert collapsed["eff_rank"] < 2.0
    dead = gaussian(2000, d, seed=14)
    dead[:, 5] = 3.0  # one constant dimension: std_min catches it (after normalization it still varies a little)
    stats = collapse_stats(dead)
    assert stats["std_min"] < 0.25 * healthy["std_min"] and stats["std_mean"] > 0.5 * healthy["std_mean"]
    with pytest.raises(ValueError, match="at least 2"):
        collapse_stats(torch.ones(1, 4))


def test_centered_rank_sees_through_a_shared_offset():
    d = 16
    varied = gaussian(2000, d, seed=21)  # isotropic variation ...
    shifted = 100.0 * gaussian(1, d, seed=22) + varied  # ... riding on a large shared offset
    stats = collapse_stats(shifted)
    assert stats["eff_rank"] < 1.5  # raw RankMe: dominated by the offset
    assert stats["eff_rank_centered"] > 0.9 * d  # the variation itself is full rank
    flat = 100.0 * gaussian(1, d, seed=22) + gaussian(2000, 2, seed=23) @ gaussian(2, d, seed=24)
    assert collapse_stats(flat)["eff_rank_centered"] < 2.5  # rank-2 variation


def test_knn_is_not_fooled_by_a_shared_offset():
    centres = 3.0 * gaussian(4, 8, seed=31)
    y = torch.arange(400) % 4
    x = centres[y] + 0.3 * gaussian(400, 8, seed=32) + 1000.0  # clusters far from the origin: raw cosines ~ 1
    assert knn_accuracy(x[:300], y[:300], x[300:], y[300:], k=5) > 0.95
