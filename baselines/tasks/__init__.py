"""Tasks: data generators registered in harness.components.TASKS."""

from baselines.tasks import (  # noqa: F401  (registers TASKS entries)
    arithmetic,
    copying,
    images,
    points,
    pushing,
    spectrograms,
    tabular,
    text_image,
    ui_video,
)
