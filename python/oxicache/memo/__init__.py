"""The memoize layer: what ``cache.memoize`` and ``cache.batch_memoize`` build over a cache.

- ``engine``: decides, once per decorated function, how its calls are keyed and looked up: the native
  ``Memoizer`` on a cache with a native store (InMemCache), else ``PythonMemo`` over the backend primitives
  (through ``BaseCache.engine_view()``);
- ``wrappers``: the wrapper of each kind of function (plain, coroutine, generator, async generator) over an
  engine, storing only complete, successful results;
- ``batch``: per-item caching of functions that take a list;
- ``signature``: binding arguments to parameters and the exclusion rules;
- ``async_flight``: single-flight among the tasks of one event loop (threads use the native one);
- ``protocols``: the static types of memoized functions (``oxicache.Memoized`` and friends).

Internal: import the public names from ``oxicache``.
"""
