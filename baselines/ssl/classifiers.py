"""The numerics of frozen-feature probes, from scratch in float64 (deterministic; sklearn supplies the
MLP and gradient-boosting probes, baselines/ssl/probes.py).

    linear_probe    multinomial logistic regression fit on the train features (standardized with the train
                    mean / std), full-batch L-BFGS in float64 from a zero init (deterministic); test accuracy
    ridge_r2        ridge regression on standardized features (closed form); test R^2
    knn_accuracy    cosine-similarity k-NN (features centered on the train mean) with a majority vote; test accuracy
    knn_r2          the same neighbours, their mean target as the prediction; test R^2

Inputs are anything `torch.as_tensor` takes (features [N, D], labels [N] integer class ids or float targets).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

EPS = 1e-12


def _features(x) -> torch.Tensor:
    x = torch.as_tensor(x).detach().cpu().to(torch.float64)
    if x.dim() != 2:
        raise ValueError(f"features must be [N, D], got shape {tuple(x.shape)}")
    return x


def _labels(y, n: int) -> torch.Tensor:
    y = torch.as_tensor(y).detach().cpu().long()
    return _check_length(y, n)


def _targets(y, n: int) -> torch.Tensor:
    return _check_length(torch.as_tensor(y).detach().cpu().to(torch.float64), n)


def _check_length(y: torch.Tensor, n: int) -> torch.Tensor:
    if y.shape != (n,):
        raise ValueError(f"labels must be [{n}] to match the features, got shape {tuple(y.shape)}")
    return y


def standardize(train_x: torch.Tensor, test_x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both standardized with the train mean / std; constant dimensions are only centred."""
    mean, std = scaler(train_x)
    return (train_x - mean) / std, (test_x - mean) / std


def scaler(train_x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(mean [D], std [D]) of train_x [N, D]; the std of a constant dimension is 1 (it is only centred)."""
    mean, std = train_x.mean(dim=0), train_x.std(dim=0)
    return mean, torch.where(std > EPS, std, torch.ones_like(std))


def r2_score(pred: torch.Tensor, y: torch.Tensor) -> float:
    """Coefficient of determination of predictions pred [M] for targets y [M]."""
    total = (y - y.mean()).pow(2).sum()
    return 1.0 - ((y - pred).pow(2).sum() / total.clamp_min(EPS)).item()


def linear_probe(
    train_x, train_y, test_x, test_y, n_classes: int, weight_decay: float = 1e-4, max_iter: int = 200
) -> float:
    """Test accuracy of a softmax classifier on frozen features.

    train_x [N, D], train_y [N], test_x [M, D], test_y [M].  Loss: mean cross-entropy + weight_decay / 2 * |W|^2
    (no penalty on the bias), minimized by L-BFGS (strong Wolfe line search, at most max_iter iterations).
    Features are standardized with the train statistics; constant dimensions are only centred.
    """
    train_x, test_x = _features(train_x), _features(test_x)
    train_y, test_y = _labels(train_y, len(train_x)), _labels(test_y, len(test_x))
    if train_x.shape[1] != test_x.shape[1]:
        raise ValueError(f"train features have {train_x.shape[1]} dims, test features {test_x.shape[1]}")
    if int(max(train_y.max(), test_y.max())) >= n_classes or int(min(train_y.min(), test_y.min())) < 0:
        raise ValueError(f"labels must lie in [0, {n_classes}) with n_classes >= 2")
    pred = linear_classifier(train_x, train_y, n_classes, weight_decay, max_iter)(test_x)  # [M]
    return (pred == test_y).double().mean().item()


def linear_classifier(
    train_x, train_y, n_classes: int, weight_decay: float = 1e-4, max_iter: int = 200
) -> Callable[[torch.Tensor], torch.Tensor]:
    """The softmax classifier of `linear_probe` fit on train_x [N, D], train_y [N]: a function of features
    [M, D] (standardized with the train statistics) -> predicted classes [M] (e.g. a dense probe's pixels)."""
    train_x = _features(train_x)
    train_y = _labels(train_y, len(train_x))
    if n_classes < 2 or int(train_y.max()) >= n_classes or int(train_y.min()) < 0:
        raise ValueError(f"labels must lie in [0, {n_classes}) with n_classes >= 2")
    mean, std = scaler(train_x)
    train_x = (train_x - mean) / std

    weight = torch.zeros(train_x.shape[1], n_classes, dtype=torch.float64, requires_grad=True)  # [D, K]
    bias = torch.zeros(n_classes, dtype=torch.float64, requires_grad=True)  # [K]
    opt = torch.optim.LBFGS(
        [weight, bias], lr=1.0, max_iter=max_iter, tolerance_grad=1e-9, tolerance_change=1e-12,
        history_size=20, line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(train_x @ weight + bias, train_y) + 0.5 * weight_decay * weight.pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)

    @torch.no_grad()
    def predict(x) -> torch.Tensor:
        return (((_features(x) - mean) / std) @ weight + bias).argmax(dim=1)  # [M]

    return predict


def nearest_neighbours(train_x: torch.Tensor, test_x: torch.Tensor, k: int, center: bool, chunk: int = 1024) -> torch.Tensor:
    """Indices [M, k] of the k most cosine-similar train rows of each test row (float64 features; centered on
    the train mean when `center`; equal similarities ranked by train index), `chunk` test rows at a time."""
    if center:
        centre = train_x.mean(dim=0)  # [D]
        train_x, test_x = train_x - centre, test_x - centre
    train_n = F.normalize(train_x, dim=1, eps=EPS)  # [N, D]
    out = []
    for start in range(0, len(test_x), chunk):
        sims = F.normalize(test_x[start : start + chunk], dim=1, eps=EPS) @ train_n.T  # [m, N]
        out.append(sims.sort(dim=1, descending=True, stable=True).indices[:, :k])  # [m, k]
    return torch.cat(out)  # [M, k]


def knn_accuracy(train_x, train_y, test_x, test_y, k: int = 20, chunk: int = 1024, center: bool = True) -> float:
    """Test accuracy of k-nearest-neighbour classification by cosine similarity of features centered on the
    train mean (`center`; mean-pooled features share a large offset that makes raw cosines all ~1).

    train_x [N, D], train_y [N], test_x [M, D], test_y [M].  Each test point takes the majority label of its k
    most similar train points (k capped at N; equal similarities ranked by train index).  A tie between
    classes goes to the tied class whose first neighbour is the most similar.  `chunk` test rows at a time.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    train_x, test_x = _features(train_x), _features(test_x)
    train_y, test_y = _labels(train_y, len(train_x)), _labels(test_y, len(test_x))
    k = min(k, len(train_x))
    n_classes = int(train_y.max()) + 1
    neighbour_y = train_y[nearest_neighbours(train_x, test_x, k, center, chunk)]  # [M, k]
    votes = torch.zeros(len(test_x), n_classes, dtype=torch.float64).scatter_add_(
        1, neighbour_y, torch.ones_like(neighbour_y, dtype=torch.float64)
    )  # [M, K] counts
    rank_bonus = torch.arange(k, 0, -1, dtype=torch.float64)  # nearest neighbour k, k-th neighbour 1
    first = torch.zeros_like(votes).scatter_reduce_(
        1, neighbour_y, rank_bonus.expand(len(test_x), k), reduce="amax"
    )  # [M, K]: k - (rank of the class's nearest neighbour), 0 if absent; < k + 1, so it only breaks ties
    pred = (votes * (k + 1) + first).argmax(dim=1)  # [M]
    return (pred == test_y).double().mean().item()


def ridge_r2(train_x, train_y, test_x, test_y, l2: float = 1e-4) -> float:
    """Test R^2 of ridge regression on standardized features: minimizes mean squared error + l2 * |w|^2
    (no penalty on the intercept), in closed form."""
    train_x, test_x = _features(train_x), _features(test_x)
    train_y, test_y = _targets(train_y, len(train_x)), _targets(test_y, len(test_x))
    train_x, test_x = standardize(train_x, test_x)
    offset = train_y.mean()
    gram = train_x.T @ train_x / len(train_x) + l2 * torch.eye(train_x.shape[1], dtype=torch.float64)  # [D, D]
    weight = torch.linalg.solve(gram, train_x.T @ (train_y - offset) / len(train_x))  # [D]
    return r2_score(test_x @ weight + offset, test_y)


def knn_r2(train_x, train_y, test_x, test_y, k: int = 20, center: bool = True) -> float:
    """Test R^2 of predicting each test target by the mean target of its k most cosine-similar train points."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    train_x, test_x = _features(train_x), _features(test_x)
    train_y, test_y = _targets(train_y, len(train_x)), _targets(test_y, len(test_x))
    nearest = nearest_neighbours(train_x, test_x, min(k, len(train_x)), center)  # [M, k]
    return r2_score(train_y[nearest].mean(dim=1), test_y)
