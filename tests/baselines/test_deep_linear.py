"""Deep linear JEPA / MAE (baselines/ssl/deep_linear.py) and the closed-form learning times (linear_ode.py)."""

import math

import pytest
import torch
from conftest import child_runs, cli, report_dir

from baselines.ssl.deep_linear import (
    DeepLinear,
    DeepLinearSSLConfig,
    LinearFeatures,
    LinearFeaturesConfig,
    build_method,
    population_loss,
)
from baselines.ssl.linear_ode import (
    initial_scalar,
    learning_time,
    product_fixed_point,
    rate,
    scalar_fixed_point,
    time_between,
)
from harness.runner import build
from harness.spec.models import RunConfig
from harness.train import fit

DTYPE = torch.float64


def run_config(objective: str, depth: int, lr: float, steps: int, eps: float = 0.05, momentum: float = 0.0, **task) -> RunConfig:
    return RunConfig.model_validate(
        dict(
            task=dict(name="linear_features", **task),
            model=dict(name="deep_linear", depth=depth, eps=eps),
            method=dict(name="deep_linear_ssl", objective=objective),
            optimizer=dict(name="sgd", lr=lr, momentum=momentum, schedule="constant"),
            training=dict(steps=steps, grad_clip=None, checkpoint=False, device="cpu"),
        )
    )


def train(cfg: RunConfig) -> dict[str, float]:
    task, method = build(cfg)
    return fit(method, iter(task.train_batches(1, torch.Generator())), cfg).metrics


def rk4_crossing_time(objective: str, lam: float, rho: float, depth: int, a0: float, a1: float, dt: float) -> float:
    """Integrate da/dt = rate(a) with classical RK4 until a crosses a1 (linear interpolation in the last step)."""
    f = lambda a: rate(objective, lam, rho, depth, a)  # noqa: E731
    t, a = 0.0, a0
    while True:
        k1 = f(a)
        k2 = f(a + dt / 2 * k1)
        k3 = f(a + dt / 2 * k2)
        k4 = f(a + dt * k3)
        nxt = a + dt / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
        if nxt >= a1:
            return t + (a1 - a) / (nxt - a) * dt
        t, a = t + dt, nxt


# ---------------------------------------------------------------------------------------------- closed forms
@pytest.mark.parametrize("objective", ["jepa", "mae"])
@pytest.mark.parametrize("depth", [1, 2, 3])
def test_closed_form_matches_fine_step_ode(objective, depth):
    lam, rho, fraction = 1.0, 0.8, 0.5
    a0 = initial_scalar(1e-2, depth)
    a1 = fraction ** (1 / depth) * scalar_fixed_point(objective, rho, depth)
    predicted = learning_time(objective, lam, rho, depth, a0, fraction)
    assert predicted == pytest.approx(time_between(objective, lam, rho, depth, a0, a1))
    simulated = rk4_crossing_time(objective, lam, rho, depth, a0, a1, dt=predicted / 5000)
    assert simulated == pytest.approx(predicted, rel=1e-6)


@pytest.mark.parametrize("objective, depth, lr, steps", [("jepa", 2, 0.05, 1100), ("mae", 2, 0.005, 800)])
def test_gradient_descent_on_the_model_matches_the_closed_form(objective, depth, lr, steps):
    """One feature trained by the real loop (full-batch GD on the covariances) vs the closed form."""
    metrics = train(run_config(objective, depth, lr, steps, lambdas=[1.0], rhos=[0.8]))
    assert metrics["learned/f0"] == 1.0
    assert metrics["learn_time/f0_pred"] == pytest.approx(learning_time(objective, 1.0, 0.8, depth, 0.05 ** (1 / depth), 0.5))
    assert metrics["rel_err_pct/f0"] < 1.0  # Euler's lag ~ (h/2) ln(f(a1)/f(a0)) / t, about 0.3% here
    assert metrics["sim_time"] == pytest.approx(lr * steps)


def test_jepa_order_switches_with_depth_and_mae_follows_lambda():
    """The paper's example (lambda = (1.2, 1.0), rho = (0.3, 0.9), eps = 1e-3), closed form only."""

    def first(objective, depth, convention="product"):
        a0 = initial_scalar(1e-3, depth, convention)
        t = [learning_time(objective, lam, rho, depth, a0, 0.5) for lam, rho in ((1.2, 0.3), (1.0, 0.9))]
        return int(t[1] < t[0])

    assert [first("jepa", L) for L in range(1, 6)] == [0, 0, 1, 1, 1]
    assert [first("mae", L) for L in range(1, 6)] == [0] * 5
    assert [first("jepa", L, "layer") for L in range(1, 6)] == [0] * 5  # every layer at eps: no switch


def test_learning_time_is_nan_when_the_init_is_past_the_threshold():
    # JEPA, depth 6: the product starts at 1e-3 > 0.5 * 0.3^6
    assert math.isnan(learning_time("jepa", 1.2, 0.3, 6, initial_scalar(1e-3, 6), 0.5))


@pytest.mark.parametrize("objective", ["jepa", "mae"])
@pytest.mark.parametrize("depth", [1, 2, 4])
def test_fixed_points_have_zero_gradient(objective, depth):
    task = LinearFeatures(LinearFeaturesConfig(name="linear_features", lambdas=(1.2, 1.0), rhos=(0.3, 0.9)))
    stars = torch.tensor([scalar_fixed_point(objective, r, depth) for r in (0.3, 0.9)], dtype=DTYPE)
    model = DeepLinear(2, depth, 1.0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.diag(stars))
    population_loss(objective, model.encoder_product(), model.predictor, task.population).backward()
    for p in model.parameters():
        assert p.grad.abs().max() < 1e-12
    expected = [0.3**depth, 0.9**depth] if objective == "jepa" else [r ** (depth / (depth + 1)) for r in (0.3, 0.9)]
    assert torch.diagonal(model.encoder_product()).tolist() == pytest.approx(expected)
    assert [product_fixed_point(objective, r, depth) for r in (0.3, 0.9)] == pytest.approx(expected)


# ---------------------------------------------------------------------------------------------- dynamics
def gd_steps(model: DeepLinear, objective: str, task: LinearFeatures, lr: float, steps: int) -> None:
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        population_loss(objective, model.encoder_product(), model.predictor, task.population).backward()
        opt.step()


@pytest.mark.parametrize("objective", ["jepa", "mae"])
def test_balanced_init_stays_balanced_in_a_rotated_basis(objective):
    cfg = LinearFeaturesConfig(name="linear_features", lambdas=(1.2, 1.0, 0.7), rhos=(0.3, 0.9, 0.6), rotation_seed=4)
    task = LinearFeatures(cfg)
    model = DeepLinear(3, 3, initial_scalar(0.05, 3))
    gd_steps(model, objective, task, lr=0.1, steps=300)  # lr 0.5 makes cross-feature modes of MAE unstable here
    factors = [*model.layers, model.predictor]
    assert (factors[0] - factors[0].detach().diag().diag()).abs().max() > 1e-3  # moved off the identity's span
    for a, b in zip(factors, factors[1:]):
        assert (a - b).abs().max() < 1e-12  # every factor is Q D Q^T with the same D


@pytest.mark.parametrize("objective", ["jepa", "mae"])
def test_gradient_flow_conserves_the_layer_imbalance(objective):
    """W_{l+1}^T W_{l+1} - W_l W_l^T and V^T V - W_L W_L^T are conserved by gradient flow (small-step GD: O(lr)
    drift), also from an unbalanced init, while each W_l W_l^T itself changes by O(1)."""
    task = LinearFeatures(LinearFeaturesConfig(name="linear_features", lambdas=(1.2, 1.0), rhos=(0.3, 0.9), rotation_seed=1))
    model = DeepLinear(2, 2, 1.0)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(0.6 * torch.randn(2, 2, generator=gen, dtype=DTYPE))
    factors = [*model.layers, model.predictor]

    def imbalance():
        return torch.stack([b.T @ b - a @ a.T for a, b in zip(factors, factors[1:])]).detach().clone()

    gram0, before = model.layers[0].detach() @ model.layers[0].detach().T, imbalance()
    gd_steps(model, objective, task, lr=1e-3, steps=2000)
    moved = (model.layers[0].detach() @ model.layers[0].detach().T - gram0).abs().max()
    assert moved > 0.05
    assert (imbalance() - before).abs().max() < 0.01 * moved


def test_jepa_target_branch_carries_no_gradient():
    task = LinearFeatures(LinearFeaturesConfig(name="linear_features", rotation_seed=2))
    model = DeepLinear(2, 2, 0.7)
    pop = task.population

    def grads(loss):
        model.zero_grad()
        loss.backward()
        return [p.grad.clone() for p in model.parameters()]

    wbar = model.encoder_product()
    got = grads(population_loss("jepa", wbar, model.predictor, pop))
    # the same loss with the target as an explicit constant
    target = model.encoder_product().detach().clone()
    wbar = model.encoder_product()
    p = model.predictor @ wbar
    const = 0.5 * torch.trace(p @ pop.sxx @ p.T) - torch.trace(p @ pop.sxy @ target.T)
    assert all(torch.allclose(a, b, atol=1e-14) for a, b in zip(got, grads(const)))
    # and not the loss with a differentiable target
    wbar = model.encoder_product()
    p = model.predictor @ wbar
    full = 0.5 * torch.trace(p @ pop.sxx @ p.T) - torch.trace(p @ pop.sxy @ wbar.T) + 0.5 * torch.trace(wbar @ pop.syy @ wbar.T)
    assert not all(torch.allclose(a, b, atol=1e-6) for a, b in zip(got, grads(full)))


@pytest.mark.parametrize("objective", ["jepa", "mae"])
def test_population_loss_matches_monte_carlo(objective):
    cfg = LinearFeaturesConfig(name="linear_features", lambdas=(1.2, 1.0, 0.5), rhos=(0.3, 0.9, 0.6), rotation_seed=7)
    task = LinearFeatures(cfg)
    gen = torch.Generator().manual_seed(0)
    model = DeepLinear(3, 2, 1.0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(3, 3, generator=gen, dtype=DTYPE))
    x, y = task.sample(400_000, gen)  # [n, 3] each
    assert torch.allclose(x.T @ y / len(x), task.population.sxy, atol=0.02)
    with torch.no_grad():
        wbar = model.encoder_product()
        target = y @ wbar.T if objective == "jepa" else y
        mc = 0.5 * ((model(x) - target) ** 2).sum(1).mean()
        exact = population_loss(objective, wbar, model.predictor, task.population)
    assert float(mc) == pytest.approx(float(exact), rel=0.02)


# ---------------------------------------------------------------------------------------------- method
def test_unlearned_features_are_reported_as_such():
    metrics = train(run_config("jepa", 3, 0.1, 10, eps=1e-3))
    assert metrics["learned/f0"] == 0.0 and math.isnan(metrics["learn_time/f0_sim"])
    assert math.isnan(metrics["first/sim"]) and metrics["first/pred"] in (0.0, 1.0)


def test_non_gradient_descent_updates_raise():
    with pytest.raises(RuntimeError, match="not -"):
        train(run_config("jepa", 2, 0.05, 5, momentum=0.9))


def test_method_needs_its_model_and_task():
    task = LinearFeatures(LinearFeaturesConfig(name="linear_features"))
    with pytest.raises(TypeError, match="deep_linear model"):
        build_method(DeepLinearSSLConfig(name="deep_linear_ssl"), torch.nn.Linear(2, 2), task)


def test_rhos_must_be_correlations():
    with pytest.raises(ValueError, match="rho"):
        LinearFeaturesConfig(name="linear_features", lambdas=(1.0,), rhos=(1.5,))


# ---------------------------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_jepa_theory_suite_end_to_end(root, tmp_path):
    """A tiny jepa_theory (depth 1 only, rotated feature basis) through the real CLI, workers and MLflow."""
    suite = str(root / "suites" / "jepa_theory.yaml")
    proc = cli(root, tmp_path, "run", suite, "--workers", "2", "grid.model.depth=[1]", "defaults.task.rotation_seed=3")
    assert proc.returncode == 0, proc.stderr
    children, _ = child_runs(tmp_path, "jepa_theory")
    assert sorted(r.data.params["method.objective"] for r in children) == ["jepa", "mae"]
    for r in children:
        m = r.data.metrics
        assert r.info.status == "FINISHED" and m["learned/f0"] == m["learned/f1"] == 1.0
        assert m["rel_err_pct/f0"] < 2 and m["rel_err_pct/f1"] < 2
        assert m["first/sim"] == m["first/pred"] == 0.0  # depth 1: both objectives learn the higher lambda first
    out = report_dir(tmp_path, "jepa_theory")  # a variant (overrides): its own folder
    report = (out / "report.md").read_text()
    assert "| jepa | 1 | 1 |" in report and "| mae | 1 | 1 |" in report and "feature f0_sim" in report
    assert (out / "jepa_feature1.png").stat().st_size > 1000
