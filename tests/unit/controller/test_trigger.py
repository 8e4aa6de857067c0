"""A driver's wake-ups: at once after a quiet spell, at most one per debounce in a burst (fake time)."""

from __future__ import annotations

import asyncio

import pytest
from kubedask_controller.trigger import Trigger

pytestmark = pytest.mark.looptime


async def test_a_pull_after_a_quiet_spell_wakes_at_once_and_a_burst_waits_for_the_debounce() -> None:
    loop = asyncio.get_running_loop()
    trigger = Trigger(debounce=0.2)
    start = loop.time()
    await trigger.wait(None)  # the first pass: no waiting
    assert loop.time() == start
    trigger.pull()
    await trigger.wait(None)  # right after a pass: held back to one per debounce
    assert loop.time() == pytest.approx(start + 0.2)
    await asyncio.sleep(5)
    trigger.pull()
    woke = loop.time()
    await trigger.wait(None)  # after a quiet spell: at once (a new request, a kubectl patch)
    assert loop.time() == woke
    assert not trigger.pulled


async def test_pulls_during_the_hold_make_no_extra_pass_and_a_timer_wakes_without_a_pull() -> None:
    loop = asyncio.get_running_loop()
    trigger = Trigger(debounce=0.2)
    await trigger.wait(None)
    trigger.pull()
    waiting = asyncio.ensure_future(trigger.wait(None))
    await asyncio.sleep(0.1)
    trigger.pull()  # within the hold: covered by the pass about to start
    await waiting
    assert not trigger.pulled
    start = loop.time()
    await trigger.wait(3.0)
    assert loop.time() == pytest.approx(start + 3.0)
