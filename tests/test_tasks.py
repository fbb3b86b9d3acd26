"""The background-task helper: named tasks that survive their errors, re-arm before they work,
and stop within a timeout that names what did not stop. (Pure asyncio: no database here.)"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time

import pytest

from pgpager.tasks import BackgroundTasks

from .helpers import eventually


async def test_a_periodic_task_keeps_going_after_errors(caplog: pytest.LogCaptureFixture) -> None:
    tasks = BackgroundTasks(stop_timeout_s=1)
    runs: list[float] = []

    async def work() -> None:
        runs.append(time.monotonic())
        if len(runs) <= 2:
            raise RuntimeError(f"failure {len(runs)}")

    with caplog.at_level(logging.ERROR, logger="pgpager.tasks"):
        tasks.every("flaky", 0.01, work)
        await eventually(lambda: len(runs) >= 5, what="five runs")
        await tasks.stop()
    assert "background task flaky failed" in caplog.text and "failure 2" in caplog.text
    assert tasks.names == []


async def test_a_periodic_task_re_arms_before_it_works() -> None:
    """A tick that takes longer than the interval does not push the schedule back by its own
    length each time: the next tick starts as soon as the slow one ends."""
    tasks = BackgroundTasks(stop_timeout_s=1)
    starts: list[float] = []

    async def slow() -> None:
        starts.append(time.monotonic())
        await asyncio.sleep(0.4)

    tasks.every("slow", 0.5, slow)
    await eventually(lambda: len(starts) >= 3, what="three ticks")
    await tasks.stop()
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    # Re-armed before the work, ticks are 0.5 s apart; counted after it, they would be 0.9 s.
    assert all(g < 0.8 for g in gaps), gaps


async def test_a_loop_that_fails_is_started_again(caplog: pytest.LogCaptureFixture) -> None:
    tasks = BackgroundTasks(stop_timeout_s=1)
    starts = 0

    async def loop() -> None:
        nonlocal starts
        starts += 1
        if starts < 3:
            raise ConnectionError("lost")
        await asyncio.Event().wait()

    with caplog.at_level(logging.WARNING, logger="pgpager.tasks"):
        tasks.forever("listener", loop, retry_s=0.01)
        await eventually(lambda: starts == 3, what="third start")
        assert tasks.names == ["listener"]
        await tasks.stop()
    assert "background task listener failed (ConnectionError: lost)" in caplog.text


async def test_stop_gives_up_after_its_timeout_and_says_which(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tasks = BackgroundTasks(stop_timeout_s=0.2)

    async def stubborn() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            await asyncio.sleep(1)  # takes longer to stop than the stop timeout allows
            raise

    tasks.every("stubborn", 10, stubborn)
    await asyncio.sleep(0.01)
    [task] = [t for t in asyncio.all_tasks() if t.get_name() == "pgpager-stubborn"]
    with caplog.at_level(logging.ERROR, logger="pgpager.tasks"):
        started = time.monotonic()
        await tasks.stop()
        assert time.monotonic() - started < 0.9, "stop did not wait for the task to end"
    assert "couldn't stop task pgpager-stubborn within 0.2 seconds" in caplog.text
    assert not task.done()
    await asyncio.gather(task, return_exceptions=True)
