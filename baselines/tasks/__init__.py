"""Tasks: data generators registered in harness.components.TASKS."""

from baselines.tasks import (  # noqa: F401  (registers TASKS entries)
    arithmetic,
    copying,
    images,
    motion,
    points,
    pushing,
    signals,
    signals_fmri,
    spectrograms,
    tabular,
    text_image,
    ui_video,
)
