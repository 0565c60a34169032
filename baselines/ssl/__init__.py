"""Self-supervised learning: JEPA and MAE building blocks (encoders, mask samplers, probes) and the
deep linear self-distillation model of "How JEPA Avoids Noisy Features"."""

from baselines.ssl import deep_linear, vit  # noqa: F401  (registers linear_features, deep_linear, deep_linear_ssl, vit)
