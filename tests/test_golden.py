"""Golden values: a change to a generator or to what a cell's hash covers must show up here.

The generator hashes were taken from the code at commit 05f7ed8 (before the typed schema); the
committed reference run pins config_hash and data_fingerprint of real faithful cells.
"""
import hashlib
import json
from pathlib import Path

import pytest

from suite.run.profiles import parse_profile
from suite.run.provenance import data_fingerprint
from suite.schema.rows import read_runs
from tasks import TASKS, make_task

REFERENCE = Path(__file__).resolve().parent.parent / "results" / "0.1.0" / "cpu-20261129T172118Z"

GENERATOR = {
    ("assoc_recall", (("distance", 126),)): {
        "train-0": "9d3f97a9530bfe14", "validation-0": "b0ab5f48df2f023f", "test-0": "bc10e8e86042cfc1",
        "train-7": "68b7ad23815bddc1", "validation-7": "ec642eb96f84e088", "test-7": "e2cadab1bce9ae36"},
    ("copy", (("distance", 30),)): {
        "train-0": "f7af5c132fc7f467", "validation-0": "3fc04c9c5da0b06d", "test-0": "6985d3a065c65846",
        "train-7": "d2f7b6c08c4865ea", "validation-7": "95833de7a8313bc1", "test-7": "9c7d21c49575fcbe"},
    ("induction_heads", (("distance", 20), ("seq_len", 40))): {
        "train-0": "10b4ac5bb5f944db", "validation-0": "614f7a7987078965", "test-0": "79d17d8065ba297c",
        "train-7": "0b08071e485d7aed", "validation-7": "cacb6138fea34e99", "test-7": "d6ec6636ea9ab3bc"},
    # taken at commit 8e92c60, the code five committed runs (mqar-mini, mqar-learnable, mqar-controls,
    # battery-mini, audit) were trained with
    ("mqar", (("distance", 8),)): {
        "train-0": "110a4560ae636c1d", "validation-0": "4d62a2590ac06f6c", "test-0": "36d28c76bbb2b1bb",
        "train-7": "006a244b61e32bf5", "validation-7": "ae3db0ac13ef3fcd", "test-7": "bf8359631079ac7d"},
}


def first_batch_hash(task, seed: int, split: str, batch_size: int = 8) -> str:
    b = next(task.stream(split, seed, batch_size))
    h = hashlib.sha256()
    for t in (b.inputs, b.positions, b.targets):
        h.update(t.numpy().tobytes())
    return h.hexdigest()[:16]


@pytest.mark.parametrize("name,params", list(GENERATOR))
def test_generator_bytes_are_unchanged(name, params):
    task = make_task(name, **dict(params))
    got = {f"{split}-{seed}": first_batch_hash(task, seed, split)
           for seed in (0, 7) for split in ("train", "validation", "test")}
    assert got == GENERATOR[(name, params)]


def test_every_task_is_pinned():
    assert {name for name, _ in GENERATOR} == set(TASKS)


@pytest.mark.parametrize("run", [REFERENCE.name, "mqar-learnable-20261202T204634.642253Z",
                                 "battery-mini-20261130T061320.101841Z"])
def test_committed_run_cells_keep_their_config_hash_and_data_fingerprint(run):
    """Re-expanding a committed run's profile gives the hashes its rows were stored under, so a
    resume of that run (or a rerun of the profile) finds them: assoc_recall (cpu), mqar, copy and
    induction_heads (battery-mini)."""
    run = REFERENCE.parent / run
    manifest = json.loads((run / "manifest.json").read_text())
    profile = parse_profile(manifest["profile_data"])
    rows = read_runs(run / "runs.csv").set_index("config_hash")
    cells = {c.config_hash(profile.test_sequences): c for c in profile.cells}
    assert set(cells) == set(rows.index)
    for key, c in cells.items():
        assert data_fingerprint(c.build_task(), c.seed, 4) == rows.loc[key, "data_fingerprint"], c.describe()
