"""Models: the transformer and its pluggable position encodings; recurrent / state-space baselines (GSSMs)."""

from baselines.models import act, lstm, mamba, position, s4d, transformer  # noqa: F401  (registers POSITIONS and MODELS entries)
