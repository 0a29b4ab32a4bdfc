"""What a forked child must do before it touches a cache: one registry, one ``os.register_at_fork``.

A child of ``fork()`` inherits its parent's open files, connections and in-flight state, but not the
parent's other threads. Each piece of state that must not be used as it is in the child registers here:
process-wide state with ``in_child(hook)``, a cache instance with ``in_child_of(cache, hook)`` (held weakly:
registering never keeps a cache alive). The hooks run in the child, in registration order, before it
returns from ``fork()``.
"""

from __future__ import annotations

import os
import threading
import weakref
__all__ = ["in_child", "in_child_of"]

TYPE_CHECKING = False  # not typing's: `import oxicache` does not load typing (oxicache/_light.py)
if TYPE_CHECKING:
    from typing import Any, Callable, TypeVar

    T = TypeVar("T")

_lock = threading.Lock()
_hooks: list[Callable[[], None]] = []
_instances: list[tuple[weakref.ref[Any], Callable[[Any], None]]] = []


def in_child(hook: Callable[[], None]) -> None:
    """Run ``hook()`` in every forked child."""
    with _lock:
        _hooks.append(hook)


def in_child_of(obj: T, hook: Callable[[T], None]) -> None:
    """Run ``hook(obj)`` in every forked child while ``obj`` lives."""
    with _lock:
        _instances[:] = [(ref, h) for ref, h in _instances if ref() is not None]  # drop the dead ones
        _instances.append((weakref.ref(obj), hook))


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # another thread may have held it at fork time
    for hook in list(_hooks):
        hook()
    for ref, instance_hook in list(_instances):
        obj = ref()
        if obj is not None:
            instance_hook(obj)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
