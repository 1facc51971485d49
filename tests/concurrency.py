"""Two real database sessions racing: the harness the lock tests share (PostgreSQL only; SQLite has
one writer, so the race cannot happen there)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from django.db import connections, transaction

from accounts.exceptions import IdentityError

SETTLE_SECONDS = 0.5


def _outcome(func: Callable[[], object]) -> str:
    try:
        func()
    except IdentityError as exc:
        return exc.code
    return "ok"


def race_held_open(hold: Callable[[], object], change: Callable[[], object]) -> tuple[str | None, str | None]:
    """Run ``hold`` in a transaction of one session, kept open until ``change`` has started in another
    session (and, if it waits for a lock ``hold`` took, is waiting); then commit. The outcome of
    each: ``"ok"``, the code of the ``IdentityError`` it raised, or ``None`` if it did not finish.

    A guard that judges before taking its lock passes ``change`` while ``hold``'s write is not yet
    visible; one that locks first waits, then sees it."""
    held, go = threading.Event(), threading.Event()
    outcome: dict[str, str] = {}

    def holding() -> None:
        try:
            def inside() -> None:
                with transaction.atomic():
                    hold()
                    held.set()
                    go.wait(timeout=10)  # commit only after the other session has started its change
            outcome["hold"] = _outcome(inside)
        finally:
            held.set()
            connections.close_all()

    def changing() -> None:
        try:
            held.wait(timeout=10)
            outcome["change"] = _outcome(change)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=holding), threading.Thread(target=changing)]
    for thread in threads:
        thread.start()
    held.wait(timeout=10)
    time.sleep(SETTLE_SECONDS)  # the change now waits for the lock (or, judged without it, is done)
    go.set()
    for thread in threads:
        thread.join(timeout=30)
    return outcome.get("hold"), outcome.get("change")
