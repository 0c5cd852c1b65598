"""Tiny end-to-end learning: attention solves short-range recall, a short conv cannot."""
import dataclasses

import pytest

from baselines import ModelConfig
from suite.run.protocol import FAITHFUL
from suite.run.trainer import evaluate, train
from tasks import make_task

TINY = ModelConfig(d_model=32, n_layers=2, n_heads=2, kernel_size=4)
PROTO = dataclasses.replace(FAITHFUL, name="tiny-learn", steps_per_epoch=50, eval_batches=10,
                            baseline_max_epochs=30)


@pytest.mark.slow
def test_attention_learns_and_short_conv_stays_at_chance():
    task = make_task("assoc_recall", distance=30)
    test_set = task.fixed_set("test", 0, 1000, 100)
    attn = train(task, "attn", protocol=PROTO, model_config=TINY, seed=0, progress=False)
    conv = train(task, "conv", protocol=PROTO, model_config=TINY, seed=0, progress=False)
    assert attn.accuracy > 0.9
    assert evaluate(attn.model, test_set)[0] > 0.9
    # receptive field 2 * 3 + 1 = 7 < 30: the conv model cannot see the value
    assert conv.epochs_phase1 == 30
    assert evaluate(conv.model, test_set)[0] < 0.05
