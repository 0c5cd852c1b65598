"""Every hostile input of the hardening issue, through the command line as a user types it:
exit 2, exactly one line on stderr starting 'error: ', nothing on stdout before it, and nothing
written anywhere but the results folder (the suite's own tests of each part are elsewhere; this
file is the end-to-end list)."""
import json
import shutil
from pathlib import Path

import pytest

from suite.cli import main

REFERENCE = Path(__file__).resolve().parent.parent / "results" / "0.1.0" / "cpu-20261129T172118Z"
SMOKE = json.loads((Path(__file__).resolve().parent.parent / "suite" / "data" / "profiles" / "smoke.json").read_text())
TRAIN = ["train", "--task", "assoc_recall", "--model", "attn", "--distance"]


def profile_file(tmp, mutate=None, raw: bytes | None = None) -> str:
    data = json.loads(json.dumps(SMOKE))
    if mutate:
        mutate(data)
    path = tmp / "profile.json"
    path.write_bytes(raw if raw is not None else json.dumps(data).encode())
    return str(path)


def reference_run(tmp, edit=None) -> str:
    run = tmp / "results" / "0.1.0" / REFERENCE.name
    shutil.copytree(REFERENCE, run, ignore=shutil.ignore_patterns("figures"))
    if edit:
        edit(run)
    return str(run)


def claims_file(tmp, claims=None, raw: bytes | None = None) -> str:
    path = tmp / "claims.json"
    good = {"id": "c1", "source": "T1", "claim": "x", "published": "100%",
            "select": {"task": "assoc_recall", "distance": 126, "model": "attn", "protocol": "faithful"},
            "checks": [{"metric": "accuracy", "comparator": ">=", "threshold": 0.98}], "profiles": ["cpu"]}
    doc = {"claims": [good]} if claims is None else claims(good)
    path.write_bytes(raw if raw is not None else json.dumps(doc).encode())
    return str(path)


def runs_edit(fn):
    def edit(run):
        path = run / "runs.csv"
        path.write_text(fn(path.read_text()))
    return edit


def reproduce(tmp, *extra):
    return ["reproduce", "--results-dir", str(tmp / "results"), "--quiet", *extra]


CASES = {
    # 3. a profile's name used as a path
    "profile name escapes": lambda t: reproduce(t, "--profile", profile_file(t, lambda d: d.update(name="../../../escape"))),
    # 4. values that passed validation and crashed later
    "seed 1e23": lambda t: reproduce(t, "--profile", profile_file(t, lambda d: d["grid"][0].update(seeds=[1e23]))),
    "test_sequences 1e9": lambda t: reproduce(t, "--profile", profile_file(t, lambda d: d.update(test_sequences=10**9))),
    # 5. non-finite numbers
    "lambda inf (CLI)": lambda t: ["train", "--task", "assoc_recall", "--model", "routed", "--distance", "14",
                                   "--lambda-target", "inf"],
    "lambda Infinity (JSON)": lambda t: reproduce(t, "--profile", profile_file(
        t, raw=json.dumps(SMOKE).replace('"lambdas": [0.5]', '"lambdas": [Infinity]').encode())),
    # 6. sizes
    "distance 1e9": lambda t: TRAIN + ["1000000000"],
    "seed 2^63": lambda t: TRAIN + ["14", "--seed", str(2**63)],
    "flops seq-len 1e9": lambda t: ["flops", "--model", "attn", "--seq-len", "1000000000"],
    # 7. tracebacks that became one line: stored runs
    "runs.csv cut mid-line": lambda t: ["claims", reference_run(t, runs_edit(lambda s: s[: len(s) // 2 + 7]))],
    "runs.csv empty": lambda t: ["claims", reference_run(t, runs_edit(lambda s: ""))],
    "runs.csv missing a column": lambda t: ["claims", reference_run(t, runs_edit(
        lambda s: "\n".join(",".join(c for i, c in enumerate(line.split(",")) if i != 1) for line in s.splitlines())))],
    "corrupt manifest": lambda t: ["claims", reference_run(t, lambda r: (r / "manifest.json").write_text("{nope"))],
    # 7. claims files
    "claims: check without metric": lambda t: ["claims", reference_run(t), "--claims-file", claims_file(
        t, lambda c: {"claims": [{**c, "checks": [{"comparator": ">=", "threshold": 0.9}]}]})],
    "claims: check without threshold": lambda t: ["claims", reference_run(t), "--claims-file", claims_file(
        t, lambda c: {"claims": [{**c, "checks": [{"metric": "accuracy", "comparator": ">="}]}]})],
    "claims: checks []": lambda t: ["claims", reference_run(t), "--claims-file", claims_file(
        t, lambda c: {"claims": [{**c, "checks": []}]})],
    "claims: claims []": lambda t: ["claims", reference_run(t), "--claims-file", claims_file(t, lambda c: {"claims": []})],
    "claims: a claim that is a string": lambda t: ["claims", reference_run(t), "--claims-file", claims_file(
        t, lambda c: {"claims": ["T1-attn-126"]})],
    "claims: non-UTF-8": lambda t: ["claims", reference_run(t), "--claims-file", claims_file(t, raw=b'{"claims": "\xe9"}')],
    "claims: misspelt metric": lambda t: ["claims", reference_run(t), "--claims-file", claims_file(
        t, lambda c: {"claims": [{**c, "checks": [{"metric": "accurracy", "comparator": ">=", "threshold": 0.9}]}]})],
    # 7. profiles
    "profile non-UTF-8": lambda t: reproduce(t, "--profile", profile_file(t, raw=b'{"name": "caf\xe9"}')),
    "profile protocol a list": lambda t: reproduce(t, "--profile", profile_file(t, lambda d: d.update(protocol=["smoke"]))),
    "profile model a string": lambda t: reproduce(t, "--profile", profile_file(t, lambda d: d.update(model="big"))),
    "profile task_params a string": lambda t: reproduce(t, "--profile", profile_file(
        t, lambda d: d["grid"][0].update(task_params="x"))),
    "results dir under a file": lambda t: ["reproduce", "--profile", "smoke", "--quiet",
                                           "--results-dir", str(_file(t) / "sub")],
    # 8. the checker refuses what it cannot count
    "duplicated runs.csv row": lambda t: ["claims", reference_run(t, runs_edit(
        lambda s: s + s.splitlines()[1] + "\n"))],
    # 9.
    "decides_claims 'false'": lambda t: reproduce(t, "--profile", profile_file(t, lambda d: d.update(decides_claims="false"))),
    "resume '*'": lambda t: reproduce(t, "--resume", "*"),
    "resume '../x'": lambda t: reproduce(t, "--resume", "../x"),
    "resume ''": lambda t: reproduce(t, "--resume", ""),
    # every other command with parameters
    "audit resume '../x'": lambda t: ["audit", "--resume", "../x", "--results-dir", str(t / "results")],
    "regress seeds 0": lambda t: ["regress", "--router", "gumbel", "--seeds", "0", "--results-dir", str(t / "results")],
    "figures of a file": lambda t: ["figures", str(_file(t))],
    "models format xml": lambda t: ["models", "--format", "xml"],
    "flops seq-len 0": lambda t: ["flops", "--model", "attn", "--seq-len", "0"],
    "claims of a missing run": lambda t: ["claims", str(t / "nonexistent")],
}


def _file(tmp) -> Path:
    f = tmp / "a_file"
    f.write_text("x")
    return f


def snapshot(root: Path) -> set:
    return {p for p in root.rglob("*")}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_exit_2_and_writes_nothing(case, tmp_path, monkeypatch, capsys):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    args = CASES[case](tmp_path)
    before = snapshot(tmp_path)
    assert main(args) == 2
    out, err = capsys.readouterr()
    assert out == "", out
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert snapshot(tmp_path) == before                       # nothing written, inside or outside
    assert not (tmp_path.parent / "escape").exists()


def test_the_list_reaches_every_command_that_takes_input(tmp_path):
    """Each command with parameters of its own is fed at least one hostile value here."""
    from suite.cli import build_parser, commands
    takes_input = set()
    for name, cmd in commands().items():
        p = build_parser()._subparsers._group_actions[0].choices[name]
        if any(a.dest != "help" for a in p._actions):
            takes_input.add(name)
    fed = set()
    for i, case in enumerate(CASES):
        (tmp_path / str(i)).mkdir()
        fed.add(CASES[case](tmp_path / str(i))[0])
    assert takes_input - fed == set()
