"""Tasks: data generators registered in harness.components.TASKS."""

from baselines.tasks import arithmetic, copying, images, spectrograms, tabular, text_image, ui_video  # noqa: F401  (registers TASKS entries)
