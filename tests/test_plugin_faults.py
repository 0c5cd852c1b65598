"""Issue 24: a plugin's faults become verdicts, never crashes or false passes. The hostile plugins
live beside this file (hostile_routers.py, hostile_import_*.py); each case is run through the
command line in this process, where a fault that escaped would fail the test itself."""
import json
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from suite.cli import main

ROOT = Path(__file__).resolve().parent.parent
TESTS = Path(__file__).resolve().parent
#: a Ctrl-C is told from a plugin's own KeyboardInterrupt only where SIGINT has Python's handler
WATCHABLE = signal.getsignal(signal.SIGINT) is signal.default_int_handler


def regress(tmp_path, router, kwargs=None, *more):
    args = ["regress", "--router", router, "--seeds", "1", "--results-dir", str(tmp_path / "results"), "--quiet"]
    return main(args + (["--router-kwargs", json.dumps(kwargs)] if kwargs is not None else []) + list(more))


def one_line(capsys, rc_expected, rc):
    out, err = capsys.readouterr()
    assert rc == rc_expected, (rc, err[-2000:])
    assert "Traceback" not in out + err and err.count("\n") == 1 and err.startswith("error: "), err
    return err


def nothing_trained(tmp_path):
    assert not any((tmp_path / "results").rglob("runs.csv"))


# -- item 1: the gate names the contract a router broke -------------------------------------------
GATE = [
    ("ReturnsNone", "returned NoneType, not a tensor"), ("ReturnsList", "returned list, not a tensor"),
    ("BoolGates", "returned gates of dtype torch.bool"), ("IntGates", "returned gates of dtype torch.int64"),
    ("DoubleGates", "returned gates of dtype torch.float64"), ("OtherDevice", "returned gates on device meta"),
    ("ShapeB2", "returned gates of shape (2, 2) in layer 0 (training mode); the contract is (B, T) = (2, 32)"),
    ("ShapeTB", "returned gates of shape (32, 2)"), ("Soft", "gates must be exactly 0 or 1"),
    ("HugeAlloc", "raised RuntimeError"), ("ExitInForward", "called sys.exit(0) in its forward pass"),
    ("InterruptInForward", "raised KeyboardInterrupt in its forward pass (training mode) (no Ctrl-C was pressed)"),
]
CONSTRUCTION = [
    ("hostile_routers:RaisesInInit", None, "raised RuntimeError while being constructed for layer 0"),
    ("hostile_routers:KeyErrorInInit", None, "raised KeyError while being constructed"),
    ("hostile_routers:ExitInInit", None, "called sys.exit(0) while being constructed for layer 0"),
    ("hostile_routers:Hidden", {"hidden": -1}, "negative dimension -1"),
    ("hostile_import_exit:R", None, "called sys.exit(0) while being imported"),
    ("hostile_import_interrupt:R", None, "raised KeyboardInterrupt while being imported or constructed"),
]


@pytest.mark.parametrize("cls,needle", GATE, ids=[c for c, _ in GATE])
def test_the_gate_names_the_router_and_the_rule_it_broke(tmp_path, capsys, cls, needle):
    if "Interrupt" in cls and not WATCHABLE:
        pytest.skip("SIGINT is not Python's here")
    err = one_line(capsys, 2, regress(tmp_path, f"hostile_routers:{cls}"))
    assert f"router: 'hostile_routers:{cls}' " in err and needle in err, err
    nothing_trained(tmp_path)


@pytest.mark.parametrize("spec,kwargs,needle", CONSTRUCTION, ids=[s for s, _, _ in CONSTRUCTION])
def test_import_and_construction_faults_are_one_line(tmp_path, capsys, spec, kwargs, needle):
    if "interrupt" in spec and not WATCHABLE:
        pytest.skip("SIGINT is not Python's here")
    err = one_line(capsys, 2, regress(tmp_path, spec, kwargs))
    assert f"'{spec}'" in err and needle in err, err
    nothing_trained(tmp_path)


def test_the_train_command_gates_too(tmp_path, capsys):
    rc = main(["train", "--task", "assoc_recall", "--distance", "6", "--model", "routed", "--router",
               "hostile_routers:ShapeTB", "--d-model", "32", "--n-layers", "1", "--n-heads", "2",
               "--kernel-size", "2", "--quiet"])
    assert "returned gates of shape" in one_line(capsys, 2, rc)


# -- item 7: the property test of the gate ---------------------------------------------------------
def gate_calls() -> int:
    """How many forward calls a router gets from the gate on the mini tier (each layer alike)."""
    from baselines import ModelConfig
    from suite.run.gate import check_router
    import hostile_routers
    counted = []
    original = hostile_routers.Base.forward

    def counting(self, x):
        counted.append(1)
        return original(self, x)
    hostile_routers.Base.forward = counting
    try:
        check_router(ModelConfig(d_model=32, n_layers=1, n_heads=2, kernel_size=4, router="hostile_routers:Base"), 32)
    finally:
        hostile_routers.Base.forward = original
    return len(counted)


def random_plugins(n: int, seed: int = 24):
    """Plugins from the grammar: a wrong output or an exception, at a random call of the gate (or at
    construction, at = -1)."""
    import hostile_routers
    rng, calls = random.Random(seed), gate_calls()
    raises = [r for r in hostile_routers.RAISES if WATCHABLE or r != "KeyboardInterrupt"]
    for _ in range(n):
        if rng.random() < 0.5:
            yield {"at": rng.randrange(calls), "fault": rng.choice(hostile_routers.FAULTS)}
        else:
            yield {"at": rng.randrange(-1, calls), "raises": rng.choice(raises)}


def gate(kwargs: dict) -> str:
    """What regress runs before any work, on the mini tier's model (import, construction on every
    layer, the gate); the one line the CLI would print (INPUT_ERRORS exit 2), or '' if it passed."""
    from baselines import ModelConfig
    from suite.core.plugins import watch_sigint
    from suite.errors import INPUT_ERRORS, message
    from suite.run.gate import check_router, check_spec
    with watch_sigint():
        try:
            cfg = ModelConfig(d_model=32, n_layers=2, n_heads=2, kernel_size=4, router="hostile_routers:Faulty",
                              router_kwargs=kwargs)
            check_spec(cfg)
            check_router(cfg, 32)
        except INPUT_ERRORS as e:
            return message(e)
    return ""


def test_random_faulty_plugins_are_refused_by_the_gate_in_one_line():
    """Anything but an input error escaping the gate (another exception, a SystemExit, a
    KeyboardInterrupt) fails this test; so does a faulty plugin that passes."""
    cases = list(random_plugins(120))
    assert len({json.dumps(c, sort_keys=True) for c in cases}) > 80      # the generator explores
    for kwargs in cases:
        line = gate(kwargs)
        assert line and "\n" not in line and "hostile_routers:Faulty" in line, (kwargs, line)


def test_random_faulty_plugins_never_pass_through_the_command(tmp_path, capsys):
    for i, kwargs in enumerate(random_plugins(4, seed=2024)):
        rc = regress(tmp_path / str(i), "hostile_routers:Faulty", kwargs)
        out, err = capsys.readouterr()
        assert rc == 2 and "Traceback" not in out + err and err.count("\n") == 1, (kwargs, rc, err[-2000:])
        assert "hostile_routers:Faulty" in err, (kwargs, err)
        nothing_trained(tmp_path / str(i))


# -- item 2: a plugin's faults in training are its failed cells ----------------------------------
def rows(acc, seeds, usage=0.5, task="t"):
    return pd.DataFrame({"task": task, "distance": 10, "seed": seeds, "accuracy": acc, "usage": usage,
                         "macs_forward_executed": 100.0, "latency_ms_model": 1.0})


def failed(seeds, task="t"):
    return pd.DataFrame({"task": task, "distance": 10, "seed": seeds, "accuracy": float("nan"),
                         "error": "SystemExit: the cell's code called sys.exit(0)"})


def test_a_failed_cell_where_the_reference_trained_is_worse_even_with_one_seed():
    from suite.judge.regress import compare, overall
    both = pd.concat([rows([0.999], [0]), rows([0.999], [0], task="copy")])
    # fails on copy only, with --seeds 1: Fisher cannot tell 0/1 from 1/1, the failure decides
    verdict, reasons = overall(compare(rows([0.999], [0]), both, "gumbel", failed([0], "copy")))
    assert verdict == "WORSE" and reasons[0].startswith("copy d=10: 1 candidate cell(s) failed where gumbel's trained")
    assert "sys.exit(0)" in reasons[0]
    # every cell failed: still a verdict, WORSE
    assert overall(compare(rows([], []), both, "gumbel", failed([0], "copy").pipe(
        lambda f: pd.concat([f, failed([0])]))))[0] == "WORSE"
    # no candidate cell at all: WORSE, not a KeyError
    assert overall([])[0] == "WORSE"
    # where the reference failed too, the failure is a failed seed, not a reason of its own
    (c,) = compare(rows([], []), rows([], []), "gumbel", failed([0]))
    assert not c.failed[0].reference_ok and overall([c])[0] == "INCONCLUSIVE"


def test_degenerate_routing_is_flagged_and_intervals_stay_possible():
    from suite.judge.regress import compare
    from suite.report.regress_md import print_regress
    import io
    (c,) = compare(rows([0.999] * 3, [0, 1, 2], usage=[0.0, 0.0, 0.4]), rows([0.999] * 3, [0, 1, 2]), "gumbel")
    assert c.degenerate() == "never attends in 2/3 seeds" and c.row()["degenerate"] == c.degenerate()
    (a,) = compare(rows([0.999], [0], usage=1.0), rows([0.999], [0]), "gumbel")
    assert a.degenerate() == "always attends in 1/1 seeds"
    buf = io.StringIO()
    print_regress([c], "SAME", ["x"], buf)
    assert "never attends in 2/3 seeds" in buf.getvalue()
    (w,) = compare(rows([0.1] * 3, [0, 1, 2]), rows([0.999] * 3, [0, 1, 2]), "gumbel")
    assert -1.0 <= w.success.low <= w.success.high <= 1.0 and w.success.low == -1.0


def test_cost_differences_are_candidate_minus_reference():
    from suite.judge.regress import compare, __doc__ as rule
    cand = rows([0.999] * 3, [0, 1, 2]).assign(macs_forward_executed=[130.0, 131.0, 130.0])
    (c,) = compare(cand, rows([0.999] * 3, [0, 1, 2]), "gumbel")
    m = c.costs["macs_forward_executed"]
    assert m.difference > 0 and m.low > 0 and m.verdict == "WORSE"          # costs more: positive, WORSE
    assert rule.count("candidate minus reference") == 1


def test_regress_md_lists_the_failures_and_the_degenerate_cells():
    from suite.judge.regress import compare
    from suite.report.regress_md import regress_markdown
    from suite.run.tiers import load_tiers
    comps = compare(rows([0.999], [1], usage=0.0), rows([0.999] * 2, [0, 1]), "gumbel", failed([0]))
    manifest = {"run_id": "r", "regress": {"router": "p:R", "router_kwargs": {}, "tier": "mini", "seeds": 2}}
    md = regress_markdown(manifest, comps, "WORSE", ["because"], load_tiers()["mini"], 0)
    assert "## Failed candidate cells" in md and "SystemExit: the cell's code called sys.exit(0)" in md
    assert "**degenerate** t d=10: the candidate never attends in 1/1 seeds" in md


def test_a_plugin_keyboard_interrupt_in_a_local_cell_is_a_failure_not_a_ctrl_c():
    from suite.core.plugins import watch_sigint
    from suite.run.executor_jobs import run_job

    def plugin():
        raise KeyboardInterrupt
    if not WATCHABLE:
        pytest.skip("SIGINT is not Python's here")
    with watch_sigint():
        kind, failure = run_job(plugin, (), {}, None)
    assert kind == "failed" and failure.type == "KeyboardInterrupt"
    with pytest.raises(KeyboardInterrupt):     # unwatched (no CLI around it): it may be a Ctrl-C
        run_job(plugin, (), {}, None)
    assert run_job(lambda: sys.exit(0), (), {}, None)[1].line == "SystemExit: the cell's code called sys.exit(0)"


@pytest.mark.slow
@pytest.mark.parametrize("how", ["exit", "os_exit", "interrupt"])
def test_a_router_that_fails_in_training_is_worse_not_a_pass(tmp_path, capsys, how):
    """Every candidate cell fails at its first training step (the reference cells are the committed
    ones): the verdict is WORSE, exit 1, whatever the plugin did to its process."""
    if how == "interrupt" and not WATCHABLE:
        pytest.skip("SIGINT is not Python's here")
    assert regress(tmp_path, "hostile_routers:Trains", {"how": how}) == 1
    out = capsys.readouterr().out
    assert "Verdict: WORSE" in out and "candidate cell(s) failed where gumbel's trained" in out
    (run,) = (tmp_path / "results").glob("*/regress-*")
    runs = pd.read_csv(run / "runs.csv")
    cand = runs[runs["label"] == "candidate"]
    assert len(cand) == 3 and (cand["status"] == "failed").all()
    assert "## Failed candidate cells" in (run / "REGRESS.md").read_text()
