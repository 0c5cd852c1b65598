"""Issue 24 items 3-6: stored runs read defensively, bounded inputs, an entry point that guards its
imports, and Ray addresses that do not answer, each one line and the promised exit code."""
import dataclasses
import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from suite.cli import main
from suite.run.tiers import REPO, load_tiers

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = REPO / load_tiers()["mini"].reference


def one_line(capsys, rc, expected=2):
    out, err = capsys.readouterr()
    assert rc == expected, (rc, err[-2000:])
    assert "Traceback" not in out + err and err.count("\n") == 1 and err.startswith("error: "), err
    return err


@pytest.fixture
def reference(tmp_path):
    return Path(shutil.copytree(REFERENCE, tmp_path / "ref", ignore=shutil.ignore_patterns("figures")))


def against(tmp_path, ref, *more):
    return main(["regress", "--router", "gumbel", "--seeds", "3", "--against", str(ref),
                 "--results-dir", str(tmp_path / "results"), "--quiet", *more])


# -- item 3: --against read through the typed record -------------------------------------------------
def _duplicate(ref):
    runs = pd.read_csv(ref / "runs.csv", dtype=str)
    pd.concat([runs, runs.iloc[:1]]).to_csv(ref / "runs.csv", index=False)


def _bad_row(ref):
    runs = pd.read_csv(ref / "runs.csv", dtype=str)
    runs.loc[0, "status"] = "exploded"
    runs.to_csv(ref / "runs.csv", index=False)


BROKEN = {
    "duplicated cell": (_duplicate, "runs.csv: ", "more than once"),
    "row not a run row": (_bad_row, "runs.csv: row 2 of ", "status must be one of"),
    "garbage history": (lambda r: (r / "history.csv").write_bytes(b"\xff\xfe\x00garbage\n\"unclosed"),
                        "history.csv: cannot read ", ""),
    "history lacks its key": (lambda r: (r / "history.csv").write_text("a,b\n1,2\n"),
                              "history.csv: ", "lacks column 'config_hash'"),
    "routing lacks its key": (lambda r: (r / "routing.csv").write_text("x\n1\n"), "routing.csv: ", "lacks column"),
    "runs garbage": (lambda r: (r / "runs.csv").write_text("a,b\n1,2,3,4\n"), "runs.csv: ", ""),
    "runs empty": (lambda r: (r / "runs.csv").write_text(""), "runs.csv: ", "is empty"),
}


@pytest.mark.parametrize("case", BROKEN, ids=list(BROKEN))
def test_a_broken_reference_run_is_one_line_naming_the_file(tmp_path, reference, capsys, case):
    damage, prefix, needle = BROKEN[case]
    damage(reference)
    err = one_line(capsys, against(tmp_path, reference))
    assert err.startswith(f"error: {prefix}") and str(reference) in err and needle in err, err
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").rglob("runs.csv"))


def test_an_empty_history_reads_as_no_history(tmp_path, reference, capsys):
    from suite.run.store import RunStore
    (reference / "history.csv").write_text("")
    (reference / "routing.csv").write_text("")
    store = RunStore.open(reference)
    assert store.history().empty and store.table("routing.csv").empty
    store.check_stored()
    # every cell of gumbel against itself is stored there: judged without training, a verdict
    assert against(tmp_path, reference) == 0
    assert "Verdict: INCONCLUSIVE" in capsys.readouterr().out


# -- item 4: bounded inputs --------------------------------------------------------------------------
DEEP = '{"a":' * 40 + "1" + "}" * 40
DEEPER = "[" * 5000 + "]" * 5000


@pytest.mark.parametrize("text,needle", [(DEEP, "nested more than 32 levels deep"),
                                         (DEEPER, "nested more than 32 levels deep"),
                                         (json.dumps({"x": "y" * 70_000}), "larger than 64 KiB")],
                         ids=["depth-40", "depth-5000", "size"])
@pytest.mark.parametrize("command", ["regress", "train"])
def test_router_kwargs_are_bounded(tmp_path, capsys, text, needle, command):
    args = (["regress", "--router", "gumbel", "--results-dir", str(tmp_path)] if command == "regress" else
            ["train", "--task", "copy", "--distance", "6", "--model", "routed"])
    err = one_line(capsys, main(args + ["--router-kwargs", text]))
    assert "--router-kwargs" in err and needle in err and len(err) < 400, err


def test_kwargs_limits_hold_in_a_profile_too(tmp_path):
    from baselines import ModelConfig
    from suite.errors import ConfigError
    from suite.run.profiles import load_profile
    nested = {"a": 1}
    for _ in range(40):
        nested = {"a": nested}
    with pytest.raises(ValueError, match="router_kwargs: nested 41 levels deep; at most 32"):
        ModelConfig(router_kwargs=nested)
    assert ModelConfig(router_kwargs={"a": {"b": [1, 2]}}).router_kwargs   # a few levels are fine
    deep = tmp_path / "deep.json"
    deep.write_text('{"name": "deep", "grid": ' + "[" * 5000 + "]" * 5000 + "}")
    with pytest.raises(ConfigError, match="nested too deep to read"):
        load_profile(str(deep))


def _profile(block_model, models):
    return {"name": "keys", "protocol": "smoke", "test_sequences": 16,
            "grid": [{"task": "copy", "distances": [8], "models": models, "seeds": [0], "model": block_model,
                      **({"lambdas": [0.5]} if "routed" in models else {})}]}


@pytest.mark.parametrize("key,value", [("router", "random"), ("router_kwargs", {"p": 0.5})])
@pytest.mark.parametrize("model", ["attn", "conv"])
def test_router_keys_on_a_model_without_a_router_are_refused(key, value, model):
    from suite.errors import ConfigError
    from suite.run.profiles import parse_profile
    with pytest.raises(ConfigError, match=rf"^profile.grid\[0\].model.{key}: only a routed model has a router"):
        parse_profile(_profile({key: value}, [model]))
    assert parse_profile(_profile({"router": "random"}, ["routed"])).cells          # where it belongs


def test_a_bf16_protocol_trains_every_model_on_the_cpu():
    """The depthwise conv's own backward under bf16 autocast (the routed and conv models)."""
    from baselines import ModelConfig
    from suite.run.protocol import PROTOCOLS
    from suite.run.trainer import Trainer
    from tasks import make_task
    p = dataclasses.replace(PROTOCOLS["faithful-bf16"], steps_per_epoch=2, eval_batches=1, baseline_max_epochs=1,
                            phase1_max_epochs=1, phase2_epochs=1)
    cfg = ModelConfig(d_model=16, n_layers=1, n_heads=2, kernel_size=4)
    for model in ("conv", "routed"):
        tr = Trainer(make_task("copy", distance=8), model, protocol=p, model_config=cfg, progress=False)
        res = tr.run()
        assert 0.0 <= res.accuracy <= 1.0 and tr.history[0].train_loss > 0


# -- item 5: the entry point guards its own imports ----------------------------------------------------
def test_a_missing_dependency_exits_3_in_one_line():
    code = ("import sys, runpy; sys.modules['torch'] = None; sys.argv = ['suite', 'regress', '--router', 'x']; "
            "runpy.run_module('suite', run_name='__main__')")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 3, r.stderr
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("error: the suite cannot start (ModuleNotFoundError"), r.stderr
    assert "Traceback" not in r.stderr


def test_a_plugin_exit_that_escapes_a_command_is_exit_3_not_its_code(monkeypatch, capsys):
    import suite.commands.catalog as catalog
    monkeypatch.setattr(catalog, "MODELS_COMMAND",
                        dataclasses.replace(catalog.MODELS_COMMAND, run=lambda a: sys.exit(0)))
    err = one_line(capsys, main(["models"]), expected=3)
    assert "called sys.exit(0)" in err


# -- item 6: Ray addresses that do not answer -------------------------------------------------------------
def test_a_ray_address_that_accepts_and_stays_silent_is_one_line_within_the_bound(capsys):
    pytest.importorskip("ray")
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        start = time.monotonic()
        rc = main(["reproduce", "--profile", "smoke", "--results-dir", "results", "--executor", "ray",
                   "--ray-address", f"127.0.0.1:{port}"])
        took = time.monotonic() - start
    err = one_line(capsys, rc)
    assert f"--ray-address: no Ray cluster reachable at 127.0.0.1:{port} (no answer within 3 s)" in err
    assert took < 6, took


def test_the_ray_probe_accepts_a_grpc_server_and_refuses_another_protocol():
    grpc = pytest.importorskip("grpc")
    from concurrent import futures
    from suite.errors import ConfigError
    from suite.run.executor_ray import _reachable
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=1))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        _reachable(f"127.0.0.1:{port}")          # a gRPC server (what a Ray head is) answers at once
    finally:
        server.stop(0)
    with socket.socket() as talker:               # one that answers with something else
        talker.bind(("127.0.0.1", 0))
        talker.listen(1)
        import threading

        def reply():
            conn, _ = talker.accept()
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            conn.close()
        threading.Thread(target=reply, daemon=True).start()
        with pytest.raises(ConfigError, match="answered, but not as a Ray cluster does"):
            _reachable(f"127.0.0.1:{talker.getsockname()[1]}")
