"""MC-JEPA's parts on known inputs: flow warping against analytic shifts, the cost volume, the coarse-to-fine
head, the moving_shapes generator's flow, the VICReg terms, the dense probe's mIoU, and every arm's metric
declaration against a real (tiny) run."""

import math

import pytest
import torch
import torch.nn.functional as F
from test_metric_names import check_declared

from baselines.ssl.dense import dense_probe
from baselines.ssl.flow import FlowHead, cost_volume, end_point_error, upsample_flow, warp
from baselines.ssl.vicreg import covariance_offdiag, invariance, variance_hinge, vicreg
from baselines.tasks.motion import MotionTask, MovingShapesConfig, generate
from harness.spec import load_and_expand


def const_flow(dx: float, dy: float, h: int, w: int) -> torch.Tensor:
    return torch.tensor([dx, dy]).view(1, 2, 1, 1).expand(1, 2, h, w)  # [1, 2, H, W]


def test_warp_undoes_an_integer_translation():
    frame1 = torch.randn(1, 3, 12, 16)
    dx, dy = 2, 1  # the content moves by (2, 1): frame2[y + 1, x + 2] = frame1[y, x]
    frame2 = torch.zeros_like(frame1)
    frame2[..., dy:, dx:] = frame1[..., :-dy, :-dx]
    back = warp(frame2, const_flow(dx, dy, 12, 16))  # [1, 3, 12, 16]
    inside = back[..., : 12 - dy, : 16 - dx]  # where p + d lies in the frame
    torch.testing.assert_close(inside, frame1[..., : 12 - dy, : 16 - dx], rtol=0, atol=1e-5)
    assert back[..., 12 - dy:, :].abs().max() == 0  # read outside the frame: zeros


def test_warp_undoes_a_subpixel_translation_of_a_linear_image():
    h, w, a, b = 10, 14, 0.3, -0.7  # bilinear sampling is exact on an affine image
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    dx, dy = 0.37, -1.6
    frame1 = (a * xs + b * ys + 2.0)[None, None]  # [1, 1, H, W]
    frame2 = (a * (xs - dx) + b * (ys - dy) + 2.0)[None, None]  # the same image moved by (dx, dy)
    back = warp(frame2, const_flow(dx, dy, h, w))
    inside = back[..., 2:, : w - 1]  # p + d inside: y + dy >= 0 needs y >= 2, x + dx <= w - 1 needs x <= w - 2
    torch.testing.assert_close(inside, frame1[..., 2:, : w - 1], rtol=0, atol=1e-5)
    assert not torch.allclose(frame2, frame1, atol=0.1)  # the shift is real


def test_cost_volume_peaks_at_the_true_offset():
    f1 = torch.randn(2, 256, 9, 9)  # many channels: the true offset's mean f1^2 ~ 1 dominates chance products
    f2 = torch.roll(f1, shifts=(1, -1), dims=(2, 3))  # f2(p + (dx=-1, dy=1)) = f1(p)
    cv = cost_volume(f1, f2, radius=1)  # [2, 9, 9, 9]; index (dy + 1) * 3 + (dx + 1)
    assert cv.shape == (2, 9, 9, 9)
    best = cv[..., 2:-2, 2:-2].argmax(dim=1)  # away from the wrapped border
    assert (best == (1 + 1) * 3 + (-1 + 1)).all()


def test_upsample_flow_scales_the_vectors():
    flow = const_flow(1.0, -0.5, 4, 4)
    up = upsample_flow(flow, (8, 16))
    torch.testing.assert_close(up, const_flow(4.0, -1.0, 8, 16).contiguous())
    assert end_point_error(flow, const_flow(4.0, -1.0, 8, 16)).item() == pytest.approx(0.0, abs=1e-6)


def test_flow_head_starts_at_zero_flow_coarse_to_fine():
    head = FlowHead([4, 6], hidden=5, radius=1)
    levels1 = [torch.randn(2, 4, 8, 8), torch.randn(2, 6, 4, 4)]
    levels2 = [torch.randn(2, 4, 8, 8), torch.randn(2, 6, 4, 4)]
    flows = head(levels1, levels2)
    assert [tuple(f.shape) for f in flows] == [(2, 2, 4, 4), (2, 2, 8, 8)]  # coarsest first
    assert all(f.abs().max() == 0 for f in flows)  # zero-initialised last layers


def test_generator_flow_explains_the_second_frame():
    cfg = MovingShapesConfig(max_objects=1, max_shift=3.0, max_pan=2.0)
    d = generate(cfg, 64, torch.Generator().manual_seed(0))
    frames, flow = d["frames"], d["flow"]  # [64, 2, 3, 32, 32], [64, 2, 32, 32]
    assert frames.shape == (64, 2, 3, 32, 32) and flow.shape == (64, 2, 32, 32)
    gt = (warp(frames[:, 1], flow) - frames[:, 0]).abs()[..., 4:-4, 4:-4]  # away from the borders
    zero = (frames[:, 1] - frames[:, 0]).abs()[..., 4:-4, 4:-4]
    # measured: median 0.003 vs 0.061, mean 0.061 vs 0.151 (what is left: occlusions, the hard object edges
    # moved by sub-pixel shifts, bilinear sampling of the background gratings)
    assert gt.median() < 0.1 * zero.median()
    assert gt.mean() < 0.5 * zero.mean()
    still = generate(cfg.model_copy(update={"motion": False}), 8, torch.Generator().manual_seed(0))
    torch.testing.assert_close(still["frames"][:, 0], still["frames"][:, 1])
    assert still["flow"].abs().max() == 0


def test_generator_masks_labels_and_fixed_eval_splits():
    cfg = MovingShapesConfig(probe_train_size=40, probe_test_size=20, flow_test_size=8)
    a, b = MotionTask(cfg).eval_splits(), MotionTask(cfg).eval_splits()
    torch.testing.assert_close(a["test"].inputs, b["test"].inputs)  # fixed by data_seed
    masks, labels = a["train"].masks, a["train"].labels
    assert masks.shape == (40, 32, 32) and int(masks.max()) <= 8 and labels.max() < 8
    present = [(1 + labels[i]) in masks[i] for i in range(40)]  # object 0 is rarely covered entirely
    assert sum(present) >= 36
    batch = next(MotionTask(cfg).train_batches(4, torch.Generator().manual_seed(1)))
    assert batch.frames.shape == (4, 2, 3, 32, 32) and batch.stills.shape == (4, 3, 32, 32)


def test_variance_hinge_on_known_stds():
    z = torch.tensor([[-0.5, -2.0], [0.5, 2.0]]) / math.sqrt(2)  # unbiased stds per column: 0.5 and 2
    std = z.std(dim=0)
    expected = ((1 - torch.sqrt(std[0] ** 2 + 1e-4)) + 0.0) / 2  # the second column is above gamma = 1
    assert variance_hinge(z).item() == pytest.approx(expected.item(), rel=1e-6)
    assert variance_hinge(torch.ones(5, 3)).item() == pytest.approx(1 - math.sqrt(1e-4), rel=1e-6)  # collapsed


def test_covariance_offdiag_on_known_inputs():
    z = torch.tensor([[1.0, 1.0], [-1.0, -1.0]])  # cov = [[2, 2], [2, 2]] (n - 1 = 1)
    assert covariance_offdiag(z).item() == pytest.approx((2**2 + 2**2) / 2)
    uncorrelated = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])
    assert covariance_offdiag(uncorrelated).item() == pytest.approx(0.0, abs=1e-7)


def test_invariance_and_the_vicreg_sum():
    z1, z2 = torch.randn(16, 4), torch.randn(16, 4)
    assert invariance(z1, z1 + 1.0).item() == pytest.approx(1.0, rel=1e-6)
    loss, t = vicreg(z1, z2)
    expect = 25 * F.mse_loss(z1, z2) + 25 * (variance_hinge(z1) + variance_hinge(z2)) / 2 \
        + (covariance_offdiag(z1) + covariance_offdiag(z2)) / 2
    assert loss.item() == pytest.approx(expect.item(), rel=1e-6)
    assert set(t) == {"inv", "var", "cov"}


def test_dense_probe_miou_on_perfect_and_on_empty_features():
    g = torch.Generator().manual_seed(0)
    masks = torch.zeros(20, 8, 8, dtype=torch.long)
    for i in range(20):  # a square of class 1 + i % 3 on background 0
        masks[i, 2:5, 1 + i % 4: 4 + i % 4] = 1 + i % 3
    images = masks[:, None].float().expand(20, 3, 8, 8)

    def one_hot(x):
        return [F.one_hot(x[:, 0].long(), 4).permute(0, 3, 1, 2).float()]  # [B, 4, 8, 8]

    out = dense_probe(one_hot, (images, masks), (images, masks), 4, fit_pixels=1280, l2=1e-4, max_iter=100)
    assert out == {"miou": pytest.approx(1.0), "pixel_acc": pytest.approx(1.0)}
    blank = dense_probe(lambda x: [torch.zeros(len(x), 2, 8, 8)], (images, masks), (images, masks), 4,
                        fit_pixels=1280, l2=1e-4, max_iter=50, seed=int(torch.randint(0, 9, (1,), generator=g)))
    bg = (masks == 0).double().mean().item()  # everything predicted background: IoU_bg = its share, others 0
    assert blank["pixel_acc"] == pytest.approx(bg) and blank["miou"] == pytest.approx(bg / 4)


ARMS = ["none", "flow_only", "vicreg_only", "joint_no_vc"]


@pytest.mark.parametrize("arm", ARMS)
def test_every_arm_logs_what_it_declares(arm):
    _, runs = load_and_expand("motion_jepa_smoke", ["defaults.training.steps=2", "defaults.evaluation.every=1"])
    cfg = next(r.config for r in runs if (r.ablation or "none") == arm)
    check_declared(cfg)
