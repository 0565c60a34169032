"""MAE (He et al. 2022, "Masked Autoencoders Are Scalable Vision Learners"): encode the visible patches,
reconstruct the masked ones in pixel space with a light decoder.

    encoder  = the model (a `vit`), sees only the visible patches (the mask's context)
    decoder  = narrow transformer over [visible tokens, mask tokens at the masked positions] -> pixels
    loss     = MSE on the MASKED patches only; with norm_pix_loss the target of each patch is its pixels
               normalized by the patch's own mean and variance, (x - mean) / sqrt(var + 1e-6)

The mask (`mask`, default random with ratio 0.75) is sampled in `collate`; the masked patches are the mask's
target indices.  evaluate() probes the encoder on all patches: the metrics of baselines/ssl/evaluation.py.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from baselines.ssl.evaluation import PROBE_METRICS, ProbedConfig, probe_metrics
from baselines.ssl.heads import MAEDecoder
from baselines.ssl.masks import MaskConfig, MaskedImageBatch, RandomMaskConfig, build_mask_sampler, collate_masks
from baselines.ssl.vit import ViT, gather_tokens, patchify
from baselines.tasks.images import ImageBatch, ImageTask, image_task
from harness.components import METHODS, LossOutput, Task
from harness.registry import must_divide

NORM_PIX_EPS = 1e-6


class MAEConfig(ProbedConfig):
    dec_d_model: int = Field(default=32, ge=4)  # the decoder is narrower than the encoder
    dec_n_layers: int = Field(default=1, ge=1)
    dec_n_heads: int = Field(default=4, ge=1)
    dec_d_ff: int | None = Field(default=None, ge=1)  # None -> 4 * dec_d_model
    norm_pix_loss: bool = True
    mask: MaskConfig = Field(default_factory=lambda: RandomMaskConfig(name="random", ratio=0.75))

    _heads_divide = must_divide("dec_n_heads", "dec_d_model")


def pixel_targets(images: torch.Tensor, patch: int, norm_pix: bool) -> torch.Tensor:
    """The reconstruction target of every patch, [B, N, P]: its pixels, or per-patch normalized pixels."""
    target = patchify(images, patch)  # [B, N, P]
    if norm_pix:
        mean = target.mean(dim=-1, keepdim=True)  # [B, N, 1]
        var = target.var(dim=-1, keepdim=True)  # [B, N, 1]
        target = (target - mean) / (var + NORM_PIX_EPS).sqrt()  # [B, N, P]
    return target


class MAE:
    def __init__(self, cfg: MAEConfig, encoder: ViT, task: ImageTask) -> None:
        self.cfg = cfg
        self.task = task
        decoder = MAEDecoder(
            encoder.d_model, cfg.dec_d_model, cfg.dec_n_layers, cfg.dec_n_heads, cfg.dec_d_ff, encoder.grid,
            encoder.patch_dim,
        )
        self.module = nn.ModuleDict({"encoder": encoder, "decoder": decoder})
        self.sampler = build_mask_sampler(cfg.mask, encoder.grid)
        self.splits = task.eval_splits()

    @property
    def encoder(self) -> ViT:
        return self.module["encoder"]

    @property
    def decoder(self) -> MAEDecoder:
        return self.module["decoder"]

    def collate(self, batch: ImageBatch, generator: torch.Generator) -> MaskedImageBatch:
        return collate_masks(batch, self.sampler, generator)

    def loss(self, batch: MaskedImageBatch) -> LossOutput:
        images = batch.images  # [B, C, H, W]
        visible_idx = batch.masks.context  # [B, Nv]
        masked_idx = batch.masks.targets.flatten(1)  # [B, Nm] (all target blocks together)
        target = pixel_targets(images, self.encoder.patch_size, self.cfg.norm_pix_loss)  # [B, N, P]
        target = gather_tokens(target, masked_idx)  # [B, Nm, P]
        z = self.encoder(images, keep=visible_idx)  # [B, Nv, D] visible patches only
        pred = self.decoder(z, visible_idx, masked_idx)  # [B, Nm, P]
        loss = F.mse_loss(pred, target)  # masked patches only
        metrics = {"visible_patches": float(visible_idx.shape[1]), "masked_patches": float(masked_idx.shape[1])}
        return LossOutput(loss=loss, metrics=metrics)

    def after_step(self, step: int, total_steps: int) -> None:
        pass

    def evaluate(self) -> dict[str, float]:
        return probe_metrics(self.encoder, self.task, self.splits, self.cfg)


@METHODS.register("mae", MAEConfig, metrics=lambda cfg, task: [*PROBE_METRICS, "train/visible_patches", "train/masked_patches"])
def build(cfg: MAEConfig, model: nn.Module, task: Task) -> MAE:
    if not isinstance(model, ViT):
        raise TypeError(f"method mae needs the vit model; {type(model).__name__} is not one")
    return MAE(cfg, model, image_task(task, "method mae"))
