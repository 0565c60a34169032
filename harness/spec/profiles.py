"""Suite profiles: named diffs on the whole suite, one of them applied with `--profile NAME`.

    profiles:
      paper:                        # any suite key but name / include / profiles / profile
        defaults: {model: {d_model: 1024}, training: {steps: 100000}}
        seeds: [0, 1, 2]
        scheduler: {slots_per_gpu: 4}

A profile is applied to the suite after `include` and before command-line overrides.  Its `defaults`,
`ablations`, `scheduler` and `report` are merged onto the suite's (mappings deep-merged, lists and scalars
replaced, as a suite is merged onto the file it includes); every other section it writes (`grid`, `zip`,
`when`, `exclude`, `seeds`, `tune`, `claims`, `stages`, ...) replaces the suite's whole, so that a paper
profile states its own grid without inheriting the CPU one's axes.  Dotted keys work in its `defaults` and
`ablations` as in the suite's.  The applied profile's name is in every run's config (`profile`), so it is part of the
run_id: the same configuration under two profiles is two runs.  Without `--profile` a suite is run as
written (`profile` '' in every config, run_ids as before profiles existed).  Errors in a profile's values
name the profile's lines.
"""

from __future__ import annotations

from typing import Any

from harness.registry import did_you_mean
from harness.spec.errors import SpecError
from harness.spec.tree import merge
from harness.spec.yamlio import KeyPath

SETTABLE = ("description", "defaults", "grid", "zip", "when", "exclude", "seeds", "ablations", "tune", "claims",
            "scheduler", "report", "stage", "stages")  # every suite key but name, include, profiles, profile
MERGED = ("defaults", "ablations", "scheduler", "report")  # the other sections a profile writes replace the suite's


def _leaves(d: dict[str, Any], at: KeyPath = ()) -> list[KeyPath]:
    """Key paths of the non-mapping values of `d` (what a merge replaces)."""
    out: list[KeyPath] = []
    for k, v in d.items():
        out += _leaves(v, at + (k,)) if isinstance(v, dict) and v else [at + (k,)]
    return out


def apply_profile(data: dict[str, Any], loc: Any, name: str, normalize: Any) -> dict[str, Any]:
    """The suite document `data` with profile `name` merged on (module docstring).  `loc` (a Locator) is
    updated so that the profile's keys are found at their own lines; `normalize(diff, loc, at)` undots it."""
    profiles = data.get("profiles")
    if not isinstance(profiles, dict) or name not in profiles:
        known = sorted(profiles) if isinstance(profiles, dict) else []
        where = loc.find(("profiles",)) if known else loc.root
        raise SpecError(where, f"unknown profile '{name}'{did_you_mean(name, known)} "
                               f"({'profiles: ' + ', '.join(known) if known else 'this suite declares no profiles'})")
    at = ("profiles", name)
    diff = profiles[name]
    if not isinstance(diff, dict):
        raise SpecError(loc.find(at), "a profile is a mapping of suite keys (a diff on the suite)")
    for key in diff:
        if key not in SETTABLE:
            hint = did_you_mean(str(key), list(SETTABLE))
            raise SpecError(loc.find(at + (key,)), f"'{key}' cannot be set by a profile{hint} (a profile sets: {', '.join(SETTABLE)})")
    diff = normalize(diff, loc, at)
    replaced = [(k,) for k in diff if k not in MERGED]
    merged_leaves = [path for k in diff if k in MERGED for path in _leaves({k: diff[k]})]
    for path in replaced + merged_leaves:  # a replaced value: the base's locations under it are gone
        loc.locs = {p: v for p, v in loc.locs.items() if p[: len(path)] != path}
    n = len(at)
    loc.locs.update({p[n:]: v for p, v in loc.locs.items() if p[:n] == at and len(p) > n})
    out = merge({k: v for k, v in data.items() if (k,) not in replaced}, diff)
    out["profile"] = name
    return out
