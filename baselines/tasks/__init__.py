"""Tasks: data generators registered in harness.components.TASKS."""

from baselines.tasks import arithmetic  # noqa: F401  (registers TASKS entries)
