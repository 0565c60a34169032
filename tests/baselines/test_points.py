"""Point-cloud components: the synthetic shapes, FPS + kNN grouping, the sequencer's orders and runs, the
context-aware predictor (positions in its queries, parameters matched to concat), Chamfer MAE, few-shot."""

import numpy as np
import pytest
import torch

import baselines  # noqa: F401
from baselines.methods.mae import MAEConfig
from baselines.ssl.context_decoder import ContextAwareConfig
from baselines.ssl.fewshot import FewShotProbeConfig, build_fewshot
from baselines.ssl.layout import Layout
from baselines.ssl.masks import build_mask_sampler
from baselines.ssl.point_groups import CenterMlpConfig, farthest_points, knn_groups
from baselines.ssl.positions import NoPositionConfig
from baselines.ssl.predictors import ConcatPredictorConfig, build_predictor
from baselines.ssl.probes import Features
from baselines.ssl.reconstruction import ChamferConfig, chamfer_l2, reconstruction_loss
from baselines.ssl.sequencer import RunsMaskConfig, morton_codes, order_tokens, step_distance
from baselines.tasks.points import CLASSES, SynthShapes3d, SynthShapes3dConfig

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def shapes():
    return SynthShapes3d(SynthShapes3dConfig(n_pretrain=40, n_probe_train=20, n_probe_test=20), seed=0)


def test_shapes_task(shapes):
    x, y = shapes.pretrain.inputs, shapes.pretrain.labels
    assert x.shape == (40, 512, 3) and x.dtype == torch.float32 and shapes.n_classes == len(CLASSES)
    assert torch.bincount(y, minlength=10).tolist() == [4] * 10  # balanced
    assert x.norm(dim=-1).amax(dim=1).sub(1).abs().max() < 0.05  # unit ball, up to the noise
    again = SynthShapes3d(SynthShapes3dConfig(n_pretrain=40, n_probe_train=20, n_probe_test=20), seed=5)
    assert torch.equal(again.pretrain.inputs, x)  # the data come from data_seed, not the run seed
    other = SynthShapes3d(SynthShapes3dConfig(n_pretrain=40, n_probe_train=20, n_probe_test=20, data_seed=1), seed=0)
    assert not torch.equal(other.pretrain.inputs, x)


def test_fps_and_knn_groups(shapes):
    pts = shapes.pretrain.inputs[:4]  # [4, 512, 3]
    centers = farthest_points(pts, 32)  # [4, 32, 3]
    d = torch.cdist(centers, pts, compute_mode="donot_use_mm_for_euclid_dist")  # [4, 32, 512]
    assert (d.amin(dim=-1) == 0).all()  # every center is a point of its cloud
    pair = torch.cdist(centers, centers) + torch.eye(32) * 10
    rand = pts[:, torch.randperm(512, generator=torch.Generator().manual_seed(0))[:32]]
    rpair = torch.cdist(rand, rand) + torch.eye(32) * 10
    assert (pair.amin(dim=(1, 2)) > rpair.amin(dim=(1, 2))).all()  # FPS spreads the centers
    groups = knn_groups(pts, centers, 16)  # [4, 32, 16, 3]
    assert groups.shape == (4, 32, 16, 3)
    dist = groups.norm(dim=-1)  # [4, 32, 16]
    assert (dist[..., 0] == 0).all()  # the center itself first
    assert torch.allclose(dist, d.sort(dim=-1).values[..., :16], atol=1e-6)  # exactly the 16 nearest


def test_greedy_order_walks_to_near_neighbours(shapes):
    centers = farthest_points(shapes.pretrain.inputs, 32)  # [40, 32, 3]
    rng = np.random.default_rng(0)
    steps = {o: step_distance(centers, order_tokens(centers, o, rng)).mean().item()
             for o in ("greedy", "greedy_index", "morton", "none")}
    assert steps["greedy"] < 0.5 * steps["none"] and steps["greedy_index"] < 0.5 * steps["none"]
    assert steps["morton"] < steps["none"]
    perm = order_tokens(centers, "greedy", rng)
    assert (perm.sort(dim=1).values == torch.arange(32)).all()  # a permutation
    assert torch.equal(perm[:, 0], centers.sum(-1).argmin(dim=1))  # starts at the minimum coordinate sum
    assert (order_tokens(centers, "greedy_index", rng)[:, 0] == 0).all()


def test_morton_codes_follow_the_z_curve():
    corners = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0], [0, 0, 1], [1, 1, 1]]])
    assert morton_codes(corners).argsort(dim=1).tolist() == [[0, 1, 2, 3, 4, 5]]


def test_runs_are_contiguous_in_the_order(shapes):
    layout = Layout(("x", "y", "z"), farthest_points(shapes.pretrain.inputs[:16], 32))
    sampler = build_mask_sampler(RunsMaskConfig(order="greedy"), layout)
    masks = sampler(layout, 16, torch.Generator().manual_seed(0), 0.0)
    perm = order_tokens(layout.coords, "greedy", np.random.default_rng(0))  # greedy draws nothing
    rank = perm.argsort(dim=1)  # [B, N]: sequence position of each token
    B, M, Nt = masks.targets.shape
    assert M == 4 and 5 <= Nt <= 6  # 15-20% of 32
    pos = torch.gather(rank, 1, masks.targets.reshape(B, -1)).view(B, M, Nt).sort(dim=-1).values
    assert (pos[..., 1:] - pos[..., :-1] == 1).all()  # each target block is a run of the order
    hidden = torch.zeros(B, 32, dtype=torch.bool).scatter_(1, masks.targets.reshape(B, -1), True)
    for b in range(B):  # the context is a run of the order once the target positions are removed
        free = [int(t) for t in perm[b] if not hidden[b, t]]
        ctx = set(masks.context[b].tolist())
        at = [i for i, t in enumerate(free) if t in ctx]
        assert at == list(range(at[0], at[0] + len(at))) and not ctx & set(masks.targets[b].flatten().tolist())
    assert masks.stats["mask/step_distance"] == pytest.approx(step_distance(layout.coords, perm).mean().item())


def _predictor(cfg, pos_cfg):
    torch.manual_seed(0)
    return build_predictor(cfg, 48, 48, pos_cfg, Layout(("x", "y", "z"), torch.zeros(1, 32, 3)))


@pytest.mark.parametrize("cfg", [ConcatPredictorConfig(d_model=32), ContextAwareConfig(d_model=32)], ids=["concat", "context_aware"])
def test_no_target_query_without_its_position(cfg):
    """A target query carries its center's position: moving a target's center changes its prediction, two
    targets with the same context differ; without positions (the S-JEPA third-party bug) they would not."""
    coords = torch.rand(2, 32, 3)  # [B, N, 3]
    context = torch.randn(2, 10, 48)  # [B, Nc, D]
    context_idx = torch.arange(10).expand(2, -1)  # [B, Nc]
    target_idx = torch.tensor([[[20, 21], [22, 23]]]).expand(2, -1, -1)  # [B, M, Nt]
    pred = _predictor(cfg, CenterMlpConfig())
    out = pred(context, context_idx, target_idx, Layout(("x", "y", "z"), coords))  # [B, M, Nt, D]
    assert out.shape == (2, 2, 2, 48)
    assert (out[:, 0, 0] - out[:, 0, 1]).abs().amax() > 1e-4  # two targets, two predictions
    moved = coords.clone()
    moved[:, 20] += 0.5  # only target 20's center moves
    out2 = pred(context, context_idx, target_idx, Layout(("x", "y", "z"), moved))
    assert (out2[:, 0, 0] - out[:, 0, 0]).abs().amax() > 1e-4
    assert torch.allclose(out2[:, 1], out[:, 1], atol=1e-6)  # another block's prediction does not move
    blind = _predictor(cfg, NoPositionConfig())(context, context_idx, target_idx, Layout(("x", "y", "z"), coords))
    assert torch.allclose(blind[:, 0, 0], blind[:, 0, 1], atol=1e-6)  # the check above can fail


def test_context_aware_matches_concat_parameters():
    for d, layers in ((32, 2), (192, 6)):
        counts = [sum(p.numel() for p in _predictor(c, CenterMlpConfig(hidden=64)).parameters())
                  for c in (ConcatPredictorConfig(d_model=d, n_layers=layers), ContextAwareConfig(d_model=d, n_layers=layers))]
        assert abs(counts[1] - counts[0]) / counts[0] < 0.02, counts


def test_chamfer():
    a = torch.randn(3, 16, 3)
    perm = a[:, torch.randperm(16)]
    assert chamfer_l2(a, perm).abs().max() < 1e-6  # order-free
    b = torch.randn(3, 16, 3)
    brute = ((a[:, :, None] - b[:, None]) ** 2).sum(-1)  # [3, 16, 16]
    assert torch.allclose(chamfer_l2(a, b), brute.amin(2).mean(1) + brute.amin(1).mean(1), atol=1e-5)
    loss = reconstruction_loss(ChamferConfig())
    pred, target = torch.randn(2, 1, 5, 48), torch.randn(2, 1, 5, 48)  # 16 points of 3 per token
    assert loss(pred, target).item() > 0 and loss(target, target).item() < 1e-6
    with pytest.raises(ValueError, match="norm_pix_loss"):
        MAEConfig(name="mae", reconstruction={"name": "chamfer"})


def test_fewshot_episodes():
    g = torch.Generator().manual_seed(0)
    y_fit, y_score = torch.arange(200) % 10, torch.arange(200) % 10
    centers = torch.randn(10, 8, generator=g) * 5
    fit = Features(centers[y_fit] + torch.randn(200, 8, generator=g), y_fit)
    score = Features(centers[y_score] + torch.randn(200, 8, generator=g), y_score)
    probe = build_fewshot(FewShotProbeConfig())
    assert probe(fit, score, 10).score > 0.95
    noise = Features(torch.randn(200, 8, generator=g), y_score)
    chance = probe(Features(torch.randn(200, 8, generator=g), y_fit), noise, 10).score
    assert chance < 0.45  # 5-way: chance 0.2
    assert probe(fit, score, 10).score == probe(fit, score, 10).score  # the same episodes each call
    with pytest.raises(ValueError, match="classes have"):
        build_fewshot(FewShotProbeConfig(k_shot=30))(fit, score, 10)
