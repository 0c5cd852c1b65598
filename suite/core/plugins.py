"""Plugin code (a user's router) can stop a run in ways that look like the suite's own: `sys.exit(0)`
would end the process with "success", a `raise KeyboardInterrupt` would look like Ctrl-C. Here they
are told apart, so the caller can turn them into a verdict (a refused router, a failed cell).

A real Ctrl-C comes with a SIGINT: `watch_sigint` (installed by the CLI around every command)
remembers whether one arrived. A KeyboardInterrupt while SIGINT is watched and none arrived was
raised by code (the suite never raises one), so it is the plugin's fault, not the user's Ctrl-C.
"""
from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

_state = {"watching": False, "received": False}


@contextlib.contextmanager
def watch_sigint() -> Iterator[None]:
    """Inside, a SIGINT is remembered, then raised as KeyboardInterrupt as Python's own handler does.
    Nothing changes where SIGINT is ignored or handled by someone else (or off the main thread)."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return

    def handler(signum, frame):
        _state["received"] = True
        signal.default_int_handler(signum, frame)

    old = dict(_state)
    _state.update(watching=True, received=False)
    signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        _state.update(old)


def typed_by_nobody() -> bool:
    """True when a KeyboardInterrupt raised now cannot be a Ctrl-C: SIGINT is watched, none arrived."""
    return _state["watching"] and not _state["received"]


def exit_text(err: SystemExit) -> str:
    return f"sys.exit({err.code!r})" if err.code is not None else "sys.exit()"


def fault_line(err: BaseException, limit: int = 300) -> str:
    """An exception as one line: its type and the first line of its message, shortened."""
    text = " ".join(str(err).strip().splitlines()[0].split()) if str(err).strip() else ""
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{type(err).__name__}: {text}" if text else type(err).__name__
