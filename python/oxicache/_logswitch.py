"""The native memoizer's debug logging switch (rust/log.rs).

InMemCache's native wrapper answers a hit without Python code, so it cannot ask
``logger.isEnabledFor(DEBUG)`` per call at no cost. It reads one native flag instead, which this module
keeps equal to ``logging.getLogger("oxicache.memo").isEnabledFor(logging.DEBUG)``: every change of a
level in ``logging`` (``setLevel``, ``basicConfig``, ``dictConfig``, ``logging.disable``) clears the
manager's level cache, and the switch follows that call. (Assigning ``logger.level`` directly bypasses
it, as it bypasses ``isEnabledFor``'s own cache.) Events are then formatted as the Python engine's.
"""

from __future__ import annotations

import logging
from typing import Any

from oxicache._core import set_debug_logging

__all__ = ["follow_level"]

log = logging.getLogger("oxicache.memo")
_followed: list[Any] = []  # the manager whose cache clearing is followed (once per process)


def _native_event(event: str, name: str, number: int) -> None:
    if event == "evicted":
        log.debug("evicted %d %s on InMemCache storing %s (max_size reached: the least recently used go)", number,
                  "entry" if number == 1 else "entries", name)
    else:
        log.debug("%s %s key=%032x on InMemCache", event, name, number)


def _sync() -> None:
    set_debug_logging(log.isEnabledFor(logging.DEBUG), _native_event)


def follow_level() -> None:
    """Keeps the native flag equal to the logger's DEBUG level from now on (idempotent)."""
    manager: Any = logging.Logger.manager  # (its _clear_cache is private to logging: not in the stubs)
    if any(m is manager for m in _followed):
        return
    clear = manager._clear_cache

    def clear_and_sync() -> None:
        clear()
        _sync()

    manager._clear_cache = clear_and_sync
    _followed.append(manager)
    _sync()
