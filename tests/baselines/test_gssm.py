"""Generalised state-space baselines (lstm, mamba, s4d): shapes, causality, the fast paths against
their sequential references, step-by-step generation against the full forward, registry builds."""

import pytest
import torch
from conftest import FakeTokenTask
from pydantic import ValidationError

import baselines  # noqa: F401
from baselines.models.lstm import LSTMConfig
from baselines.models.mamba import Mamba, MambaConfig, selective_scan, selective_scan_ref
from baselines.models.s4d import S4DConfig
from harness.components import MODELS

torch.set_num_threads(1)

NAMES = ["lstm", "mamba", "s4d"]
SMALL = {
    "lstm": dict(d_model=16, n_layers=2),
    "mamba": dict(d_model=16, n_layers=2, d_state=4),
    "s4d": dict(d_model=16, n_layers=2, d_state=8),
}


def FakeTask():
    return FakeTokenTask(vocab_size=11, max_len=40)


def model(name: str, **kw) -> torch.nn.Module:
    torch.manual_seed(0)
    entry = MODELS.get(name)
    cfg = entry.config(name=name, **{**SMALL[name], **kw})
    return entry.build(cfg, FakeTask()).double().eval()


@pytest.mark.parametrize("name", NAMES)
def test_shapes(name):
    x = torch.randint(0, 11, (3, 13))
    m = model(name)
    assert m(x).shape == (3, 13, 11)
    logits, state = m.step(x[:, 0], m.init_state(3))
    assert logits.shape == (3, 11)


@pytest.mark.parametrize("name", NAMES)
def test_causal(name):
    m = model(name)
    x = torch.randint(0, 11, (2, 20))
    y = x.clone()
    y[:, 9:] = torch.randint(0, 11, (2, 11))
    with torch.no_grad():
        a, b = m(x), m(y)
    torch.testing.assert_close(a[:, :9], b[:, :9], rtol=0, atol=1e-10)
    assert not torch.allclose(a[:, 9:], b[:, 9:])


@pytest.mark.parametrize("name", NAMES)
def test_step_matches_forward(name):
    m = model(name)
    x = torch.randint(0, 11, (2, 17))
    with torch.no_grad():
        full = m(x)
        state = m.init_state(2)
        steps = []
        for t in range(x.shape[1]):
            logits, state = m.step(x[:, t], state)
            steps.append(logits)
    torch.testing.assert_close(torch.stack(steps, dim=1), full, rtol=1e-9, atol=1e-9)


def _scan_inputs(T: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    B, E, N = 2, 5, 3
    f64 = dict(dtype=torch.float64, generator=g)
    return (
        torch.randn(B, T, E, **f64),  # x
        torch.rand(B, T, E, **f64) * 2.0,  # dt (large enough to decay fast)
        -torch.rand(E, N, **f64) * 4.0,  # A
        torch.randn(B, T, N, **f64),  # B
        torch.randn(B, T, N, **f64),  # C
        torch.randn(E, **f64),  # D
    )


@pytest.mark.parametrize("T", [1, 2, 3, 7, 16, 31, 50, 130])
def test_parallel_scan_matches_sequential(T):
    args = [a.requires_grad_() for a in _scan_inputs(T, seed=T)]
    fast, ref = selective_scan(*args), selective_scan_ref(*args)
    torch.testing.assert_close(fast, ref, rtol=1e-10, atol=1e-10)
    g = torch.randn_like(ref)
    for gf, gr in zip(torch.autograd.grad(fast, args, g), torch.autograd.grad(ref, args, g)):
        torch.testing.assert_close(gf, gr, rtol=1e-9, atol=1e-9)


def test_scan_choice_parallel_on_cuda_sequential_on_cpu():
    from baselines.models.mamba import pick_scan

    assert pick_scan("auto", torch.device("cpu")) is selective_scan_ref
    assert pick_scan("auto", torch.device("cuda")) is selective_scan
    assert pick_scan("parallel", torch.device("cpu")) is selective_scan
    assert pick_scan("sequential", torch.device("cuda")) is selective_scan_ref


def test_mamba_model_parallel_path_matches_reference_with_grads():
    m = model("mamba", scan="parallel")
    x = torch.randint(0, 11, (2, 23))
    fast = m(x)
    g_fast = torch.autograd.grad(fast.square().sum(), list(m.parameters()))
    for layer in m.layers:
        layer.mixer.scan = selective_scan_ref
    ref = m(x)
    g_ref = torch.autograd.grad(ref.square().sum(), list(m.parameters()))
    torch.testing.assert_close(fast, ref, rtol=1e-10, atol=1e-10)
    for a, b in zip(g_fast, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


def test_s4d_convolution_matches_recurrence():
    layer = model("s4d").layers[0]
    u = torch.randn(2, 37, 16, dtype=torch.float64)
    torch.testing.assert_close(layer.ssm_conv(u), layer.ssm_recurrent(u), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", NAMES)
def test_registry_build_and_backward(name):
    m = model(name).train()
    m(torch.randint(0, 11, (2, 9))).sum().backward()
    assert all(p.grad is not None for p in m.parameters())


@pytest.mark.parametrize("cls", [LSTMConfig, MambaConfig, S4DConfig])
def test_configs_reject_unknown_keys(cls):
    with pytest.raises(ValidationError):
        cls(name="x", d_modle=32)


def test_defaults_and_param_counts_comparable_to_transformer():
    def Task():
        return FakeTokenTask(vocab_size=32, max_len=64)

    counts = {n: sum(p.numel() for p in MODELS.get(n).build(MODELS.get(n).config(name=n), Task()).parameters())
              for n in ["transformer", *NAMES]}
    assert MambaConfig(name="mamba").dt_rank is None and MambaConfig(name="mamba").d_state == 16
    for n in NAMES:
        assert 0.8 < counts[n] / counts["transformer"] < 1.2, counts
    with pytest.raises(ValidationError):
        S4DConfig(name="s4d", d_state=7)


def test_mamba_block_matches_mambapy():
    mambapy = pytest.importorskip("mambapy.mamba")
    torch.manual_seed(0)
    cfg = MambaConfig(name="mamba", d_model=32, n_layers=1, d_state=8)
    ours = Mamba(cfg, vocab_size=11).layers[0]
    theirs = mambapy.ResidualBlock(mambapy.MambaConfig(d_model=32, n_layers=1, d_state=8))
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(2, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name, exempt", [("mamba", {"A_log"}), ("s4d", {"log_A_real", "A_imag"})])
def test_ssm_state_matrices_get_no_weight_decay(name, exempt):
    from harness.spec.models import OptimizerConfig
    from harness.train.optim import build_optimizer

    m = model(name)
    opt = build_optimizer(m, OptimizerConfig(weight_decay=0.1))
    decayed = {id(p) for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    names = {n.rsplit(".", 1)[-1] for n, p in m.named_parameters() if id(p) not in decayed and p.dim() >= 2}
    assert exempt <= names  # 2-D, yet exempt
    assert any(n.endswith("in_proj.weight") or n.endswith("C") for n, p in m.named_parameters() if id(p) in decayed)
