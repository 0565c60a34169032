"""Methods: training objectives registered in harness.components.METHODS."""

# jepa and mae import baselines.ssl.vit, which registers the `vit` model
from baselines.methods import jepa, mae, supervised  # noqa: F401  (registers METHODS entries)
