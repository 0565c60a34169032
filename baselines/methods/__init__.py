"""Methods: training objectives registered in harness.components.METHODS."""

from baselines.methods import finetune, jepa, mae, mc_jepa, probe, raw, supervised  # noqa: F401  (registers METHODS entries)
