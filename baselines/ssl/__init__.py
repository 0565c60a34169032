"""Self-supervised learning: the shared core of the JEPA / MAE methods over any modality, and the deep linear
self-distillation model of "How JEPA Avoids Noisy Features".

    layout.py          Layout: where a modality's tokens sit (grid axes, coordinates, extra attributes)
    tokenizers.py      TOKENIZERS: patch2d (images, spectrograms), features (tables)
    video.py           TOKENIZERS tubelet (videos); MASKS temporal (whole time slices), tube (V-JEPA)
    text_image.py      TOKENIZERS image_part, caption (packed captioned images); MODELS two_tower, ti_fusion
    text_decoder.py    TextDecoder (causal, cross-attends to an encoder's tokens), teacher forcing, greedy, token F1
    point_groups.py    point clouds: FPS + kNN groups + mini-PointNet (point_groups), center_mlp positions
    signal_tokens.py   channel_conv tokenizer and channel_time positions (EEG channels, fMRI regions)
    signal_masks.py    spatial (S-JEPA), spatiotemporal (Brain-JEPA) mask samplers
    heads.py           HEADS of the finetune method: pooled; S-JEPA's in signal_heads.py
    positions.py       POS_ENCODINGS: sincos, learned, none
    masks.py           MASKS, Masks, MaskStream; samplers in grid_masks.py, token_masks.py, curriculum.py,
                       sequencer.py (Point-JEPA's token orders and contiguous runs in them)
    encoder.py         TokenEncoder (tokenizer + positions + [REG] + transformer); models token_encoder, vit
    predictors.py      PREDICTORS: concat; context_aware in context_decoder.py (3D-JEPA)
    reconstruction.py  RECONSTRUCTIONS of MAE: mse, chamfer
    targets.py         EMA schedule and update, target normalization, latent losses
    representation.py  Representation: what a probe reads; pooling
    probes.py          PROBES: linear, knn, mlp, hgb, attentive (numerics in classifiers.py); fewshot.py
    collapse.py        collapse monitors (RankMe, std, content share)
    pyramid.py         ConvPyramid: the conv feature pyramid, model conv_pyramid (MC-JEPA)
    flow.py            warping (grid_sample), cost volume, coarse-to-fine FlowHead, end-point error
    vicreg.py          VICReg terms (invariance, variance hinge, off-diagonal covariance), augmented views
    objectives.py      OBJECTIVES: flow, vicreg, varcov (the objectives of a multi-objective method)
    dense.py           the dense 1x1 probe (per-pixel linear classifier) and its mIoU
    evaluation.py      ProbedConfig and the probe metrics of every SSL method
"""

from baselines.ssl import (  # noqa: F401  (fill the registries)
    context_decoder,
    curriculum,
    deep_linear,
    encoder,
    fewshot,
    grid_masks,
    point_groups,
    pyramid,
    sequencer,
    signal_heads,
    signal_masks,
    text_image,
    token_masks,
    video,
)
