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
