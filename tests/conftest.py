import os
import warnings

import pytest
import torch

from baselines import ModelConfig

# a config small enough for fast tests that still exercises several heads and layers
SMALL = ModelConfig(d_model=32, n_layers=2, n_heads=2, kernel_size=8)


@pytest.fixture(autouse=True)
def _torch_threads():
    # two threads (the machines' core count) unless OMP_NUM_THREADS says otherwise, e.g. 1 beside a
    # long training job
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS") or 2))
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="fvcore")


@pytest.fixture(autouse=True)
def _test_mode(request, monkeypatch):
    """Tests check rows and verdicts, not pictures: a run's report draws no figures unless the test
    is marked `figures` (it then checks them), and a latency reading is timed once, not 7 times."""
    import suite.compute.readings as readings
    import suite.report.run_report as run_report
    monkeypatch.setattr(readings, "LATENCY_REPEATS", 1)
    if request.node.get_closest_marker("figures") is None:
        monkeypatch.setattr(run_report, "render_figures", lambda *a, **k: [])
