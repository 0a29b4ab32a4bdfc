"""DatabaseCache against a server that stops answering: every call ends in bounded time (issue #11).

A SIGSTOPped server, a frozen VM and a partition that drops packets look the same to the client: the
connection stays open and nothing comes back. The tests put a loopback proxy between the cache and the
real PostgreSQL or MariaDB server (``FreezableProxy``): forwarding bytes both ways, until ``freeze()``
stops it forwarding and accepting while every socket stays open, and ``thaw()`` resumes it. No driver
is mocked.

With ``timeout=T`` the server cancels a statement after T s, and the client gives up on a server that
says nothing after T plus a grace of min(T, 1 s): a memoized call then returns its computed value with
warnings ("warn"), raises ``BackendError`` ("raise"), and the direct API raises
``DatabaseConnectionError``. For T s afterwards the cache does not try the server again (calls fail at
once); then it reconnects, and hits and stores work again. Each test carries its own watchdog
(pytest-timeout): without the deadlines these calls hang until the proxy thaws, that is forever.
"""

from __future__ import annotations

import datetime
import socket
import threading
import time
import uuid
import warnings
from typing import Any, Callable, Iterator

import pytest

sa = pytest.importorskip("sqlalchemy")

from servers import MYSQL_URL_ENV, PG_URL_ENV, make_engine, require_server  # noqa: E402

import oxicache  # noqa: E402
from oxicache import BackendError, CacheWarning  # noqa: E402
from oxicache.backends.database import DEFAULT_TIMEOUT, DatabaseCache, DatabaseConnectionError  # noqa: E402

T = 1.0  # the tests' timeout: seconds
GIVE_UP = T + min(T, 1.0)  # when the client gives up on a silent server
SLACK = 1.5  # scheduling on a loaded 2-core machine
BOUND = GIVE_UP + SLACK  # a call against a frozen server ends within this
CONNECT_BOUND = 2.0 + SLACK  # libpq waits at least 2 s to connect; PyMySQL T for the TCP connect, GIVE_UP for the greeting
SERVERS = {"postgresql": PG_URL_ENV, "mysql": MYSQL_URL_ENV}


class FreezableProxy:
    """Forwards bytes between a loopback port and a server. ``freeze()`` stops forwarding in both
    directions and stops accepting (new connections wait in the listen queue, as with a stopped
    server), keeping every socket open; ``thaw()`` resumes; ``sever()`` closes the connections made so
    far (the server's end of them is gone, as after a restart)."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        self.port: int = self.listener.getsockname()[1]
        self.running = threading.Event()
        self.running.set()
        self.closed = False
        self.lock = threading.Lock()
        self.sockets: list[socket.socket] = []
        self.threads = [threading.Thread(target=self._accept, daemon=True)]
        self.threads[0].start()

    def freeze(self) -> None:
        self.running.clear()

    def thaw(self) -> None:
        self.running.set()

    def sever(self) -> None:
        with self.lock:
            held, self.sockets = self.sockets, []
        for sock in held:
            _close(sock)

    def close(self) -> None:
        self.closed = True
        self.running.set()  # wakes every thread, which then sees `closed`
        self.sever()
        _close(self.listener)
        for t in self.threads:
            t.join(5)

    def _forwarding(self) -> bool:
        """Waits while frozen (an event, re-checked every second for close()); False once closed."""
        while not self.running.wait(1.0):
            if self.closed:
                return False
        return not self.closed

    def _accept(self) -> None:
        while self._forwarding():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self._forwarding():  # frozen while accept() waited: this one waits too
                _close(client)
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _close(client)
                continue
            upstream.settimeout(None)
            with self.lock:
                self.sockets += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                t = threading.Thread(target=self._pump, args=(src, dst), daemon=True)
                t.start()
                self.threads.append(t)

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        while self._forwarding():
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            if not self._forwarding():  # frozen while recv() waited: hold the bytes
                return
            try:
                if not data:
                    dst.shutdown(socket.SHUT_WR)
                    return
                dst.sendall(data)
            except OSError:
                return


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()


@pytest.fixture(params=list(SERVERS))
def server(request: pytest.FixtureRequest) -> Iterator[tuple[str, Any]]:
    """(dialect, URL) of a real server."""
    yield request.param, sa.engine.make_url(require_server(SERVERS[request.param]))


@pytest.fixture
def proxied(server: tuple[str, Any]) -> Iterator[Callable[..., tuple[DatabaseCache, FreezableProxy]]]:
    """Builds DatabaseCaches on a fresh table, reached through a FreezableProxy; drops the table."""
    _, url = server
    table = f"t_{uuid.uuid4().hex[:12]}"
    made: list[tuple[DatabaseCache, FreezableProxy]] = []

    def build(**options: Any) -> tuple[DatabaseCache, FreezableProxy]:
        proxy = FreezableProxy(url.host or "127.0.0.1", url.port)
        options.setdefault("timeout", T)
        cache = DatabaseCache(url=url.set(host="127.0.0.1", port=proxy.port), table=table, **options)
        made.append((cache, proxy))
        return cache, proxy

    yield build
    for cache, proxy in made:
        proxy.close()
        cache.close()
    engine = make_engine(url.render_as_string(hide_password=False))
    with engine.begin() as conn:
        conn.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))
    engine.dispose()


def memoized(cache: DatabaseCache) -> tuple[Callable[[int], int], list[int]]:
    runs: list[int] = []

    @cache.memoize(name="f")
    def f(x: int) -> int:
        runs.append(x)
        return x * 10

    return f, runs


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    started = time.monotonic()
    return fn(), time.monotonic() - started


def pause_over(cache: DatabaseCache) -> None:
    """Waits out the pause after a timeout (at most T s), during which the cache does not try the
    server: a clock, not another thread, decides when it ends."""
    left = cache._down_until - time.monotonic()
    assert left <= T
    time.sleep(max(0.0, left))


@pytest.mark.timeout(60)
def test_a_frozen_server_costs_one_timeout_then_calls_fail_fast_and_recover(proxied) -> None:  # type: ignore[no-untyped-def]
    cache, proxy = proxied()
    f, runs = memoized(cache)
    assert f(1) == 10 and f(1) == 10 and runs == [1]  # stored, then a hit
    proxy.freeze()
    with pytest.warns(CacheWarning) as caught:
        value, took = timed(lambda: f(1))
    assert value == 10 and runs == [1, 1]  # computed again and returned
    assert T <= took < BOUND, took
    messages = [str(w.message) for w in caught]
    # the lookup timed out; the store right after failed at once (the cache does not retry the server
    # yet): one warning for the call, both failures counted
    assert len(messages) == 1, messages
    assert "ran without the cache" in messages[0], messages
    assert "DatabaseConnectionError" in messages[0] and "did not answer within 2 s" in messages[0], messages
    assert ":***@" in messages[0] and f":{cache.engine.url.password}@" not in messages[0]

    with pytest.warns(CacheWarning):
        value, took = timed(lambda: f(2))  # while the cache does not try the server: no wait at all
    assert value == 20 and took < 0.5, took

    proxy.thaw()
    pause_over(cache)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # recovered at once: no more warnings
        assert cache.get(f, x=1) == 10  # the entry stored before the freeze
        assert f(1) == 10 and f(3) == 30 and f(3) == 30
    assert runs == [1, 1, 2, 3]  # a hit, then one store and its hit
    assert cache.get(f, x=3) == 30
    assert cache.stats()["backend_errors"] == 4  # two calls, each a failed lookup and a failed store


@pytest.mark.timeout(60)
def test_raise_policy_raises_backend_error_in_bounded_time(proxied) -> None:  # type: ignore[no-untyped-def]
    cache, proxy = proxied(on_backend_error="raise")
    f, runs = memoized(cache)
    assert f(1) == 10
    proxy.freeze()
    started = time.monotonic()
    with pytest.raises(BackendError, match="ran without the cache") as caught:
        f(1)
    assert time.monotonic() - started < BOUND
    assert isinstance(caught.value.__cause__, DatabaseConnectionError)
    assert runs == [1]  # the function did not run
    proxy.thaw()
    pause_over(cache)
    assert f(1) == 10 and runs == [1]  # a hit again


@pytest.mark.timeout(60)
def test_the_direct_api_raises_a_clear_error_in_bounded_time(proxied) -> None:  # type: ignore[no-untyped-def]
    cache, proxy = proxied()
    cache.set("g", output=1, x=1)
    proxy.freeze()
    started = time.monotonic()
    with pytest.raises(DatabaseConnectionError) as caught:
        cache.get("g", x=1)
    assert time.monotonic() - started < BOUND
    message = str(caught.value)
    assert "did not answer within 2 s" in message and "not tried again for 1 s" in message, message
    assert "127.0.0.1" in message and ":***@" in message and f":{cache.engine.url.password}@" not in message
    assert isinstance(caught.value, ConnectionError) and isinstance(caught.value, oxicache.CacheError)
    for call in (lambda: cache.set("g", output=2, x=2), lambda: len(cache), cache.clear):
        started = time.monotonic()
        with pytest.raises(DatabaseConnectionError, match="not tried again for another"):
            call()
        assert time.monotonic() - started < 0.5  # at once: the cache knows the server is not answering
    proxy.thaw()
    pause_over(cache)
    assert cache.get("g", x=1) == 1
    cache.set("g", output=2, x=2)
    assert cache.get("g", x=2) == 2 and len(cache) == 2


@pytest.mark.timeout(60)
@pytest.mark.parametrize("where", ["pooled", "after-the-pause"])
def test_every_statement_is_bounded_while_frozen(proxied, where: str) -> None:  # type: ignore[no-untyped-def]
    """Several pooled connections (threads warmed them) lead to the frozen server; after the cache's
    pause it tries again: a new connection, which the frozen server never answers, is bounded too."""
    cache, proxy = proxied()
    cache.set("g", output=1, x=1)
    threads = [threading.Thread(target=lambda: [cache.get("g", x=1) for _ in range(20)]) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    before = set(cache._pool.members) | {cache.engine.pool}  # the cache's connections, SQLAlchemy's pool
    assert len(before) > 2
    proxy.freeze()
    started = time.monotonic()
    with pytest.raises(DatabaseConnectionError, match="did not answer"):
        cache.get("g", x=1)
    assert time.monotonic() - started < BOUND
    assert len(cache._pool.idle) == 0  # no connection to the frozen server is kept for the next call
    if where == "after-the-pause":
        pause_over(cache)  # still frozen
        started = time.monotonic()
        with pytest.raises(DatabaseConnectionError, match="cannot be connected to|did not answer"):
            cache.get("g", x=1)  # a new connection, to the frozen server
        assert time.monotonic() - started < max(BOUND, CONNECT_BOUND)
    proxy.sever()  # the old connections die (a restart during the outage)
    proxy.thaw()
    pause_over(cache)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cache.get("g", x=1) == 1  # at the first try
        cache.set("g", output=2, x=1)
        assert cache.get("g", x=1) == 2
    assert not before & (set(cache._pool.members) | {cache.engine.pool})  # none of the old ones is used


@pytest.mark.timeout(60)
def test_a_statement_the_server_cancels_is_an_error_not_an_outage(proxied, server) -> None:  # type: ignore[no-untyped-def]
    """A statement held up by a lock (a live server, just slow) is cancelled by the server after T s:
    an ordinary error; the cache goes on using the server at once."""
    dialect, url = server
    cache, _ = proxied()
    cache.set("g", output=1, x=1)
    engine = make_engine(url.render_as_string(hide_password=False))
    try:
        with engine.connect() as holder:
            trans = holder.begin()
            holder.execute(sa.text(f"SELECT * FROM {cache.table.name} FOR UPDATE"))  # locks the row
            started = time.monotonic()
            with pytest.raises(Exception) as caught:  # noqa: PT011 - the server's own error
                cache.set("g", output=2, x=1)
            took = time.monotonic() - started
            trans.rollback()
    finally:
        engine.dispose()
    assert not isinstance(caught.value, DatabaseConnectionError), caught.value
    text = str(caught.value).lower()
    assert "statement timeout" in text or "max_statement_time" in text, text
    assert T * 0.9 <= took < GIVE_UP + SLACK, took
    assert cache.get("g", x=1) == 1  # the server is used at once; the old value is kept
    cache.set("g", output=3, x=1)
    assert cache.get("g", x=1) == 3


@pytest.mark.timeout(60)
def test_the_timeouts_reach_the_drivers_and_the_server(proxied, server) -> None:  # type: ignore[no-untyped-def]
    dialect, _ = server
    cache, _ = proxied()
    default, _ = proxied(timeout=None)
    overridden, _ = proxied(engine_options={"connect_args": (
        {"options": "-c statement_timeout=4321"} if dialect == "postgresql"
        else {"read_timeout": 33, "init_command": "SET SESSION max_statement_time = 4.5"})})
    with cache.engine.connect() as c, default.engine.connect() as d, overridden.engine.connect() as o:
        if dialect == "postgresql":
            show = sa.text("SELECT current_setting('statement_timeout')")
            assert [x.execute(show).scalar() for x in (c, d, o)] == ["1s", "15s", "4321ms"]
            params = c.connection.dbapi_connection.info.get_parameters()
            assert params["connect_timeout"] == "1" and params["keepalives_idle"] == "1"
            assert params["tcp_user_timeout"] == "2000"
        else:
            show = sa.text("SELECT @@max_statement_time")
            assert [float(x.execute(show).scalar()) for x in (c, d, o)] == [1.0, 15.0, 4.5]
            assert [x.connection.dbapi_connection._read_timeout for x in (c, d, o)] == [2.0, 16.0, 33]
            assert c.connection.dbapi_connection._write_timeout == 2.0
    assert DEFAULT_TIMEOUT == 15.0


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["silent-listener", "full-listen-queue"])
def test_connecting_to_a_server_that_never_answers_fails_in_bounded_time(server, kind: str) -> None:  # type: ignore[no-untyped-def]
    """A listener that accepts TCP connections but never says a word (a stopped server), and one whose
    listen queue is full so connection attempts get no answer at all (a host gone from the network)."""
    dialect, url = server
    listener = socket.create_server(("127.0.0.1", 0), backlog=0)
    port = listener.getsockname()[1]
    filling: list[socket.socket] = []
    try:
        if kind == "full-listen-queue":
            filling.append(socket.create_connection(("127.0.0.1", port), timeout=5))  # takes the one place
        started = time.monotonic()
        with pytest.raises(DatabaseConnectionError, match="cannot open") as caught:
            DatabaseCache(url=url.set(host="127.0.0.1", port=port), timeout=T)
        took = time.monotonic() - started
    finally:
        for sock in filling:
            sock.close()
        listener.close()
    assert took < CONNECT_BOUND, took
    assert f"127.0.0.1:{port}" in str(caught.value) and f":{url.password}@" not in str(caught.value)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), "soon"])
def test_a_bad_timeout_is_refused_naming_it(bad: object, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=r"timeout=.* is not a positive, finite duration; give seconds") as caught:
        DatabaseCache(database=str(tmp_path / "c.db"), timeout=bad)  # type: ignore[arg-type]
    assert repr(bad) in str(caught.value)
    assert not (tmp_path / "c.db").exists()  # refused before anything was created


@pytest.mark.timeout(60)
@pytest.mark.parametrize("bad", [True, [1]])
def test_a_timeout_of_another_type_is_a_type_error_naming_it(bad: object, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(TypeError, match=r"timeout=.*: timeout must be seconds, a timedelta or a string") as caught:
        DatabaseCache(database=str(tmp_path / "c.db"), timeout=bad)  # type: ignore[arg-type]
    assert repr(bad) in str(caught.value) and "no expiry" not in str(caught.value)
    assert not (tmp_path / "c.db").exists()


@pytest.mark.timeout(60)
def test_sqlite_takes_the_timeout_as_its_busy_timeout(tmp_path) -> None:  # type: ignore[no-untyped-def]
    def busy(cache: DatabaseCache) -> int:
        with cache.engine.connect() as conn:
            return int(conn.exec_driver_sql("PRAGMA busy_timeout").scalar())

    assert busy(DatabaseCache(database=str(tmp_path / "a.db"))) == 30_000
    assert busy(DatabaseCache(database=str(tmp_path / "b.db"), timeout="2.5s")) == 2_500
    assert busy(DatabaseCache(database=":memory:", timeout=datetime.timedelta(seconds=4))) == 4_000
