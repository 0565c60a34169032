"""harness.estimate: parameter count, FLOPs per step and memory of a run, without training it (meta device)."""

import pytest
import torch

from harness.estimate import META, Estimate, _trace, estimate
from harness.runner import build
from harness.spec import expand, load_suite


def configs(root, suite):
    return [r.config for r in expand(load_suite(root / "suites" / f"{suite}.yaml"))]


def with_training(cfg, **training):
    return cfg.model_copy(update={"training": cfg.training.model_copy(update=training)})


def test_params_are_the_real_models(root):
    for cfg in configs(root, "copying_smoke") + configs(root, "jepa_theory")[:1]:
        _, method = build(cfg)
        assert estimate(cfg).params == sum(p.numel() for p in method.module.parameters()), cfg.model.name


def test_transformer_flops_are_the_matmuls_of_forward_and_backward(root):
    cfg = next(c for c in configs(root, "copying_smoke") if c.model.name == "transformer")
    m = cfg.model.model_copy(update={"pos_emb": "rope"})  # rope adds no matmul
    cfg = cfg.model_copy(update={"model": m})
    B, T, d, V, L = cfg.training.batch_size, cfg.task.context_len, m.d_model, 30, m.n_layers
    n = B * T
    forward = L * (2 * n * d * 3 * d + 2 * n * d * d + 2 * 2 * n * d * 4 * d + 2 * 2 * B * T * T * d) + 2 * n * d * V
    assert estimate(cfg).flops_per_step == pytest.approx(3 * forward, rel=1e-9)  # backward = 2 x forward
    assert estimate(cfg).total_flops(100) == 100 * estimate(cfg).flops_per_step


def test_meta_trace_counts_what_a_real_cpu_step_does(root):
    from harness.components import TASKS

    for cfg in configs(root, "copying_smoke"):  # transformer (hard_alibi, none), lstm, mamba (fused scan)
        task = TASKS.get(cfg.task.name).build(cfg.task, cfg.seed)
        batch = next(task.train_batches(cfg.training.batch_size, torch.Generator().manual_seed(0)))
        meta, cpu = _trace(cfg, task, batch, META), _trace(cfg, task, batch, torch.device("cpu"))
        assert meta.params == cpu.params, cfg.model.name
        if cfg.model.name == "lstm":  # CPU runs nn.LSTM as one fused kernel the counter cannot see into; meta
            n, h, layers = cfg.training.batch_size * cfg.task.context_len, cfg.model.d_model, cfg.model.n_layers
            gates = layers * 2 * n * 4 * h * (h + h)  # decomposes it into its gate matmuls
            assert cpu.flops_per_step < 0.1 * meta.flops_per_step
            assert meta.flops_per_step == pytest.approx(3 * (gates + 2 * n * h * 30), rel=0.01)
            continue
        assert meta.flops_per_step == cpu.flops_per_step > 0, cfg.model.name
        assert meta.memory_bytes == pytest.approx(cpu.memory_bytes, rel=0.05), cfg.model.name


def test_accumulation_keeps_the_flops_and_cuts_the_activation_memory(root):
    cfg = next(c for c in configs(root, "copying_smoke") if c.model.name == "transformer")
    big = with_training(cfg, batch_size=16)
    whole, parts = estimate(big), estimate(with_training(big, micro_batch_size=4))
    assert isinstance(whole, Estimate) and whole.params == parts.params
    assert parts.flops_per_step == pytest.approx(whole.flops_per_step, rel=1e-9)
    state = 4 * whole.params * 4  # weights, grads, two AdamW moments, fp32
    assert parts.memory_bytes - state == pytest.approx((whole.memory_bytes - state) / 4, rel=0.02)


@pytest.mark.parametrize("model", ["lstm", "mamba"])
def test_a_recurrent_model_is_sized_on_a_slice_of_its_sequence(model, monkeypatch):
    """An LSTM or Mamba costs the same at every position: traced on SIZING_TOKENS positions and scaled, its FLOPs and
    activation memory match the whole sequence's trace (the paper profile's 2048-token LSTM took minutes)."""
    import harness.components as components
    from harness.estimate import estimate
    from harness.spec.find import load_and_expand

    _, runs = load_and_expand("copying_smoke", ["defaults.task.context_len=512", "defaults.training.batch_size=2"])
    cfg = next(r.config for r in runs if r.config.model.name == model)
    sliced = estimate(cfg)
    monkeypatch.setattr(components, "SIZING_TOKENS", 10_000)  # no slicing: the whole 512 positions traced
    whole = estimate(cfg)
    assert sliced.params == whole.params
    assert sliced.flops_per_step == pytest.approx(whole.flops_per_step, rel=0.02)
    assert sliced.memory_bytes == pytest.approx(whole.memory_bytes, rel=0.05)
