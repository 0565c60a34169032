"""Suite profiles (harness.spec.profiles): a named diff on the whole suite applied with --profile, part of
every run's config and run_id, shown in the report; a `paper` profile in every shipped suite validates."""

import os
import subprocess
import sys

import pytest
from conftest import TINY_SUITE, child_runs, cli, write_suite

from harness.spec import SpecError, expand, load_suite
from harness.spec.find import suite_files

PROFILES = TINY_SUITE + """\
grid:
  model.pos_emb: [abs, rope]
when:
  - if: {model.pos_emb: rope}
    set: {training.steps: 7}
profiles:
  paper:
    description: the big one
    defaults:
      model.d_model: 32
      training: {batch_size: 16}
    seeds: [0, 1]
    when:
      - if: {model.pos_emb: rope}
        set: {training.steps: 9}
  broken:
    defaults:
      training: {steps: -1}
"""


def runs(path, profile=None, overrides=()):
    return expand(load_suite(path, list(overrides), profile))


def test_a_profile_is_a_diff_on_the_whole_suite_in_every_run_id(tmp_path):
    path = write_suite(tmp_path, PROFILES)
    plain, paper = runs(path), runs(path, "paper")
    assert [(r.config.model.pos_emb, r.config.training.steps, r.config.model.d_model) for r in plain] == [("abs", 5, 16), ("rope", 7, 16)]
    assert [(r.config.model.pos_emb, r.config.training.steps, r.config.model.d_model, r.config.training.batch_size, r.config.seed)
            for r in paper] == [("abs", 5, 32, 16, 0), ("abs", 5, 32, 16, 1), ("rope", 9, 32, 16, 0), ("rope", 9, 32, 16, 1)]
    assert {r.config.profile for r in paper} == {"paper"} and {r.config.profile for r in plain} == {""}
    assert load_suite(path, [], "paper").spec.description == "the big one"
    # the suite as written hashes as it did before profiles existed: the same run_ids without a `profiles` key
    bare = write_suite(tmp_path, PROFILES[: PROFILES.index("profiles:")], "bare.yaml")
    assert [r.run_id for r in runs(bare)] == [r.run_id for r in plain]
    assert "profile" not in plain[0].config.canonical_json() and '"profile":"paper"' in paper[0].config.canonical_json()
    # the same configuration under a profile is another run
    same = write_suite(tmp_path, TINY_SUITE + "profiles:\n  paper: {seeds: [0]}\n", "same.yaml")  # a diff that changes nothing
    a, b = runs(same), runs(same, "paper")
    assert [r.config.model_copy(update={"profile": ""}) for r in b] == [r.config for r in a]
    assert not {r.run_id for r in a} & {r.run_id for r in b}
    # a profile's grid replaces the suite's (its defaults merge)
    only = write_suite(tmp_path, PROFILES.replace("    seeds: [0, 1]\n", "    seeds: [0, 1]\n    grid: {model.n_heads: [4]}\n"), "only.yaml")
    assert [(r.config.model.pos_emb, r.config.model.n_heads, r.config.model.d_model) for r in runs(only, "paper")] == [("abs", 4, 32)] * 2
    # overrides apply on top of the profile
    assert {r.config.training.batch_size for r in runs(path, "paper", ["defaults.training.batch_size=4"])} == {4}


def test_profile_errors_are_one_line_and_name_the_profile(tmp_path):
    path = write_suite(tmp_path, PROFILES)
    with pytest.raises(SpecError, match=r"s.yaml:24: defaults.training.steps: Input should be greater than or equal to 0"):
        runs(path, "broken")
    with pytest.raises(SpecError, match=r"s.yaml:\d+: profiles: unknown profile 'papr'; did you mean 'paper'\? \(profiles: broken, paper\)"):
        runs(path, "papr")
    with pytest.raises(SpecError, match="this suite declares no profiles"):
        runs(write_suite(tmp_path, TINY_SUITE, "t.yaml"), "paper")
    bad = write_suite(tmp_path, PROFILES.replace("    description: the big one", "    name: other"), "bad.yaml")
    with pytest.raises(SpecError, match=r"bad.yaml:\d+: profiles.paper.name: 'name' cannot be set by a profile"):
        runs(bad, "paper")
    written = write_suite(tmp_path, TINY_SUITE + "profile: paper\n", "w.yaml")
    with pytest.raises(SpecError, match="'profile' is chosen with --profile NAME"):
        runs(written)
    in_defaults = write_suite(tmp_path, TINY_SUITE.replace("  method:", "  profile: x\n  method:"), "d.yaml")
    with pytest.raises(SpecError, match="'profile' is set by --profile NAME"):
        runs(in_defaults)


def test_every_shipped_suite_has_a_paper_profile_that_validates(root):
    for path in suite_files():
        spec = load_suite(path).spec
        assert "paper" in spec.profiles, path.name
        paper = expand(load_suite(path, [], "paper"))
        assert paper and {r.config.profile for r in paper} == {"paper"}, path.name


def test_expand_prints_the_cost_of_each_configuration(root, tmp_path):
    path = write_suite(tmp_path, PROFILES)
    env = {**os.environ, "PYTHONPATH": str(root)}
    out = subprocess.run([sys.executable, "-m", "harness.cli", "expand", str(path), "--profile", "paper"],
                         capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "cost per run" in text and "pos_emb=abs" in text and "pos_emb=rope" in text and "FLOPs / step" in text
    assert "all runs:" in text and "FLOP of training" in text
    plain = subprocess.run([sys.executable, "-m", "harness.cli", "validate", str(path)], capture_output=True, text=True,
                           env=env, cwd=tmp_path, timeout=120)
    assert plain.returncode == 2  # validate checks every profile: `broken` fails
    assert "defaults.training.steps" in plain.stderr


@pytest.mark.slow
def test_run_with_a_profile_reports_it(root, tmp_path):
    path = write_suite(tmp_path, PROFILES.replace("  broken:\n    defaults:\n      training: {steps: -1}\n", ""))
    out = cli(root, tmp_path, "run", str(path), "--profile", "paper", "--workers", "2")
    assert out.returncode == 0, out.stderr[-2000:]
    children, _ = child_runs(tmp_path, "t")
    assert len(children) == 4 and {r.data.params["profile"] for r in children} == {"paper"}
    report = (tmp_path / "reports" / "t.paper" / "report.md").read_text()
    assert report.startswith("# t (paper)") and "Profile: **paper**" in report
    assert "| profile | paper |" in report and f"harness run {path} --profile paper" in report
    assert not (tmp_path / "reports" / "t").exists()  # the suite as written keeps its own report folder
