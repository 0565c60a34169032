"""The dense 1x1 probe: a linear classifier of every pixel's frozen features (a 1x1 convolution), scored by the
mean intersection-over-union of its per-pixel classes.

    dense_features(levels, hw)   pyramid levels [B, C_l, h_l, w_l] -> [B, sum C_l, H, W], each level upsampled
                                 (bilinear) to the frame and concatenated
    dense_probe(...)             fit `linear_classifier` (baselines/ssl/classifiers.py, L-BFGS softmax on
                                 standardized features) on `fit_pixels` pixels drawn at random (seeded) from the
                                 fit split's frames, predict every pixel of the score split's frames:
                                 {"miou": mean over classes present (in the labels or the predictions) of
                                 TP / (TP + FP + FN), "pixel_acc": the share of pixels right}
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from baselines.ssl.classifiers import linear_classifier

Levels = Callable[[torch.Tensor], list[torch.Tensor]]  # images [B, 3, H, W] -> levels [B, C_l, h_l, w_l]


def dense_features(levels: list[torch.Tensor], hw: tuple[int, int]) -> torch.Tensor:
    """levels [B, C_l, h_l, w_l] -> [B, sum C_l, H, W] (module docstring)."""
    return torch.cat([F.interpolate(x, size=hw, mode="bilinear", align_corners=False) for x in levels], dim=1)


def _pixels(feats: torch.Tensor) -> torch.Tensor:
    """[B, D, H, W] -> [B H W, D]."""
    return feats.permute(0, 2, 3, 1).flatten(0, 2)


def dense_probe(levels: Levels, fit: tuple[torch.Tensor, torch.Tensor], score: tuple[torch.Tensor, torch.Tensor],
                n_classes: int, fit_pixels: int, l2: float, max_iter: int, seed: int = 0,
                batch_size: int = 256) -> dict[str, float]:
    """fit, score: (images [S, 3, H, W], masks [S, H, W] long in [0, n_classes)) -> {"miou", "pixel_acc"}; `levels`
    is called under no_grad (the classifier's own fit needs autograd)."""
    images, masks = fit
    g = torch.Generator().manual_seed(seed)
    per_image = max(1, -(-fit_pixels // len(images)))  # ceil
    xs, ys = [], []
    for i in range(0, len(images), batch_size):
        with torch.no_grad():
            feats = _pixels(dense_features(levels(images[i:i + batch_size]), tuple(masks.shape[-2:]))).cpu()  # [b H W, D]
        y = masks[i:i + batch_size].flatten().cpu()  # [b H W]
        n_img, hw = len(images[i:i + batch_size]), masks.shape[-1] * masks.shape[-2]
        pick = (torch.randint(0, hw, (n_img, per_image), generator=g) + hw * torch.arange(n_img)[:, None]).flatten()
        xs.append(feats[pick])
        ys.append(y[pick])
    predict = linear_classifier(torch.cat(xs), torch.cat(ys), n_classes, weight_decay=l2, max_iter=max_iter)
    images, masks = score
    confusion = torch.zeros(n_classes * n_classes, dtype=torch.long)  # [K * K]: label * K + prediction
    for i in range(0, len(images), batch_size):
        with torch.no_grad():
            feats = _pixels(dense_features(levels(images[i:i + batch_size]), tuple(masks.shape[-2:]))).cpu()
        y = masks[i:i + batch_size].flatten().cpu()
        confusion += torch.bincount(y * n_classes + predict(feats), minlength=n_classes * n_classes)
    confusion = confusion.view(n_classes, n_classes).double()  # [K, K] rows: labels, columns: predictions
    tp = confusion.diagonal()
    union = confusion.sum(dim=0) + confusion.sum(dim=1) - tp  # [K]
    present = union > 0
    return {"miou": (tp[present] / union[present]).mean().item(), "pixel_acc": (tp.sum() / confusion.sum()).item()}
