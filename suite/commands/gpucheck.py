"""`python -m suite gpucheck` (`nox -s gpucheck`): what a GPU user checks first. For each model,
the faithful training step's time at T = 128 / 512 / 2048 and its achieved share of the GPU's
float32 matmul peak, then the upper-bound ETA of the `paper` profile on this GPU. The same code
as `reproduce` (the trainer's own step), float32 with TF32 off, as the faithful protocol runs."""
from __future__ import annotations

import pandas as pd
import torch

from baselines import MODELS
from tasks import make_task

from suite.errors import ConfigError
from suite.pipeline.options import Command
from suite.run.plan import estimate
from suite.run.profiles import load_profile
from suite.run.throughput import matmul_peak, step_reading

LENGTHS = (128, 512, 2048)


def require_gpu(device: torch.device | None = None) -> torch.device:
    if not torch.cuda.is_available():
        raise ConfigError("device: gpucheck measures a GPU and torch sees no CUDA device "
                          f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'none'})")
    return device or torch.device("cuda")


def step_table(device: torch.device, lengths=LENGTHS, repeats: int = 5) -> pd.DataFrame:
    """One row per (model, T): step time, counted FLOPs, achieved FLOP/s, share of the peak."""
    peak = matmul_peak(device)
    rows = []
    for T in lengths:
        task = make_task("assoc_recall", distance=T - 2)
        for name in MODELS:
            r = step_reading(task, name, device, peak, repeats=repeats)
            rows.append({"model": name, "seq_len": T, "batch": r.batch, "step_ms": 1e3 * r.seconds,
                         "step_gflop": r.flops / 1e9, "achieved_tflops": r.achieved / 1e12,
                         "peak_tflops": peak / 1e12, "fraction_of_peak": r.fraction})
    return pd.DataFrame(rows)


def paper_eta(device: torch.device) -> float:
    """Upper bound (seconds) of the paper profile on this device, from measured step times."""
    return sum(b for b in estimate(load_profile("paper"), device) if b is not None)


def gpucheck(lengths=LENGTHS, repeats: int = 5) -> int:
    device = require_gpu()
    name = torch.cuda.get_device_name(device)
    print(f"GPU: {name}; torch {torch.__version__}, CUDA {torch.version.cuda}; float32, TF32 off")
    table = step_table(device, lengths, repeats)
    print(table.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    eta = paper_eta(device)
    print(f"\npaper profile on {name}: at most {eta / 3600:.1f} h of training and evaluation, one cell at a "
          f"time (every cell its whole epoch budget; cells that solve early stop sooner). Several cells per GPU: "
          f"--executor ray --gpus-per-cell 0.25.")
    return 0


COMMAND = Command("gpucheck", "per-model training step time at T = 128 / 512 / 2048 on this GPU, the share of its "
                  "float32 matmul peak, and the paper profile's ETA (exit 2 without a GPU)",
                  lambda p: None, lambda a: gpucheck())
