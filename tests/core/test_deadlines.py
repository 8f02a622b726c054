"""The deadline watchdog on its own: alarms fire, cancelled ones do not and are let go."""

from __future__ import annotations

import threading
import time

from gatehouse_core.deadlines import COMPACT_AFTER, AttemptDeadline, Watchdog


def test_an_alarm_runs_its_action_at_its_time() -> None:
    watchdog = Watchdog()
    rang = threading.Event()

    watchdog.arm(time.monotonic() + 0.02, rang.set)

    assert rang.wait(5)


def test_a_cancelled_alarm_does_not_run_and_drops_its_action() -> None:
    watchdog = Watchdog()
    rang = threading.Event()
    later = threading.Event()
    alarm = watchdog.arm(time.monotonic() + 0.05, rang.set)
    alarm.cancel()
    watchdog.arm(time.monotonic() + 0.1, later.set)

    assert later.wait(5)  # the later alarm ran, so the cancelled one's time had passed
    assert not rang.is_set()
    assert alarm.action is None


def test_cancelled_alarms_do_not_pile_up() -> None:
    watchdog = Watchdog()
    far = time.monotonic() + 3600
    for _ in range(3 * COMPACT_AFTER):
        watchdog.arm(far, lambda: None).cancel()

    assert len(watchdog._heap) <= COMPACT_AFTER + 2


def test_a_deadline_that_passed_says_which_setting_set_it() -> None:
    deadline = AttemptDeadline(time.monotonic() - 1, "GATEHOUSE_REQUEST_TIMEOUT", 0.5)

    assert deadline.passed
    assert deadline.remaining() == 0.0
    assert deadline.message() == "no complete answer within 0.5s (GATEHOUSE_REQUEST_TIMEOUT)"


class _CountingCondition(threading.Condition):
    def __init__(self) -> None:
        super().__init__()
        self.notified = 0

    def notify(self, n: int = 1) -> None:
        self.notified += 1
        super().notify(n)


def test_an_earlier_alarm_wakes_the_thread_a_later_one_does_not() -> None:
    watchdog = Watchdog()
    watchdog._cond = _CountingCondition()
    rang = threading.Event()
    watchdog.arm(time.monotonic() + 3600, lambda: None)
    for _ in range(50):  # every call's deadline is later than the first: nothing to wake for
        watchdog.arm(time.monotonic() + 3601, lambda: None)
    woken_before = watchdog._cond.notified

    watchdog.arm(time.monotonic() + 0.02, rang.set)

    assert woken_before == 1  # the first alarm only
    assert watchdog._cond.notified == 2
    assert rang.wait(5)  # the thread, waiting an hour, was woken for the earlier alarm
