"""Security: a suite (or an override, or a checkpoint) cannot run code.

Suites name only registered components (no import paths, no `_target_`), YAML is read by the safe
loader with plain YAML only (no python tags), checkpoints load with `weights_only=True`, and a scan
of the source keeps it that way.  Every payload here would leave a side effect (a file, an imported
module) if it ran; each test checks that the effect is absent.
"""

from __future__ import annotations

import ast
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import TINY_SUITE

from harness.cli import main
from harness.train.loop import load_checkpoint, save_checkpoint
from harness.train.resume import TrainState

ROOT = Path(__file__).resolve().parents[2]
BASE = TINY_SUITE


def one_error(capsys, rc: int) -> str:
    out, err = capsys.readouterr()
    assert rc == 2 and out == "", (rc, out, err)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


@pytest.fixture
def evil_module(tmp_path, monkeypatch):
    """An importable module `evil_mod` whose import (or whose `boom()`) creates a file."""
    marker = tmp_path / "imported"
    (tmp_path / "evil_mod.py").write_text(f"open({str(marker)!r}, 'w').close()\ndef boom(*a, **k):\n    open({str(marker)!r}, 'w').close()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    yield marker
    assert "evil_mod" not in sys.modules and not marker.exists(), "the suite imported or ran evil_mod"


def test_evil_module_fixture_is_live(evil_module):
    """The canary works: importing evil_mod does create the marker (so its absence below means something)."""
    import importlib

    importlib.import_module("evil_mod")
    assert evil_module.exists()
    del sys.modules["evil_mod"]
    evil_module.unlink()


@pytest.mark.parametrize("edit, expected", [
    (("name: transformer,", "name: evil_mod.boom,"), "unknown model 'evil_mod.boom'"),
    (("name: transformer,", "name: os.system,"), "unknown model 'os.system'"),
    (("name: supervised", "name: builtins.eval"), "unknown method 'builtins.eval'"),
    (("name: arithmetic,", "name: harness.cli.main,"), "unknown task 'harness.cli.main'"),
    (("name: transformer,", "name: transformer, _target_: evil_mod.boom,"), "defaults.model._target_: unknown key '_target_'"),
    (("name: supervised", "_target_: evil_mod.boom"), "'method' needs a 'name' of a registered method"),
    (("defaults:", "_target_: evil_mod.boom\ndefaults:"), "_target_: unknown key '_target_'"),
    (("n_heads: 2}", "n_heads: 2, pos_emb: evil_mod.boom}"), "evil_mod.boom"),
])
def test_suites_name_only_registered_components(evil_module, capsys, edit, expected):
    Path("s.yaml").write_text(BASE.replace(*edit, 1))
    assert expected in one_error(capsys, main(["validate", "s.yaml"]))


def test_axis_values_cannot_name_import_paths(evil_module, capsys):
    Path("s.yaml").write_text(BASE + "grid:\n  model.name: [transformer, evil_mod.boom]\n")
    assert "s.yaml:8: grid.model.name[1]: unknown model 'evil_mod.boom'" in one_error(capsys, main(["validate", "s.yaml"]))


PAYLOADS = [
    'description: !!python/object/apply:os.system ["touch {m}"]',
    'description: !!python/object/apply:os.system {{args: ["touch {m}"]}}',
    'description: !!python/object/new:os.system ["touch {m}"]',
    "description: !!python/name:os.system",
    "description: !!python/module:os",
    'description: !<tag:yaml.org,2002:python/object/apply:os.system> ["touch {m}"]',
    '%TAG !py! tag:yaml.org,2002:python/\n---\nname: t\ndescription: !py!object/apply:os.system ["touch {m}"]',
    "!!python/name:os.system : 1",
    'grid: {{model.pos_emb: !!python/object/apply:os.system ["touch {m}"]}}',
    'include: !!python/object/apply:os.system ["touch {m}"]',
    'description: !!python/object/apply:subprocess.check_call [[touch, "{m}"]]',
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_yaml_python_tags_are_refused(tmp_path, monkeypatch, capsys, payload):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "X"
    text = payload.format(m=marker)
    Path("s.yaml").write_text(text if text.startswith("%") else BASE + text + "\n")
    line = one_error(capsys, main(["validate", "s.yaml"]))
    assert line.startswith("error: s.yaml:") and "tag 'tag:yaml.org,2002:python/" in line, line
    assert not marker.exists()


def test_unsafe_loader_would_have_run_the_payload(tmp_path):
    """The payloads above are live: PyYAML's unsafe loader does run them (so the checks above can fail)."""
    import yaml

    marker = tmp_path / "X"
    yaml.unsafe_load(PAYLOADS[0].format(m=marker))  # noqa: S506 -- the point of this test
    assert marker.exists()


@pytest.mark.parametrize("override", [
    'defaults.description=!!python/object/apply:os.system ["touch {m}"]',
    "defaults.model.name=!!python/name:os.system",
    'grid.model.pos_emb=[abs, !!python/object/new:os.system ["touch {m}"]]',
    'seeds=!!python/object/apply:os.system {{args: ["touch {m}"]}}',
    "defaults.model.name=evil_mod.boom",
    "defaults.model._target_=evil_mod.boom",
])
def test_overrides_cannot_smuggle_code(evil_module, capsys, override):
    Path("s.yaml").write_text(BASE)
    marker = evil_module.parent / "X"
    line = one_error(capsys, main(["expand", "s.yaml", override.format(m=marker)]))
    assert line.startswith("error: <override>: "), line
    assert not marker.exists()


def test_override_payload_through_the_real_cli_writes_nothing(tmp_path):
    (tmp_path / "s.yaml").write_text(BASE)
    marker = tmp_path / "X"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_DISABLE_TELEMETRY": "true"}
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", "s.yaml", f'defaults.description=!!python/object/apply:os.system ["touch {marker}"]',
         "--tracking-uri", f"sqlite:///{tmp_path}/m.db", "--reports-dir", str(tmp_path / "rep")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.splitlines()) == 1 and proc.stderr.startswith("error: <override>: "), proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"]  # no marker, no store, no report


@pytest.mark.parametrize("edit, expected", [
    (("name: t", "name: ../../escape"), "name: String should match pattern"),
    (("name: t", "name: /tmp/escape"), "name: String should match pattern"),
])
def test_suite_names_cannot_escape_the_reports_dir(tmp_path, monkeypatch, capsys, edit, expected):
    monkeypatch.chdir(tmp_path)
    Path("s.yaml").write_text(BASE.replace(*edit, 1))
    assert expected in one_error(capsys, main(["validate", "s.yaml"]))


def test_figure_files_cannot_escape_the_report_dir(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Path("s.yaml").write_text(BASE + "report:\n  figures:\n    - {title: t, metric: m, hue: [seed], file: ../../x.png}\n")
    assert "report.figures[0].file: String should match pattern" in one_error(capsys, main(["validate", "s.yaml"]))


# ---------------------------------------------------------------- checkpoints
class Payload:
    """Unpickling this calls os.mkdir(marker): what a malicious checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def _evil_checkpoint(path: Path, marker: Path) -> Path:
    torch.save({"weight": torch.zeros(2, 2), "bias": Payload(marker)}, path)
    return path


def test_load_checkpoint_refuses_pickled_objects(tmp_path):
    marker = tmp_path / "pwned"
    ckpt = _evil_checkpoint(tmp_path / "model.pt", marker)
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        load_checkpoint(torch.nn.Linear(2, 2), ckpt)
    assert not marker.exists()
    torch.load(ckpt, weights_only=False)  # the payload is live: an unsafe load runs it
    assert marker.is_dir()


def test_resume_checkpoint_refuses_pickled_objects(tmp_path):
    marker = tmp_path / "pwned"
    ckpt = _evil_checkpoint(tmp_path / "resume.pt", marker)
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        TrainState.load(ckpt)
    assert not marker.exists()


def test_genuine_checkpoint_still_loads(tmp_path):
    src, dst = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    load_checkpoint(dst, save_checkpoint(src, tmp_path / "model.pt"))
    assert all(torch.equal(a, b) for a, b in zip(src.state_dict().values(), dst.state_dict().values()))


# ---------------------------------------------------------------- source scan: no unsafe loader can come back
UNSAFE_YAML = {"load", "load_all", "unsafe_load", "unsafe_load_all", "full_load", "full_load_all", "Loader", "UnsafeLoader", "FullLoader"}
UNSAFE_MODULES = {"pickle", "cPickle", "dill", "cloudpickle", "marshal", "shelve", "joblib"}


def unsafe_calls(source: str) -> list[str]:
    """Unsafe deserialization in Python source: yaml's non-safe loaders, torch.load without
    weights_only=True, numpy loads with allow_pickle=True, pandas.read_pickle, pickle-like modules."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if a.name.split(".")[0] in UNSAFE_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module:
            root = node.module.split(".")[0]
            bad = root in UNSAFE_MODULES or (root == "yaml" and any(a.name in UNSAFE_YAML for a in node.names))
            bad |= root == "torch" and any(a.name == "load" for a in node.names)
            found += [f"from {node.module} import ..."] if bad else []
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id == "yaml" and node.attr in UNSAFE_YAML:
                found.append(f"yaml.{node.attr}")
            elif node.attr == "read_pickle":
                found.append(f"{node.value.id}.read_pickle")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name):
            kw = {k.arg: k.value for k in node.keywords}
            owner, name = node.func.value.id, node.func.attr
            if owner == "torch" and name == "load":
                w = kw.get("weights_only")
                if not (isinstance(w, ast.Constant) and w.value is True):
                    found.append(f"torch.load without weights_only=True (line {node.lineno})")
            if owner in ("np", "numpy") and name == "load":
                a = kw.get("allow_pickle")
                if a is not None and not (isinstance(a, ast.Constant) and a.value is False):
                    found.append(f"numpy.load with allow_pickle (line {node.lineno})")
    return found


@pytest.mark.parametrize("bad", [
    "import yaml\nyaml.load(open('f'))", "import yaml\nyaml.unsafe_load(s)", "import yaml\nyaml.load(s, Loader=yaml.FullLoader)",
    "from yaml import load", "import torch\ntorch.load(p)", "import torch\ntorch.load(p, weights_only=False)",
    "import torch\ntorch.load(p, weights_only=flag)", "from torch import load", "import pickle", "from pickle import loads",
    "import numpy as np\nnp.load(p, allow_pickle=True)", "import pandas as pd\npd.read_pickle(p)",
])
def test_scanner_catches_unsafe_loads(bad):
    assert unsafe_calls(bad), bad


def test_scanner_passes_safe_loads():
    assert unsafe_calls("import yaml, torch\nyaml.safe_load(s)\nyaml.SafeLoader(s)\ntorch.load(p, weights_only=True, map_location='cpu')") == []


def test_no_unsafe_deserialization_in_the_source():
    files = [p for d in ("harness", "baselines", "benchmarks") for p in sorted((ROOT / d).rglob("*.py"))]
    assert len(files) > 20
    bad = {str(p.relative_to(ROOT)): hits for p in files if (hits := unsafe_calls(p.read_text(encoding="utf-8")))}
    assert bad == {}
