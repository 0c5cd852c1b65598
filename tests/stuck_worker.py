"""A test-only job (tests/test_executor.py) that leaves its worker half-way through sending a result,
as a worker terminated on Ctrl-C while it sends a large row, history or checkpoint does."""
import gc
import multiprocessing.queues
import os
import struct
import time
from pathlib import Path


def half_sent_result(marker: str) -> None:
    """Writes the start of a message on the worker's result pipe (a header announcing 1 MiB, then a
    few bytes), says so in `marker`, and never writes the rest: the driver's reader is left waiting."""
    (queue,) = [o for o in gc.get_objects() if isinstance(o, multiprocessing.queues.SimpleQueue)]
    os.write(queue._writer.fileno(), struct.pack("!i", 1 << 20) + b"partial")
    Path(marker).write_text("sent")
    time.sleep(3600)
