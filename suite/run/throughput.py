"""How close a training step comes to the machine: its counted FLOPs over its measured time, as a
fraction of the device's float32 matmul peak, both measured in the same process at the same
thread count. It lives in run/ because it times the trainer's own step. One helper times a call
(`call_seconds`: CUDA events after a synchronisation on a GPU, a monotonic clock on the CPU); the
medians are built on it. FLOPs are always counted on the CPU (FlopCounterMode), so the count does
not depend on the device's kernels."""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch

from suite.run.devices import precision
from suite.run.trainer import Trainer

#: square sgemm sizes tried for the peak (the best of them is the peak)
PEAK_SIZES_CPU = (512, 1024, 2048)
PEAK_SIZES_CUDA = (4096, 8192)


#: a monotonic clock in seconds (tests pass a fake one)
Clock = Callable[[], float]


def call_seconds(fn: Callable[[], object], device, clock: Clock = time.perf_counter) -> float:
    """Seconds of one call of `fn()`: CUDA events after a synchronisation on a GPU (its kernels run
    asynchronously), `clock` around the call on the CPU (where a call returns when its work is done)."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3
    t0 = clock()
    fn()
    return clock() - t0


def interleaved_seconds(fns: dict[str, Callable[[], object]], device, repeats: int = 5, warmup: int = 1,
                        clock: Clock = time.perf_counter) -> dict[str, float]:
    """Median seconds of each callable, after `warmup` calls each, timed in turn (A B A B ...) so
    that a machine whose speed drifts (shared, throttled) slows every one of them alike."""
    if repeats < 1:
        raise ValueError(f"repeats: must be at least 1, got {repeats}")
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            times[k].append(call_seconds(fn, device, clock))
    return {k: statistics.median(v) for k, v in times.items()}


def median_seconds(fn: Callable[[], object], device, repeats: int = 5, warmup: int = 1,
                   clock: Clock = time.perf_counter) -> float:
    """Median seconds of `fn()` over `repeats` calls after `warmup` untimed ones."""
    return interleaved_seconds({"fn": fn}, device, repeats, warmup, clock)["fn"]


#: inference on the CPU runs whole sequences in slices of at most this many tokens, so that one
#: slice's activations (about 16 KB a token at d = 128, with the FFN's 4d hidden) stay in cache.
#: Measured at T = 4096, batch 24, 1 thread: one batch 9.2 s, slices of one sequence 5.4 s for
#: sparse Routed; 16.8 s against 14.5 s for AttnOnly. On CUDA the whole batch is one launch.
SLICE_TOKENS_CPU = 4096


def slice_size(batch: int, seq_len: int, device, max_tokens: int | None = SLICE_TOKENS_CPU) -> int:
    """Sequences per slice: the whole batch on CUDA or without a budget, else as many whole
    sequences as fit in `max_tokens` (at least one)."""
    if max_tokens is not None and max_tokens < 1:
        raise ValueError(f"max_tokens: must be at least 1 or None, got {max_tokens}")
    if torch.device(device).type == "cuda" or max_tokens is None:
        return batch
    return max(1, min(batch, max_tokens // seq_len))


def sliced_forward(model, ids: torch.Tensor, device, max_tokens: int | None = SLICE_TOKENS_CPU) -> list:
    """The model's outputs on `ids`, slice by slice (sequences are independent in evaluation,
    so this is the same function as one call on the batch)."""
    step = slice_size(ids.shape[0], ids.shape[1], device, max_tokens)
    return [model(part) for part in ids.split(step)]


def matmul_rate(device: torch.device, m: int, k: int, n: int, repeats: int = 5) -> float:
    """Float32 FLOP/s of one (m, k) @ (k, n) matmul (2 m k n FLOPs): what a model's own matmul
    shape reaches alone, beside the square peak (a step cannot beat its matmuls' shapes)."""
    for name, v in (("m", m), ("k", k), ("n", n)):
        if not isinstance(v, int) or v < 1:
            raise ValueError(f"{name}: must be a positive int, got {v!r}")
    device = torch.device(device)
    with precision("float32", device):
        a = torch.randn(m, k, device=device)
        b = torch.randn(k, n, device=device)
        return 2 * m * k * n / median_seconds(lambda: torch.mm(a, b), device, repeats=repeats)


def matmul_peak(device: torch.device, sizes=None, repeats: int = 5) -> float:
    """Float32 FLOP/s of the fastest square matmul among `sizes` (2 n^3 FLOPs each)."""
    device = torch.device(device)
    sizes = sizes or (PEAK_SIZES_CUDA if device.type == "cuda" else PEAK_SIZES_CPU)
    return max(matmul_rate(device, n, n, n, repeats) for n in sizes)


@dataclass
class StepReading:
    model: str
    seq_len: int
    batch: int
    flops: int           # one training step, counted on the CPU
    seconds: float       # median measured time of one step on the device
    peak: float          # the device's float32 matmul FLOP/s, same process and threads

    @property
    def achieved(self) -> float:
        return self.flops / self.seconds

    @property
    def fraction(self) -> float:
        return self.achieved / self.peak


def training_step(task, model_name: str, device, lam: float = 0.5, seed: int = 0, **kwargs) -> Trainer:
    """A Trainer whose `step(lam)` is the faithful training step of this model and length."""
    lam = lam if model_name == "routed" else 0.0
    return Trainer(task, model_name, lambda_target=lam, seed=seed, device=device, progress=False, **kwargs)


def step_reading(task, model_name: str, device, peak: float, repeats: int = 5, **kwargs) -> StepReading:
    """Counted FLOPs (CPU) and measured time (device) of one faithful training step."""
    from suite.compute.readings import train_step_flops
    device = torch.device(device)
    lam = 0.5 if model_name == "routed" else 0.0
    tr = training_step(task, model_name, device, lam, **kwargs)
    tr.model.train()
    bs = tr.protocol.batch_size(task.seq_len)
    flops = train_step_flops(model_name, tr.model.config, task, bs, lam)
    seconds = median_seconds(lambda: tr.step(lam), device, repeats=repeats, warmup=2)  # in the protocol's precision
    return StepReading(model_name, task.seq_len, bs, int(flops), seconds, peak)
