"""Tuning: the driver of a suite's Optuna studies (harness.tune.study) and the worker side that reports
a run's evaluations to its trial (harness.tune.trial).  The package imports neither, so that a worker
imports the trial side without the driver."""
