"""What a paper-scale run needs from the one loop, on CPU: gradient accumulation (the full batch's gradient),
bf16 autocast, fp16 with a grad scaler (overflowing steps skipped, its state resumed), opt-in torch.compile,
throughput metrics, and the run_id staying put for configs that do not use them."""

import pytest
import torch
from conftest import TINY_SUITE, Recorder
from test_train import Regression, batches, cfg

from harness.runner import build, train_stream
from harness.spec import expand, load_suite, validate_config
from harness.spec.errors import SpecError
from harness.spec.models import OptimizerConfig, RunConfig
from harness.train import fit, seed_everything
from harness.train.loop import InjectedFault
from harness.train.precision import Numerics
from harness.train.resume import Checkpointer, TrainState
from harness.train.throughput import mfu, peak_flops

SGD_ONE_STEP = OptimizerConfig(name="sgd", lr=1.0, momentum=0.0, schedule="constant")  # w1 = w0 - grad


def copying_cfg(root, **training) -> RunConfig:
    """The copying_smoke suite's first run (packed rows: micro-batches hold unequal numbers of scored tokens)."""
    c = expand(load_suite(root / "suites" / "copying_smoke.yaml"))[0].config
    return c.model_copy(update={"optimizer": SGD_ONE_STEP, "evaluation": c.evaluation.model_copy(update={"every": None}),
                                "training": c.training.model_copy(update={"steps": 1, "grad_clip": None, **training})})


def one_step(c: RunConfig, rec: Recorder | None = None) -> dict[str, torch.Tensor]:
    seed_everything(c.seed)
    task, method = build(c)
    fit(method, train_stream(c, task, method), c, [rec] if rec is not None else [])
    return {k: v.detach().clone() for k, v in method.module.state_dict().items()}


def max_diff(a: dict, b: dict) -> float:
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def test_accumulated_gradient_is_the_full_batch_gradient(root):
    start = one_step(copying_cfg(root, steps=0))  # the initial weights
    full_rec, acc_rec = Recorder(), Recorder()
    full = one_step(copying_cfg(root), full_rec)
    acc = one_step(copying_cfg(root, micro_batch_size=2), acc_rec)
    moved = max_diff(full, start)
    assert moved > 1e-3  # the step moved the weights (lr 1: by the gradient itself)
    assert max_diff(acc, full) < 1e-6 * max(1.0, moved)  # accumulated over 4 micro-batches: the same step
    (_, f), (_, a) = full_rec.steps[0], acc_rec.steps[0]
    assert a["loss"] == pytest.approx(f["loss"], rel=1e-6) and a["token_acc"] == pytest.approx(f["token_acc"], abs=1e-9)
    # weighting the micro-batches by rows instead of scored tokens would be measurably wrong: the check can fail
    from baselines.methods import supervised

    per_row = supervised.Supervised.loss_units
    try:
        supervised.Supervised.loss_units = staticmethod(len)
        naive = one_step(copying_cfg(root, micro_batch_size=2))
    finally:
        supervised.Supervised.loss_units = per_row
    assert max_diff(naive, full) > 100 * max_diff(acc, full)


def test_micro_batch_size_must_divide_the_batch(tmp_path):
    suite = tmp_path / "t.yaml"
    suite.write_text(TINY_SUITE.replace("batch_size: 8}", "batch_size: 8, micro_batch_size: 3}"))
    with pytest.raises(SpecError, match=r"t.yaml:6: defaults.training.micro_batch_size: .*micro_batch_size=3 must divide batch_size=8"):
        expand(load_suite(suite))
    with pytest.raises(TypeError, match="needs batches with slice"):  # the deep linear networks' covariance batches
        from harness.train.precision import micro_batches

        class Whole:
            def __len__(self):
                return 4

        list(micro_batches(Regression(), Whole(), 2))


def test_bf16_autocast_trains_on_cpu_with_fp32_weights(root):
    base = expand(load_suite(root / "suites" / "smoke.yaml"))[0].config

    def run(precision):
        c = base.model_copy(update={"training": base.training.model_copy(update={"steps": 30, "precision": precision})})
        seed_everything(0)
        task, method = build(c)
        seen = []
        method.module.head.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
        rec = Recorder()
        fit(method, train_stream(c, task, method), c, [rec])
        assert all(p.dtype == torch.float32 for p in method.module.parameters())
        return seen[0], [s["loss"] for _, s in rec.steps]

    dtype, bf16 = run("bf16")
    dtype32, fp32 = run("fp32")
    assert dtype == torch.bfloat16 and dtype32 == torch.float32  # the forward ran under autocast
    assert bf16[-1] < 0.8 * bf16[0]  # it learns
    assert bf16 != fp32 and bf16[-1] == pytest.approx(fp32[-1], rel=0.05)  # at bf16's rounding, like fp32


def test_fp16_scaler_skips_overflowing_steps_and_resumes(tmp_path):
    numerics = Numerics("fp16", torch.device("cpu"), tf32=True)
    assert numerics.scaler.is_enabled() and not Numerics("bf16", torch.device("cpu"), True).scaler.is_enabled()
    m = Regression()
    opt = torch.optim.SGD(m.module.parameters(), lr=0.1)
    w = m.module.weight.detach().clone()
    numerics.backward(m.module.weight.sum() * float("inf"))  # an overflowing gradient
    numerics.unscale(opt)
    numerics.step(opt)
    assert torch.equal(m.module.weight.detach(), w) and numerics.scaler.get_scale() == 2.0**15  # skipped, scale halved
    # a whole fp16 run: converges, and a resumed run is identical to an uninterrupted one (scaler state included)
    c = cfg(steps=30, precision="fp16", checkpoint_every=10, grad_clip=None)

    def run(c, path, resume=None):
        seed_everything(0)
        m, rec = Regression(), Recorder()
        try:
            fit(m, batches(torch.Generator().manual_seed(0)), c, [rec], checkpointer=Checkpointer(path, 10), resume=resume)
        except InjectedFault:
            pass
        return m, rec

    whole, rec_whole = run(c, tmp_path / "whole.pt")
    assert rec_whole.steps[1][1]["w"] == rec_whole.steps[0][1]["w"]  # step 1 overflowed at the initial scale 2**16
    assert abs(float(whole.module.weight.detach()) - 3.0) < 0.05
    cut = cfg(steps=30, precision="fp16", checkpoint_every=10, grad_clip=None, fault={"kind": "raise", "at_step": 25})
    run(cut, tmp_path / "cut.pt")
    state = TrainState.load(tmp_path / "cut.pt")
    assert state.step == 20 and state.scaler["scale"] > 0
    resumed, rec_resumed = run(c, tmp_path / "resumed.pt", resume=state)
    assert rec_resumed.steps == rec_whole.steps[20:] and torch.equal(resumed.module.weight, whole.module.weight)


def test_torch_compile_is_opt_in_and_trains_alike():
    def run(**training):
        seed_everything(0)
        m = Regression()
        res = fit(m, batches(torch.Generator().manual_seed(0)), cfg(steps=5, **training))
        return m, res

    eager, _ = run()
    compiled, res = run(compile=True)
    assert hasattr(compiled.module, "_compiled_call_impl") and compiled.module._compiled_call_impl is not None
    assert list(compiled.module.state_dict()) == ["weight"]  # compiled in place: names unchanged
    assert torch.allclose(compiled.module.weight, eager.module.weight, atol=1e-6)


def test_throughput_metrics(root):
    res = fit(Regression(), batches(torch.Generator().manual_seed(0)), cfg(steps=5))
    assert res.throughput["throughput/examples_per_s"] > 0 and "throughput/tokens_per_s" not in res.throughput
    c = copying_cfg(root, steps=3)
    task, method = build(c)
    res = fit(method, train_stream(c, task, method), c)
    rows = c.training.batch_size
    tokens = rows * c.task.context_len
    t = res.throughput
    assert t["throughput/tokens_per_s"] == pytest.approx(t["throughput/examples_per_s"] * tokens / rows)
    assert "throughput/mfu" not in t and "throughput/peak_memory_bytes" not in t  # CUDA only
    assert peak_flops("NVIDIA H100 80GB HBM3", "bf16", True) == 989e12
    assert peak_flops("NVIDIA A100-SXM4-80GB", "fp32", True) == 156e12
    assert peak_flops("NVIDIA A100-SXM4-80GB", "fp32", False) == 19.5e12
    assert peak_flops("NVIDIA L40S", "fp16", True) == 362e12 and peak_flops("Some GPU", "bf16", True) is None
    assert mfu(1e12, 10.0, 100e12) == pytest.approx(0.1)


def test_new_training_settings_keep_old_run_ids():
    base = cfg()
    assert "precision" not in base.canonical_json() and "micro_batch_size" not in base.canonical_json()
    for setting in ({"precision": "bf16"}, {"micro_batch_size": 8}, {"compile": True}, {"tf32": False}):
        other = cfg(**setting)
        assert other.content_hash() != base.content_hash(), setting
    assert cfg(precision="fp32").content_hash() == base.content_hash()
    assert validate_config(base.model_dump(mode="json"), lambda p: None).content_hash() == base.content_hash()


def test_every_copying_model_trains_under_bf16_autocast(root):
    """Transformer, LSTM and Mamba (whose selective scan leaves autocast and runs in fp32) under bf16."""
    for c in expand(load_suite(root / "suites" / "copying_smoke.yaml")):
        c = c.config.model_copy(update={"training": c.config.training.model_copy(update={"steps": 2, "precision": "bf16"})})
        seed_everything(0)
        task, method = build(c)
        res = fit(method, train_stream(c, task, method), c)
        assert res.status == "finished" and all(p.grad is not None for p in method.module.parameters()), c.model.name
