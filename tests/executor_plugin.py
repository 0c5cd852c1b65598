"""A test-only router plugin (tests/test_executor.py): the original router, except that a cell
trained under `fail_seed` fails inside its worker, during its first training step.

It is imported by name (`executor_plugin:FailingRouter`) in whatever process trains the cell, so a
failure reaches spawned workers and Ray tasks, which a monkeypatch of the test process cannot.
The router gate (no gradients) and the plan's step timing (seed 0: keep fail_seed >= 1) never
trigger it.
"""
import os
import time

import torch

from baselines.routers import GumbelRouter

#: the test process's pid: `how="exit"` ends any other process (a worker), `how="hang"` sleeps in it
#: for an hour; both raise in this one, which the local executor runs cells in (the environment
#: reaches spawned and Ray workers alike)
DRIVER_PID = "RAB_TEST_DRIVER_PID"


class FailingRouter(GumbelRouter):
    def __init__(self, cfg, layer_index: int = 0, fail_seed: int = 1, how: str = "raise"):
        super().__init__(cfg, layer_index)
        if how not in ("raise", "exit", "hang"):
            raise ValueError(f"how: 'raise', 'exit' or 'hang', got {how!r}")
        self.fail_seed, self.how = fail_seed, how

    def forward(self, x):
        # the trainer seeds torch's generator with the cell's seed before building the model
        if self.training and torch.is_grad_enabled() and torch.initial_seed() == self.fail_seed:
            in_worker = os.getpid() != int(os.environ.get(DRIVER_PID, "-1"))
            if self.how == "exit":
                if in_worker:
                    os._exit(3)  # the worker process dies, as under the kernel's out-of-memory killer
                raise RuntimeError("the test router would have killed its worker process here")
            if self.how == "hang":
                if in_worker:
                    time.sleep(3600)  # a cell still running when Ctrl-C comes: only the driver can stop it
                raise RuntimeError("the test router would have hung its worker process here")
            raise RuntimeError(f"deliberate failure of the test router (seed {self.fail_seed})")
        return super().forward(x)
