"""Models: the transformer and its pluggable position encodings."""

from baselines.models import position, transformer  # noqa: F401  (registers POSITIONS and MODELS entries)
