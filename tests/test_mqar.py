"""mqar: layout, scored targets, chance level, determinism, no positional or range shortcut, and
the trainer counting only scored (non-IGNORE) targets."""
import dataclasses
import math

import pydantic
import pytest
import torch
from torch import nn

from baselines import Output, build_model
from conftest import SMALL
from suite.errors import message
from suite.run.protocol import FAITHFUL
from suite.run.trainer import Trainer, evaluate
from tasks import IGNORE, SPLITS, TASKS, TaskConfigError, make_task
from tasks.mqar import MQAR

SHAPES = [(1, 1, 1), (1, 4, 2), (30, 4, 4), (7, 16, 5), (126, 50, 50)]


def first(task, split="train", seed=0, bs=64):
    return next(task.stream(split, seed, bs))


def is_symbol(t):
    return (t >= 10) & (t < 210)


def test_registered_with_its_parameters():
    assert TASKS["mqar"] is MQAR
    t = make_task("mqar", distance=9)
    assert (t.n_pairs, t.n_queries) == (4, 2)
    assert t.params() == {"distance": 9, "n_pairs": 4, "n_queries": 2}
    assert make_task("mqar", distance=9, n_pairs=6, n_queries=3).params() == \
        {"distance": 9, "n_pairs": 6, "n_queries": 3}
    assert IGNORE == -100 == nn.CrossEntropyLoss().ignore_index


@pytest.mark.parametrize("distance,n_pairs,n_queries", SHAPES)
def test_layout(distance, n_pairs, n_queries):
    t = make_task("mqar", distance=distance, n_pairs=n_pairs, n_queries=n_queries)
    W = 8 * n_pairs
    T = 2 * W + distance - 1
    assert t.seq_len == T
    b = first(t, bs=32)
    assert b.inputs.shape == (32, T) and b.inputs.dtype == torch.long
    for row, tgt in zip(b.inputs.tolist(), b.targets.tolist()):
        pair, query = row[:W], row[T - W:]
        sym = [i for i, x in enumerate(pair) if 10 <= x < 210]
        # n_pairs slot-aligned pairs: a key at an even position, its value right after it
        keys_at = sym[0::2]
        assert len(sym) == 2 * n_pairs
        assert all(i % 2 == 0 for i in keys_at) and sym[1::2] == [i + 1 for i in keys_at]
        keys = {pair[i]: i for i in keys_at}
        symbols = [pair[i] for i in sym]
        assert len(set(symbols)) == 2 * n_pairs   # all keys and values distinct
        # exactly n_queries queries, keys of distinct pairs; the rest of the query window is noise
        q_at = [i for i, x in enumerate(query) if 10 <= x < 210]
        assert len(q_at) == n_queries
        assert len({query[i] for i in q_at}) == n_queries
        for i in q_at:
            k = query[i]
            assert k in keys
            assert tgt[i] == pair[keys[k] + 1]            # the value right after that key
            gap = (T - W + i) - (keys[k] + 1)
            assert distance <= gap <= distance + 2 * W - 3
        # noise everywhere else
        noise = [x for i, x in enumerate(pair) if i not in set(sym)] + row[W:T - W] + \
            [x for i, x in enumerate(query) if i not in set(q_at)]
        assert len(noise) == T - 2 * n_pairs - n_queries
        assert all(210 <= x < 256 for x in noise)


def test_gap_reaches_its_bounds():
    """The minimum gap is exactly `distance` (value in the last slot, query at the first query
    position), and the maximum distance + 2W - 3 occurs too."""
    t = make_task("mqar", distance=5, n_pairs=1, n_queries=1)   # W = 8, T = 20
    b = first(t, bs=4000)
    key_at = (is_symbol(b.inputs[:, :8]).long().argmax(1))        # first symbol: the key
    q_at = is_symbol(b.inputs[:, 8:]).long().argmax(1) + 8        # the query (only symbol after W)
    gaps = q_at - (key_at + 1)
    assert gaps.min().item() == 5 and gaps.max().item() == 5 + 16 - 3


@pytest.mark.parametrize("distance,n_pairs,n_queries", SHAPES)
def test_scored_positions_targets_and_mask(distance, n_pairs, n_queries):
    t = make_task("mqar", distance=distance, n_pairs=n_pairs, n_queries=n_queries)
    W, T = 8 * n_pairs, t.seq_len
    for bs in (1, 48):
        b = first(t, bs=bs)
        assert b.positions.tolist() == list(range(T - W, T))
        assert b.targets.shape == (bs, W)
        scored = b.targets != IGNORE
        assert (scored.sum(1) == n_queries).all()
        # a row scores exactly its query positions (the symbols of the query window)
        assert torch.equal(scored, is_symbol(b.inputs[:, T - W:]))
        assert is_symbol(b.targets[scored]).all()
        m = b.mask
        assert m.shape == (bs, T) and m.dtype == torch.bool
        assert not m[:, :T - W].any()
        assert torch.equal(m[:, T - W:], scored)
        assert m.sum().item() == bs * n_queries


def test_mask_of_other_tasks_is_unchanged():
    """Tasks without IGNORE targets: the mask is every scored position of every row."""
    b = first(make_task("copy", distance=20, segment_len=4), bs=8)
    expected = torch.zeros_like(b.inputs, dtype=torch.bool)
    expected[:, 20:24] = True
    assert torch.equal(b.mask, expected)


@pytest.mark.parametrize("n_pairs", [1, 4, 7, 50])
def test_chance_level(n_pairs):
    assert make_task("mqar", distance=3, n_pairs=n_pairs, n_queries=1).chance == pytest.approx(1 / n_pairs)


@pytest.mark.parametrize("params,needle", [
    ({"distance": 5, "n_pairs": 4, "n_queries": 5}, "n_queries: mqar needs n_queries <= n_pairs (4), got 5"),
    ({"distance": 5, "n_pairs": 0}, "n_pairs: Input should be greater than or equal to 1"),
    ({"distance": 5, "n_pairs": 51}, "n_pairs: Input should be less than or equal to 50"),
    ({"distance": 5, "n_queries": 0}, "n_queries: Input should be greater than or equal to 1"),
    ({"distance": 0}, "distance: Input should be greater than or equal to 1"),
    ({"distance": 2.5}, "distance: Input should be a valid integer"),
    ({"distance": 5, "n_pairs": True}, "n_pairs: Input should be a valid integer"),
    ({"distance": 16384 - 62}, "distance: mqar needs seq_len"),
    ({"distance": 5, "keys": 3}, "keys: not a parameter of task 'mqar'"),
    ({"n_pairs": 4}, "distance: missing (required)"),
])
def test_bad_parameters_raise_one_line(params, needle):
    with pytest.raises((TaskConfigError, pydantic.ValidationError)) as e:
        make_task("mqar", **params)
    text = message(e.value)
    assert needle in text and "\n" not in text


def test_longest_sequence_is_the_suite_bound():
    assert make_task("mqar", distance=16384 - 63).seq_len == 16384
    assert make_task("mqar", distance=16384 - 799, n_pairs=50, n_queries=1).seq_len == 16384
    with pytest.raises(pydantic.ValidationError, match="distance"):
        make_task("mqar", distance=16384 - 798, n_pairs=50, n_queries=1)


def test_determinism_seeds_and_splits():
    t = make_task("mqar", distance=12, n_pairs=5, n_queries=3)

    def data(split, seed):
        bs = t.fixed_set(split, seed, 50, 16)
        return b"".join(x.numpy().tobytes() for b in bs for x in (b.inputs, b.positions, b.targets))

    assert data("test", 0) == data("test", 0)
    assert data("test", 0) != data("test", 1)
    assert len({data(s, 4) for s in SPLITS}) == 3
    # the fixed set is the stream's prefix
    stream = t.stream("validation", 2, 16)
    fixed = t.fixed_set("validation", 2, 32, 16)
    for f in fixed:
        s = next(stream)
        assert torch.equal(f.inputs, s.inputs) and torch.equal(f.targets, s.targets)


def position_hit_rates(inputs, targets):
    """(T, W): for absolute position j and query slot k, the fraction of rows scoring k whose
    token at j equals the target at k."""
    scored = targets != IGNORE
    hits = (inputs[:, :, None] == targets[:, None, :]) & scored[:, None, :]
    return hits.sum(0).double() / scored.sum(0).clamp(min=1).double()


def test_no_position_predicts_the_answer():
    t = make_task("mqar", distance=5, n_pairs=4, n_queries=2)   # W = 32, T = 68
    b = first(t, seed=11, bs=4000)
    scored = b.targets != IGNORE
    assert scored.sum(0).min().item() >= 150     # every query slot scored by enough rows
    rates = position_hit_rates(b.inputs, b.targets)
    # expected: 1 / (4 n) = chance / 4 at a value position of the pair window, 0 elsewhere;
    # a binomial over >= 150 rows does not reach chance (>= 8 sd away) unless the value sits there
    assert rates.max().item() < t.chance
    # pooled over all scored targets (8000): every value position near 1 / (4 n)
    pooled = ((b.inputs[:, :, None] == b.targets[:, None, :]) & scored[:, None, :]).sum((0, 2)) / scored.sum()
    assert pooled.max().item() < t.chance / 2
    assert pooled[1:32:2].min().item() > t.chance / 8   # the value can be anywhere in the pair window
    # the check bites: the answer to a row's first query copied to a fixed position is found
    leaky = b.inputs.clone()
    first_target = b.targets.gather(1, scored.long().argmax(1, keepdim=True)).squeeze(1)
    leaky[:, 40] = first_target
    assert position_hit_rates(leaky, b.targets)[40].max().item() == 1.0


def test_no_token_range_gives_the_answer_away():
    n = 4
    t = make_task("mqar", distance=5, n_pairs=n, n_queries=2)
    b = first(t, seed=3, bs=4000)
    scored = b.targets != IGNORE
    for row, tgt, sc in zip(b.inputs[:500], b.targets[:500], scored[:500]):
        syms = set(row[is_symbol(row)].tolist())
        assert len(syms) == 2 * n            # the target's range holds 2n - 1 other tokens
        assert set(tgt[sc].tolist()) <= syms
    values = b.targets[scored]
    W = 8 * n
    pair = b.inputs[:, :W]
    keys = pair[:, 0::2][is_symbol(pair[:, 0::2])]
    # keys and values both cover the whole shared range ...
    assert values.unique().numel() == 200 and keys.unique().numel() == 200
    # ... evenly: assoc_recall's value half [110, 210) holds about half the answers, not all
    upper = (values >= 110).double().mean().item()
    assert 0.45 < upper < 0.55
    assert 0.45 < (keys >= 110).double().mean().item() < 0.55


class Oracle(nn.Module):
    """Looks each query's key up in the pair window; right when the key is even, wrong (value + 1)
    when it is odd; gates all ones."""

    def __init__(self, window):
        super().__init__()
        self.window = window

    def forward(self, inputs, positions):
        B, W = inputs.shape[0], self.window
        q = inputs[:, positions]                                    # (B, P)
        match = q[:, :, None] == inputs[:, None, :W - 1]            # (B, P, W-1)
        where = match.long().argmax(-1)
        answer = inputs.gather(1, where + 1)
        answer = torch.where(q % 2 == 0, answer, (answer + 1) % 256)
        logits = torch.zeros(B, positions.numel(), 256)
        logits.scatter_(2, answer.unsqueeze(-1), 1.0)
        return Output(logits, (torch.ones(inputs.shape[:2]),))


def test_evaluate_counts_only_scored_targets_oracle():
    t = make_task("mqar", distance=6, n_pairs=4, n_queries=3)
    batches = t.fixed_set("test", 0, 100, 32)
    acc, usage = evaluate(Oracle(t.window), batches)
    scored = torch.cat([b.targets != IGNORE for b in batches])
    keys = torch.cat([b.inputs[:, b.positions] for b in batches])[scored]
    assert scored.sum().item() == 300
    even = int((keys % 2 == 0).sum())
    assert 0 < even < 300
    assert acc == pytest.approx(even / 300)
    assert usage == [1.0]


def test_evaluate_counts_only_scored_targets_tiny_model():
    torch.manual_seed(0)
    t = make_task("mqar", distance=3, n_pairs=2, n_queries=1)
    model = build_model("attn", SMALL)
    batches = t.fixed_set("test", 0, 40, 16)
    acc, _ = evaluate(model, batches)
    correct = total = 0
    with torch.no_grad():
        for b in batches:
            pred = model(b.inputs, b.positions).logits.argmax(-1)
            for r in range(b.targets.shape[0]):
                for k in range(b.targets.shape[1]):
                    if b.targets[r, k].item() != IGNORE:
                        total += 1
                        correct += int(pred[r, k].item() == b.targets[r, k].item())
    assert total == 40
    assert acc == pytest.approx(correct / total)


def test_training_step_on_mqar_is_finite_and_counts_scored_targets():
    t = make_task("mqar", distance=4, n_pairs=4, n_queries=2)
    proto = dataclasses.replace(FAITHFUL, name="tiny-mqar", steps_per_epoch=1, eval_batches=1)
    trainer = Trainer(t, "attn", protocol=proto, model_config=SMALL, seed=0, progress=False)
    ce, ok, n = trainer.step(0.0)
    bs = proto.batch_size(t.seq_len)
    assert math.isfinite(float(ce)) and float(ce) > 0
    assert int(n) == bs * 2
    assert 0 <= int(ok) <= int(n)
