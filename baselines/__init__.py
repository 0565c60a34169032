"""Baseline components; importing this package registers every task, model and method."""

from baselines import methods, models, ssl, tasks  # noqa: F401

# imported by a warm worker before it forks its runs (harness.plugins.warm_imports), not by the orchestrator:
# the probes' scikit-learn (~1 s) is used inside runs only
WARM_IMPORTS = ("sklearn.ensemble", "sklearn.model_selection", "sklearn.neural_network", "sklearn.pipeline",
                "sklearn.preprocessing", "sklearn.linear_model", "sklearn.datasets")
