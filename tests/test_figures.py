"""Figures from hand-made results folders: every figure written whole, PNGs byte-stable, optional
inputs skip only their figure, bad input is one line."""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from suite.errors import ConfigError
from suite.figures.draw import (FIGURES, PUBLISHED, PUBLISHED_SAVINGS, accuracy_vs_distance, load_run,
                                render_figures, savings)
from suite.cli import main as cli_main
from suite.figures.style import style
from suite.judge.claims import check_claims, load_registry


def main(argv):
    return cli_main(["figures", *argv])

DISTANCES = (126, 254)
CELLS = (("attn", 0.0), ("conv", 0.0), ("routed", 0.1), ("routed", 0.5))
N_LAYERS = 2
COMPUTE = ("macs_forward_executed", "macs_forward_attn_ref", "savings_notional", "savings_executed",
           "savings_latency", "latency_ms_routed", "latency_ms_attn")


def make_run(root, seeds=(0,), compute=False, routing=False, latency=False, protocol="faithful",
             run_id="cpu-20261129T000000Z", started="2026-11-29T00:00:00Z"):
    """A results run folder whose rows satisfy the run-row record, values shaped like a real run."""
    path = root / "0.1.0" / run_id
    path.mkdir(parents=True)
    runs, hist, route = [], [], []
    for d in DISTANCES:
        for model, lam in CELLS:
            for seed in seeds:
                rng = np.random.default_rng(1000 * seed + d + int(100 * lam))
                key = f"{model}-{lam:g}-{d}-{seed}"
                acc = 0.011 if model == "conv" else min(1.0, 0.97 + 0.01 * rng.random())
                usage = {"attn": 1.0, "conv": 0.0}.get(model, 0.3 * (1 - lam) * rng.random() + 0.002)
                layers = [usage * 0.5, usage * 1.5] if model == "routed" else [usage] * N_LAYERS
                row = {"run_id": run_id, "config_hash": key, "label": key, "task": "assoc_recall", "distance": d,
                       "seq_len": d + 2, "model": model, "lambda_target": lam, "seed": seed, "protocol": protocol,
                       "epoch_cap": 10, "profile": "test", "faithful_model": True, "n_layers": N_LAYERS,
                       "task_params": "{}", "protocol_hash": "p", "d_model": 128, "n_heads": 1, "kernel_size": 64,
                       "test_sequences": 3000, "data_fingerprint": "f", "suite_version": "0.1.0", "git_sha": "g",
                       "torch_version": "2", "device": "cpu", "finished_at": started, "status": "ok",
                       "accuracy": acc, "accuracy_low": max(0.0, acc - 0.01), "accuracy_high": min(1.0, acc + 0.01),
                       "test_correct": int(acc * 3000), "test_total": 3000, "usage": usage,
                       **{f"usage_layer_{i}": u for i, u in enumerate(layers)}, "val_accuracy": acc,
                       "val_usage": usage, "epochs_phase1": 3, "epochs_phase2": 3 if model == "routed" else 0,
                       "phase2_ran": model == "routed", "seconds": 12.5}
                if compute:
                    row.update({"macs_forward_executed": 1e9, "macs_forward_attn_ref": 1.1e9,
                                "savings_notional": 1 - usage, "savings_executed": -0.15 if model == "routed" else 0.0,
                                "savings_latency": -0.4 if model == "routed" else 0.0, "latency_ms_routed": 3.0,
                                "latency_ms_attn": 2.1})
                runs.append(row)
                phases = [(1, 3), (2, 3)] if model == "routed" else [(1, 3)]
                for phase, n in phases:
                    for e in range(1, n + 1):
                        lam_now = 0.0 if phase == 1 else lam * e / n
                        hist.append({"run_id": run_id, "config_hash": key, "task": "assoc_recall", "distance": d,
                                     "model": model, "lambda_target": lam, "seed": seed, "phase": phase, "epoch": e,
                                     "lambda": lam_now, "train_loss": 1.0 / e, "train_accuracy": acc * e / n,
                                     "val_accuracy": acc * e / n, "usage": 0.5 if phase == 1 else usage,
                                     "usage_layer_0": 0.5, "usage_layer_1": 0.5, "seconds": 1.0})
                if routing and model == "routed":
                    rate = rng.random((N_LAYERS, d + 2)) < 0.2
                    for layer in range(N_LAYERS):
                        for pos in range(d + 2):
                            route.append({"run_id": run_id, "config_hash": key, "model": model, "distance": d,
                                          "lambda_target": lam, "seed": seed, "layer": layer, "position": pos,
                                          "attention_rate": float(rate[layer, pos])})
    pd.DataFrame(runs).to_csv(path / "runs.csv", index=False)
    pd.DataFrame(hist).to_csv(path / "history.csv", index=False)
    if routing:
        pd.DataFrame(route).to_csv(path / "routing.csv", index=False)
    if latency:
        make_latency(path / "latency.csv")
    (path / "manifest.json").write_text(json.dumps({"run_id": run_id, "profile": {"name": "test"},
                                                   "started": started}))
    return path


def make_latency(path):
    rows = []
    for n in (128, 256, 512, 1024):
        for model, execution, usage in (("attn", "sdpa", np.nan), ("conv", "dense", np.nan),
                                        ("routed", "dense", np.nan), ("routed", "sparse", 0.1),
                                        ("routed", "sparse", 0.5)):
            macs = n * 1e6 * (1 if model != "routed" else 1.3 if execution == "dense" else 0.3 + usage)
            rows.append({"model": model, "execution": execution, "usage": usage, "seq_len": n, "batch": 8,
                         "device": "cpu", "median_ms": macs / 1e8, "macs": macs, "predicted_speedup": 1.0,
                         "achieved_fraction": 0.5})
    pd.DataFrame(rows).to_csv(path, index=False)


def names(paths):
    return sorted(p.name for p in paths)


def expected(figures):
    return sorted(f"{f}.{ext}" for f in figures for ext in ("pdf", "png"))


@pytest.mark.slow
def test_everything_three_seeds_renders_every_figure_and_png_bytes_are_stable(tmp_path, capsys):
    run = make_run(tmp_path, seeds=(0, 1, 2), compute=True, routing=True, latency=True)
    first = render_figures(run)
    assert names(first) == expected(FIGURES)
    assert all(p.parent == run / "figures" and p.stat().st_size > 1000 for p in first)
    assert sorted(p.name for p in (run / "figures").iterdir()) == expected(FIGURES)  # no temporaries left
    before = {p.name: p.read_bytes() for p in first}
    again = render_figures(run)
    assert {p.name: p.read_bytes() for p in again} == before  # PNG and PDF alike
    assert "skipped" not in capsys.readouterr().err


@pytest.mark.slow
def test_one_seed_without_optional_files_skips_only_their_figures_via_newest_run(tmp_path, capsys):
    make_run(tmp_path, run_id="older", started="2026-01-01T00:00:00Z", protocol="smoke")
    run = make_run(tmp_path, run_id="newer", started="2026-11-29T00:00:00Z")
    assert main(["--results-dir", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    printed = out.split()
    assert names(map(Path, printed)) == expected(
        f for f in FIGURES if f not in ("routing_map", "scaling"))
    assert all(p.startswith(str(run / "figures")) for p in printed)
    assert "routing_map skipped: no routing.csv" in err and "scaling skipped: no latency" in err
    assert "error" not in err


def test_a_needed_column_missing_is_one_config_error_and_nothing_is_written(tmp_path):
    run = make_run(tmp_path)
    pd.read_csv(run / "runs.csv").drop(columns=["usage"]).to_csv(run / "runs.csv", index=False)
    with pytest.raises(ConfigError, match="runs.csv: missing column 'usage' needed by the usage_vs_distance figure"):
        render_figures(run)
    assert not (run / "figures").exists()
    other = make_run(tmp_path / "b")
    pd.read_csv(other / "history.csv").drop(columns=["lambda"]).to_csv(other / "history.csv", index=False)
    with pytest.raises(ConfigError, match="history.csv: missing column 'lambda' needed by the training_curves"):
        load_run(other)


def test_optional_inputs_without_rows_skip_only_their_figures(tmp_path):
    run = make_run(tmp_path, routing=True, latency=True)
    routing = pd.read_csv(run / "routing.csv")
    routing.assign(model="conv").to_csv(run / "routing.csv", index=False)
    pd.read_csv(run / "latency.csv").iloc[:0].to_csv(run / "latency.csv", index=False)
    pd.read_csv(run / "history.csv").iloc[:0].to_csv(run / "history.csv", index=False)
    skipped = load_run(run).skipped
    assert sorted(skipped) == ["routing_map", "scaling", "training_curves"]
    assert "no routed rows" in skipped["routing_map"] and "has no rows" in skipped["scaling"]


def test_main_says_one_line_and_returns_2_on_bad_input(tmp_path, capsys):
    assert main([str(tmp_path / "nope")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith("error: run dir:")
    run = make_run(tmp_path)
    assert main([str(run), "--latency-csv", str(tmp_path / "missing.csv")]) == 2
    assert capsys.readouterr().err.startswith("error: latency-csv:")
    assert main(["--results-dir", str(tmp_path / "empty")]) == 2
    assert main(["--bogus"]) == 2
    (run / "runs.csv").write_text("")
    assert main([str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 3 and all(line.startswith("error: ") for line in err.splitlines())


def test_unfaithful_runs_fall_back_to_all_rows_and_say_so(tmp_path):
    run = load_run(make_run(tmp_path, seeds=(0, 1), protocol="smoke"))
    with style():
        fig = accuracy_vs_distance(run)
    assert "no faithful cells" in fig.axes[0].get_title(loc="left")


def test_savings_without_compute_columns_says_not_measured(tmp_path):
    run = load_run(make_run(tmp_path))
    with style():
        fig = savings(run)
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts.count("not measured") == 2 * 2 * len(DISTANCES)  # executed and latency, per lambda, per distance
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "executed FLOPs — not measured" in labels and any("99.7%" in x for x in labels)


def errorbars(fig) -> set:
    """(low, high) of every error bar drawn, rounded."""
    out = set()
    for container in fig.axes[0].containers:
        for seg in container.lines[2][0].get_segments():
            out.add((round(float(seg[0][1]), 6), round(float(seg[1][1]), 6)))
    return out


@pytest.mark.parametrize("seeds", [(0,), (0, 1), (0, 1, 2)])
def test_error_bars_are_the_verdicts_intervals(tmp_path, seeds):
    run = load_run(make_run(tmp_path, seeds=seeds))
    claims = check_claims(run.runs, {"name": "cpu"}, load_registry()).set_index("claim_id")
    with style():
        bars = errorbars(accuracy_vs_distance(run))
    for claim in ("T1-attn-126", "T1-attn-254", "T1-conv-126"):
        assert (round(claims.loc[claim, "low"], 6), round(claims.loc[claim, "high"], 6)) in bars


def test_failed_cells_are_not_drawn(tmp_path):
    path = make_run(tmp_path, seeds=(0, 1, 2))
    runs = pd.read_csv(path / "runs.csv")
    failed = runs.iloc[[0]].assign(config_hash="failed", seed=7, status="failed", error="boom", accuracy=np.nan,
                                   usage=np.nan, test_correct=np.nan)
    pd.concat([runs, failed]).to_csv(path / "runs.csv", index=False)
    run = load_run(path)
    assert len(run.runs) == len(runs) and set(run.runs["status"]) == {"ok"}
    with style():
        labels = [t.get_text() for t in accuracy_vs_distance(run).legends[0].get_texts()]
    assert "AttnOnly (n=3)" in labels


def test_published_values_come_from_the_data_file():
    assert PUBLISHED[(126, ("routed", 0.5))] == pytest.approx((1.0, 0.003))
    assert PUBLISHED[(2046, ("attn", None))] == (0.82, None)
    assert PUBLISHED[(1022, ("routed", 0.1))] == pytest.approx((0.36, 0.74))
    assert PUBLISHED_SAVINGS == [(0.997, "published 99.7% (d=126, λ→0.5)"), (0.75, "published 75% (d=254, 510)")]


def test_the_registry_names_each_run_figure_what_it_reads_and_what_draws_it(tmp_path):
    from suite.figures.registry import figures
    specs = figures("run")
    assert FIGURES == tuple(s.name for s in specs) == ("accuracy_vs_distance", "usage_vs_distance", "savings",
                                                        "routing_map", "training_curves", "scaling")
    assert [s.stem for s in specs] == list(FIGURES)  # output files keep the figure's name
    run = load_run(make_run(tmp_path, routing=True, latency=True))
    for spec in specs:
        assert set(spec.columns) <= set(run.frame(spec.reads[0]).columns)
    with style():
        assert savings(run).axes[0].get_title(loc="left") == next(
            s for s in specs if s.name == "savings").draw(run).axes[0].get_title(loc="left")


@pytest.mark.slow
def test_importing_the_figures_reads_no_data_file():
    """Published values and claims are read when a figure is drawn: importing every figure module
    with the readers broken succeeds, and drawing one reaches them."""
    import subprocess
    import sys
    code = (
        "import pkgutil, importlib, suite.judge.published as p, suite.judge.registry as r, suite.figures as f\n"
        "def boom(*a, **k): raise RuntimeError('read at import')\n"
        "p.load_published = r.load_registry = boom\n"
        "mods = [importlib.import_module(f'suite.figures.{m.name}') for m in pkgutil.iter_modules(f.__path__)]\n"
        "from suite.figures import draw\n"
        "try:\n"
        "    draw.PUBLISHED\n"
        "except RuntimeError:\n"
        "    print('lazy', len(mods))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parent.parent, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0] == "lazy" and int(done.stdout.split()[1]) >= 10
