import pydantic
import pytest
import torch

from tasks import SPLITS, TASKS, TaskConfigError, make_task, split_seed
from tasks.assoc_recall import KEYS, NOISE, VALUES
from tasks.induction_heads import TRIGGER
from suite.errors import message


def first(task, split="train", seed=0, bs=64):
    return next(task.stream(split, seed, bs))


@pytest.mark.parametrize("distance", [2, 30, 126])
def test_assoc_recall_layout_and_ranges(distance):
    t = make_task("assoc_recall", distance=distance)
    b = first(t)
    T = distance + 2
    assert t.seq_len == T and b.inputs.shape == (64, T)
    ids = b.inputs
    assert ((ids[:, 0] >= KEYS[0]) & (ids[:, 0] < KEYS[1])).all()
    assert ((ids[:, 1] >= VALUES[0]) & (ids[:, 1] < VALUES[1])).all()
    assert ((ids[:, 2:T - 1] >= NOISE[0]) & (ids[:, 2:T - 1] < NOISE[1])).all()
    assert torch.equal(ids[:, T - 1], ids[:, 0])
    assert b.positions.tolist() == [T - 1]
    assert torch.equal(b.targets[:, 0], ids[:, 1])
    assert b.mask.sum().item() == 64 and b.mask[:, -1].all()
    assert t.chance == pytest.approx(0.01)


def test_assoc_recall_ranges_are_covered():
    b = first(make_task("assoc_recall", distance=254), bs=4000)
    assert b.inputs[:, 0].unique().numel() == 100
    assert b.inputs[:, 1].unique().numel() == 100
    assert b.inputs[:, 2:-1].unique().numel() == 46


@pytest.mark.parametrize("distance", [126, 254, 510])
def test_copy_layout(distance):
    t = make_task("copy", distance=distance, segment_len=8)
    b = first(t, bs=16)
    ids = b.inputs
    assert t.seq_len == distance + 8 and ids.shape == (16, distance + 8)
    assert (ids[:, distance] == 1).all()
    assert b.positions.tolist() == list(range(distance, distance + 8))
    # each target is the input token exactly `distance` positions earlier
    assert torch.equal(b.targets, ids[:, b.positions - distance])
    assert ((ids[:, :8] >= 10) & (ids[:, :8] < 210)).all()
    assert ((ids[:, 8:distance] >= 210)).all()
    # teacher forcing: after the separator come s_0 .. s_{L-2}
    assert torch.equal(ids[:, distance + 1:], ids[:, :7])
    assert t.chance == pytest.approx(1 / 200)


@pytest.mark.parametrize("distance", [126, 254, 510])
def test_induction_heads_layout(distance):
    t = make_task("induction_heads", distance=distance)
    b = first(t, bs=16)
    ids, T = b.inputs, distance + 2
    assert ids.shape == (16, T)
    assert (ids[:, T - 2 - distance] == TRIGGER).all() and (ids[:, -1] == TRIGGER).all()
    assert ((ids == TRIGGER).sum(1) == 2).all()
    assert b.positions.tolist() == [T - 1]
    assert torch.equal(b.targets[:, 0], ids[:, T - 1 - distance])
    assert (b.positions - (T - 1 - distance)).tolist() == [distance]
    assert t.chance == pytest.approx(1 / 246)


def test_induction_heads_longer_sequence_puts_noise_before_the_pair():
    t = make_task("induction_heads", distance=10, seq_len=40)
    b = first(t, bs=8)
    assert b.inputs.shape == (8, 40)
    assert (b.inputs[:, 40 - 12] == TRIGGER).all()
    assert torch.equal(b.targets[:, 0], b.inputs[:, 40 - 11])


@pytest.mark.parametrize("name", sorted(TASKS))
def test_same_seed_same_batches_other_seed_other_batches(name):
    t = make_task(name, distance=30)
    a = [next(s) for s in [t.stream("train", 7, 8)] for _ in range(3)]
    s2 = t.stream("train", 7, 8)
    b = [next(s2) for _ in range(3)]
    for x, y in zip(a, b):
        assert torch.equal(x.inputs, y.inputs) and torch.equal(x.targets, y.targets)
    assert not torch.equal(first(t, seed=7).inputs, first(t, seed=8).inputs)
    # consecutive batches of a stream are fresh
    assert not torch.equal(a[0].inputs, a[1].inputs)


@pytest.mark.parametrize("name", sorted(TASKS))
def test_splits_are_disjoint_streams(name):
    t = make_task(name, distance=30)
    batches = {s: first(t, split=s, seed=3, bs=256).inputs for s in SPLITS}
    seqs = {s: {tuple(r) for r in batches[s].tolist()} for s in SPLITS}
    assert not (seqs["train"] & seqs["test"]) and not (seqs["validation"] & seqs["test"])
    seeds = {split_seed(s, sp) for s in range(50) for sp in SPLITS}
    assert len(seeds) == 150


def test_fixed_set_is_the_stream_prefix():
    t = make_task("assoc_recall", distance=14)
    fixed = t.fixed_set("test", 0, 70, 32)
    assert [b.inputs.shape[0] for b in fixed] == [32, 32, 6]
    again = t.fixed_set("test", 0, 70, 32)
    assert all(torch.equal(a.inputs, b.inputs) for a, b in zip(fixed, again))


@pytest.mark.parametrize("name,params,needle", [
    ("nope", {"distance": 5}, "task: unknown 'nope'"),
    ("assoc_recall", {"distance": 1}, "distance: Input should be greater than or equal to 2 (got 1)"),
    ("assoc_recall", {"distance": 10, "seq_len": 13}, "distance: assoc_recall needs distance = seq_len - 2"),
    ("assoc_recall", {"distance": 2.5}, "distance: Input should be a valid integer (got 2.5)"),
    ("assoc_recall", {"distance": True}, "distance: Input should be a valid integer (got True)"),
    ("assoc_recall", {"distance": 10, "width": 3}, "width: not a parameter of task 'assoc_recall'"),
    ("assoc_recall", {}, "distance: missing (required)"),
    ("copy", {"distance": 4, "segment_len": 8}, "distance: copy needs distance >= segment_len"),
    ("copy", {"distance": 30, "segment_len": 0}, "segment_len: Input should be greater than or equal to 1"),
    ("induction_heads", {"distance": 30, "seq_len": 20}, "distance: induction_heads needs distance <= seq_len - 2"),
    ("mqar", {"distance": 30, "n_pairs": 2, "n_queries": 3}, "n_queries: mqar needs n_queries <= n_pairs (2)"),
    ("mqar", {"distance": 30, "seq_len": 40}, "seq_len: not a parameter of task 'mqar'"),
])
def test_bad_task_parameters_raise_one_line(name, params, needle):
    with pytest.raises((TaskConfigError, pydantic.ValidationError)) as e:
        make_task(name, **params)
    text = message(e.value)
    assert needle in text and "\n" not in text


def test_bad_split_and_batch_size():
    t = make_task("assoc_recall", distance=6)
    with pytest.raises(TaskConfigError, match="split: unknown 'dev'"):
        next(t.stream("dev", 0, 4))
    with pytest.raises(TaskConfigError, match="batch_size"):
        next(t.stream("train", 0, 0))
