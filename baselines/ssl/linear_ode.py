"""Gradient-flow ODEs of deep linear JEPA and MAE, feature by feature, and their closed-form learning times
(Littwin et al. 2024, "How JEPA Avoids Noisy Features: The Implicit Bias of Deep Linear Self Distillation
Networks").  Used by `baselines/ssl/deep_linear.py` for the predicted times; derived here.

Setting
-------
Two views x, y in R^d with diagonal second moments (in some orthonormal basis of features i = 1..d):

    Sigma_yx = E[y x^T] = diag(lambda_i)        lambda_i: covariance of the two views along feature i
    Sigma_xx = E[x x^T] = diag(lambda_i / rho_i) rho_i   : regression coefficient of y_i on x_i
                                                          (rho_i = lambda_i / sigma_i^2, sigma_i^2 = Var x_i)

Encoder Wbar = W_L ... W_1 (L square layers), linear predictor V.  The two objectives:

    JEPA  J = 1/2 E || V Wbar x - sg(Wbar y) ||^2     (sg: stop-gradient, the target branch is a constant)
    MAE   M = 1/2 E || V Wbar x - y ||^2

Reduction to one scalar per feature
-----------------------------------
Take every layer and the predictor diagonal in the feature basis, W_l = diag(w_l), V = diag(v).  Per feature
(index dropped), with p = w_1 ... w_L the end-to-end encoder product and sigma^2 = lambda / rho:

    J_i = 1/2 (v^2 p^2 sigma^2 - 2 v p p_sg lambda + p_sg^2 sigma_y^2)
    M_i = 1/2 (v^2 p^2 sigma^2 - 2 v p lambda + sigma_y^2)

Gradient flow (d theta / dt = -dLoss/d theta; for JEPA p_sg = p is set after differentiating):

    JEPA  dv/dt   = -p^2 (v sigma^2 - lambda)
          dw_l/dt = -(p / w_l) * v p (v sigma^2 - lambda)
    MAE   dv/dt   = -p (v p sigma^2 - lambda)
          dw_l/dt = -(p / w_l) * v (v p sigma^2 - lambda)

If v = w_1 = ... = w_L = a, both right-hand sides are equal (p / w_l * v = p for JEPA, p / w_l * v = a^L = p
for MAE), so equal scalars stay equal for all t: this is the balanced manifold (gradient flow conserves
W_{l+1}^T W_{l+1} - W_l W_l^T and V^T V - W_L W_L^T, which are 0 there).  With p = a^L:

    JEPA  da/dt = a^{2L} (lambda - sigma^2 a)        = (lambda / rho) a^{2L} (rho - a)
    MAE   da/dt = a^L (lambda - sigma^2 a^{L+1})      = (lambda / rho) a^L (rho - a^{L+1})

Fixed points (a > 0): JEPA a* = rho, so the encoder product p* = rho^L; MAE a*^{L+1} = rho, p* = rho^{L/(L+1)}.
Gradient descent with step h on the parameters is exactly forward Euler with step h on a (the update of
every scalar is the same, so GD stays on the balanced manifold too); "time" is steps * h.

Initialization
--------------
"Balanced small initialization eps" follows the paper: every layer and the predictor start at eps^{1/L}
times an orthogonal matrix (here the identity), so the END-TO-END encoder product starts at eps:
a(0) = eps^{1/L}.  The alternative (every layer at eps, a(0) = eps; model option `init_convention: layer`)
makes the rho-dependent terms below negligible (their relative size is ~ (a(0)/rho)^k), and JEPA then
orders features by lambda at every depth (with lambda = (1.2, 1.0), rho = (0.3, 0.9), eps = 1e-3 the closed
form gives feature 0 first for L = 1..5), besides learning times that grow like eps^{-(2L-1)}.

Learning time: closed forms
---------------------------
The time for a to go from a0 to a1 is t = int_{a0}^{a1} da / f(a), f the right-hand side above (a0 < a1 below
the fixed point, f > 0 on the way).  The learning time of a feature is the time at which the encoder product
p = a^L reaches a fraction `fraction` of its fixed point: a1 = fraction^{1/L} rho (JEPA),
a1 = fraction^{1/L} rho^{1/(L+1)} (MAE).

JEPA.  With n = 2L, the partial fractions  1/(s^n (rho - s)) = sum_{k=1}^{n} rho^{k-n-1} s^{-k} + rho^{-n}/(rho - s)
give

    t = (1/lambda) [ sum_{k=2}^{2L} rho^{k-2L} (a0^{1-k} - a1^{1-k}) / (k-1)
                     + rho^{1-2L} ln( a1 (rho - a0) / (a0 (rho - a1)) ) ].

For small a0 the k-th term is ~ rho^{k-2L} a0^{1-k}: the leading term (k = 2L) a0^{1-2L} / (lambda (2L-1)) does
not depend on rho; the rho-dependence of the subleading terms grows like rho^{-(2L-k)} while they shrink
only like a0^{2L-k} = eps^{(2L-k)/L}.  Deeper encoders thus make JEPA's learning time increasingly sensitive
to rho (low-rho features are slowed down), which is the depth-dependent bias of the paper.

MAE.  From s^{L+1} = rho - (rho - s^{L+1}):  rho / (s^L (rho - s^{L+1})) = s^{-L} + s / (rho - s^{L+1}), and with
the L+1 roots r_j = rho^{1/(L+1)} exp(2 pi i j / (L+1)) of s^{L+1} = rho,
s / (rho - s^{L+1}) = -(1 / ((L+1) rho)) sum_j r_j^2 / (s - r_j).  Hence t = (F(a1) - F(a0)) / lambda with

    F(s) = s^{1-L} / (1-L)   (ln s if L = 1)   -   (1 / ((L+1) rho)) Re sum_j r_j^2 Log(s - r_j).

(Log is the principal complex log; on 0 < s < rho^{1/(L+1)} no s - r_j crosses its branch cut except the real
root, where Log(s - r_0) = ln|s - r_0| + i pi contributes only the constant i pi r_0^2, dropped by Re.)
The leading term a0^{1-L} / (lambda (L-1)) (or ln(1/a0) / lambda for L = 1) is rho-free and the rho-terms are
O(1): MAE orders features by lambda at every depth.
"""

from __future__ import annotations

import cmath
import math
from typing import Literal

Objective = Literal["jepa", "mae"]
InitConvention = Literal["product", "layer"]


def initial_scalar(eps: float, depth: int, convention: InitConvention = "product") -> float:
    """a(0): every layer and the predictor start at a(0) times the identity."""
    return eps ** (1.0 / depth) if convention == "product" else eps


def scalar_fixed_point(objective: Objective, rho: float, depth: int) -> float:
    """a* > 0 where da/dt = 0."""
    return rho if objective == "jepa" else rho ** (1.0 / (depth + 1))


def product_fixed_point(objective: Objective, rho: float, depth: int) -> float:
    """The encoder product at the fixed point: rho^L (JEPA), rho^{L/(L+1)} (MAE)."""
    return scalar_fixed_point(objective, rho, depth) ** depth


def rate(objective: Objective, lam: float, rho: float, depth: int, a: float) -> float:
    """da/dt of the balanced scalar a (module docstring)."""
    if objective == "jepa":
        return lam / rho * a ** (2 * depth) * (rho - a)
    return lam / rho * a**depth * (rho - a ** (depth + 1))


def _jepa_time(lam: float, rho: float, depth: int, a0: float, a1: float) -> float:
    n = 2 * depth
    power_terms = sum(rho ** (k - n) * (a0 ** (1 - k) - a1 ** (1 - k)) / (k - 1) for k in range(2, n + 1))
    log_term = rho ** (1 - n) * math.log(a1 * (rho - a0) / (a0 * (rho - a1)))
    return (power_terms + log_term) / lam


def _mae_antiderivative(rho: float, depth: int, s: float) -> float:
    m = depth + 1
    power = math.log(s) if depth == 1 else s ** (1 - depth) / (1 - depth)
    roots = [rho ** (1.0 / m) * cmath.exp(2j * math.pi * j / m) for j in range(m)]
    log_sum = sum(r * r * cmath.log(s - r) for r in roots)
    return power - log_sum.real / (m * rho)


def time_between(objective: Objective, lam: float, rho: float, depth: int, a0: float, a1: float) -> float:
    """Gradient-flow time for the balanced scalar to go from a0 to a1 (0 < a0 <= a1 < a*)."""
    a_star = scalar_fixed_point(objective, rho, depth)
    if not 0 < a0 <= a1 < a_star:
        raise ValueError(f"need 0 < a0 <= a1 < a* = {a_star:.6g}, got a0={a0:.6g}, a1={a1:.6g}")
    if objective == "jepa":
        return _jepa_time(lam, rho, depth, a0, a1)
    return (_mae_antiderivative(rho, depth, a1) - _mae_antiderivative(rho, depth, a0)) / lam


def learning_time(objective: Objective, lam: float, rho: float, depth: int, a0: float, fraction: float) -> float:
    """Time for the encoder product of a feature to reach `fraction` of its fixed point, starting from the
    balanced scalar a0 (`initial_scalar`); NaN when it starts there already (a0 >= the threshold)."""
    a1 = fraction ** (1.0 / depth) * scalar_fixed_point(objective, rho, depth)
    if a0 >= a1:
        return math.nan
    return time_between(objective, lam, rho, depth, a0, a1)
