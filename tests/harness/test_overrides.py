"""Overrides in Hydra's grammar (hydra-core's own parser) and `${path}` interpolation on suites; a switched
component keeps the parameters the new one has (and the dropped ones are recorded)."""

import random
import re
from pathlib import Path

import pytest
from conftest import TINY_SUITE

from harness.cli import main
from harness.spec import SpecError, load_and_expand
from harness.spec.find import REPO_SUITES

ROOT = REPO_SUITES.parent
SMOKE = str(REPO_SUITES / "smoke.yaml")
SMOKE_TUNE = str(REPO_SUITES / "smoke_tune.yaml")


def runs_of(overrides, suite=SMOKE):
    return load_and_expand(suite, overrides)


def test_a_run_config_key_without_defaults_is_named_with_its_suite_path(capsys):
    from harness.cli import main

    assert main(["expand", SMOKE, "training.steps=80"]) == 2
    err = capsys.readouterr().err
    assert "did you mean 'defaults.training.steps'? (a run's config sits under `defaults:`)" in err and len(err.splitlines()) == 1


def test_a_local_suite_wins_over_the_repositorys_of_the_same_name(tmp_path, monkeypatch):
    from harness.spec.find import find_suite

    (tmp_path / "suites").mkdir()
    mine = tmp_path / "suites" / "smoke.yaml"
    mine.write_text((REPO_SUITES / "smoke.yaml").read_text().replace("name: smoke", "name: smoke  # mine"))
    monkeypatch.chdir(tmp_path)
    assert find_suite("smoke").resolve() == mine.resolve()  # was the repository's, silently
    assert find_suite("copying").resolve() == (REPO_SUITES / "copying.yaml").resolve()  # the rest: the repository's


def test_set_add_force_and_delete():
    loaded, runs = runs_of(["defaults.model.d_model=16", "+defaults.model.dropout=0.1", "++defaults.training.steps=7",
                            "~defaults.evaluation.every", "defaults.task.op='add'"])
    cfg = runs[0].config
    assert (cfg.model.d_model, cfg.model.dropout, cfg.training.steps, cfg.evaluation.every) == (16, 0.1, 7, None)
    with pytest.raises(SpecError, match=r"^<override>: \+defaults.model.d_model=8: .*already set in the suite"):
        runs_of(["+defaults.model.d_model=8"])
    with pytest.raises(SpecError, match=r"~defaults.model.dropout: the suite does not set"):
        runs_of(["~defaults.model.dropout"])
    with pytest.raises(SpecError, match=r"the suite sets it to 32"):
        runs_of(["~defaults.model.d_model=64"])
    _, runs = runs_of(["~defaults.model.d_model=32"])
    assert runs[0].config.model.d_model == 64  # the transformer's default


def test_lists_dicts_and_quoted_strings():
    _, runs = runs_of(["seeds=[3,4,5]", "defaults.task.test_digits=[3,5]", "defaults.optimizer={lr: 0.01, name: sgd}",
                       "description='a, b'"])
    assert sorted({r.config.seed for r in runs}) == [3, 4, 5]
    assert runs[0].config.task.test_digits == (3, 5) and runs[0].config.optimizer.name == "sgd"


@pytest.mark.parametrize("sweep, values", [("16,32", [16, 32]), ("choice(16,24,32)", [16, 24, 32]), ("range(16,33,16)", [16, 32])])
def test_a_sweep_adds_a_grid_axis_crossed_with_the_suites(sweep, values):
    _, runs = runs_of([f"defaults.model.d_model={sweep}"])
    assert len(runs) == 4 * len(values)  # smoke: 2 position embeddings x 2 seeds
    assert sorted({r.config.model.d_model for r in runs}) == values
    assert all("model.d_model" in r.labels and "model.pos_emb" in r.labels for r in runs)


def test_sweeps_on_grid_axes_seeds_and_globs():
    _, runs = runs_of(["grid.model.pos_emb=rope,alibi,none", "seeds=0,1,2"])
    assert sorted({r.config.model.pos_emb for r in runs}) == ["alibi", "none", "rope"] and len(runs) == 9
    _, runs = runs_of(["defaults.optimizer.schedule=glob(c*)"])  # a Literal's choices
    assert sorted({r.config.optimizer.schedule for r in runs}) == ["constant", "cosine"]
    _, runs = runs_of(["~grid.model.pos_emb", "defaults.model.name=glob(l*)"])  # registered names
    assert {r.config.model.name for r in runs} == {"lstm"}
    with pytest.raises(SpecError, match="glob.. needs a key with a fixed set of choices"):
        runs_of(["defaults.model.d_model=glob(*)"])
    with pytest.raises(SpecError, match="a sweep adds a grid axis"):
        runs_of(["scheduler.workers=1,2"])
    with pytest.raises(SpecError, match="is a zip axis of the suite"):
        runs_of(["zip.model.d_model=[16,32]", "zip.model.n_heads=[2,4]", "defaults.model.d_model=8,16"])


def test_interval_adds_an_optuna_dimension_to_the_tune_blocks():
    loaded, _ = runs_of(["defaults.optimizer.weight_decay=interval(0,0.1)", "defaults.model.n_layers=int(interval(1,3))",
                         "defaults.optimizer.warmup_steps=tag(log,int(interval(1,10)))"], SMOKE_TUNE)
    space = loaded.spec.tune[0].space
    assert space["optimizer.weight_decay"].model_dump() == {"type": "float", "low": 0.0, "high": 0.1, "log": False, "step": None}
    assert (space["model.n_layers"].type, space["model.n_layers"].low, space["model.n_layers"].high) == ("int", 1, 3)
    assert space["optimizer.warmup_steps"].log and "optimizer.lr" in space  # the suite's own dimension stays
    loaded, _ = runs_of(["tune.0.space.optimizer.lr=tag(log,interval(1e-3,1e-1))"], SMOKE_TUNE)
    assert loaded.spec.tune[0].space["optimizer.lr"].low == 1e-3
    with pytest.raises(SpecError, match=r"^<override>: .*adds a search dimension to the tune blocks of the suite, which declares none"):
        runs_of(["defaults.optimizer.lr=tag(log,interval(1e-4,1e-2))"])


@pytest.mark.parametrize("override, expected", [
    ("defaults.model.d_model==3", r"not an override in Hydra's grammar \(.*\); expected key=value"),
    ("defaults.model.d_model=[1,", r"not an override in Hydra's grammar"),
    ("defaults.x=choice(", r"not an override in Hydra's grammar"),
    ("hydra/launcher=joblib", r"is a Hydra config group"),
    ("defaults.model@pkg=1", r"is a Hydra package"),
    ("defaults.model.d_model=tag(foo,interval(1,2))", r"unknown interval tag"),
])
def test_a_grammar_error_is_one_line_naming_the_override(capsys, override, expected):
    assert main(["expand", SMOKE, override]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1 and err.startswith(f"error: <override>: {override}: "), err
    assert re.search(expected, err), err


def suite(tmp_path: Path, text: str) -> str:
    (tmp_path / "s.yaml").write_text(text)
    return str(tmp_path / "s.yaml")


def test_interpolation_is_resolved_before_validation(tmp_path):
    text = TINY_SUITE.replace("d_model: 16,", 'd_model: "${defaults.training.batch_size}",') + \
        'description: "steps=${defaults.training.steps}"\nseeds: "${grid.seed}"\ngrid: {seed: [4, 5]}\n'
    loaded, runs = load_and_expand(suite(tmp_path, text), ["defaults.training.batch_size=32"])
    assert runs[0].config.model.d_model == 32  # follows the override: resolved after it
    assert loaded.spec.description == "steps=5" and loaded.spec.seeds == [4, 5]


@pytest.mark.parametrize("value, expected", [
    ('"${defaults.training.stepz}"', r"s.yaml:3: defaults.task.train_size: .*Interpolation key 'defaults.training.stepz' not found"),
    ('"${defaults.task.test_size}"\n', None),
    ('"${oc.env:HOME}"', r"s.yaml:3: defaults.task.train_size: .*only \$\{key.path\} interpolation is allowed"),
    ('"${defaults.task.train_size"', r"s.yaml:3: defaults.task.train_size: bad interpolation"),
])
def test_interpolation_errors_name_file_line_and_key(tmp_path, value, expected):
    text = TINY_SUITE.replace("train_size: 64", f"train_size: {value.strip()}")
    if expected is None:
        assert load_and_expand(suite(tmp_path, text))[1][0].config.task.train_size == 8
        return
    with pytest.raises(SpecError, match=expected):
        load_and_expand(suite(tmp_path, text))


def test_an_interpolation_cycle_is_an_error(tmp_path):
    text = TINY_SUITE + 'description: "${seeds}"\nseeds: "${description}"\n'
    with pytest.raises(SpecError, match=r"s.yaml:7: description: .*an interpolation cycle"):
        load_and_expand(suite(tmp_path, text))


def test_a_switched_component_keeps_the_parameters_the_new_one_has(tmp_path):
    """The issue's case: d_model 32 and 2 layers written for the transformer reach the LSTM and Mamba runs too."""
    text = TINY_SUITE.replace("{name: transformer, d_model: 16, n_layers: 1, n_heads: 2}",
                              "{name: transformer, d_model: 32, n_layers: 2, n_heads: 4}") + \
        "grid: {model.name: [transformer, lstm, mamba]}\n"
    _, runs = load_and_expand(suite(tmp_path, text))
    by = {r.config.model.name: r for r in runs}
    assert {(n, r.config.model.d_model, r.config.model.n_layers) for n, r in by.items()} == \
        {("transformer", 32, 2), ("lstm", 32, 2), ("mamba", 32, 2)}
    assert by["lstm"].dropped == ["model.n_heads"] and by["transformer"].dropped == []


def test_switching_by_override_include_and_ablation(tmp_path):
    (tmp_path / "base.yaml").write_text(TINY_SUITE)
    text = "include: base.yaml\nname: child\ndefaults: {model: {name: lstm}}\nablations: {tf: {model: {name: transformer, n_heads: 4}}}\n"
    loaded, runs = load_and_expand(suite(tmp_path, text))
    assert loaded.dropped == ["defaults.model.n_heads"]
    lstm = next(r for r in runs if not r.ablation)
    assert (lstm.config.model.name, lstm.config.model.d_model, lstm.config.model.n_layers) == ("lstm", 16, 1)
    tf = next(r for r in runs if r.ablation == "tf")  # the ablation switches back: d_model 16 kept from the defaults
    assert (tf.config.model.d_model, tf.config.model.n_heads) == (16, 4)
    loaded, runs = load_and_expand(str(tmp_path / "base.yaml"), ["defaults.model.name=mamba"])
    assert loaded.dropped == ["defaults.model.n_heads"] and runs[0].config.model.d_model == 16


OVERRIDE_KEYS = ["defaults.model.d_model", "defaults.model.name", "defaults.task.train_size", "seeds", "grid.model.pos_emb",
                 "defaults.optimizer.lr", "defaults.training", "report.tables.0.metric", "claims.0.check.kind", "when.0.if",
                 "defaults.model", "hydra/launcher", "a@b", "stages.x.defaults.method.name", "tune.0.space.optimizer.lr", "x..y"]
OVERRIDE_VALUES = ["1", "1,2,3", "choice(abs,rope)", "range(1,4)", "range(0,1,0.25)", "glob(*)", "glob(rel_*)",
                   "interval(1e-4,1e-2)", "tag(log,interval(1e-4,1e-2))", "int(interval(1,8))", "tag(foo,interval(0,1))",
                   "[1,2]", "{a:1}", "{name:lstm}", "'quoted,str'", "null", "true", "1e999", "1048576", "${defaults.model}",
                   "[", "choice(", "interval(1)", "=", "", "lstm,mamba", "sort(3,1)", "shuffle(1,2)", "exakt/len_"]


def random_override(rng: random.Random) -> str:
    prefix = rng.choice(["", "", "+", "++", "~"])
    key = rng.choice(OVERRIDE_KEYS)
    if prefix == "~" and rng.random() < 0.5:
        return prefix + key
    return f"{prefix}{key}={rng.choice(OVERRIDE_VALUES)}"


def test_random_overrides_validate_or_fail_with_one_line(capsys):  # the fuzzer of overrides (suites: test_fuzz.py)
    """200 seeded overrides in Hydra's grammar (set / add / force / delete, sweeps, intervals, globs, bad syntax,
    config groups, packages) on the smoke suite: ok, or exit 2 with one line naming the override or a suite line."""
    rng = random.Random(14)
    smoke = str(ROOT / "suites" / "smoke.yaml")
    seen = {0: 0, 2: 0}
    for _ in range(200):
        overrides = [random_override(rng) for _ in range(rng.randint(1, 3))]
        try:
            rc = main(["validate", smoke, *overrides])
        except (Exception, SystemExit) as e:  # noqa: BLE001
            pytest.fail(f"{overrides}: raised {type(e).__name__}: {e}")
        out, err = capsys.readouterr()
        assert rc in (0, 2), (overrides, err)
        seen[rc] += 1
        if rc == 2:
            assert out == "" and len(err.splitlines()) == 1, (overrides, err)
            assert re.match(r"error: (<override>: \S|[^\n]+\.yaml:\d+: \S)", err), (overrides, err)
    assert seen[0] >= 3 and seen[2] >= 100, seen  # both paths exercised (200 seeded: 5 valid, 195 errors)
