"""Plugin code (a user's router) can stop a run in ways that look like the suite's own: `sys.exit(0)`
would end the process with "success", a `raise KeyboardInterrupt` would look like Ctrl-C. Here they
are told apart, so the caller can turn them into a verdict (a refused router, a failed cell).

A real Ctrl-C is recognised by the SIGINT it comes with: `watch_sigint` (installed by the CLI
around every command) remembers that one arrived. A KeyboardInterrupt with no SIGINT behind it,
raised while plugin code was on the stack, is the plugin's.
"""
from __future__ import annotations

import contextlib
import os
import signal
import threading
from typing import Iterable, Iterator

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


def sigint_received() -> bool:
    return _state["received"]


def _norm(path: str) -> str:
    return os.path.normcase(os.path.realpath(path))


def raised_in(err: BaseException, files: Iterable[str]) -> bool:
    """Whether any frame of the error's traceback runs code of one of `files`."""
    wanted = {_norm(f) for f in files if f}
    tb = err.__traceback__
    while tb is not None and wanted:
        if _norm(tb.tb_frame.f_code.co_filename) in wanted:
            return True
        tb = tb.tb_next
    return False


def is_real_interrupt(err: KeyboardInterrupt, files: Iterable[str]) -> bool:
    """A Ctrl-C (or an interrupt we cannot attribute): False only when SIGINT is watched, none
    arrived, and plugin code (one of `files`) was on the stack when it was raised."""
    return not (_state["watching"] and not _state["received"] and raised_in(err, files))


def exit_text(err: SystemExit) -> str:
    return f"sys.exit({err.code!r})" if err.code is not None else "sys.exit()"


def fault_line(err: BaseException, limit: int = 300) -> str:
    """An exception as one line: its type and the first line of its message, shortened."""
    text = " ".join(str(err).strip().splitlines()[0].split()) if str(err).strip() else ""
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


class PluginFault(Exception):
    """Plugin code stopped a cell by a SystemExit or a KeyboardInterrupt no one typed; its str is the
    one line stored with the failed cell."""


@contextlib.contextmanager
def cell_guard(who: str, files: Iterable[str], when: str = "during the cell") -> Iterator[None]:
    """Inside, SystemExit and a plugin's own KeyboardInterrupt become PluginFault (an Exception,
    so the executor records a failed cell); a real Ctrl-C and every Exception pass unchanged."""
    files = list(files)
    try:
        yield
    except SystemExit as e:
        by = who if raised_in(e, files) else "the cell"
        raise PluginFault(f"SystemExit: {by} called {exit_text(e)} {when}") from None
    except KeyboardInterrupt as e:
        if is_real_interrupt(e, files):
            raise
        raise PluginFault(f"KeyboardInterrupt: {who} raised KeyboardInterrupt {when} (no Ctrl-C was pressed)") \
            from None
