"""Tables for self-supervised pre-training (T-JEPA, masked feature reconstruction) and probing.

* `latent_table`: a synthetic table whose columns are redundant, nonlinear, noisy views of a few shared latent
  factors, the test bed of the tabular_jepa suite:

      z ~ N(0, I_L)                                     L = n_latents shared factors per row
      carrier k = z_k + noise          k = 0..3         identity views of the label's factors
      view j    = g_j(w_j . z_{S_j}) + noise            n_views views, S_j a random pair of factors, g_j cycling
                                                        over identity, tanh, square, sin and a quantization
                                                        into n_bins categories (a categorical column)
      noise columns ~ N(0, 1)                           n_noise columns unrelated to anything
      label     = 1[z_0 z_1 + sin z_2 + z_3 > 0]

  Many columns see each factor, so a column (or a group of columns) is predictable from the others through
  the latents: latent prediction across feature subsets (T-JEPA) can recover z, which the label needs.
  `independent: true` is the off-knob: every column reads its own independent draw of the factors (the
  recipes unchanged), so no column says anything about another; the label is then computed from the draw
  of the four carriers, which stay the only columns that carry it.

  The recipes (pairs, weights, nonlinearities) come from `recipe_seed`; training rows are fresh draws from
  the run's generator; the eval splits ("train": the probes' fit split, "test") are drawn once from
  `eval_seed`.  Numeric columns are standardized with the fit split's mean and std; categorical columns hold
  their codes 0..n_bins-1.

* `sklearn_table`: a tabular set bundled with scikit-learn (no download): breast_cancer (569 x 30, 2
  classes), wine (178 x 13, 3 classes), digits (1797 x 64 pixel columns, 10 classes), diabetes (442 x 10, a
  regression target, standardized).  Split once into train / test (`test_fraction`, stratified for
  classes, `split_seed`); columns standardized with the train part's statistics; training batches are
  drawn from the train part only (fresh permutations).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Literal

import torch
from pydantic import Field, model_validator

from baselines.tasks.labeled import LabeledBatch, TableInput, epoch_batches
from harness.components import TASKS
from harness.registry import ComponentConfig

N_CARRIERS = 4  # identity views of z_0..z_3, the label's factors
NONLINEARITIES = ("identity", "tanh", "square", "sin", "categorical")


def _standardize(columns: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    mean, std = reference.mean(dim=0), reference.std(dim=0)
    return (columns - mean) / torch.where(std > 1e-8, std, torch.ones_like(std))


def _label(z: torch.Tensor) -> torch.Tensor:
    return (z[:, 0] * z[:, 1] + torch.sin(z[:, 2]) + z[:, 3] > 0).long()  # [n]


# ----------------------------------------------------------------------------------------------
# latent_table


class LatentTableConfig(ComponentConfig):
    name: Literal["latent_table"] = "latent_table"
    n_latents: int = Field(default=6, ge=4)
    n_views: int = Field(default=20, ge=0)
    n_noise: int = Field(default=4, ge=0)
    n_bins: int = Field(default=5, ge=2)  # categories of a quantized view
    feature_noise: float = Field(default=0.3, ge=0.0)  # std of the noise added to the carriers and the views
    independent: bool = False  # the off-knob: every column reads its own draw of the factors
    probe_train_size: int = Field(default=2000, ge=10)  # eval split "train": what the probes are fit on
    probe_test_size: int = Field(default=2000, ge=10)
    recipe_seed: int = 0
    eval_seed: int = 4321

    @model_validator(mode="after")
    def _check(self) -> LatentTableConfig:
        if self.n_views + N_CARRIERS + self.n_noise < 2:
            raise ValueError("a table needs at least 2 columns")
        return self


class LatentTable:
    n_classes = 2

    def __init__(self, cfg: LatentTableConfig, seed: int) -> None:
        self.cfg = cfg
        self.seed = seed  # unused: training rows come from the generator, eval rows from eval_seed
        recipes = torch.Generator().manual_seed(cfg.recipe_seed)
        pairs = [torch.randperm(cfg.n_latents, generator=recipes)[:2] for _ in range(cfg.n_views)]
        self.pairs = torch.stack(pairs) if pairs else torch.zeros(0, 2, dtype=torch.long)  # [V, 2]
        signs = torch.randint(0, 2, (cfg.n_views, 2), generator=recipes) * 2 - 1
        self.weights = signs * (0.5 + torch.rand(cfg.n_views, 2, generator=recipes))  # [V, 2], |w| in [0.5, 1.5]
        self.kinds = [NONLINEARITIES[j % len(NONLINEARITIES)] for j in range(cfg.n_views)]
        cards = [0] * N_CARRIERS + [cfg.n_bins if k == "categorical" else 0 for k in self.kinds] + [0] * cfg.n_noise
        self.input_spec = TableInput(tuple(cards))
        self.numeric = torch.tensor(cards) == 0  # [F]
        gen = torch.Generator().manual_seed(cfg.eval_seed)
        raw_fit = self.rows(cfg.probe_train_size, gen)
        raw_test = self.rows(cfg.probe_test_size, gen)
        self.reference = raw_fit.inputs  # standardization statistics
        self._fit, self._test = self._standardized(raw_fit), self._standardized(raw_test)

    def rows(self, n: int, generator: torch.Generator) -> LabeledBatch:
        """n rows before standardization: inputs [n, F] (categorical codes as floats), labels [n]."""
        cfg, F = self.cfg, self.input_spec.n_features
        copies = F if cfg.independent else 1  # independent: one draw of the factors per column
        z = torch.randn(copies, n, cfg.n_latents, generator=generator)  # [C, n, L]
        carrier_z = z[torch.arange(N_CARRIERS) % copies]  # [4, n, L]: carrier k reads copy k (or the shared one)
        carriers = torch.stack([carrier_z[k, :, k] for k in range(N_CARRIERS)], dim=1)  # [n, 4]
        views = [self._view(j, z[(N_CARRIERS + j) % copies]) for j in range(cfg.n_views)]
        columns = torch.cat([carriers, *[v[:, None] for v in views]], dim=1) if views else carriers
        noise = cfg.feature_noise * torch.randn(n, columns.shape[1], generator=generator)
        categorical = torch.tensor([False] * N_CARRIERS + [k == "categorical" for k in self.kinds])
        columns = torch.where(categorical, columns, columns + noise)  # a category is the bin of the clean value
        junk = torch.randn(n, cfg.n_noise, generator=generator)
        label_z = torch.stack([carrier_z[k, :, k] for k in range(N_CARRIERS)], dim=1)  # the carriers' factors
        return LabeledBatch(torch.cat([columns, junk], dim=1), _label(label_z))

    def _view(self, j: int, z: torch.Tensor) -> torch.Tensor:
        """View j of factors z [n, L]: g_j(w_j . z_{S_j}), [n]."""
        u = z[:, self.pairs[j]] @ self.weights[j].float()  # [n]
        kind = self.kinds[j]
        if kind == "tanh":
            return torch.tanh(u)
        if kind == "square":
            return u**2
        if kind == "sin":
            return torch.sin(u)
        if kind == "categorical":  # equal-mass bins of u ~ N(0, |w|^2)
            scale = self.weights[j].float().norm()
            edges = math.sqrt(2) * torch.erfinv(torch.linspace(-1, 1, self.cfg.n_bins + 1)[1:-1]) * scale
            return torch.bucketize(u, edges).float()
        return u

    def _standardized(self, batch: LabeledBatch) -> LabeledBatch:
        inputs = torch.where(self.numeric, _standardize(batch.inputs, self.reference), batch.inputs)
        return LabeledBatch(inputs, batch.labels)

    def train_batches(self, batch_size: int, generator: torch.Generator) -> Iterator[LabeledBatch]:
        """Infinite stream of freshly drawn, standardized rows."""
        while True:
            yield self._standardized(self.rows(batch_size, generator))

    def eval_splits(self) -> dict[str, LabeledBatch]:
        return {"train": self._fit, "test": self._test}


@TASKS.register("latent_table", LatentTableConfig)
def build_latent_table(cfg: LatentTableConfig, seed: int) -> LatentTable:
    return LatentTable(cfg, seed)


# ----------------------------------------------------------------------------------------------
# sklearn_table

LOADERS = {"breast_cancer": "load_breast_cancer", "wine": "load_wine", "digits": "load_digits", "diabetes": "load_diabetes"}


class SklearnTableConfig(ComponentConfig):
    name: Literal["sklearn_table"] = "sklearn_table"
    dataset: Literal["breast_cancer", "wine", "digits", "diabetes"] = "breast_cancer"
    test_fraction: float = Field(default=0.25, gt=0.0, lt=1.0)
    split_seed: int = 0


class SklearnTable:
    def __init__(self, cfg: SklearnTableConfig, seed: int) -> None:
        import sklearn.datasets
        from sklearn.model_selection import train_test_split

        self.cfg = cfg
        self.seed = seed  # unused: train batches come from the generator, the split from split_seed
        data = getattr(sklearn.datasets, LOADERS[cfg.dataset])()
        x = torch.tensor(data.data, dtype=torch.float32)  # [n, F]
        regression = cfg.dataset == "diabetes"
        self.n_classes = 0 if regression else int(data.target.max()) + 1
        y = torch.tensor(data.target, dtype=torch.float32 if regression else torch.long)  # [n]
        train_idx, test_idx = train_test_split(
            torch.arange(len(y)).numpy(), test_size=cfg.test_fraction, random_state=cfg.split_seed,
            stratify=None if regression else y.numpy(),
        )
        train_idx, test_idx = torch.as_tensor(train_idx), torch.as_tensor(test_idx)
        x = _standardize(x, x[train_idx])
        if regression:
            y = (y - y[train_idx].mean()) / y[train_idx].std()
        self.input_spec = TableInput((0,) * x.shape[1])
        self._train, self._test = LabeledBatch(x[train_idx], y[train_idx]), LabeledBatch(x[test_idx], y[test_idx])

    def train_batches(self, batch_size: int, generator: torch.Generator) -> Iterator[LabeledBatch]:
        """Infinite stream of batches from the train part: epochs of fresh permutations, back to back."""
        return epoch_batches(self._train, batch_size, generator)

    def eval_splits(self) -> dict[str, LabeledBatch]:
        return {"train": self._train, "test": self._test}


@TASKS.register("sklearn_table", SklearnTableConfig)
def build_sklearn_table(cfg: SklearnTableConfig, seed: int) -> SklearnTable:
    return SklearnTable(cfg, seed)
