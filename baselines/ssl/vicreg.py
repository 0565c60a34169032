"""VICReg (Bardes et al. 2022) terms, and the views its content branch compares.

    invariance(z1, z2)          mean squared difference of paired embeddings [N, D]
    variance_hinge(z, gamma)    mean over dimensions of relu(gamma - sqrt(var_d + eps)): each dimension's std
                                over the N samples pushed up to gamma (0 once every std >= gamma)
    covariance_offdiag(z)       sum of the squared off-diagonal entries of z's covariance [D, D], over D:
                                decorrelates the dimensions (0 for uncorrelated dimensions)
    vicreg(z1, z2, ...)         inv * invariance + var * (hinge(z1) + hinge(z2)) / 2 + cov * (covariance(z1)
                                + covariance(z2)) / 2 (the paper's coefficients 25, 25, 1), and its terms
    augment(images, generator)  a random view per image (crop-and-resize by an affine grid, horizontal flip,
                                brightness / contrast jitter, pixel noise); all randomness from `generator`
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

EPS = 1e-4


def invariance(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """z1, z2 [N, D] -> scalar."""
    return F.mse_loss(z1, z2)


def variance_hinge(z: torch.Tensor, gamma: float = 1.0) -> torch.Tensor:
    """z [N, D] -> scalar (module docstring)."""
    std = torch.sqrt(z.var(dim=0) + EPS)  # [D] (unbiased variance over the samples)
    return F.relu(gamma - std).mean()


def covariance_offdiag(z: torch.Tensor) -> torch.Tensor:
    """z [N, D] -> scalar (module docstring)."""
    n, d = z.shape
    zc = z - z.mean(dim=0)  # [N, D]
    cov = zc.T @ zc / (n - 1)  # [D, D]
    off = cov - torch.diag(torch.diagonal(cov))
    return off.pow(2).sum() / d


def var_cov(z: torch.Tensor, gamma: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(variance hinge, off-diagonal covariance) of z [N, D]."""
    return variance_hinge(z, gamma), covariance_offdiag(z)


def vicreg(z1: torch.Tensor, z2: torch.Tensor, inv: float = 25.0, var: float = 25.0, cov: float = 1.0,
           gamma: float = 1.0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Paired embeddings z1, z2 [N, D] -> (loss, {"inv", "var", "cov"}) (module docstring)."""
    (v1, c1), (v2, c2) = var_cov(z1, gamma), var_cov(z2, gamma)
    terms = {"inv": invariance(z1, z2), "var": (v1 + v2) / 2, "cov": (c1 + c2) / 2}
    return inv * terms["inv"] + var * terms["var"] + cov * terms["cov"], terms


def augment(images: torch.Tensor, generator: torch.Generator, min_scale: float = 0.6) -> torch.Tensor:
    """images [B, C, H, W] -> a random view of each, [B, C, H, W] (module docstring)."""
    b = images.shape[0]
    scale = min_scale + (1 - min_scale) * torch.rand(b, generator=generator)  # [B] side of the crop / side
    shift = (2 * torch.rand(b, 2, generator=generator) - 1) * (1 - scale)[:, None]  # [B, 2] crop centre, inside
    flip = torch.where(torch.rand(b, generator=generator) < 0.5, -1.0, 1.0)  # [B]
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 1, 1] = scale * flip, scale
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)  # [B, H, W, 2]
    views = F.grid_sample(images, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    contrast = 0.8 + 0.4 * torch.rand(b, 1, 1, 1, generator=generator)
    brightness = 0.4 * torch.rand(b, 1, 1, 1, generator=generator) - 0.2
    noise = 0.05 * torch.randn(views.shape, generator=generator)
    return views * contrast + brightness + noise  # [B, C, H, W]
