"""The dispatcher and the failure breaker on their own: indices, cap, concurrency, interrupts."""

import asyncio

import pytest

from synthgen.dispatch import Dispatcher, FailureWindow, request_cap


def run(dispatcher: Dispatcher, handle) -> None:
    asyncio.run(dispatcher.run(handle))


def test_indices_go_out_in_order_skipping_finished_ones():
    seen = []

    async def handle(index):
        seen.append(index)
        return index % 3 != 0  # every third fails and is replaced by the next index

    dispatcher = Dispatcher(target=5, cap=100, concurrency=1, finished={1, 4})
    run(dispatcher, handle)
    assert seen == [0, 2, 3, 5, 6, 7, 8, 9, 10]
    assert dispatcher.outcome == "complete" and dispatcher.succeeded == 5


def test_the_cap_counts_earlier_sessions_and_ends_the_run():
    sent = []

    async def handle(index):
        sent.append(index)
        return False

    dispatcher = Dispatcher(target=3, cap=10, concurrency=4, finished={0, 1, 2})
    run(dispatcher, handle)
    assert len(sent) == 7 and dispatcher.requests == 10 and dispatcher.outcome == "capped"
    assert request_cap(100, 1.5) == 160


def test_no_more_in_flight_than_still_needed():
    peak = 0
    in_flight = 0

    async def handle(index):
        nonlocal peak, in_flight
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return True

    dispatcher = Dispatcher(target=3, cap=100, concurrency=16)
    run(dispatcher, handle)
    assert peak == 3 and dispatcher.requests == 3


def test_a_stop_ends_sending_and_an_exception_is_raised():
    async def handle(index):
        if index == 2:
            dispatcher.stop("enough")
        return True

    dispatcher = Dispatcher(target=100, cap=1000, concurrency=1)
    run(dispatcher, handle)
    assert dispatcher.requests == 3 and dispatcher.outcome == "stopped" and dispatcher.stop_reason == "enough"

    async def broken(index):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        run(Dispatcher(target=5, cap=10, concurrency=2), broken)


def test_one_interrupt_lets_requests_in_flight_finish_and_a_second_cancels_them():
    finished = []

    async def first(index):
        if index == 0:
            asyncio.get_running_loop().call_later(0.05, dispatcher.interrupt)
        await asyncio.sleep(0.2)
        finished.append(index)
        return True

    dispatcher = Dispatcher(target=100, cap=1000, concurrency=2)
    run(dispatcher, first)
    assert sorted(finished) == [0, 1] and dispatcher.outcome == "interrupted"

    finished.clear()

    async def second(index):
        loop = asyncio.get_running_loop()
        if index == 0:
            loop.call_later(0.05, dispatcher.interrupt)
            loop.call_later(0.1, dispatcher.interrupt)
        await asyncio.sleep(5)
        finished.append(index)
        return True

    dispatcher = Dispatcher(target=100, cap=1000, concurrency=2)
    run(dispatcher, second)
    assert finished == [] and dispatcher.outcome == "interrupted" and dispatcher.requests == 2


def test_the_breaker_stops_an_endpoint_that_never_answered_at_once():
    window = FailureWindow(opening=3)
    assert window.record(True, "refused") is None
    assert window.record(True, "refused") is None
    assert "every request so far failed (3 of them); last error: refused" == window.record(True, "refused")


def test_the_breaker_stops_when_most_recent_requests_fail():
    window = FailureWindow(size=50, share=0.5, minimum=20, opening=3)
    assert window.record(False) is None
    reasons = [window.record(i % 4 != 0, "down") for i in range(19)]  # 3 of 4 fail
    assert all(reason is None for reason in reasons[:18])
    assert reasons[18] is not None and reasons[18].startswith("most requests fail")
