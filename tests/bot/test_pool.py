"""The audio workers' fair queue: no server waits behind another server's batch."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from bot.errors import MimiError
from bot.pool import WarmPool


def slow_echo(label: str, seconds: float) -> tuple[str, int]:
    """Worker task: sleep, then say who ran it where."""
    time.sleep(seconds)
    return label, os.getpid()


def other_task(label: str, seconds: float) -> tuple[str, int]:
    """A second kind of task (another lane of the same guild)."""
    return slow_echo(label, seconds)


@pytest.fixture
async def pool(frontend_weights: Path):
    """One warm worker, as the bot runs it."""
    p = WarmPool("audio", frontend_weights, workers=1)
    p.start()
    await p.run(int, 0)
    yield p
    await p.close()


async def test_a_batch_does_not_starve_another_server(pool: WarmPool) -> None:
    """Server A queues 6 songs, then server B one guess: B runs right after A's current song,
    and A's own guess interleaves with A's songs instead of waiting behind all of them."""
    done: list[str] = []

    async def call(fn, label: str, guild: int) -> None:
        done.append((await pool.run(fn, label, 0.3, guild=guild))[0])

    tasks = [asyncio.create_task(call(slow_echo, f"A{i}", 1)) for i in range(6)]
    await asyncio.sleep(0.05)
    tasks.append(asyncio.create_task(call(slow_echo, "B0", 2)))
    tasks.append(asyncio.create_task(call(other_task, "Aguess", 1)))
    await asyncio.sleep(0.05)
    assert pool.queued() == 7
    await asyncio.gather(*tasks)
    assert done[:4] == ["A0", "B0", "Aguess", "A1"]
    assert sorted(done) == sorted([*(f"A{i}" for i in range(6)), "B0", "Aguess"])
    assert pool.queued() == 0


async def test_a_caller_that_gives_up_costs_no_work(pool: WarmPool) -> None:
    """A queued call whose caller was cancelled is skipped, never run."""
    first = asyncio.create_task(pool.run(slow_echo, "first", 0.5, guild=1))
    await asyncio.sleep(0.05)
    ghost = asyncio.create_task(pool.run(slow_echo, "ghost", 5.0, guild=2))
    await asyncio.sleep(0.05)
    ghost.cancel()
    started = time.monotonic()
    assert (await first)[0] == "first"
    assert (await pool.run(slow_echo, "next", 0.0, guild=3))[0] == "next"
    assert time.monotonic() - started < 3.0  # the 5-second ghost never ran


async def test_close_answers_waiting_callers(frontend_weights: Path) -> None:
    """Calls still queued when the pool closes get a clear error, not a hang; the running one
    finishes."""
    p = WarmPool("audio", frontend_weights, workers=1)
    running = asyncio.create_task(p.run(slow_echo, "running", 0.5, guild=1))
    waiting = asyncio.create_task(p.run(slow_echo, "waiting", 0.5, guild=2))
    await asyncio.sleep(0.1)
    await p.close()
    with pytest.raises(MimiError, match="shutting down"):
        await waiting
    assert (await running)[0] == "running"  # a call already running finishes


async def test_idle_workers_exit_and_come_back(frontend_weights: Path) -> None:
    """After `idle_s` without a call the workers exit (their memory with them); the next call
    starts a fresh one and is answered."""
    p = WarmPool("audio", frontend_weights, workers=1, idle_s=0.5)
    try:
        _, first = await p.run(slow_echo, "one", 0.0, guild=1)
        deadline = time.monotonic() + 30
        while Path(f"/proc/{first}").exists() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert not Path(f"/proc/{first}").exists()
        assert p.pids() == [] and p.state() == p.heal() == "idle"
        label, second = await p.run(slow_echo, "two", 0.0, guild=1)
        assert label == "two" and second != first and p.state() == "ok"
    finally:
        await p.close()
