"""Self-supervised learning: the shared core of the JEPA / MAE methods over any modality, and the deep linear
self-distillation model of "How JEPA Avoids Noisy Features".

    layout.py          Layout: where a modality's tokens sit (grid axes, coordinates, extra attributes)
    tokenizers.py      TOKENIZERS: patch2d (images, spectrograms), features (tables)
    positions.py       POS_ENCODINGS: sincos, learned, none
    masks.py           MASKS, Masks, MaskStream; samplers in grid_masks.py, token_masks.py, curriculum.py
    encoder.py         TokenEncoder (tokenizer + positions + [REG] + transformer); models token_encoder, vit
    predictors.py      PREDICTORS: concat
    targets.py         EMA schedule and update, target normalization, latent losses
    representation.py  Representation: what a probe reads; pooling
    probes.py          PROBES: linear, knn, mlp, hgb, attentive (numerics in classifiers.py)
    collapse.py        collapse monitors (RankMe, std, content share)
    pyramid.py         ConvPyramid: the conv feature pyramid, model conv_pyramid (MC-JEPA)
    flow.py            warping (grid_sample), cost volume, coarse-to-fine FlowHead, end-point error
    vicreg.py          VICReg terms (invariance, variance hinge, off-diagonal covariance), augmented views
    objectives.py      OBJECTIVES: flow, vicreg, varcov (the objectives of a multi-objective method)
    dense.py           the dense 1x1 probe (per-pixel linear classifier) and its mIoU
    evaluation.py      ProbedConfig and the probe metrics of every SSL method
"""

from baselines.ssl import curriculum, deep_linear, encoder, grid_masks, pyramid, token_masks  # noqa: F401  (fill the registries)
