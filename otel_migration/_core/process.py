"""What the process does around us: signal handlers that re-enter us, deadlines, and ``os.fork``.

Python runs a signal handler on the main thread *between two bytecodes of whatever that thread
was doing*; if it was inside our drain or a flush, holding a lock, a handler that calls
``shutdown()`` re-enters that code on the same thread and must neither wait for the lock it holds
(a deadlock) nor run the interrupted critical section a second time (a lost update). So every
section that holds our locks is marked :func:`busy`; work that would need those locks on a busy
thread runs on a helper thread instead, and waiting for it is deferred to the end of the
outermost busy section (:func:`wait_after_busy`), when the locks are free again.

Deadlines are total: :class:`Deadline` is handed down through everything a flush or shutdown
touches, and :func:`run_bounded` runs work an SDK may block in (an exporter to a collector that
accepts but never answers) on a daemon thread and stops waiting when the deadline passes.

A graceful stop by SIGTERM must not lose the last export interval: uvicorn (alone and under
gunicorn) re-raises SIGTERM once its own graceful shutdown is done, so ``atexit`` never runs.
:func:`install_sigterm_flush` chains a handler that flushes within a short deadline and then does
exactly what the previous handler would have done (calls it, or dies by the default action).

Fork: a pre-fork server's master often serves nothing; :func:`exports_as_instance` tells the
exporter not to report it as one more instance (see ``_export.pipeline``). Children start with
``served()`` false and their own state; the owners of that state reset it in their own
``os.register_at_fork`` hooks.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any, Final

__all__ = [
    "Deadline",
    "busy",
    "exports_as_instance",
    "install_sigterm_flush",
    "uninstall_sigterm_flush",
    "is_busy",
    "mark_served",
    "run_bounded",
    "served",
    "wait_after_busy",
]

_logger = logging.getLogger(__name__)
_local: Final = threading.local()
_served = False
_forked = False


class Deadline:
    """A point in time every step of one flush or shutdown shares (``timeout_millis`` from now)."""

    __slots__ = ("at",)

    def __init__(self, timeout_millis: float) -> None:
        self.at = time.monotonic() + max(0.0, timeout_millis) / 1000

    def remaining_s(self) -> float:
        return max(0.0, self.at - time.monotonic())

    def remaining_millis(self) -> float:
        return self.remaining_s() * 1000

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self.at


@contextmanager
def busy() -> Iterator[None]:
    """Mark this thread as inside a section that holds our locks (for a re-entering signal handler)."""
    depth = getattr(_local, "depth", 0)
    _local.depth = depth + 1
    try:
        yield
    finally:
        _local.depth = depth
        if depth == 0:
            _run_deferred()


def is_busy() -> bool:
    """True on a thread a signal handler interrupted inside one of our critical sections."""
    return getattr(_local, "depth", 0) > 0


def wait_after_busy(wait: Callable[[], object]) -> None:
    """Run ``wait`` when the outermost busy section of this thread ends (its locks released)."""
    pending: list[Callable[[], object]] = getattr(_local, "deferred", None) or []
    pending.append(wait)
    _local.deferred = pending


def _run_deferred() -> None:
    pending: list[Callable[[], object]] = getattr(_local, "deferred", None) or []
    _local.deferred = None
    for wait in pending:
        with contextlib.suppress(Exception):  # waits are bounded and guarded by their owners
            wait()


class _Job:
    """Work running on a daemon thread that the caller waits for only until its deadline."""

    def __init__(self, work: Callable[[], object], name: str) -> None:
        self._done = threading.Event()
        self._work = work
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def _run(self) -> None:
        try:
            self._work()
        finally:
            self._done.set()

    def wait(self, deadline: Deadline) -> bool:
        return self._done.wait(deadline.remaining_s())


def run_bounded(work: Callable[[], object], deadline: Deadline, name: str) -> bool:
    """Run ``work`` on a daemon thread; True when it finished before ``deadline``.

    Whatever ``work`` raises is its own to handle (it runs where no caller can catch it). On a
    thread a signal handler interrupted inside a busy section the wait happens after that
    section ends instead, so the helper can take the locks the interrupted code holds.
    """
    job = _Job(work, name)
    job.thread.start()
    if is_busy():
        wait_after_busy(lambda: job.wait(deadline))
        return False
    return job.wait(deadline)


class _ChainedHandler:
    """Flush, then defer to the handler that was there before us, as if we had never been."""

    def __init__(self, flush: Callable[[], object], previous: Any) -> None:
        self.flush = flush
        self.previous = previous

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        try:
            self.flush()
        except Exception:
            _logger.warning("otel-migration: flush on signal %d failed", signum, exc_info=True)
        previous = self.previous
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_DFL:
            # What the default action would have done: die by the signal (the exit status says so).
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)
        # SIG_IGN (or None: a handler not installed from Python): the signal stays ignored.


_sigterm: _ChainedHandler | None = None


def install_sigterm_flush(flush: Callable[[], object]) -> bool:
    """Chain ``flush`` in front of the process's SIGTERM handler; only possible on the main thread.

    Installed once; a later call only replaces what is flushed. Returns whether it is installed.
    """
    global _sigterm
    if threading.current_thread() is not threading.main_thread():
        return False
    installed = signal.getsignal(signal.SIGTERM)
    if isinstance(installed, _ChainedHandler) and installed is _sigterm:
        installed.flush = flush
        return True
    try:
        handler = _ChainedHandler(flush, signal.getsignal(signal.SIGTERM))
        signal.signal(signal.SIGTERM, handler)
    except (ValueError, OSError):  # not the main interpreter, or a platform without SIGTERM
        return False
    _sigterm = handler
    return True


def uninstall_sigterm_flush() -> None:
    """Put the previous SIGTERM handler back, if ours is still the one installed (main thread only)."""
    global _sigterm
    if _sigterm is None or threading.current_thread() is not threading.main_thread():
        return
    try:
        installed = signal.getsignal(signal.SIGTERM)
        if isinstance(installed, _ChainedHandler) and installed is _sigterm:
            previous = installed.previous if installed.previous is not None else signal.SIG_DFL
            signal.signal(signal.SIGTERM, previous)
    except (ValueError, OSError):
        return
    _sigterm = None


def mark_served() -> None:
    """This process recorded a call of its own (called once per process, not per call)."""
    global _served
    _served = True


def served() -> bool:
    return _served


def exports_as_instance() -> bool:
    """False for a pre-fork master that forked workers and served no call itself: not an instance."""
    return _served or not _forked


def _after_fork_in_parent() -> None:
    global _forked
    _forked = True


def _after_fork_in_child() -> None:
    global _served, _forked
    _served = _forked = False


os.register_at_fork(after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child)
