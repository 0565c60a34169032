"""Mamba block fwd+bwd against mambapy (Blelloch pscan) at equal size and identical weights, for each of our
scans (parallel = chunked scan, fused = the loop with a hand-written backward, which `auto` picks on CPU,
sequential = the reference loop under autograd), at two shapes of one mixer (d_model=64, expand 2 so E=128,
d_state 16):
- bench: B=16, T=256.
- copying: the training steps of suites/copying.yaml's Mamba runs, batch_size 32 rows of context_len 64
  tokens (train_len 5..20 letters: examples of 13..43 tokens, packed whole into the 64-token rows), so
  B=32, T=64 (n_layers 3: the model runs this mixer three times per step).
No timed assertions: the target (ours at least 2x faster, ratio <= 0.5) is read from the printed ratios."""

import pytest
import torch
from timing import best_time

from baselines.models.mamba import MambaBlock, MambaConfig

pytestmark = pytest.mark.bench

SHAPES = {"bench": (16, 256), "copying": (32, 64)}  # (B, T)


@pytest.mark.parametrize("scan", ["parallel", "fused", "sequential"])
@pytest.mark.parametrize("shape", list(SHAPES))
def test_mamba_fwd_bwd_vs_mambapy(benchmark, shape, scan):
    mambapy = pytest.importorskip("mambapy.mamba")
    torch.set_num_threads(1)
    torch.manual_seed(0)
    B, T = SHAPES[shape]
    ours = MambaBlock(MambaConfig(name="mamba", d_model=64, scan=scan))
    theirs = mambapy.MambaBlock(mambapy.MambaConfig(d_model=64, n_layers=1))
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(B, T, 64)

    def step(block):
        return lambda: block(x).sum().backward()

    step(ours)(), step(theirs)()  # warm-up
    ref = best_time(step(theirs), 5)
    mine = best_time(step(ours), 5)
    benchmark.pedantic(step(ours), rounds=3, iterations=1)
    print(f"\n[bench] mamba fwd+bwd ours ({scan} scan) / mambapy = {mine/ref:.2f}  "
          f"({mine*1e3:.0f} ms vs {ref*1e3:.0f} ms; {shape} shape B={B} T={T})")
