"""Validation that needs the components themselves, before any run starts (`harness validate`,
harness.pipeline.load): each distinct task/model/method combination of a suite built once
(harness.validate.resources: the task for real, the model and method on the meta device, then one
training step on a tiny batch) and every metric the suite names checked against what its runs log
(harness.validate.references).  Every failure is a SpecError `file:line: key: message` at the suite line
that set the offending value.

    checked = check_suite(loaded, runs)     # raises SpecError
    checked.configs                          # per distinct configuration: its runs, Resources, dropped fields"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from dataclasses import dataclass, field

import torch

from harness.spec.errors import SpecError
from harness.spec.expand import locate_run
from harness.spec.load import LoadedSuite
from harness.spec.models import RunSpec
from harness.validate.references import check_reference_arms, check_references
from harness.validate.resources import (
    FAKE_GPU_MEMORY_ENV,
    BuildError,
    DryBuild,
    Resources,
    dry_build,
    estimate_resources,
)

__all__ = ["BuildError", "Checked", "ConfigSummary", "Resources", "check_suite", "estimate_resources"]


@dataclass
class ConfigSummary:
    """One distinct configuration (a run's config without its seed) and its runs."""

    runs: list[RunSpec]
    resources: Resources
    dropped: list[str] = field(default_factory=list)


@dataclass
class Checked:
    configs: list[ConfigSummary]
    metrics: dict[str, frozenset[str]]  # run_id -> the metric names the run logs
    warnings: list[str] = field(default_factory=list)  # `file:line: message`: what runs but cannot say much


def _combination(run: RunSpec) -> str:
    c = run.config
    parts = [c.task, c.model, c.method]
    return json.dumps([p.model_dump(mode="json") for p in parts] + [c.training.batch_size, c.training.device,
                      c.optimizer.name, c.optimizer.momentum, c.training.grad_clip is None], sort_keys=True)


_BUILT: OrderedDict[str, DryBuild] = OrderedDict()  # the last dry builds of this process (a build is deterministic)
KEEP = 64


def _built(run: RunSpec, slots: int, tasks: dict[str, object]) -> DryBuild:
    """The dry build of the run's combination, from this process's last KEEP builds when it is there."""
    key = json.dumps([_combination(run), slots, os.environ.get(FAKE_GPU_MEMORY_ENV)])
    if key in _BUILT:
        _BUILT.move_to_end(key)
        return _BUILT[key]
    task_key = json.dumps([run.config.task.model_dump(mode="json"), run.config.seed])
    build = dry_build(run.config, slots, tasks.get(task_key))
    tasks[task_key] = build.task
    _BUILT[key] = build
    while len(_BUILT) > KEEP:
        _BUILT.popitem(last=False)
    return build


def _config_key(run: RunSpec) -> str:
    data = run.config.model_dump(mode="json", exclude={"seed", "source"})
    return json.dumps([data, run.stage, run.config.source.run_id if run.config.source else None], sort_keys=True)


def check_suite(loaded: LoadedSuite, runs: list[RunSpec]) -> Checked:
    """Dry-build every distinct combination of `runs` and check the suite's metric references."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny steps: threads only contend (2x slower on a loaded 2-core machine)
    try:
        return _check(loaded, runs)
    finally:
        torch.set_num_threads(threads)


def _check(loaded: LoadedSuite, runs: list[RunSpec]) -> Checked:
    slots = loaded.spec.scheduler.slots_per_gpu
    tasks: dict[str, object] = {}
    logged: dict[str, frozenset[str]] = {}
    configs: dict[str, ConfigSummary] = {}
    for run in runs:
        try:
            build = _built(run, slots, tasks)
        except BuildError as e:
            raise SpecError(locate_run(loaded, run)(e.path), e.message) from None
        logged[run.run_id] = build.metrics
        summary = configs.setdefault(_config_key(run), ConfigSummary([], build.resources, list(run.dropped)))
        summary.runs.append(run)
    check_references(loaded, runs, logged)
    warnings = check_reference_arms(loaded, runs)
    return Checked(list(configs.values()), logged, warnings)
