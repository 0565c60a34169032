"""Mamba block fwd+bwd against mambapy (Blelloch pscan) at equal size, for each of our scans (parallel =
chunked scan, sequential = the loop `auto` picks on CPU).  No timed assertions: the target (ours
faster, ratio < 1) is read from the printed ratios."""

import pytest
import torch
from timing import best_time

from baselines.models.mamba import MambaBlock, MambaConfig

pytestmark = pytest.mark.bench


@pytest.mark.parametrize("scan", ["parallel", "sequential"])
def test_mamba_fwd_bwd_vs_mambapy(benchmark, scan):
    """One Mamba mixer (d_model=64, expand 2, d_state 16), B=16, T=256, identical weights."""
    mambapy = pytest.importorskip("mambapy.mamba")
    torch.set_num_threads(1)
    torch.manual_seed(0)
    ours = MambaBlock(MambaConfig(name="mamba", d_model=64, scan=scan))
    theirs = mambapy.MambaBlock(mambapy.MambaConfig(d_model=64, n_layers=1))
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(16, 256, 64)

    def step(block):
        return lambda: block(x).sum().backward()

    step(ours)(), step(theirs)()  # warm-up
    ref = best_time(step(theirs), 5)
    mine = best_time(step(ours), 5)
    benchmark.pedantic(step(ours), rounds=3, iterations=1)
    print(f"\n[bench] mamba fwd+bwd ours ({scan} scan) / mambapy = {mine/ref:.2f}  ({mine*1e3:.0f} ms vs {ref*1e3:.0f} ms)")
