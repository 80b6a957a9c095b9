"""Admission: bounded in-flight and queue, refusal at once, queue timeout, draining."""

from __future__ import annotations

import asyncio

import pytest

from videomodel_server.admission import Admission
from videomodel_server.errors import Overloaded, Unavailable


async def test_in_flight_then_queue_then_refusal() -> None:
    admission = Admission(max_in_flight=1, max_queued=1, queue_timeout=5, retry_after=2)
    release = asyncio.Event()
    order: list[str] = []

    async def hold(name: str) -> None:
        async with admission.slot():
            order.append(name)
            await release.wait()

    first = asyncio.create_task(hold("first"))
    await asyncio.sleep(0)
    second = asyncio.create_task(hold("second"))
    await asyncio.sleep(0)
    assert (admission.in_flight, admission.queued) == (1, 1)
    with pytest.raises(Overloaded) as info:
        async with admission.slot():
            pass
    assert info.value.code == "queue_full" and info.value.retry_after == 2
    release.set()
    await asyncio.gather(first, second)
    assert order == ["first", "second"] and (admission.in_flight, admission.queued) == (0, 0)


async def test_queue_timeout() -> None:
    admission = Admission(max_in_flight=1, max_queued=4, queue_timeout=0.05, retry_after=1)
    async with admission.slot():
        with pytest.raises(Overloaded) as info:
            async with admission.slot():
                pass
    assert info.value.code == "queue_timeout" and admission.queued == 0


async def test_drain_stops_admitting_and_waits() -> None:
    admission = Admission(max_in_flight=2, max_queued=0, queue_timeout=1, retry_after=1)

    async def work() -> None:
        async with admission.slot():
            await asyncio.sleep(0.05)

    task = asyncio.create_task(work())
    await asyncio.sleep(0)
    assert await admission.drain(timeout=2)
    with pytest.raises(Unavailable, match="shutting down"):
        async with admission.slot():
            pass
    await task


async def test_cancelled_waiter_frees_its_queue_place() -> None:
    admission = Admission(max_in_flight=1, max_queued=1, queue_timeout=5, retry_after=1)
    async with admission.slot():

        async def wait() -> None:
            async with admission.slot():
                pass

        waiter = asyncio.create_task(wait())
        await asyncio.sleep(0.01)
        assert admission.queued == 1
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert admission.queued == 0
