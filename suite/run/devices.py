"""--device auto|cpu|cuda: one code path, the device is only where tensors live; and the numeric
precision a protocol runs in."""
import contextlib

import torch

from suite.errors import ConfigError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str) -> torch.device:
    if name not in DEVICES:
        raise ConfigError(f"device: unknown '{name}'; allowed: {', '.join(DEVICES)}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: 'cuda' requested but torch sees no CUDA device; use cpu or auto")
    return torch.device(name)


#: float32: plain float32 everywhere, TF32 off on CUDA (the original's numerics; the faithful
#: protocols); tf32: TF32 matmuls and convolutions on CUDA; bf16: bfloat16 autocast of the forward
PRECISIONS = ("float32", "tf32", "bf16")


@contextlib.contextmanager
def precision(name: str, device: torch.device):
    """The numerics of a protocol's forward passes on `device`, restored afterwards."""
    if name not in PRECISIONS:
        raise ConfigError(f"precision: unknown '{name}'; allowed: {', '.join(PRECISIONS)}")
    device = torch.device(device)
    flags = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    tf32 = name == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
    try:
        if name == "bf16":
            with torch.autocast(device.type, dtype=torch.bfloat16):
                yield
        else:
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = flags
