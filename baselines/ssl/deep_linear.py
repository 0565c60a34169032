"""Deep linear JEPA vs MAE trained by full-batch gradient descent on exact covariances (Littwin et al. 2024,
"How JEPA Avoids Noisy Features"); the ODEs and closed-form learning times are in `baselines/ssl/linear_ode.py`.

Three components, used together by suites/jepa_theory.yaml:

* task `linear_features`: two views x, y in R^d, jointly Gaussian, with independent features i:
      x = Q (sigma * z1),   y = Q (sigma * (rho * z1 + sqrt(1 - rho^2) * z2)),   z1, z2 ~ N(0, I_d)
  sigma_i^2 = lambda_i / rho_i, so E[x y^T] = Q diag(lambda) Q^T, E[x x^T] = E[y y^T] = Q diag(lambda / rho) Q^T:
  lambda_i is the cross-covariance of feature i, rho_i (in (0, 1]) its regression coefficient (and the
  correlation of the two views).  Q is the identity, or a random orthogonal matrix (`rotation_seed`) to check
  that nothing relies on axis-aligned data (with Q = I the off-diagonal entries of every factor stay exactly
  0; with a rotation, rounding excites the cross-feature modes, and the step size must keep those stable too).
  Every training "batch" is the population itself: the three exact second-moment matrices
  (`CovarianceBatch`), so gradient descent on it is full-batch GD on the exact loss.
  The run seed plays no role: nothing is random.
* model `deep_linear`: encoder layers W_1..W_L and predictor V, all [d, d] float64, balanced small init:
  each starts at a(0) times the identity, a(0) = eps^(1/L) (`init_convention: product`, the paper's: the
  encoder product starts at eps) or eps (`layer`).  The identity is aligned with any feature basis Q
  (I = Q I Q^T), so the dynamics decouple per feature for either objective.
* method `deep_linear_ssl`: the exact population loss (objective `jepa` or `mae`, below) from the
  covariances, and the learning-time measurement:
      p_i(t) = q_i^T Wbar q_i               the encoder product along feature i (q_i = Q[:, i])
      t      = steps * h                    h measured on the first update theta_1 - theta_0 = -h g_0
  (so the method needs no copy of the learning rate).  Every later update must be -h g_k as well (plain GD
  with a constant step, the forward-Euler discretization of gradient flow); momentum, weight decay, Adam,
  clipping or a schedule raise.  The learning time of feature i is the first t at which p_i reaches
  `fraction` of its fixed point (linear interpolation between steps), compared with
  linear_ode.learning_time.

Population losses, with P = V Wbar, S_xx = E[x x^T], S_xy = E[x y^T], S_yy = E[y y^T], T = sg(Wbar):
    MAE   1/2 E||P x - y||^2   = 1/2 tr(P S_xx P^T) - tr(P S_xy) + 1/2 tr(S_yy)
    JEPA  1/2 E||P x - T y||^2 = 1/2 tr(P S_xx P^T) - tr(P S_xy T^T) + 1/2 tr(T S_yy T^T)

evaluate() -> flat metrics, i = feature index:
    learn_time/f{i}_sim, learn_time/f{i}_pred   simulated / closed-form learning time (NaN if not reached)
    rel_err_pct/f{i}                            100 |sim - pred| / pred
    learned/f{i}                                1 if the threshold was crossed during the run, else 0
    first/sim, first/pred                       index of the feature learned first (NaN unless all learned)
    product/f{i}, fixed_point/f{i}              encoder product at the end of the run, and its fixed point
    sim_time                                    gradient-flow time simulated by the whole run
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import torch
from pydantic import Field, model_validator
from torch import nn

from baselines.ssl.linear_ode import InitConvention, initial_scalar, learning_time, product_fixed_point
from harness.components import METHODS, MODELS, TASKS, LossOutput, Task
from harness.registry import ComponentConfig

DTYPE = torch.float64
UPDATE_TOLERANCE = 1e-6  # allowed |update + h grad| relative to |h grad| ...
ROUNDOFF = 16 * torch.finfo(DTYPE).eps  # ... plus the rounding of theta_{k+1} - theta_k (relative to |theta|)


# ------------------------------------------------------------------------------------------------ task
@dataclass
class CovarianceBatch:
    """The exact second moments of the two views, each [d, d] float64: sxx = E[x x^T], sxy = E[x y^T],
    syy = E[y y^T].  It stands for the whole population: len() is 1 (one expectation, not a sample)."""

    sxx: torch.Tensor
    sxy: torch.Tensor
    syy: torch.Tensor

    def __len__(self) -> int:
        return 1

    def to(self, device: torch.device) -> CovarianceBatch:
        return CovarianceBatch(self.sxx.to(device), self.sxy.to(device), self.syy.to(device))


class LinearFeaturesConfig(ComponentConfig):
    lambdas: tuple[float, ...] = (1.2, 1.0)  # cross-covariance lambda_i of each feature
    rhos: tuple[float, ...] = (0.3, 0.9)  # regression coefficient rho_i of each feature, in (0, 1]
    rotation_seed: int | None = None  # None: features on the coordinate axes; else a random orthogonal basis

    def held_bytes(self) -> dict[str, int]:
        return {"lambdas": 5 * 8 * len(self.lambdas) ** 2}  # the basis and three [d, d] float64 covariances (+ a QR)

    @model_validator(mode="after")
    def _check(self) -> LinearFeaturesConfig:
        if len(self.lambdas) != len(self.rhos) or not self.lambdas:
            raise ValueError(f"lambdas and rhos need the same (nonzero) length, got {len(self.lambdas)} and {len(self.rhos)}")
        if any(lam <= 0 for lam in self.lambdas):
            raise ValueError(f"every lambda must be > 0, got {self.lambdas}")
        if any(not 0 < rho <= 1 for rho in self.rhos):
            raise ValueError(f"every rho must be in (0, 1] (it is also the correlation of the two views), got {self.rhos}")
        return self


class LinearFeatures:
    def __init__(self, cfg: LinearFeaturesConfig) -> None:
        self.lambdas = torch.tensor(cfg.lambdas, dtype=DTYPE)  # [d]
        self.rhos = torch.tensor(cfg.rhos, dtype=DTYPE)  # [d]
        self.dim = len(cfg.lambdas)
        self.basis = torch.eye(self.dim, dtype=DTYPE)  # [d, d], column i = feature i
        if cfg.rotation_seed is not None:
            gen = torch.Generator().manual_seed(cfg.rotation_seed)
            q, r = torch.linalg.qr(torch.randn(self.dim, self.dim, generator=gen, dtype=DTYPE))
            self.basis = q * torch.sign(torch.diagonal(r))  # Haar-distributed orthogonal matrix
        var = self.lambdas / self.rhos  # sigma_i^2 = Var x_i = Var y_i
        q = self.basis
        self.population = CovarianceBatch(
            sxx=q @ torch.diag(var) @ q.T, sxy=q @ torch.diag(self.lambdas) @ q.T, syy=q @ torch.diag(var) @ q.T
        )

    def train_batches(self, batch_size: int, generator: torch.Generator) -> Iterator[CovarianceBatch]:
        """The population at every step (batch_size is irrelevant: full-batch GD on the exact loss)."""
        while True:
            yield self.population

    def eval_splits(self) -> dict[str, CovarianceBatch]:
        return {"population": self.population}

    def sample(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """n draws of the two views (x, y), each [n, d]: for checking the covariances and losses."""
        sigma = (self.lambdas / self.rhos).sqrt()  # [d]
        z1 = torch.randn(n, self.dim, generator=generator, dtype=DTYPE)
        z2 = torch.randn(n, self.dim, generator=generator, dtype=DTYPE)
        x = (sigma * z1) @ self.basis.T
        y = (sigma * (self.rhos * z1 + (1 - self.rhos**2).sqrt() * z2)) @ self.basis.T
        return x, y


@TASKS.register("linear_features", LinearFeaturesConfig)
def build_task(cfg: LinearFeaturesConfig, seed: int) -> LinearFeatures:
    return LinearFeatures(cfg)


# ------------------------------------------------------------------------------------------------ model
class DeepLinearConfig(ComponentConfig):
    depth: int = Field(default=1, ge=1)  # L encoder layers
    eps: float = Field(default=1e-3, gt=0)  # initial scale (see init_convention)
    init_convention: InitConvention = "product"  # product: every factor eps^(1/L); layer: every factor eps


class DeepLinear(nn.Module):
    """Encoder Wbar = W_L ... W_1 and predictor V, every factor [d, d] and initialized to a(0) I."""

    def __init__(self, dim: int, depth: int, a0: float) -> None:
        super().__init__()
        self.a0 = a0
        self.layers = nn.ParameterList([nn.Parameter(a0 * torch.eye(dim, dtype=DTYPE)) for _ in range(depth)])
        self.predictor = nn.Parameter(a0 * torch.eye(dim, dtype=DTYPE))

    @property
    def depth(self) -> int:
        return len(self.layers)

    def encoder_product(self) -> torch.Tensor:
        """Wbar = W_L ... W_1: [d, d]."""
        out = self.layers[0]
        for w in self.layers[1:]:
            out = w @ out
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [n, d] -> predictions V Wbar x: [n, d]."""
        return x @ (self.predictor @ self.encoder_product()).T


@MODELS.register("deep_linear", DeepLinearConfig)
def build_model(cfg: DeepLinearConfig, task: Task) -> DeepLinear:
    if not isinstance(task, LinearFeatures):
        raise TypeError(f"model deep_linear needs the linear_features task; {type(task).__name__} is not one")
    return DeepLinear(task.dim, cfg.depth, initial_scalar(cfg.eps, cfg.depth, cfg.init_convention))


# ------------------------------------------------------------------------------------------------ method
class DeepLinearSSLConfig(ComponentConfig):
    objective: Literal["jepa", "mae"] = "jepa"
    fraction: float = Field(default=0.5, gt=0, lt=1)  # a feature is learned when p_i reaches fraction * p_i*


def population_loss(objective: str, wbar: torch.Tensor, predictor: torch.Tensor, batch: CovarianceBatch) -> torch.Tensor:
    """The exact loss 1/2 E||V Wbar x - target||^2 (module docstring); target = sg(Wbar) y or y.
    wbar, predictor: [d, d]."""
    p = predictor @ wbar  # [d, d]
    fit = 0.5 * torch.trace(p @ batch.sxx @ p.T)
    if objective == "mae":
        return fit - torch.trace(p @ batch.sxy) + 0.5 * torch.trace(batch.syy)
    t = wbar.detach()  # stop-gradient: the target branch is a constant
    return fit - torch.trace(p @ batch.sxy @ t.T) + 0.5 * torch.trace(t @ batch.syy @ t.T)


class DeepLinearSSL:
    def __init__(self, cfg: DeepLinearSSLConfig, model: DeepLinear, task: LinearFeatures) -> None:
        self.cfg, self.module, self.task = cfg, model, task
        depth, lambdas, rhos = model.depth, task.lambdas.tolist(), task.rhos.tolist()
        self.fixed_points = [product_fixed_point(cfg.objective, rho, depth) for rho in rhos]
        self.thresholds = [cfg.fraction * fp for fp in self.fixed_points]
        self.predicted = [
            learning_time(cfg.objective, lam, rho, depth, model.a0, cfg.fraction) for lam, rho in zip(lambdas, rhos)
        ]  # closed-form learning time of each feature
        self.crossed: list[float] = [math.nan] * task.dim  # simulated learning time of each feature
        self.step_size: float | None = None  # h of theta_{k+1} = theta_k - h grad_k, measured on the first step
        self.time = 0.0  # gradient-flow time elapsed: steps * h
        self.seen_time = 0.0  # time of the last observed products
        self.products = self._products(model.encoder_product().detach())
        self._theta: torch.Tensor | None = None  # parameters before the step (taken on the device, in loss)

    def _flat(self, tensors: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat([t.detach().reshape(-1) for t in tensors])

    def state_dict(self) -> dict[str, Any]:
        """Training state outside `module`, for resume checkpoints (harness.train.resume.Stateful)."""
        theta = None if self._theta is None else self._theta.cpu()
        return {"crossed": list(self.crossed), "step_size": self.step_size, "time": self.time,
                "seen_time": self.seen_time, "products": list(self.products), "theta": theta}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.crossed, self.step_size, self.time = list(state["crossed"]), state["step_size"], state["time"]
        self.seen_time, self.products = state["seen_time"], list(state["products"])
        device = next(self.module.parameters()).device
        self._theta = None if state["theta"] is None else state["theta"].to(device)

    def _products(self, wbar: torch.Tensor) -> list[float]:
        """p_i = q_i^T Wbar q_i for every feature i; wbar: [d, d] (detached)."""
        q = self.task.basis.to(wbar.device)  # [d, d]
        return (q * (wbar @ q)).sum(0).tolist()

    def _observe(self, products: list[float]) -> None:
        """Record the products at the current time; a feature whose product crosses its threshold between
        the last observation and now gets its learning time by linear interpolation."""
        dt = self.time - self.seen_time
        for i, (p0, p1, thr) in enumerate(zip(self.products, products, self.thresholds)):
            if math.isnan(self.crossed[i]) and p0 < thr <= p1:
                self.crossed[i] = self.seen_time + (thr - p0) / (p1 - p0) * dt
        self.products, self.seen_time = products, self.time

    def collate(self, batch: CovarianceBatch, generator: torch.Generator) -> CovarianceBatch:
        return batch

    def loss(self, batch: CovarianceBatch) -> LossOutput:
        if self._theta is None:
            self._theta = self._flat(list(self.module.parameters()))
        wbar = self.module.encoder_product()  # [d, d]
        self._observe(self._products(wbar.detach()))
        metrics = {f"progress/f{i}": p / fp for i, (p, fp) in enumerate(zip(self.products, self.fixed_points))}
        loss = population_loss(self.cfg.objective, wbar, self.module.predictor, batch)
        return LossOutput(loss, {"sim_time": self.time, **metrics})

    @torch.no_grad()
    def after_step(self, step: int, total_steps: int) -> None:
        """Time = step * h, with h the step size of the first update theta_1 = theta_0 - h grad_0; every later
        update is checked to be -h grad too (up to the rounding of theta): plain GD with a constant step."""
        if self._theta is None:
            raise RuntimeError("after_step before any loss: no parameters to measure the step from")
        params = list(self.module.parameters())
        theta, grad = self._flat(params), self._flat([p.grad for p in params])
        delta = theta - self._theta  # [n_params]
        if self.step_size is None:
            gd, gg = torch.stack([delta @ grad, grad @ grad]).tolist()
            if gg == 0:
                raise RuntimeError("zero gradient at the first step: the initialization is a fixed point")
            self.step_size = -gd / gg
        off_line, size, scale = torch.stack([(delta + self.step_size * grad).norm(), grad.norm(), theta.norm()]).tolist()
        if off_line > UPDATE_TOLERANCE * self.step_size * size + ROUNDOFF * scale:
            raise RuntimeError(
                f"deep_linear_ssl measures gradient-flow time as steps * step size; the update of step {step} is not "
                f"-{self.step_size:.6g} * gradient (use optimizer sgd with momentum 0, weight_decay 0, a constant "
                "schedule without warmup, and training.grad_clip null)"
            )
        self._theta = theta
        self.time = step * self.step_size

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        self._observe(self._products(self.module.encoder_product()))
        metrics: dict[str, float] = {"sim_time": self.time}
        for i, (sim, pred) in enumerate(zip(self.crossed, self.predicted)):
            metrics[f"learn_time/f{i}_sim"] = sim
            metrics[f"learn_time/f{i}_pred"] = pred
            metrics[f"rel_err_pct/f{i}"] = 100 * abs(sim - pred) / pred
            metrics[f"learned/f{i}"] = float(not math.isnan(sim))
            metrics[f"product/f{i}"] = self.products[i]
            metrics[f"fixed_point/f{i}"] = self.fixed_points[i]
        metrics["first/sim"] = first_learned(self.crossed)
        metrics["first/pred"] = first_learned(self.predicted)
        return metrics


def first_learned(times: list[float]) -> float:
    """Index of the smallest time; NaN if any time is NaN (a feature not learned: no order to report)."""
    if any(math.isnan(t) for t in times):
        return math.nan
    return float(min(range(len(times)), key=times.__getitem__))


def metric_names(cfg: DeepLinearSSLConfig, task: LinearFeatures) -> list[str]:
    """What evaluate() and the training step log (module docstring), for the task's features."""
    per_feature = ("learn_time/f{i}_sim", "learn_time/f{i}_pred", "rel_err_pct/f{i}", "learned/f{i}", "product/f{i}",
                   "fixed_point/f{i}", "train/progress/f{i}")
    return ["sim_time", "train/sim_time", "first/sim", "first/pred",
            *(name.format(i=i) for i in range(task.dim) for name in per_feature)]


@METHODS.register("deep_linear_ssl", DeepLinearSSLConfig, metrics=metric_names)
def build_method(cfg: DeepLinearSSLConfig, model: nn.Module, task: Task) -> DeepLinearSSL:
    if not isinstance(model, DeepLinear) or not isinstance(task, LinearFeatures):
        raise TypeError(
            f"method deep_linear_ssl needs the deep_linear model and the linear_features task, "
            f"got {type(model).__name__} and {type(task).__name__}"
        )
    return DeepLinearSSL(cfg, model, task)
