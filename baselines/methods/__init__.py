"""Methods: training objectives registered in harness.components.METHODS."""

from baselines.methods import (  # noqa: F401  (registers METHODS entries)
    act,
    finetune,
    intent_decoder,
    jepa,
    mae,
    mc_jepa,
    multimodal,
    probe,
    raw,
    scripted,
    supervised,
)
