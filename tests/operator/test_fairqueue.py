"""The fair scan slots: a group with thousands queued never starves another group's scan,
no slot is ever leaked by a cancelled waiter, and positions follow the grant order."""

from __future__ import annotations

import asyncio

import pytest

from modelsec_operator.fairqueue import FairSlots


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_urgent_scan_of_another_group_goes_before_a_bulk_import() -> None:
    slots = FairSlots(2)
    granted: list[str] = []

    async def scan(group: str, key: str, release: asyncio.Event) -> None:
        async with slots.slot(group, key):
            granted.append(key)
            await release.wait()

    release = asyncio.Event()
    bulk = [asyncio.create_task(scan("import", f"bulk-{i}", release)) for i in range(500)]
    await _settle()
    urgent = asyncio.create_task(scan("team-b", "urgent", release))
    await _settle()
    assert granted == ["bulk-0", "bulk-1"]
    assert slots.positions()["urgent"] == 1  # next in line, ahead of 498 earlier arrivals
    release.set()
    await asyncio.wait_for(asyncio.gather(*bulk, urgent), 10)
    assert granted.index("urgent") == 2
    assert slots.running == 0 and slots.waiting == 0


async def test_groups_alternate_and_each_group_is_fifo() -> None:
    slots = FairSlots(1)
    order: list[str] = []
    gate = asyncio.Event()

    async def scan(group: str, key: str) -> None:
        async with slots.slot(group, key):
            order.append(key)
            await gate.wait()

    first = asyncio.create_task(scan("a", "a0"))
    await _settle()
    tasks = [asyncio.create_task(scan("a", f"a{i}")) for i in range(1, 4)]
    await _settle()
    tasks += [asyncio.create_task(scan("b", f"b{i}")) for i in range(3)]
    await _settle()
    assert slots.positions() == {"a1": 2, "b0": 1, "b1": 3, "a2": 4, "b2": 5, "a3": 6}
    gate.set()
    await asyncio.wait_for(asyncio.gather(first, *tasks), 10)
    assert order == ["a0", "b0", "a1", "b1", "a2", "b2", "a3"]


async def test_cancelled_waiters_leave_the_queue_and_never_leak_a_slot() -> None:
    slots = FairSlots(1)
    holder = slots.enqueue("a", "holder")
    await slots.wait(holder)
    waiter = asyncio.create_task(slots.wait(slots.enqueue("a", "w")))
    await _settle()
    assert slots.waiting == 1
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert slots.waiting == 0 and slots.running == 1
    # A waiter granted a slot and cancelled before it ran gives the slot back.
    late = slots.enqueue("b", "late")
    slots.release("a")
    assert late.granted.done()
    slots.cancel(late)
    assert slots.running == 0


async def test_adopted_scans_count_against_the_limit() -> None:
    slots = FairSlots(2)
    for _ in range(3):  # three Jobs found running after a restart, one over the limit
        slots.adopt("a")
    ticket = slots.enqueue("b", "new")
    await _settle()
    assert not ticket.granted.done()
    slots.release("a")
    await _settle()
    assert not ticket.granted.done()  # still 2 running: the limit holds
    slots.release("a")
    assert ticket.granted.done()


def test_limit_must_be_positive() -> None:
    with pytest.raises(ValueError):
        FairSlots(0)
    with pytest.raises(RuntimeError):
        FairSlots(1).release("nobody")
