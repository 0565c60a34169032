"""Benchmarks (`make bench`): each prints a ratio against a reference measured in the same run.
No timed assertions: speed targets are read from the printed ratios."""

import pytest
import torch
from timing import best_time

from baselines.models.transformer import Transformer, TransformerConfig
from harness.track import RunLog, Tracker

pytestmark = pytest.mark.bench


def test_batched_metric_logging_vs_per_call(tmp_path, benchmark):
    """RunLog buffers metrics into log_batch; reference: one MlflowClient.log_metric per value."""
    t = Tracker(f"sqlite:///{tmp_path}/m.db")
    t.setup()
    exp = t.experiment("bench")
    n = 100
    per_call_id = t.create_child(exp, t.start_parent(exp, "p", {}), "per-call", {})

    def per_call():
        for i in range(n):
            t.client.log_metric(per_call_id, "loss", float(i), step=i)

    def batched():
        log = RunLog(t.uri, per_call_id)
        for i in range(n):
            log.log_metrics({"loss": float(i)}, i)
        log.flush()

    ref = best_time(per_call, 1)
    ours = best_time(batched)
    benchmark.pedantic(batched, rounds=3, iterations=1)
    print(f"\n[bench] {n} metric values: per-call {ref*1e3:.1f} ms, batched {ours*1e3:.1f} ms, speed-up x{ref/ours:.1f}")


@pytest.mark.parametrize("pos_emb", ["rel_k", "rel_kq", "rope", "alibi", "none"])
def test_position_embedding_step_cost_vs_abs(pos_emb, benchmark):
    """fwd+bwd of the encoder on one addition batch (B=64, T=63), relative to absolute PE."""
    torch.set_num_threads(1)
    x = torch.randint(0, 14, (64, 63))

    def step_fn(pe):
        model = Transformer(TransformerConfig(name="transformer", d_model=64, n_layers=2, n_heads=4, pos_emb=pe), 14, 63)

        def step():
            model(x).sum().backward()

        return step

    ref_step, our_step = step_fn("abs"), step_fn(pos_emb)
    ref = best_time(lambda: [ref_step() for _ in range(5)])
    ours = best_time(lambda: [our_step() for _ in range(5)])
    benchmark.pedantic(our_step, rounds=5, iterations=1)
    print(f"\n[bench] fwd+bwd {pos_emb} / abs = {ours/ref:.2f}")
