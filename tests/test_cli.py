import json
import subprocess
import sys

import pytest

from suite.cli import main


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "suite", *args], capture_output=True, text=True)


def test_models_csv(capsys):
    assert main(["models", "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "model,params", "attn,859136", "conv,728064", "routed,1124872"]


def test_tasks_lists_every_task(capsys):
    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    listed = [line.split()[0] for line in out.splitlines()[1:]]
    assert listed == ["assoc_recall", "copy", "induction_heads", "mqar"]


TRAIN = ["train", "--task", "assoc_recall", "--distance", "10", "--model"]


@pytest.mark.parametrize("args,needle", [
    (["train", "--task", "foo", "--distance", "3", "--model", "attn"], "--task: unknown 'foo'"),
    (TRAIN + ["gpt"], "--model: unknown 'gpt'"),
    (TRAIN + ["attn", "--device", "tpu"], "--device: unknown 'tpu'"),
    (TRAIN + ["attn", "--seed", "1.5"], "--seed: must be an integer, got '1.5'"),
    (TRAIN + ["attn", "--seed", "-1"], "--seed: Input should be greater than or equal to 0"),
    (TRAIN + ["attn", "--seed", str(2**31)], "--seed: Input should be less than 2147483648"),
    (TRAIN + ["attn", "--seed", str(2**63)], "--seed: Input should be less than 2147483648"),
    (TRAIN + ["routed", "--lambda-target", "-0.1"], "--lambda-target: Input should be greater than or equal to 0"),
    (TRAIN + ["routed", "--lambda-target", "inf"], "--lambda-target: Input should be a finite number"),
    (TRAIN + ["routed", "--lambda-target", "nan"], "--lambda-target: Input should be a finite number"),
    (TRAIN + ["routed", "--lambda-target", "11"], "--lambda-target: Input should be less than or equal to 10"),
    (["train", "--task", "assoc_recall", "--distance", "1000000000", "--model", "attn"],
     "--distance: Input should be less than or equal to 16382"),
    (TRAIN + ["attn", "--d-model", "0"], "--d-model: Input should be greater than or equal to 1"),
    (TRAIN + ["attn", "--d-model", "100000", "--n-heads", "1"], "d_model: Input should be less than or equal to 8192"),
    (TRAIN + ["attn", "--lambda-target", "0.5"], "lambda_target: only the routed model"),
    (["train", "--task", "assoc_recall", "--distance", "1", "--model", "attn"],
     "distance: Input should be greater than or equal to 2"),
    (TRAIN + ["attn", "--protocol", "fast"], "--protocol: unknown 'fast'"),
    (TRAIN + ["attn", "--n-heads", "3"], "n_heads: must divide d_model"),
    (TRAIN + ["attn", "--bogus"], "unrecognized arguments: --bogus"),
])
def test_bad_input_is_one_line_exit_2_and_no_output(args, needle, capsys):
    assert main(args) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and needle in err


def test_cuda_requested_without_cuda(capsys):
    import torch
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert main(TRAIN + ["attn", "--device", "cuda"]) == 2
    assert "device: 'cuda' requested" in capsys.readouterr().err


@pytest.mark.slow
def test_train_json_end_to_end():
    r = run_cli(*TRAIN, "routed", "--d-model", "16", "--n-layers", "1", "--n-heads", "2",
                "--kernel-size", "4", "--protocol", "smoke", "--format", "json", "--quiet", "--seed", "3")
    assert r.returncode == 0, r.stderr
    row = json.loads(r.stdout)
    assert set(row) >= {"accuracy", "usage", "usage_per_layer", "params", "epochs_phase1",
                        "epochs_phase2", "seconds"}
    assert len(row["usage_per_layer"]) == 1 and 0 <= row["accuracy"] <= 1
    assert row["lambda_target"] == 0.5 and row["seed"] == 3


def test_flops_csv_has_every_part_reading_and_total(capsys):
    assert main(["flops", "--model", "routed", "--seq-len", "512", "--usage", "0.01", "--format", "csv",
                 "--no-check"]) == 0
    df = __import__("pandas").read_csv(__import__("io").StringIO(capsys.readouterr().out))
    assert list(df.columns) == ["part", "reading", "macs"]
    assert set(df["reading"]) == {"dense", "causal", "executed"}
    assert {"attention_core", "total", "router", "ffn", "head", "conv"} <= set(df["part"])
    for reading, g in df.groupby("reading"):
        parts = g.set_index("part")["macs"]
        assert parts["total"] == parts.drop("total").sum()
    # usage 0.01 at T = 512: the last 5 positions of each of the 4 layers; K/V for all 512
    core = df[(df.part == "attention_core")].set_index("reading")["macs"]
    assert core["dense"] == core["executed"] == 4 * 2 * 128 * 5 * 512
    assert core["causal"] == 4 * 2 * 128 * sum(range(508, 513))


def test_flops_table_is_cross_checked(capsys):
    assert main(["flops", "--model", "routed", "--seq-len", "40", "--d-model", "32", "--n-heads", "2",
                 "--n-layers", "1", "--kernel-size", "8"]) == 0
    assert "checked: closed form == fvcore == FlopCounterMode / 2" in capsys.readouterr().out


@pytest.mark.parametrize("args,needle", [
    (["flops", "--model", "attn", "--seq-len", "64", "--usage", "0.5"], "usage: only the routed model"),
    (["flops", "--model", "routed", "--seq-len", "64", "--usage", "1.5"], "--usage: Input should be less than or equal to 1"),
    (["flops", "--model", "routed", "--seq-len", "64", "--usage", "nan"], "--usage: Input should be a finite number"),
    (["flops", "--model", "routed", "--seq-len", "0"], "--seq-len: Input should be greater than or equal to 2"),
    (["flops", "--model", "attn", "--seq-len", "1e9"], "--seq-len: must be an integer, got '1e9'"),
    (["flops", "--model", "attn", "--seq-len", "1000000000"], "--seq-len: Input should be less than or equal to 16384"),
])
def test_flops_bad_input(args, needle, capsys):
    assert main(args) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and needle in err


def test_memory_estimate_stops_before_allocating(monkeypatch, capsys):
    """A size inside the bounds that this machine cannot hold stops with one line, not an OOM."""
    from suite.compute import memory
    monkeypatch.setattr(memory, "available_bytes", lambda device: 2**30)
    assert main(["train", "--task", "assoc_recall", "--distance", "8190", "--model", "attn"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1
    assert "distance 8190: needs about" in err and "more than the 1.0 GiB free on cpu" in err
    assert main(["flops", "--model", "attn", "--seq-len", "16384"]) == 2
    assert "seq-len 16384: needs about" in capsys.readouterr().err


def test_memory_estimate_bounds_the_real_parameter_count():
    from baselines import ModelConfig, build_model, count_params
    from suite.compute.memory import param_count, training_bytes
    for name in ("attn", "conv", "routed"):
        assert param_count(name, ModelConfig()) == count_params(build_model(name))
    small, big = training_bytes("routed", ModelConfig(), 128, 32), training_bytes("routed", ModelConfig(), 512, 24)
    assert 16 * 1_124_872 < small < big
