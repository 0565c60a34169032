"""Methods: training objectives registered in harness.components.METHODS."""

from baselines.methods import finetune, intent_decoder, jepa, mae, multimodal, probe, raw, supervised  # noqa: F401  (registers METHODS entries)
