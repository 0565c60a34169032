"""Suite loading, validation errors (file:line + key + did-you-mean, exit 2), expansion, run_ids."""

import subprocess
import sys
import textwrap

import pytest
from conftest import TINY_SUITE
from conftest import spec_error as err
from conftest import write_suite as write

from harness.cli import main
from harness.spec import SpecError, expand, load_suite

BASE = TINY_SUITE




def test_all_repo_suites_validate(root, capsys, monkeypatch):
    monkeypatch.chdir(root)
    assert main(["validate"]) == 0
    assert "smoke.yaml" in capsys.readouterr().out


def test_calibration_suites_validate(root, capsys):
    """suites/calibration/ (runs that calibrate a paper suite, not in `harness validate`'s list) stays valid."""
    paths = sorted((root / "suites" / "calibration").glob("*.yaml"))
    assert paths and main(["validate", *map(str, paths)]) == 0
    assert capsys.readouterr().out.count("ok  ") == len(paths)


@pytest.mark.parametrize(
    "extra, expected",
    [
        ("grid:\n  model.pos_emb: [abs, rel_k]\nseedz: [0]\n", r"s.yaml:9: seedz: unknown key 'seedz'; did you mean 'seeds'\?"),
        ("seeds: zero\n", r"s.yaml:7: seeds: Input should be a valid list"),
        ("grid:\n  model.pos_emb: []\n", r"s.yaml:8: grid.model.pos_emb: empty axis"),
        ("grid:\n  model.pos_emb: [abs, rell_k]\n", r"s.yaml:8: grid.model.pos_emb\[1\]: .*unknown position embedding 'rell_k'; did you mean 'rel_k'\?"),
        ("grid:\n  model.pos_emb: [abs]\n  model.pos_emb: [rope]\n", r"s.yaml:9: grid.model.pos_emb: duplicate key"),
        ("grid:\n  model.pos_emb: [abs]\nzip:\n  model.pos_emb: [rope]\n", r"s.yaml:10: zip.model.pos_emb: duplicate axis"),
        ("grid:\n  modle.pos_emb: [abs]\n", r"s.yaml:8: grid.modle.pos_emb: axis must start with .*did you mean 'model'\?"),
        ("grid:\n  model.n_layers: [1, two]\n", r"s.yaml:8: grid.model.n_layers\[1\]: Input should be a valid integer"),
        ("zip:\n  model.n_layers: [1, 2]\n  seed: [1]\n", r"s.yaml:7: zip: .*same length"),
        ("grid: [1, 2\n", r"s.yaml:\d+: <root>: invalid YAML"),
    ],
)
def test_malformed_suites_one_line_error(tmp_path, extra, expected):
    msg = err(write(tmp_path, BASE + extra))
    assert __import__("re").search(expected, msg), msg


def test_unknown_component_and_param_point_at_defaults_line(tmp_path):
    text = BASE.replace("name: transformer", "name: transfomer")
    assert "s.yaml:4: defaults.model.name: unknown model 'transfomer'; did you mean 'transformer'?" in err(write(tmp_path, text))
    text = BASE.replace("d_model: 16", "d_modle: 16")
    assert "s.yaml:4: defaults.model.d_modle: unknown key 'd_modle'; did you mean 'd_model'?" in err(write(tmp_path, text))
    text = BASE.replace("steps: 5", "steps: -1")
    assert "s.yaml:6: defaults.training.steps: Input should be greater than or equal to 0, got -1" in err(write(tmp_path, text))


def test_cli_exit_code_2_and_nothing_written(tmp_path):
    bad = write(tmp_path, BASE + "grid:\n  model.pos_emb: [absolute]\n")
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", str(bad), "--tracking-uri", f"sqlite:///{tmp_path}/m.db", "--reports-dir", str(tmp_path / "rep")],
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {bad}:8: grid.model.pos_emb[0]:"), proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.yaml"]  # no db, no report, no logs


def test_override_revalidates_and_names_override(tmp_path):
    path = write(tmp_path, BASE)
    runs = expand(load_suite(path, ["defaults.model.d_model=32", "seeds=[0,1,2]"]))
    assert len(runs) == 3 and runs[0].config.model.d_model == 32
    assert "<override>: defaults.model.n_heads: " in err(path, ["defaults.model.n_heads=three"])
    with pytest.raises(SpecError, match="<override>: nonsense: not an override in Hydra.s grammar .*expected key=value"):
        load_suite(path, ["nonsense"])


def test_expansion_grid_zip_when_exclude_ablation_counts(tmp_path):
    path = write(tmp_path, BASE + textwrap.dedent("""\
        grid:
          model.pos_emb: [abs, rel_k, rope]
          task.op: [add, mul]
        zip:
          model.d_model: [16, 32]
          model.n_heads: [2, 4]
        when:
          - if: {task.op: mul}
            set: {task.b_digits: 2}
            grid: {task.priming_k: [0, 5]}
        exclude:
          - {model.pos_emb: rope, task.op: mul}
        seeds: [0, 1]
        ablations:
          deeper: {model.n_layers: 2}
        """))
    runs = expand(load_suite(path))
    # add: 3 pe x 2 zip = 6 ; mul: 2 pe (rope excluded) x 2 zip x 2 priming = 8 ; x 2 seeds ; + 1 ablation x 2 seeds
    assert len(runs) == (6 + 8) * 2 + 2
    mul = [r for r in runs if r.config.task.op == "mul"]
    assert all(r.config.task.b_digits == 2 for r in mul)
    assert {r.config.task.priming_k for r in mul} == {0, 5}
    assert not any(r.config.model.pos_emb == "rope" for r in mul)
    assert {(r.config.model.d_model, r.config.model.n_heads) for r in runs if not r.ablation} == {(16, 2), (32, 4)}
    abl = [r for r in runs if r.ablation == "deeper"]
    assert len(abl) == 2 and all(r.config.model.n_layers == 2 for r in abl)
    assert len({r.run_id for r in runs}) == len(runs)


def test_run_id_is_content_hash_independent_of_key_order(tmp_path):
    a = write(tmp_path, BASE, "a.yaml")
    reordered = BASE.replace(
        "model: {name: transformer, d_model: 16, n_layers: 1, n_heads: 2}",
        "model: {n_heads: 2, n_layers: 1, name: transformer, d_model: 16, pos_emb: abs}",  # abs is the default
    )
    b = write(tmp_path, reordered, "b.yaml")
    ra, rb = expand(load_suite(a)), expand(load_suite(b))
    assert [r.run_id for r in ra] == [r.run_id for r in rb]
    assert ra[0].run_id == expand(load_suite(a))[0].run_id  # stable across loads
    other = expand(load_suite(a, ["defaults.training.steps=6"]))
    assert other[0].run_id != ra[0].run_id


def test_include_plus_diff(tmp_path):
    write(tmp_path, BASE + "grid:\n  model.pos_emb: [abs, rope]\n", "base.yaml")
    child = write(tmp_path, """\
        include: base.yaml
        name: child
        defaults:
          model: {d_model: 32}
        seeds: [0, 1]
        """, "child.yaml")
    runs = expand(load_suite(child))
    assert len(runs) == 4 and all(r.suite == "child" and r.config.model.d_model == 32 for r in runs)
    assert all(r.config.model.n_layers == 1 for r in runs)  # inherited
    bad = write(tmp_path, "include: base.yaml\ndefaults:\n  model: {d_model: -3}\n", "bad.yaml")
    assert "bad.yaml:3: defaults.model.d_model:" in err(bad)


def test_switching_component_name_drops_its_params(tmp_path):
    path = write(tmp_path, BASE + "ablations:\n  other_task: {task: {name: arithmetic, op: mul, b_digits: 1, max_digits: 4, test_digits: [2]}}\n")
    runs = expand(load_suite(path))
    assert runs[-1].config.task.op == "mul" and runs[-1].config.task.train_size == 64  # same component: merged


def test_seed_axis_in_branch_replaces_suite_seeds(tmp_path):
    path = write(tmp_path, BASE + textwrap.dedent("""\
        grid:
          model.pos_emb: [abs, rope]
        when:
          - if: {model.pos_emb: abs}
            grid: {seed: [0, 1, 2]}
        seeds: [7]
        """))
    runs = expand(load_suite(path))
    assert sorted((r.config.model.pos_emb, r.config.seed) for r in runs) == [("abs", 0), ("abs", 1), ("abs", 2), ("rope", 7)]


def test_length_generalization_suite_expansion(root):
    runs = expand(load_suite(root / "suites" / "length_generalization.yaml"))
    refs = sorted((r.ablation, r.config.seed) for r in runs if r.ablation)  # the reference arms: 3 seeds each
    assert refs == [(a, s) for a in ("in_distribution_add", "in_distribution_mul", "untrained_add", "untrained_mul") for s in range(3)]
    assert all(r.config.optimizer.lr == 1e-12 and r.config.training.steps == 1 for r in runs if r.ablation.startswith("untrained"))
    runs = [r for r in runs if not r.ablation]
    add = [r for r in runs if r.config.task.op == "add"]
    mul = [r for r in runs if r.config.task.op == "mul"]
    assert len(add) == 6 * 3 and len(mul) == 6 * 2 + 2 * 2  # + k in {0, 50} at 16000 steps, 2 seeds
    assert {r.config.model.pos_emb for r in add} == {"abs", "rel_k", "rel_kq", "rope", "alibi", "none"}
    assert {r.config.task.priming_k for r in mul} == {0, 1, 5, 10, 25, 50}
    assert all(r.config.task.b_digits == 1 for r in mul)
    longer = sorted((r.config.task.priming_k, r.config.seed) for r in mul if r.config.training.steps == 16000)
    assert longer == [(0, 0), (0, 1), (50, 0), (50, 1)] and sum(r.config.training.steps == 8000 for r in mul) == 12
    assert all(r.config.optimizer.warmup_steps == 100 for r in runs)
    assert all(r.config.model.rel_clip >= 2 * r.config.task.max_digits + 3 for r in runs)


def test_did_you_mean_inside_optional_nested_model(tmp_path):
    text = BASE.replace("training: {steps: 5, batch_size: 8}", "training: {steps: 5, batch_size: 8, fault: {kind: nan, at_stp: 2}}")
    assert "defaults.training.fault.at_stp: unknown key 'at_stp'; did you mean 'at_step'?" in err(write(tmp_path, text))


def test_copying_suite_expansion_list_valued_axis_and_comparable_params(root):
    from harness.runner import build

    runs = expand(load_suite(root / "suites" / "copying.yaml"))
    refs = {r.ablation: r for r in runs if r.ablation and r.config.seed == 0}
    assert refs["in_distribution"].config.task.train_len == (5, 40) and refs["in_distribution"].config.task.context_len == 128
    runs = [r for r in runs if not r.ablation]
    assert len(runs) == 2 * (4 + 2) * 3  # train lengths x (4 transformer variants + lstm + mamba) x seeds
    assert all(r.config.optimizer.warmup_steps == 500 for r in runs)  # every model and range: one warm-up
    assert {tuple(r.config.task.train_len) for r in runs} == {(5, 10), (5, 20)}
    assert {r.labels["task.train_len"][1] for r in runs} == {10, 20}  # a list-valued axis is a label like any other
    one = {(r.config.model.name, getattr(r.config.model, "pos_emb", None)): r for r in runs if r.config.seed == 0}
    counts = {k: sum(p.numel() for p in build(r.config)[1].module.parameters()) for k, r in one.items()}
    assert max(counts.values()) / min(counts.values()) < 1.03, counts


def test_load_suite_alone_loads_the_component_packages(root):
    """In a fresh process, load_suite is enough (it failed with "unknown task 'arithmetic' (known: )" unless
    load_and_expand had imported the plugins first)."""
    import subprocess
    import sys

    code = f"from harness.spec.load import load_suite; print(load_suite({str(root / 'suites' / 'smoke.yaml')!r}).spec.name)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=120,
                         env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0 and out.stdout.strip() == "smoke", out.stderr[-500:]
