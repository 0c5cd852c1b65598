"""Where a result came from: versions, git, machine, and fingerprints of config and data."""
from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import torch

from suite import __version__

REPO = Path(__file__).resolve().parent.parent.parent
CPUINFO = Path("/proc/cpuinfo")


def git_sha() -> str:
    """Commit of the working tree, with '+dirty' when it has uncommitted changes; 'unknown' outside git."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else what platform knows (often just 'x86_64')."""
    try:
        for line in CPUINFO.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return " ".join(value.split())
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def device_name(device: torch.device) -> str:
    """The machine a row was measured on: the GPU's name, or the CPU model and torch's thread count."""
    if device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(device)}"
    return f"cpu:{cpu_model()} x{torch.get_num_threads()} threads"


def environment(device: torch.device) -> dict:
    return {
        "suite_version": __version__,
        "git_sha": git_sha(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "device_name": device_name(device),
        "cuda": torch.version.cuda,
    }


def data_fingerprint(task, seed: int, batch_size: int) -> str:
    """Hash of the first train and test batches: changes whenever the generator's output does."""
    h = hashlib.sha256()
    for split in ("train", "test"):
        b = next(task.stream(split, seed, batch_size))
        for t in (b.inputs, b.positions, b.targets):
            h.update(t.numpy().tobytes())
    return h.hexdigest()[:16]


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
