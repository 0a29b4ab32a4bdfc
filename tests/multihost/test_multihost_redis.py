"""RedisCache and ``shared_flight`` across hosts: three worker hosts and a server host, made with network
namespaces on this machine (multihost_support.py), a dedicated redis-server on the server host, and
worker processes started on the others with ``ip netns exec``. Each worker reaches Redis over its own
veth, so a host can be cut off the network while the others go on.

Needs root, iproute2 and redis-server: skipped without them, failed under OXICACHE_REQUIRE_SERVERS=1.
Run alone with ``python -m pytest tests/multihost``.
"""

from __future__ import annotations

import subprocess
import time

import pytest

from multihost_support import Fleet, child

redis = pytest.importorskip("redis")

PROCESSES = 4  # per host
THREADS = 4  # per process
KEYS = [3, 5, 7, 11, 13, 17]


# ---- 1. one execution per key across hosts -------------------------------------------------------------

STAMPEDE = """
import random

@cache.memoize(name="expensive")
def expensive(k):
    raw.incr(f"{prefix}:runs:{{k}}")
    time.sleep(0.3)
    return {{"k": k, "square": k * k, "text": "v" * k}}

warnings.simplefilter("error", oxicache.CacheWarning)  # a backend error would be a failure here
raw.incr("{prefix}:ready")
while not raw.exists("{prefix}:go"):
    time.sleep(0.005)
results, errors = [], []

def work(seed):
    order = list({keys!r})
    if {shuffle!r}:
        random.Random(seed).shuffle(order)
    try:
        for k in order:
            results.append((k, expensive(k)))
    except BaseException as exc:
        errors.append(repr(exc))

threads = [threading.Thread(target=work, args=(f"{{sys.argv[1]}}/{{i}}",)) for i in range({threads})]
for t in threads: t.start()
for t in threads: t.join()
assert not errors, errors
assert len(results) == {threads} * len({keys!r}), results
wrong = [(k, v) for k, v in results if v != {{"k": k, "square": k * k, "text": "v" * k}}]
assert not wrong, wrong
print("ok")
"""


def _stampede(fleet: Fleet, prefix: str, shuffle: bool, **options: object) -> dict[int, int]:
    """PROCESSES processes on each worker host, THREADS threads each, all calling every key of KEYS at
    once (released together by a flag on the server): how many times each key's function ran, in all."""
    raw = fleet.client()
    body = STAMPEDE.format(prefix=prefix, keys=KEYS, shuffle=shuffle, threads=THREADS)
    script = child(fleet.url, prefix, body, **options)
    workers = [fleet.python(host, script, f"{host}/{i}", stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for host in fleet.hosts for i in range(PROCESSES)]
    try:
        deadline = time.monotonic() + 60
        while int(raw.get(f"{prefix}:ready") or 0) < len(workers):
            assert time.monotonic() < deadline, "the workers did not start"
            exited = [w for w in workers if w.poll() is not None]
            assert not exited, [w.communicate() for w in exited]
            time.sleep(0.01)
        raw.set(f"{prefix}:go", 1)
        for w in workers:
            out, err = w.communicate(timeout=60)
            assert w.returncode == 0 and out.strip() == "ok", err
        return {k: int(raw.get(f"{prefix}:runs:{k}") or 0) for k in KEYS}
    finally:
        for w in workers:
            if w.poll() is None:
                w.kill()
                w.communicate()
        raw.close()


def test_one_execution_per_key_across_three_hosts(fleet: Fleet, prefix: str) -> None:
    """3 hosts x 4 processes x 4 threads call 6 keys (in a random order per thread), all at once: each
    key's function runs once in the whole fleet, and every call returns its own key's value."""
    runs = _stampede(fleet, prefix, shuffle=True, shared_flight=True, lease=5)
    assert runs == dict.fromkeys(KEYS, 1)


def test_without_shared_flight_each_process_computes(fleet: Fleet, prefix: str) -> None:
    """The control: the same fleet without ``shared_flight`` (keys in the same order everywhere, so all
    processes miss the first key together) runs a key once per process at most (the in-process
    single-flight), but more than once in the fleet: what the test above checks is the lease's work."""
    runs = _stampede(fleet, prefix, shuffle=False)
    assert runs[KEYS[0]] > 1, runs
    assert all(1 <= n <= len(fleet.hosts) * PROCESSES for n in runs.values()), runs


# ---- 2. a killed leader is taken over from another host ------------------------------------------------

LEASE = 2.0

SLOW = """
@cache.memoize(name="slow")
def slow(x):
    raw.rpush("{prefix}:started", sys.argv[1])
    time.sleep(float(sys.argv[2]))
    return {{"x": x, "times ten": x * 10}}

results = []
threads = [threading.Thread(target=lambda: results.append(slow(4))) for _ in range(2)]
for t in threads: t.start()
for t in threads: t.join()
assert results == [{{"x": 4, "times ten": 40}}] * 2, results
print("ok")
"""


def test_a_leader_killed_on_one_host_is_taken_over_by_another(fleet: Fleet, prefix: str) -> None:
    """The leader (on host 1) is killed with ``kill -9`` mid-call. The waiters on hosts 2 and 3 (two
    threads each) keep waiting while its lease is renewed, then one of them computes once the lease
    expires (within LEASE plus a lease check), and every waiter gets the right value."""
    raw = fleet.client()
    h1, h2, h3 = fleet.hosts
    script = child(fleet.url, prefix, SLOW.format(prefix=prefix), shared_flight=True, lease=LEASE)
    popen = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    leader = fleet.python(h1, script, h1, "60", **popen)
    followers = []
    try:
        assert raw.blpop(f"{prefix}:started", timeout=60) == (f"{prefix}:started".encode(), h1.encode())
        followers = [fleet.python(host, script, host, "0", **popen) for host in (h2, h3)]
        time.sleep(LEASE * 1.5)  # longer than the lease: only its renewals keep the followers waiting
        assert all(f.poll() is None for f in followers), [f.communicate() for f in followers if f.poll() is not None]
        assert raw.llen(f"{prefix}:started") == 0, "a follower computed while the leader was alive"
        leader.kill()  # kill -9 mid-call: nothing is released, the lease just stops being renewed
        killed = time.monotonic()
        took = []
        for f in followers:
            out, err = f.communicate(timeout=30)
            took.append(time.monotonic() - killed)
            assert f.returncode == 0 and out.strip() == "ok", err
        started = [s.decode() for s in raw.lrange(f"{prefix}:started", 0, -1)]
        assert len(started) == 1 and started[0] in (h2, h3), started  # one follower computed, on its host
        assert max(took) < LEASE + 3, f"took over {max(took):.1f}s after the kill with a {LEASE} s lease"
    finally:
        for p in (leader, *followers):
            if p.poll() is None:
                p.kill()
            p.communicate()
        raw.close()


# ---- 3 and 4. a host cut off the network, then back ------------------------------------------------------

TIMEOUT = 1.0
BOUND = TIMEOUT * 3 + 5  # seconds: any memoized call on a cut-off host, generously

AGENT = """
runs = []
pause = {{"seconds": 0.0}}

def square_on(policy):
    c = oxicache.RedisCache({url!r}, prefix={prefix!r}, shared_flight=True, lease={lease!r},
                            timeout={timeout!r}, connect_timeout={timeout!r}, on_backend_error=policy)

    @c.memoize(name="square")
    def square(x):
        runs.append(x)
        time.sleep(pause["seconds"])
        return {{"x": x, "square": x * x}}

    return square

square = {{"warn": square_on("warn"), "raise": square_on("raise")}}  # one function, two failure policies

for line in sys.stdin:
    command = json.loads(line)
    pause["seconds"] = command.get("sleep", 0.0)
    before, start = len(runs), time.monotonic()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            value, error = square[command["policy"]](command["x"]), None
        except Exception as exc:
            cause = exc.__cause__
            value, error = None, [type(exc).__name__, None if cause is None else type(cause).__module__ + "." + type(cause).__name__]
    print(json.dumps({{"value": value, "error": error, "ran": len(runs) - before, "elapsed": time.monotonic() - start,
                      "warnings": [[w.category.__name__, str(w.message)] for w in caught]}}), flush=True)
"""


def _value(x: int) -> dict[str, int]:
    return {"x": x, "square": x * x}


def _hit(reply: dict, x: int) -> None:
    assert (reply["value"], reply["ran"], reply["error"], reply["warnings"]) == (_value(x), 0, None, []), reply


def _computed(reply: dict, x: int) -> None:
    assert (reply["value"], reply["ran"], reply["error"], reply["warnings"]) == (_value(x), 1, None, []), reply


def _warned(reply: dict, x: int) -> None:
    """Computed on the cut-off host under "warn": the right value, one CacheWarning, in bounded time."""
    assert reply["error"] is None and reply["value"] == _value(x) and reply["ran"] == 1, reply
    assert [w[0] for w in reply["warnings"]] == ["CacheWarning"], reply["warnings"]  # one warning per call
    assert "the backend failed" in reply["warnings"][0][1], reply
    assert reply["elapsed"] < BOUND, reply


def _raised(reply: dict) -> None:
    """Under "raise": BackendError from redis-py's error, the function not run, in bounded time."""
    assert reply["value"] is None and reply["ran"] == 0 and reply["warnings"] == [], reply
    error, cause = reply["error"]
    assert error == "BackendError" and cause in ("redis.exceptions.ConnectionError", "redis.exceptions.TimeoutError"), reply
    assert reply["elapsed"] < BOUND, reply


@pytest.mark.parametrize("where", ["host", "server"], ids=["own-link-down", "silent-partition"])
def test_a_host_cut_off_gets_backend_errors_in_bounded_time_then_recovers(fleet: Fleet, prefix: str, where: str) -> None:
    """Host 3 is cut off: its own link down (sends fail at once), or the server's end of it down (what it
    sends is lost: only ``timeout`` ends a call). Under "warn" each of its calls returns the function's
    own value with one CacheWarning; under "raise" it raises BackendError; every call ends in bounded
    time, a call already waiting on another host's lease included; meanwhile host 1 goes on using the
    cache. Once the link is back, host 3 hits what host 1 stored while it was away, and host 1 hits what
    host 3 stores."""
    h1, _, h3 = fleet.hosts
    script = child(fleet.url, prefix, AGENT.format(url=fleet.url, prefix=prefix, lease=LEASE, timeout=TIMEOUT))
    peer, cut_off = fleet.agent(h1, script), fleet.agent(h3, script)
    cut = False
    try:
        _computed(cut_off.ask(policy="warn", x=1), 1)
        _hit(peer.ask(policy="warn", x=1), 1)  # shared across hosts

        # host 1 leads x=7 for a while; host 3 waits on its lease, and is cut off while it waits
        peer.send(policy="warn", x=7, sleep=4 * TIMEOUT)
        raw = fleet.client()
        deadline = time.monotonic() + 30
        while not any(raw.scan_iter(match=f"{prefix}:l:*")):
            assert time.monotonic() < deadline, "host 1 took no lease"
            time.sleep(0.01)
        raw.close()
        cut_off.send(policy="warn", x=7)
        time.sleep(0.5)
        fleet.cut(h3, where)
        cut, cut_at = True, time.monotonic()
        waiter = cut_off.reply(timeout=BOUND * 2)
        assert time.monotonic() - cut_at < BOUND, waiter
        _warned(waiter, 7)  # it stopped waiting and computed: the right value, never a hang

        _warned(cut_off.ask(policy="warn", x=1, timeout=BOUND * 2), 1)  # stored, but unreachable: computed
        _raised(cut_off.ask(policy="raise", x=2, timeout=BOUND * 2))
        _warned(cut_off.ask(policy="warn", x=3, timeout=BOUND * 2), 3)

        _computed(peer.reply(), 7)  # the leader of x=7 finished and stored it
        _computed(peer.ask(policy="warn", x=3), 3)  # what host 3 computed while cut off was not stored
        _computed(peer.ask(policy="warn", x=4), 4)

        fleet.restore(h3, where)
        cut = False
        restored, replies = time.monotonic(), []
        while True:  # the first calls after the link comes back may still fail (bounded, right values)
            reply = cut_off.ask(policy="warn", x=4, timeout=BOUND * 2)
            replies.append(reply)
            if reply["ran"] == 0:
                break
            _warned(reply, 4)
            assert time.monotonic() - restored < 10, f"host 3 did not recover within 10 s: {replies}"
        _hit(reply, 4)  # what host 1 stored while host 3 was cut off
        _hit(cut_off.ask(policy="raise", x=7), 7)
        _hit(cut_off.ask(policy="warn", x=1), 1)
        _computed(cut_off.ask(policy="warn", x=5), 5)
        _hit(peer.ask(policy="warn", x=5), 5)  # and host 3's stores reach the others again
    finally:
        if cut:
            fleet.restore(h3, where)
        for agent in (peer, cut_off):
            agent.stop()
