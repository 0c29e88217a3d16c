"""The periodic job helper: runs, survives failures, stops at once, runs a final time."""

from __future__ import annotations

import asyncio
import logging

import pytest

from apitokenproxy.periodic import Periodic

# Tiny, so a test waits for runs without sleeping; long, so none comes unasked.
TICK = 0.001
NEVER = 3600.0


class Counting:
    """A job that counts its runs and sets an event at the ``until``-th."""

    def __init__(self, until: int = 1) -> None:
        self.runs = 0
        self.until = until
        self.reached = asyncio.Event()

    async def __call__(self) -> None:
        self.runs += 1
        if self.runs >= self.until:
            self.reached.set()


async def test_the_job_runs_every_interval() -> None:
    job = Counting(until=3)
    periodic = Periodic(job, TICK, name="test job")
    periodic.start()
    await asyncio.wait_for(job.reached.wait(), 5)
    await periodic.stop()
    assert job.runs >= 3


async def test_the_first_run_waits_for_the_first_delay() -> None:
    job = Counting()
    periodic = Periodic(job, NEVER, name="test job", first_delay_seconds=0)
    periodic.start()
    await asyncio.wait_for(job.reached.wait(), 5)
    await periodic.stop()
    assert job.runs == 1  # the next one is an hour away


async def test_a_failing_job_is_logged_and_runs_again(caplog: pytest.LogCaptureFixture) -> None:
    calls = 0
    again = asyncio.Event()

    async def flaky() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("store down")
        again.set()

    periodic = Periodic(flaky, TICK, name="flaky job")
    with caplog.at_level(logging.ERROR, logger="apitokenproxy.periodic"):
        periodic.start()
        await asyncio.wait_for(again.wait(), 5)
        await periodic.stop()
    assert [r.getMessage() for r in caplog.records] == [
        f"flaky job failed; it runs again in {TICK:g} s"
    ]
    assert caplog.records[0].exc_info is not None


async def test_a_job_may_ask_for_its_next_run_sooner() -> None:
    job = Counting(until=2)

    async def retrying() -> float:
        await job()
        return TICK

    periodic = Periodic(retrying, NEVER, name="retrying job", first_delay_seconds=0)
    periodic.start()
    await asyncio.wait_for(job.reached.wait(), 5)
    await periodic.stop()
    assert job.runs >= 2


@pytest.mark.parametrize("final", [True, False])
async def test_stop_ends_the_wait_at_once_and_runs_a_final_time_if_asked(final: bool) -> None:
    job = Counting()
    periodic = Periodic(job, NEVER, name="test job", final=final)
    periodic.start()
    await asyncio.sleep(0)  # the task is waiting for its first run
    await asyncio.wait_for(periodic.stop(), 1)
    assert job.runs == (1 if final else 0)


async def test_a_final_run_happens_even_if_never_started() -> None:
    job = Counting()
    await Periodic(job, NEVER, name="test job", final=True).stop()
    assert job.runs == 1


class Slow:
    """A job that waits for ``release``; ``started`` is set when it runs."""

    def __init__(self) -> None:
        self.started, self.release = asyncio.Event(), asyncio.Event()
        self.finished = False

    async def __call__(self) -> None:
        self.started.set()
        await self.release.wait()
        self.finished = True


async def test_a_run_under_way_gets_the_grace_to_finish() -> None:
    job = Slow()
    periodic = Periodic(job, NEVER, name="slow job", first_delay_seconds=0, grace_seconds=5)
    periodic.start()
    await asyncio.wait_for(job.started.wait(), 5)
    stopping = asyncio.create_task(periodic.stop())
    await asyncio.sleep(0)
    assert not stopping.done()  # waiting for the run under way
    job.release.set()
    await asyncio.wait_for(stopping, 5)
    assert job.finished


@pytest.mark.parametrize("grace", [0.0, 0.001])
async def test_a_run_that_outlasts_the_grace_is_cancelled(grace: float) -> None:
    job = Slow()
    periodic = Periodic(job, NEVER, name="slow job", first_delay_seconds=0, grace_seconds=grace)
    periodic.start()
    await asyncio.wait_for(job.started.wait(), 5)
    await asyncio.wait_for(periodic.stop(), 5)
    job.release.set()
    await asyncio.sleep(0)
    assert not job.finished
