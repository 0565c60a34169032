"""Self-supervised learning: the shared core of the JEPA / MAE methods over any modality, and the deep linear
self-distillation model of "How JEPA Avoids Noisy Features".

    layout.py          Layout: where a modality's tokens sit (grid axes, coordinates, extra attributes)
    tokenizers.py      TOKENIZERS: patch2d (images, spectrograms), features (tables)
    signal_tokens.py   channel_conv tokenizer and channel_time positions (EEG channels, fMRI regions)
    signal_masks.py    spatial (S-JEPA), spatiotemporal (Brain-JEPA) mask samplers
    heads.py           HEADS of the finetune method: pooled; S-JEPA's in signal_heads.py
    positions.py       POS_ENCODINGS: sincos, learned, none
    masks.py           MASKS, Masks, MaskStream; samplers in grid_masks.py, token_masks.py, curriculum.py
    encoder.py         TokenEncoder (tokenizer + positions + [REG] + transformer); models token_encoder, vit
    predictors.py      PREDICTORS: concat
    targets.py         EMA schedule and update, target normalization, latent losses
    representation.py  Representation: what a probe reads; pooling
    probes.py          PROBES: linear, knn, mlp, hgb, attentive (numerics in classifiers.py)
    collapse.py        collapse monitors (RankMe, std, content share)
    evaluation.py      ProbedConfig and the probe metrics of every SSL method
"""

from baselines.ssl import curriculum, deep_linear, encoder, grid_masks, signal_heads, signal_masks, token_masks  # noqa: F401  (fill the registries)
