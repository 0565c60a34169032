"""Methods: training objectives registered in harness.components.METHODS."""

from baselines.methods import supervised  # noqa: F401  (registers METHODS entries)
