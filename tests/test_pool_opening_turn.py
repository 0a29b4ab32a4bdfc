"""The SQL pool's opening turn (python/oxicache/backends/_sql.py): one call at a time opens a connection,
and a turn whose call is over never blocks the others, even when a kept traceback keeps its ticket alive.
The turn's liveness is read from the opening thread's stack by faulthandler, never by walking another
thread's frames with ``f_back`` (which crashed CPython 3.11 in CI)."""

from __future__ import annotations

import threading

from oxicache.backends import _sql


class _Engine:
    """Stands for a SQLAlchemy engine in ``Checkout``: connecting blocks until ``release`` is set."""

    def __init__(self) -> None:
        self.entered, self.release = threading.Event(), threading.Event()


def test_a_thread_opening_a_connection_holds_the_turn_until_its_wait_ends(monkeypatch) -> None:
    engine = _Engine()

    class Blocking:
        def __init__(self, *args: object) -> None:
            engine.entered.set()
            assert engine.release.wait(10)
            self.generation = 0

    monkeypatch.setattr(_sql, "Checkout", Blocking)
    pool = _sql.Pool(engine, None)  # type: ignore[arg-type]
    opener = threading.Thread(target=pool.take)
    opener.start()
    assert engine.entered.wait(10)
    ticket = pool.opening() if pool.opening is not None else None
    assert ticket is not None and ticket.thread == opener.ident
    assert ticket.running()  # seen from this thread: the opener is inside Pool._wait
    assert _sql._in_pool_wait(opener.ident)
    engine.release.set()
    opener.join(10)
    assert not _sql._in_pool_wait(opener.ident)  # gone from its stack with the call
    assert pool.opening is None


def test_a_ticket_kept_alive_after_its_call_does_not_count() -> None:
    """A kept traceback keeps the interrupted call's ticket alive: it must not count as an opening call,
    neither for its own thread asking again nor for another thread."""
    kept: list[_sql._Ticket] = []
    done = threading.Event()

    def interrupted_opener() -> None:
        kept.append(_sql._Ticket())  # as if its _wait was interrupted and a traceback kept the ticket
        assert not kept[0].running()  # its own thread asking again: the earlier call is over
        done.set()

    t = threading.Thread(target=interrupted_opener)
    t.start()
    t.join(10)
    assert done.is_set() and not kept[0].running()
    # a live thread that is elsewhere than Pool._wait does not hold the turn either
    parked, release = threading.Event(), threading.Event()

    def elsewhere() -> None:
        kept.append(_sql._Ticket())
        parked.set()
        release.wait(10)

    t2 = threading.Thread(target=elsewhere)
    t2.start()
    assert parked.wait(10)
    try:
        assert not kept[1].running()
    finally:
        release.set()
        t2.join(10)
