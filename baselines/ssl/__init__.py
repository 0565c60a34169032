"""Self-supervised learning: JEPA and MAE building blocks (encoders, mask samplers, probes) and the
deep linear self-distillation model of "How JEPA Avoids Noisy Features"."""
