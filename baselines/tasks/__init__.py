"""Tasks: data generators registered in harness.components.TASKS."""

from baselines.tasks import arithmetic, copying, images, motion, spectrograms, tabular  # noqa: F401  (registers TASKS entries)
