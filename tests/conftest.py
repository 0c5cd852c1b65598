import warnings

import pytest
import torch

from baselines import ModelConfig

# a config small enough for fast tests that still exercises several heads and layers
SMALL = ModelConfig(d_model=32, n_layers=2, n_heads=2, kernel_size=8)


@pytest.fixture(autouse=True)
def _torch_threads():
    torch.set_num_threads(2)
    warnings.filterwarnings("ignore", category=DeprecationWarning, module="fvcore")
