"""Background work of a server process, through one helper.

Every task is named; an error that is not a cancellation is logged and the task keeps going; a
periodic task re-arms before it works (a slow tick does not push the schedule back); and
``stop()`` cancels everything and waits at most a timeout, logging what did not stop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Coroutine
from typing import Any

log = logging.getLogger(__name__)

Work = Callable[[], Awaitable[None]]


class BackgroundTasks:
    """The named tasks of one runtime. Start with ``every`` and ``forever``; end with ``stop``."""

    def __init__(self, stop_timeout_s: float) -> None:
        self.stop_timeout_s = stop_timeout_s
        self._tasks: dict[str, asyncio.Task[None]] = {}

    @property
    def names(self) -> list[str]:
        """The tasks still running."""
        return [name for name, task in self._tasks.items() if not task.done()]

    def every(self, name: str, interval_s: float, work: Work) -> None:
        """Run ``work`` every ``interval_s`` seconds (the first time at once)."""
        self._start(name, self._periodic(name, interval_s, work))

    def forever(self, name: str, work: Work, *, retry_s: float, max_retry_s: float = 30.0) -> None:
        """Run ``work`` (a loop that is not meant to return); if it fails or returns, log it and
        run it again after ``retry_s``, doubling up to ``max_retry_s`` while it keeps failing
        quickly."""
        self._start(name, self._restarting(name, work, retry_s, max_retry_s))

    def _start(self, name: str, coro: Coroutine[Any, Any, None]) -> None:
        if name in self._tasks and not self._tasks[name].done():
            coro.close()
            raise RuntimeError(f"background task {name!r} is already running")
        self._tasks[name] = asyncio.create_task(coro, name=f"pgpager-{name}")

    @staticmethod
    async def _periodic(name: str, interval_s: float, work: Work) -> None:
        deadline = time.monotonic()
        while True:
            deadline += interval_s  # re-arm first
            try:
                await work()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("background task %s failed; it runs again in %g s", name, interval_s)
            now = time.monotonic()
            deadline = max(deadline, now)  # after a tick longer than the interval, no burst
            await asyncio.sleep(deadline - now)

    @staticmethod
    async def _restarting(name: str, work: Work, retry_s: float, max_retry_s: float) -> None:
        delay = retry_s
        while True:
            started = time.monotonic()
            try:
                await work()
                log.warning("background task %s returned; starting it again", name)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "background task %s failed (%s: %s); starting it again in %g s",
                    name,
                    type(exc).__name__,
                    str(exc).strip().splitlines()[0] if str(exc).strip() else "",
                    delay,
                )
            # A run that lasted a while was healthy: start over from the short delay.
            delay = retry_s if time.monotonic() - started > max_retry_s else delay
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_retry_s)

    async def stop(self) -> None:
        """Cancel every task and wait up to ``stop_timeout_s`` for them to end."""
        tasks = list(self._tasks.values())
        self._tasks.clear()
        await cancel_and_wait(tasks, self.stop_timeout_s)


async def cancel_and_wait(tasks: Collection[asyncio.Task[Any]], timeout_s: float) -> None:
    """Cancel ``tasks``, wait up to ``timeout_s`` for them, log errors (not cancellations) and
    the tasks that did not stop."""
    for task in tasks:
        task.cancel()
    if not tasks:
        return
    done, pending = await asyncio.wait(tasks, timeout=timeout_s)
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            log.error("task %s ended with an error", task.get_name(), exc_info=task.exception())
    for task in pending:
        log.error("couldn't stop task %s within %g seconds", task.get_name(), timeout_s)
