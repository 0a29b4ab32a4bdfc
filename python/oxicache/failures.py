"""The backend-failure policy: what a cache does when its storage fails or holds a damaged record.

Every cache takes ``on_backend_error``:

- ``"warn"`` (default): a memoized call still returns its computed value and emits one ``CacheWarning``;
  a damaged record reads as a miss with one ``CacheWarning`` and is overwritten by the next store.
- ``"raise"``: a memoized call raises ``BackendError`` (the original exception as ``__cause__``); a damaged
  record raises ``ValueDecodingError``.
- ``"ignore"``: as ``"warn"``, silently.

Every failure is counted in ``cache.stats()["backend_errors"]``. No policy ever returns a value that was
not computed for the call or read intact from its own record: a failure only turns a hit into a miss or
a store into no store. The direct API (``cache.get``/``set``/``remove``...) raises storage failures as
they are, since there storing is the point; damaged records follow the policy there too.
"""

from __future__ import annotations

from contextvars import ContextVar

from oxicache.callsite import warn
from oxicache.errors import BackendError, CacheWarning, ValueDecodingError, ValueNotAllowedError

__all__ = ["NOT_ALLOWED_RAISES", "POLICIES", "backend_failed", "check_policy", "damaged_record", "not_allowed_cause"]

POLICIES = ("warn", "raise", "ignore")

#: Set (in a context) by readers for which an intact record of a class this process does not revive must
#: not read as a miss, whatever the cache's policy: CacheKLStore, whose objects are there or not.
NOT_ALLOWED_RAISES: ContextVar[bool] = ContextVar("oxicache_not_allowed_raises", default=False)


def check_policy(policy: object) -> str:
    if policy not in POLICIES:
        msg = f"on_backend_error must be one of {', '.join(map(repr, POLICIES))}, got {policy!r}"
        raise ValueError(msg)
    return str(policy)


def damaged_record(policy: str, where: str, err: BaseException) -> None:
    """A stored record that cannot be read: a miss (with a warning under "warn"), or raised. A record of a
    class this process does not revive is intact, not damaged: it is reported with the fix instead."""
    not_allowed = not_allowed_cause(err)
    if not_allowed is not None:
        if policy == "raise" or NOT_ALLOWED_RAISES.get():
            raise ValueNotAllowedError(f"{not_allowed} ({where})") from err
        if policy == "warn":
            warn(f"oxicache: {not_allowed} ({where}); it counts as a miss", CacheWarning)
        return
    if policy == "raise":
        raise ValueDecodingError(f"damaged cache record ({where}): {err}") from err
    if policy == "warn":
        warn(
            f"oxicache: ignoring a damaged cache record ({where}): {err}; it counts as a miss and the next "
            "store of this key overwrites it",
            CacheWarning,
        )


def not_allowed_cause(err: BaseException | None) -> ValueNotAllowedError | None:
    """The ``ValueNotAllowedError`` behind ``err`` (itself, or a cause a backend wrapped it in), if any."""
    for _ in range(8):
        if err is None or isinstance(err, ValueNotAllowedError):
            return err
        err = err.__cause__
    return None


def backend_failed(policy: str, what: str, err: BaseException) -> None:
    """The storage failed during a memoized call; ``what`` says what it means for the call (e.g. "the
    result of f was not cached"). Raised as BackendError, warned, or ignored; the caller then goes on
    without the cache."""
    message = f"oxicache: {what}: the backend failed ({type(err).__name__}: {err})"
    if policy == "raise":
        raise BackendError(message) from err
    if policy == "warn":
        warn(message, CacheWarning)  # at the user's line (oxicache.callsite)
