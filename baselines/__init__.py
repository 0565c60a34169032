"""Baseline components; importing this package registers every task, model and method."""

from baselines import methods, models, ssl, tasks  # noqa: F401
