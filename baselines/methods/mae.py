"""MAE (He et al. 2022, "Masked Autoencoders Are Scalable Vision Learners"), over any tokenizer: encode the
visible tokens, reconstruct the masked ones' raw content with a light decoder.

    encoder  = the model (a TokenEncoder), sees only the visible tokens (the mask's context)
    decoder  = `decoder` (PREDICTORS; default a 1-layer concat transformer over [visible tokens, mask tokens
               at the masked positions], all masked tokens in one pass) -> the tokenizer's content per token
               (pixels of a patch, the value of a table column)
    loss     = `reconstruction` (RECONSTRUCTIONS, baselines/ssl/reconstruction.py: mse, or chamfer for the
               point sets of point-cloud groups) on the MASKED tokens only; with norm_pix_loss the target of
               each token is its content normalized by the token's own mean and variance,
               (x - mean) / sqrt(var + 1e-6)

The mask (`mask`, default random with ratio 0.75) is sampled in `collate`; the masked tokens are the mask's
target indices.  Per training step: pred_std, target_std and rankme (of the encoder's visible tokens).
evaluate() probes the encoder on all tokens: the metrics of baselines/ssl/evaluation.py and eval/step.
"""

from __future__ import annotations

import torch
from pydantic import Field, model_validator
from torch import nn

from baselines.methods.masked import MaskedMethod, masked_metric_names
from baselines.ssl.blocks import gather_targets
from baselines.ssl.collapse import batch_rankme, token_std
from baselines.ssl.encoder import TokenEncoder, token_encoder
from baselines.ssl.evaluation import ProbedConfig
from baselines.ssl.masks import MaskConfig, MaskedBatch
from baselines.ssl.predictors import PREDICTORS, ConcatPredictorConfig, build_predictor
from baselines.ssl.reconstruction import RECONSTRUCTIONS, ChamferConfig, MseReconstructionConfig, reconstruction_loss
from baselines.ssl.registered import Registered
from baselines.ssl.representation import Representation
from baselines.ssl.token_masks import RandomMaskConfig
from baselines.tasks.labeled import LabeledTask, labeled_task
from harness.components import METHODS, LossOutput, Task

NORM_PIX_EPS = 1e-6


class MAEConfig(ProbedConfig):
    decoder: Registered(PREDICTORS) = Field(default_factory=lambda: ConcatPredictorConfig(n_layers=1, joint=True))
    norm_pix_loss: bool = True
    mask: MaskConfig = Field(default_factory=lambda: RandomMaskConfig(ratio=0.75))
    reconstruction: Registered(RECONSTRUCTIONS) = Field(default_factory=MseReconstructionConfig)

    @model_validator(mode="after")
    def _chamfer_raw(self) -> MAEConfig:
        if self.norm_pix_loss and isinstance(self.reconstruction, ChamferConfig):
            raise ValueError("reconstruction chamfer compares point coordinates: set norm_pix_loss: false")
        return self


def normalize_content(target: torch.Tensor, norm_pix: bool) -> torch.Tensor:
    """The reconstruction target of every token, [..., P]: its content, or per-token normalized content."""
    if norm_pix:
        mean = target.mean(dim=-1, keepdim=True)  # [..., 1]
        var = target.var(dim=-1, keepdim=True)  # [..., 1]
        target = (target - mean) / (var + NORM_PIX_EPS).sqrt()  # [..., P]
    return target


class MAE(MaskedMethod):
    def __init__(self, cfg: MAEConfig, encoder: TokenEncoder, task: LabeledTask) -> None:
        super().__init__(cfg, cfg.mask, encoder, task)
        self.cfg = cfg
        content_dim = encoder.tokenizer.content_dim
        if cfg.norm_pix_loss and content_dim < 2:
            raise ValueError(f"norm_pix_loss normalizes each token's content over its values, but the tokenizer's "
                             f"tokens hold {content_dim}; set norm_pix_loss: false")
        decoder = build_predictor(cfg.decoder, encoder.d_model, content_dim, encoder.pos_cfg, encoder.layout)
        self.module = nn.ModuleDict({"encoder": encoder, "decoder": decoder})
        self.reconstruct = reconstruction_loss(cfg.reconstruction)

    @property
    def encoder(self) -> TokenEncoder:
        return self.module["encoder"]

    @property
    def decoder(self) -> nn.Module:
        return self.module["decoder"]

    def loss(self, batch: MaskedBatch) -> LossOutput:
        x, layout = batch.inputs, batch.layout
        visible_idx, masked_idx = batch.masks.context, batch.masks.targets  # [B, Nv], [B, M, Nt]
        content = self.encoder.tokenizer.content(x, layout)  # [B, N, P]
        target = gather_targets(normalize_content(content, self.cfg.norm_pix_loss), masked_idx)  # [B, M, Nt, P]
        z = self.encoder(x, layout, keep=visible_idx)  # [B, Nv, D] visible tokens only
        pred = self.decoder(z, visible_idx, masked_idx, layout)  # [B, M, Nt, P]
        loss = self.reconstruct(pred, target)  # masked tokens only
        metrics = {
            "visible_tokens": float(visible_idx.shape[1]),
            "masked_tokens": float(masked_idx.shape[1] * masked_idx.shape[2]),
            "pred_std": token_std(pred),
            "target_std": token_std(target),
            "rankme": batch_rankme(z),
            **self.step_metrics(batch),
        }
        return LossOutput(loss=loss, metrics=metrics)

    def representation(self) -> Representation:
        return Representation(self.encoder, self.encoder, self.cfg.pooling, self.cfg.eval_batch_size)


LOSS_METRICS = ("visible_tokens", "masked_tokens", "pred_std", "target_std", "rankme")


@METHODS.register("mae", MAEConfig, provides={"representation"}, metrics=lambda cfg, task: masked_metric_names(cfg, cfg.mask, LOSS_METRICS, task))
def build(cfg: MAEConfig, model: nn.Module, task: Task) -> MAE:
    return MAE(cfg, token_encoder(model, "method mae"), labeled_task(task, "method mae"))
