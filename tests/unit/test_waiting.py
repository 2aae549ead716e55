"""The one waiting helper: returns the first truthy answer, never sleeps past its deadline, says what timed out.

A fake clock stands in for time: ``sleep`` advances it, so the tests assert on the pauses taken, not on how long
the test ran.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from mlplatform.waiting import WaitTimeoutError, wait_until


class FakeClock:
    """Monotonic time that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def answers(*values: object) -> Callable[[], object]:
    """A check that returns ``values`` in turn, then keeps returning the last one."""
    queue: Iterator[object] = iter(values)
    last: list[object] = [None]

    def check() -> object:
        last[0] = next(queue, last[0])
        return last[0]

    return check


def test_returns_the_first_truthy_value_without_pausing_when_it_is_there_at_once() -> None:
    clock = FakeClock()

    assert wait_until(answers("ready"), timeout=5, interval=1, what="x", clock=clock, sleep=clock.sleep) == "ready"
    assert clock.sleeps == []


def test_falsy_answers_are_waited_through_and_the_first_truthy_one_is_returned() -> None:
    clock = FakeClock()

    check = answers(None, False, 0, "", {"run": 1})
    found = wait_until(check, timeout=60, interval=2, what="x", clock=clock, sleep=clock.sleep)

    assert found == {"run": 1}
    assert clock.sleeps == [2, 2, 2, 2]


def test_times_out_naming_what_was_awaited_and_the_last_state() -> None:
    clock = FakeClock()

    with pytest.raises(WaitTimeoutError) as raised:
        wait_until(
            answers(None),
            timeout=3,
            interval=1,
            what="the model server",
            on_timeout=lambda: "still serving v1",
            clock=clock,
            sleep=clock.sleep,
        )

    assert str(raised.value) == "timed out after 3s waiting for the model server: still serving v1"
    assert (raised.value.what, raised.value.timeout, raised.value.detail) == ("the model server", 3, "still serving v1")
    assert isinstance(raised.value, TimeoutError)


def test_never_sleeps_past_the_deadline_and_asks_once_more_at_it() -> None:
    clock = FakeClock()
    calls: list[float] = []

    def check() -> None:
        calls.append(clock.now)

    with pytest.raises(WaitTimeoutError, match=r"waiting for x$"):
        wait_until(check, timeout=5, interval=2, what="x", clock=clock, sleep=clock.sleep)

    assert clock.sleeps == [2, 2, 1]  # the last pause is cut to the deadline
    assert calls == [100, 102, 104, 105]  # the last question is asked at the deadline itself


def test_progress_runs_before_each_pause_not_before_giving_up() -> None:
    clock = FakeClock()
    progress: list[float] = []

    with pytest.raises(WaitTimeoutError):
        wait_until(
            answers(None),
            timeout=2,
            interval=1,
            what="x",
            on_wait=lambda: progress.append(clock.now),
            clock=clock,
            sleep=clock.sleep,
        )

    assert progress == [100, 101]


def test_an_error_raised_by_the_check_stops_the_wait_at_once() -> None:
    clock = FakeClock()

    def check() -> None:
        raise RuntimeError("the process exited")

    with pytest.raises(RuntimeError, match="the process exited"):
        wait_until(check, timeout=60, interval=1, what="x", clock=clock, sleep=clock.sleep)
    assert clock.sleeps == []


def test_a_zero_timeout_asks_once() -> None:
    clock = FakeClock()

    with pytest.raises(WaitTimeoutError):
        wait_until(answers(None), timeout=0, interval=1, what="x", clock=clock, sleep=clock.sleep)
    assert clock.sleeps == []
