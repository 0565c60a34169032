"""Methods: training objectives registered in harness.components.METHODS."""

from baselines.methods import act, finetune, jepa, mae, probe, raw, supervised  # noqa: F401  (registers METHODS entries)
