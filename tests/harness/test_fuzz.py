"""Fuzz `harness validate` with malformed suites: seeded random mutations of every real suite.

Each mutant either validates (exit 0, nothing on stderr but warnings with file:line) or exits 2 with exactly one line
`error: FILE:LINE: ...` naming the mutated file (or a suite it includes) and a line >= 1; no
exception ever escapes.  Suites that include the mutated one are validated too.  The mutants run
in-process (fast); a sample also runs through the real CLI in a subprocess.  `make test` tries 2 mutants per
(suite, kind) and 1 resource bomb; `make fuzz` (HARNESS_FUZZ_MUTANTS=8) 8 and 3, a superset of the same mutants.  At the end: one
minimal suite per bug found this way (by the fuzzer, or by probing the code paths it exercised).
"""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from conftest import TINY_SUITE

from harness.cli import main

ROOT = Path(__file__).resolve().parents[2]
SUITES = sorted(p.name for p in (ROOT / "suites").glob("*.yaml"))
PER_KIND = int(os.environ.get("HARNESS_FUZZ_MUTANTS", "2"))  # mutants per (suite, kind): 2 in `make test`, 8 in `make fuzz`
MARKER = "PWNED"  # a python tag that ran would create this file next to the suites

SCALARS = [
    "x", "''", "-1", "-7.5", "0", "123456789012345678901234567890", "1e999", ".nan", ".inf", "-.inf",
    "null", "~", "true", "no", "0x1F", "[]", "{}", "[1, [2, {a: b}]]", "{a: 1, b: [x]}", "2020-02-30",
    "2001-12-14t21:59:43.10-05:00", "!!int abc", "!!float x", "!!bool maybe", "!!binary '???'",
    "!!timestamp 2020-99-99", "!!set {a, b}", "!!omap [a: 1]", "!!str 5", "!foo bar", "!!map [1]",
    "&r [*r]", "&m {k: *m}", "*undefined", '"\\u2028two\\nlines"', '"\\x00"', "[" * 300 + "]" * 300,
    "{name: transformer}", "[{kind: raise}]", "|\n  block\n", ">-\n  folded",
]
SPECIALS = [
    ": ", "- ", "[", "]", "{", "}", "&", "*", "!", "%", "@", "`", "\t", "&a ", "*a", "!!", "? ",
    "|", ">", "#", "'", '"', "\\", ",", "\n---\n", "\n...\n", "<<: *a\n", "\x00", "\x1b", "\ufeff",
    "\r", "\u2028", "%YAML 1.1\n", "%TAG ! tag:x,2000:\n", "? [a, b]\n: c\n", '"k\\nx": 1\n',
]
TAGS = ['!!python/object/apply:os.system ["touch {m}"]', "!!python/name:os.system",
        '!!python/object/new:os.system ["touch {m}"]', "!!python/object/apply:os.system {{args: [touch {m}]}}",
        '!!python/module:os', "!!python/object:builtins.dict {{}}"]


def _lines(text: str) -> list[str]:
    return text.splitlines(keepends=True) or ["\n"]


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def delete_line(rng: random.Random, text: str, name: str) -> str:
    ls = _lines(text)
    del ls[rng.randrange(len(ls))]
    return "".join(ls)


def delete_block(rng: random.Random, text: str, name: str) -> str:
    ls = _lines(text)
    i = rng.randrange(len(ls))
    j = i + 1
    while j < len(ls) and (not ls[j].strip() or _indent(ls[j]) > _indent(ls[i])):
        j += 1
    del ls[i:j]
    return "".join(ls)


def duplicate_line(rng: random.Random, text: str, name: str) -> str:
    ls = _lines(text)
    i = rng.randrange(len(ls))
    ls.insert(rng.randrange(len(ls) + 1), ls[i])
    return "".join(ls)


def swap_lines(rng: random.Random, text: str, name: str) -> str:
    ls = _lines(text)
    i, j = rng.randrange(len(ls)), rng.randrange(len(ls))
    ls[i], ls[j] = ls[j], ls[i]
    return "".join(ls)


def reindent(rng: random.Random, text: str, name: str) -> str:
    ls = _lines(text)
    i = rng.randrange(len(ls))
    ls[i] = " " * max(0, _indent(ls[i]) + rng.choice([-4, -2, -1, 1, 2, 3])) + ls[i].lstrip(" ")
    return "".join(ls)


def replace_scalar(rng: random.Random, text: str, name: str) -> str:
    """Replace one value (block `key: v`, flow `{k: v}` or list item) by a value of another type."""
    spots = list(re.finditer(r"(?<=: )[^,{}\[\]\n#]+|(?<=- )[^\n#:]+$|(?<=\[)[^,\]\n]+", text, re.M))
    if not spots:
        return text + rng.choice(SCALARS)
    m = rng.choice(spots)
    return text[: m.start()] + rng.choice(SCALARS) + text[m.end():]


def rename_key(rng: random.Random, text: str, name: str) -> str:
    keys = list(re.finditer(r"[A-Za-z_][\w.]*(?=:\s)", text))
    m = rng.choice(keys)
    k, i = m.group(), rng.randrange(len(m.group()))
    new = rng.choice([k[:i] + k[i + 1:], k[:i] + k[i] + k[i:], k[:i] + k[i + 1: i + 2] + k[i] + k[i + 2:],
                      k.upper(), k + "s", k.replace(".", "..", 1), "." + k, k + "."])
    return text[: m.start()] + new + text[m.end():]


def insert_special(rng: random.Random, text: str, name: str) -> str:
    for _ in range(rng.randint(1, 3)):
        i = rng.randrange(len(text) + 1)
        text = text[:i] + rng.choice(SPECIALS) + text[i:]
    return text


def truncate(rng: random.Random, text: str, name: str) -> bytes:
    data = text.encode()
    return data[: rng.randrange(len(data))]  # may cut a multi-byte character in half


def include_missing(rng: random.Random, text: str, name: str) -> str:
    target = rng.choice(["missing.yaml", "../nowhere/x.yaml", "", ".", "..", "/", "a\\0b.yaml", "x" * 300 + ".yaml",
                         "suites", "'\\x00'"])
    return _set_include(text, f'"{target}"' if target.startswith("a\\") else target or "''")


def include_cycle(rng: random.Random, text: str, name: str) -> str:
    target = rng.choice([name, f"./{name}", f"../suites/{name}"] + [s for s in SUITES if s != name])
    return _set_include(text, target)


def _set_include(text: str, target: str) -> str:
    if re.search(r"^include:.*$", text, re.M):
        return re.sub(r"^include:.*$", lambda _: f"include: {target}", text, count=1, flags=re.M)
    return f"include: {target}\n" + text


def not_a_mapping(rng: random.Random, text: str, name: str) -> str:
    return rng.choice([
        "- a\n- b\n", "42\n", "just a string\n", "[1, 2]\n", "null\n", "---\n...\n", "---\na: 1\n---\nb: 2\n",
        "".join("- " + ln for ln in _lines(text)), "".join("  " + ln for ln in _lines(text)), "!!set {a}\n",
        "? [a, b]\n: c\n", "{name: x\n", text + "\n---\n" + text,
    ])


def binary_junk(rng: random.Random, text: str, name: str) -> bytes:
    junk = rng.randbytes(rng.randint(1, 64))
    if rng.random() < 0.3:
        return junk
    data = text.encode()
    i = rng.randrange(len(data) + 1)
    return data[:i] + junk + data[i:]


def empty(rng: random.Random, text: str, name: str) -> str:
    return rng.choice(["", "\n", "   \n\n", "# only a comment\n", "---\n", "~\n", "\ufeff"])


def python_tag(rng: random.Random, text: str, name: str) -> str:
    tag = rng.choice(TAGS).format(m=MARKER)
    spots = list(re.finditer(r"(?<=: )[^\n#]+$", text, re.M))
    if rng.random() < 0.2 or not spots:
        return tag + "\n"
    m = rng.choice(spots)
    return text[: m.start()] + tag + text[m.end():]


def alias_bomb(rng: random.Random, text: str, name: str) -> str:
    """Exponentially expanding aliases ("billion laughs") or a self-referencing node as a value."""
    levels = "".join(f"x{i}: &x{i} [" + ", ".join([f"*x{i - 1}"] * 9) + "]\n" for i in range(1, 10))
    bomb = "x0: &x0 [lol]\n" + levels
    return rng.choice([bomb + text, text + "description: &d [*d]\n", text + "grid: &g {seed: *g}\n"])


VALUES = [None, True, -1, 0, 10**30, -(10**30), 1.5, float("nan"), float("inf"), "", "x", "rope", "a.b", [], {},
          [1, [2]], {"a": 1}, {"name": "transformer"}, [{"kind": "raise"}], ["abs", "rope"], [[5, 20]], "seed"]
KEYS = ["", ".", "a..b", "seed", "seed.x", "model", "model.", "model.name", "grid", "name", "x", "when", "tune", 0, 1.5, True]


def _paths(node: object, path: tuple) -> list[tuple]:
    kids = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    return [path] + [p for k, v in kids for p in _paths(v, path + (k,))]


def restructure(rng: random.Random, text: str, name: str) -> str:
    """Structure-aware: in the parsed suite, replace a value (by one of another type), rename,
    delete or add a key; the document is dumped back as YAML."""
    data = yaml.safe_load(text)
    path = rng.choice(_paths(data, ())[1:])
    parent = data
    for k in path[:-1]:
        parent = parent[k]
    op = rng.choice(["value", "value", "rename", "delete", "add"])
    if op == "value":
        parent[path[-1]] = rng.choice(VALUES)
    elif op == "delete":
        del parent[path[-1]]
    elif isinstance(parent, dict):
        parent[rng.choice(KEYS)] = parent.pop(path[-1]) if op == "rename" else rng.choice(VALUES)
    else:
        parent.append(rng.choice(VALUES))
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def metric_typo(rng: random.Random, text: str, name: str) -> str:
    """A metric a table, figure, heatmap, claim or tune objective names, misspelt (harness.validate.references)."""
    spots = list(re.finditer(r"(?:metric|objective|over): ([\w/.]+)", text))
    if not spots:
        return text
    m = rng.choice(spots)
    k, i = m.group(1), rng.randrange(len(m.group(1)))
    new = rng.choice([k[:i] + k[i + 1:], k[:i] + "x" + k[i:], k + "9", k.replace("/", "_", 1), k.upper(), "exact/len_99"])
    return text[: m.start(1)] + new + text[m.end(1):]


INTERPOLATIONS = ["${defaults.training.steps}", "${defaults.nope}", "${.x}", "${..name}", "${name}", "${a}", "${b}",
                  "${oc.env:HOME}", "${", "${}", "${defaults.model}", "len_${defaults.training.batch_size}", "\\${x}",
                  "${defaults.task.name}", "${seeds}", "${grid}", "${defaults.${name}}"]


def interpolation(rng: random.Random, text: str, name: str) -> str:
    """`${...}` values: present and missing keys, relative keys, cycles (a: ${b}, b: ${a}), resolvers, bad syntax."""
    spots = list(re.finditer(r"(?<=: )[^\n#{}\[\]]+$", text, re.M))
    value = f'"{rng.choice(INTERPOLATIONS)}"'
    if rng.random() < 0.2 or not spots:
        return text + 'a: "${b}"\nb: "${a}"\n'
    m = rng.choice(spots)
    return text[: m.start()] + value + text[m.end():]


BOMBS = ["1048576", "100000000000", "4294967296", "1000000000000000"]


def resource_bomb(rng: random.Random, text: str, name: str) -> str:
    """A size (d_model, n_layers, train_size, test_size, batch_size, ...) made enormous: refused at validate."""
    spots = list(re.finditer(r"(?:d_model|n_layers|d_ff|train_size|test_size|batch_size|context_len|image_size|"
                             r"probe_train_size|pred_d_model|dec_d_model|max_digits|depth): (\d+)", text))
    if not spots:
        return text
    m = rng.choice(spots)
    return text[: m.start(1)] + rng.choice(BOMBS) + text[m.end(1):]


KINDS: dict[str, Callable[[random.Random, str, str], str | bytes]] = {
    f.__name__: f for f in (delete_line, delete_block, duplicate_line, swap_lines, reindent, replace_scalar,
                            rename_key, insert_special, truncate, include_missing, include_cycle, not_a_mapping,
                            binary_junk, empty, python_tag, alias_bomb, restructure, metric_typo, interpolation,
                            resource_bomb)
}


def includers(name: str) -> list[str]:
    """Suites that `include:` this one: they are validated too when it is mutated."""
    return [s for s in SUITES if re.search(rf"^include:\s*{re.escape(name)}\s*$", (ROOT / "suites" / s).read_text(), re.M)]


def mutants(name: str, kind: str, n: int) -> list[str | bytes]:
    rng = random.Random(f"{name}/{kind}")  # deterministic: the same mutants on every run
    text = (ROOT / "suites" / name).read_text(encoding="utf-8")
    return [KINDS[kind](rng, text, name) for _ in range(n)]


def write(path: Path, content: str | bytes) -> None:
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8", "surrogatepass"))


def check(rc: int, out: str, err: str, path: Path, files: set[str], what: str) -> None:
    """The contract of `harness validate FILE` on any input."""
    assert rc in (0, 2), f"{what}: exit code {rc}\n{err}"
    if rc == 0:  # stderr: nothing, or warnings that name their file and line (a claim read against no floor / ceiling)
        warnings = err.splitlines()
        assert all(re.match(r"warning: [^\n]+?:\d+: \S", w) for w in warnings), f"{what}: {err!r}"
        assert out.startswith(f"ok  {path}: "), f"{what}: {out!r} {err!r}"
        return
    lines = err.splitlines()
    assert len(lines) == 1 and err.endswith("\n") and out == "", f"{what}: not one line: {err!r}"
    m = re.match(r"error: (?P<file>[^\n]+?):(?P<line>\d+): \S", lines[0])
    assert m, f"{what}: no file:line in {lines[0]!r}"
    assert m["file"] in files, f"{what}: error names {m['file']}, expected one of {files}"
    assert int(m["line"]) >= 1, f"{what}: line {m['line']}"


@pytest.fixture
def suites_copy(tmp_path: Path) -> Path:
    d = tmp_path / "suites"
    shutil.copytree(ROOT / "suites", d)
    return d


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("name", SUITES)
def test_mutant_validates_or_fails_with_one_line(suites_copy, capsys, name, kind):
    target = suites_copy / name
    original = target.read_bytes()
    for i, content in enumerate(mutants(name, kind, max(1, PER_KIND * 3 // 8) if kind == "resource_bomb" else PER_KIND)):  # bombs: up to 5 s each
        write(target, content)
        for checked in [name, *includers(name)]:
            path = suites_copy / checked
            what = f"{kind} mutant #{i} of {name} (validating {checked}):\n{content!r}"
            try:
                rc = main(["validate", str(path)])
            except (Exception, SystemExit) as e:  # noqa: BLE001 -- report which mutant let it escape
                pytest.fail(f"{what}\nraised {type(e).__name__}: {e}")
            out, err = capsys.readouterr()
            check(rc, out, err, path, {str(p) for p in suites_copy.iterdir()}, what)  # or a suite it includes
        assert not (suites_copy / MARKER).exists() and not Path(MARKER).exists(), f"{what}: a python tag ran"
    target.write_bytes(original)


def test_mutants_through_the_real_cli(suites_copy, tmp_path, capsys):
    """20 mutants (one per file) through `python -m harness.cli validate`: no traceback, exit 2, and
    stderr line for line the same as in-process."""
    rng = random.Random(20)
    paths, expected, bad = [], [], 0
    for i in range(20):
        name, kind = rng.choice(SUITES), sorted(KINDS)[i % len(KINDS)]
        path = tmp_path / "suites" / f"m{i:02d}_{name}"  # same dir: includes still resolve
        write(path, mutants(name, kind, i % 3 + 1)[-1])
        rc = main(["validate", str(path)])
        out, err = capsys.readouterr()
        check(rc, out, err, path, {str(path)} | {str(suites_copy / s) for s in SUITES}, f"{kind} {path.name}")
        paths.append(str(path))
        expected += err.splitlines()
        bad += rc == 2
    assert bad >= 10, "most mutants should be invalid"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "validate", *paths],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == expected
    assert len(proc.stdout.splitlines()) == 20 - bad


# ---------------------------------------------------------------- regressions: one minimal suite per bug found
BASE = TINY_SUITE + "seeds: [0]\n"
BOMB = "x0: &x0 [lol]\n" + "".join(f"x{i}: &x{i} [" + ", ".join([f"*x{i - 1}"] * 9) + "]\n" for i in range(1, 10))
FOUND = [  # (what it did before the fix, the suite's text, the one-line error now expected)
    ("hang: 9^9 values walked", BASE + BOMB, r"s.yaml:\d+: x\d[][\d]*: the document expands to more than 50000 values"),
    ("RecursionError", BASE + "description: &d [*d]\n", r"s.yaml:8: description\[0\]: .*recursive alias"),
    ("RecursionError", BASE + "description: " + "[" * 3000 + "]" * 3000 + "\n", r"s.yaml:8: <root>: invalid YAML: nested too deeply"),
    ("yaml ReaderError", BASE + "description: a\x00b\n", r"s.yaml:8: <root>: invalid YAML: character '\\x00' is not allowed"),
    ("UnicodeDecodeError", BASE.encode() + b"description: \xff\xfe\n", r"s.yaml:8: <root>: not UTF-8 text: byte 0xff"),
    ("ValueError: embedded null byte", 'include: "a\\0b.yaml"\n' + BASE, r"s.yaml:1: include: bad include file name 'a\\x00b.yaml'"),
    ("OSError: File name too long", "include: " + "x" * 300 + "\n" + BASE, r"s.yaml:1: include: bad include file name .*File name too long"),
    ("no line; named the directory", "include: .\n" + BASE, r"s.yaml:1: include: included file not found: \."),
    ("ValueError", BASE + "description: !!int abc\n", r"s.yaml:8: description: invalid int value 'abc'"),
    ("ValueError", BASE + "description: 2020-02-30\n", r"s.yaml:8: description: invalid timestamp value '2020-02-30'"),
    ("KeyError", BASE + "description: !!bool maybe\n", r"s.yaml:8: description: invalid bool value 'maybe'"),
    ("tag ignored: validated", BASE + 'grid: {model.pos_emb: !!python/object/apply:os.system [abs]}\n',
     r"s.yaml:8: grid.model.pos_emb: tag 'tag:yaml.org,2002:python/object/apply:os.system' is not allowed"),
    ("tag ignored: read as a mapping", BASE + "grid: {model.pos_emb: !!set {abs}}\n", r"s.yaml:8: grid.model.pos_emb: tag 'tag:yaml.org,2002:set' is not allowed"),
    ("error on two lines", BASE + '"a\\nb": 1\n', r"s.yaml:8: a b: unknown key 'a b'"),
    ("pydantic ValidationError from RunSpec.labels", BASE + "grid: {training.fault: [{kind: raise}]}\n",
     r"s.yaml:8: grid.training.fault\[0\]: an axis value must be a scalar or a list of scalars"),
    ("axis silently dropped", BASE + "grid: {seed.x: [1, 2]}\n", r"s.yaml:8: grid.seed.x: 'seed' is a single value"),
]
FOUND_OVERRIDES = [  # the first three crashed once overrides could step into lists
    ("IndexError", "seeds.5=1", r"seeds is a list of 1: 5 is not an index in it"),
    ("TypeError", "seeds.-1=1", r"not an override in Hydra's grammar"),
    ("IndexError", "seeds.99999999999999999999=1", r"is not an index in it"),
    ("ValueError: int('²')", "seeds.²=1", r"not an override in Hydra's grammar"),
    ("silently ignored", "include=other.yaml", r"'include' is read from the suite file"),
    ("error named the file's line 1", "when.0.if.x=1", r"^<override>: when: Input should be a valid list"),
]


@pytest.mark.parametrize("before, text, expected", FOUND, ids=[f"{i}-{b}" for i, (b, _, _) in enumerate(FOUND)])
def test_found_by_fuzzing(tmp_path, monkeypatch, capsys, before, text, expected):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "s.yaml", text)
    assert main(["validate", "s.yaml"]) == 2
    out, err = capsys.readouterr()
    check(2, out, err, Path("s.yaml"), {"s.yaml"}, before)
    assert re.search(expected, err), err


@pytest.mark.parametrize("before, override, expected", FOUND_OVERRIDES, ids=[o for _, o, _ in FOUND_OVERRIDES])
def test_overrides_found_by_fuzzing(tmp_path, monkeypatch, capsys, before, override, expected):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "s.yaml", BASE)
    assert main(["expand", "s.yaml", override]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1 and err.startswith("error: <override>: "), err
    assert re.search(expected, err.removeprefix("error: ")), err

