"""Concurrent misses of one key compute once per process (threads), and the native call path releases
what it drops at once (no references parked until some later call)."""

import os
import signal
import sys
import threading
import time
import weakref

import pytest
from threads import run_in_threads

from oxicache import InMemCache


def test_concurrent_misses_compute_once_per_key():
    cache = InMemCache()
    computed = {}
    lock = threading.Lock()

    @cache.memoize
    def slow(key):
        with lock:
            computed[key] = computed.get(key, 0) + 1
        time.sleep(0.1)
        return ("value", key)

    results = []

    def call(key):
        results.append((key, slow(key)))

    calls = [(0,)] * 16 + [(k,) for k in range(1, 5) for _ in range(4)]
    run_in_threads(call, calls)
    assert computed == {0: 1, 1: 1, 2: 1, 3: 1, 4: 1}
    assert all(value == ("value", key) for key, value in results)
    assert len(results) == len(calls)
    info = slow.cache_info()
    assert info.hits + info.misses == len(calls)
    assert info.currsize == 5


def test_waiters_get_the_leaders_exception_and_nothing_is_stored():
    cache = InMemCache()
    runs = []

    @cache.memoize
    def failing(key):
        runs.append(key)
        time.sleep(0.1)
        raise ValueError(f"upstream failed for {key}")

    errors = []

    def call():
        try:
            failing(7)
        except ValueError as err:
            errors.append(str(err))

    run_in_threads(call, [()] * 8)
    assert runs == [7]
    assert errors == ["upstream failed for 7"] * 8
    assert len(cache) == 0
    with pytest.raises(ValueError):
        failing(7)  # not cached: the next call computes again
    assert runs == [7, 7]


def test_recursion_on_the_same_key_does_not_wait_on_itself():
    cache = InMemCache()
    depth = []

    @cache.memoize
    def again(x):
        depth.append(x)
        if len(depth) == 1:
            return again(x) + 1  # same key, same thread: computes instead of deadlocking
        return 1

    assert again(5) == 2
    assert len(depth) == 2


def test_miss_leaves_exactly_one_reference_in_the_store():
    cache = InMemCache()

    class Result:
        pass

    @cache.memoize
    def make(x):
        return Result()

    result = make(1)
    # this frame's variable + getrefcount's argument + the stored entry: nothing parked elsewhere
    assert sys.getrefcount(result) == 3


def test_evicted_results_die_without_any_other_call():
    cache = InMemCache(max_size=1)

    class Result:
        pass

    @cache.memoize
    def make(x):
        return Result()

    first = weakref.ref(make(1))
    assert first() is not None  # held by the cache
    make(2)  # evicts the first result through the native call path only
    assert first() is None


def assert_child_exits_cleanly(pid, hung):
    """The forked child ``pid`` exits with status 0 within 10 s; else it is killed and the test fails
    with ``hung``."""
    deadline = time.monotonic() + 10
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    if done[0] == 0:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        pytest.fail(hung)
    assert os.waitstatus_to_exitcode(done[1]) == 0


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
@pytest.mark.filterwarnings("ignore:.*multi-threaded.*fork:DeprecationWarning")  # the point of this test
def test_forked_child_does_not_wait_for_a_parent_thread_in_flight():
    cache = InMemCache()
    started = threading.Event()

    @cache.memoize
    def slow(key):
        started.set()
        time.sleep(1.0)
        return key

    worker = threading.Thread(target=slow, args=(1,))
    worker.start()
    assert started.wait(5)  # the parent's thread now leads the flight for key 1
    pid = os.fork()
    if pid == 0:  # child: the leader thread does not exist here
        code = 1
        try:
            code = 0 if slow(1) == 1 else 2
        finally:
            os._exit(code)
    worker.join()
    assert_child_exits_cleanly(pid, "the forked child waited forever for its parent's in-flight computation")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork()")
@pytest.mark.filterwarnings("ignore:.*multi-threaded.*fork:DeprecationWarning")  # the point of this test
def test_a_leader_that_forks_mid_call_finishes_in_both_processes():
    # A parent thread waits on the key (its flight exists) when the leader forks. In the child the
    # leader returns without touching the waiters' flight (they are the parent's threads); in the parent
    # the waiter gets the leader's value.
    cache = InMemCache()
    waiting, child = threading.Event(), []

    @cache.memoize
    def f(key):
        assert waiting.wait(5)
        time.sleep(0.2)  # the waiter is waiting on the flight by now
        pid = os.fork()
        if pid == 0:
            child.append(True)
        else:
            child.append(pid)
        return key * 2

    got = []

    def lead():
        got.append(f(1))
        if child[0] is True:  # the child (only this thread runs there): the call returned; leave at once
            os._exit(0 if got == [2] else 3)

    leader = threading.Thread(target=lead)
    leader.start()
    waiter = threading.Thread(target=lambda: (waiting.set(), got.append(f(1))))
    waiter.start()
    leader.join(10)
    waiter.join(10)
    assert got == [2, 2]
    pid = child[0]
    assert_child_exits_cleanly(pid, "the forked leader never finished in the child")
