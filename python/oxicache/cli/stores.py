"""The command's store plumbing: parsing ``disk:PATH`` / ``json:PATH`` / ``sqlite:PATH`` / database URLs,
opening them without creating anything a read must not create, entry filters and key arguments."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import re
import sqlite3
import sys
import warnings
from collections import Counter
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Generator, Iterator
from urllib.parse import unquote

from oxicache._core import CacheEntry
from oxicache.base import BaseCache
from oxicache.errors import CacheError, CacheWarning

__all__ = ["CliError", "Filters", "StoreSpec", "allow_classes", "capture_damage", "mask_password", "open_store",
           "parse_store", "printable", "whole_ints"]

DEFAULT_TABLE = "oxicache_entries"
# URL schemes DatabaseCache reads (a scheme without a driver gets psycopg 3 / PyMySQL).
_URL_SCHEMES = {
    "postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg2",
    "mysql", "mysql+pymysql", "mariadb", "mariadb+pymysql", "sqlite",
}
_REDIS_SCHEMES = {"redis", "rediss", "unix"}
DEFAULT_PREFIX = "oxicache"
_SPEC_HELP = ("use disk:PATH, json:PATH, sqlite:PATH, a database URL "
              "(postgresql://USER:PASSWORD@HOST/DB, mysql://..., sqlite:///PATH) or a Redis URL (redis://HOST:PORT/DB)")


class CliError(Exception):
    """Bad input or an unusable store: printed as one line on stderr, exit status 2, nothing written."""


# ---- what the command prints ---------------------------------------------------------------------

# Characters a terminal may act on rather than show: C0 controls (ESC starts escape sequences, CR
# overwrites the line), DEL, C1 controls (U+009B is an 8-bit CSI), the bidirectional formatting
# characters (U+202E reverses what follows), and lone surrogates (stdout cannot encode them).
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_SHORT_ESCAPES = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}
_JSON_LAYOUT = "\t\n\r"  # whitespace a JSON text may hold between its tokens


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _SHORT_ESCAPES.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def _json_escape(match: re.Match[str]) -> str:
    char = match.group()
    return char if char in _JSON_LAYOUT else f"\\u{ord(char):04x}"


def printable(text: str, *, as_json: bool = False) -> str:
    """``text`` safe to print on a terminal: every character a terminal could act on (see
    ``_UNPRINTABLE``) written as an escape, ``\\x1b``, ``\\r``, ``\\u202e``, so a stored string can
    neither move the cursor, recolour nor reorder the output. Escapes are plain ASCII, one column per
    character, so tables stay aligned. Backslashes are left as they are: the text stays readable, and
    ``--json`` gives the exact value.

    ``as_json``: ``text`` is a JSON text; the characters are written as JSON ``\\uXXXX`` escapes instead,
    so it decodes to the same value (the codec's JSON leaves DEL, C1 and bidi characters raw).
    """
    if not _UNPRINTABLE.search(text):
        return text
    return _UNPRINTABLE.sub(_json_escape if as_json else _escape, text)


@contextlib.contextmanager
def whole_ints() -> Iterator[None]:
    """Python's limit on int/str conversion (``sys.set_int_max_str_digits``, 4300 digits) lifted for the
    block: a store may hold larger ints (binary records carry them whole), and what the command writes
    as text (``show``, ``--json``, ``export``, reading an export back) must hold them exactly."""
    before = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        yield
    finally:
        sys.set_int_max_str_digits(before)


# The values of URL query parameters that may carry a secret (?password=..., &sslpassword=...).
_SECRET_PARAM = re.compile(r"([?&;][^=&;#]*(?:pass|pwd|secret|token)[^=&;#]*=)([^&;#]*)", re.IGNORECASE)


def _password_span(text: str) -> tuple[int, int] | None:
    """Where the password of a database URL is in ``text`` (a URL, or a store argument that may be a
    mistyped one), or None when it has none. Conservative: a password written without percent-encoding
    may hold "/", ":", "?" and "@", so the span runs from the first ":" of the user part to the *last*
    "@" (SQLAlchemy stops at the first "@", and shows the rest of such a password as the host)."""
    at = text.rfind("@")
    if at < 0:
        return None
    scheme, sep, rest = text.partition("://")
    if sep and scheme.lower().startswith("sqlite") and rest.startswith("/"):
        return None  # sqlite:///PATH: a file, no user or password
    start = len(scheme) + 3 if sep and len(scheme) < at else 0
    colon = text.find(":", start, at)
    return None if colon < 0 else (colon + 1, at)


def mask_password(text: str) -> str:
    """``text`` with the password of a database URL in it shown as ``***`` (as SQLAlchemy renders a URL
    with ``hide_password=True``), also where SQLAlchemy would show part of it, or cannot parse the URL."""
    span = _password_span(text)
    if span is not None:
        text = f"{text[:span[0]]}***{text[span[1]:]}"
    return _SECRET_PARAM.sub(r"\1***", text)


@dataclass(frozen=True)
class StoreSpec:
    kind: str  # "disk", "json", "sqlite" (a file path), "url" (a database server or sqlite:/// URL) or "redis"
    target: str
    table: str
    prefix: str = DEFAULT_PREFIX  # RedisCache's key prefix

    def masked(self) -> str:
        """The store as given, password hidden (not escaped: for JSON output)."""
        if self.kind in ("url", "redis"):
            return mask_password(self.target)
        return f"{self.kind}:{self.target}"

    def __str__(self) -> str:
        return printable(self.masked())

    def scrub(self, detail: str) -> str:
        """A driver's or SQLAlchemy's message about this store, without anything that could be part of its
        password (they name the host, which holds the rest of a password with an unencoded "@")."""
        if self.kind not in ("url", "redis"):
            return detail
        secrets = [m.group(2) for m in _SECRET_PARAM.finditer(self.target)]
        span = _password_span(self.target)
        if span is not None:
            password = self.target[span[0]:span[1]]
            if "@" in password:
                return "the error is not shown, as it may hold part of the password (write @ in a password as %40)"
            user = self.target[:span[0] - 1].rpartition("/")[2]
            if unquote(password) != unquote(user):  # a password equal to the user name is shown as the user
                secrets.append(password)
        for secret in sorted({s for raw in secrets for s in (raw, unquote(raw)) if s}, key=len, reverse=True):
            detail = re.sub(rf"(?<![^\W_]){re.escape(secret)}(?![^\W_])", "***", detail)
        return detail

    def sqlite_file(self) -> str | None:
        """The SQLite file a sqlite:PATH spec or sqlite:/// URL names (None for servers and :memory:)."""
        if self.kind == "sqlite":
            return self.target
        if self.kind == "url" and self.target.lower().startswith("sqlite:"):
            from sqlalchemy.engine import make_url

            database = make_url(self.target).database
            return None if database in (None, "", ":memory:") else database
        return None


def parse_store(text: str, table: str | None, prefix: str | None = None) -> StoreSpec:
    """``disk:PATH``, ``json:PATH``, ``sqlite:PATH``, a database URL or a Redis URL; ``CliError`` for
    anything else."""
    if "://" in text:
        scheme = text.split("://", 1)[0].lower()
        if scheme in _REDIS_SCHEMES:
            if table is not None:
                msg = "--table applies to SQLite files and database URLs; a Redis store takes --prefix"
                raise CliError(msg)
            return StoreSpec("redis", text, DEFAULT_TABLE, prefix or DEFAULT_PREFIX)
        if scheme not in _URL_SCHEMES:
            msg = f"unknown database URL scheme {scheme!r} in {mask_password(text)!r}; {_SPEC_HELP}"
            raise CliError(msg)
        return StoreSpec("url", text, table or DEFAULT_TABLE)
    kind, sep, path = text.partition(":")
    if not sep or kind not in ("disk", "json", "sqlite"):
        hint = " (an existing path: say which kind of store it is)" if os.path.exists(text) else ""
        msg = f"cannot parse the store {mask_password(text)!r}{hint}; {_SPEC_HELP}"
        raise CliError(msg)
    if not path:
        msg = f"the store {mask_password(text)!r} names no path; {_SPEC_HELP}"
        raise CliError(msg)
    if table is not None and kind != "sqlite":
        msg = f"--table applies to SQLite files and database URLs, not to {kind}:PATH"
        raise CliError(msg)
    if prefix is not None:
        msg = f"--prefix applies to Redis stores, not to {kind}:PATH"
        raise CliError(msg)
    return StoreSpec(kind, os.path.expanduser(path), table or DEFAULT_TABLE)


def _check_table_name(spec: StoreSpec) -> None:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,62}", spec.table):
        msg = f"--table must be a plain SQL identifier, got {spec.table!r}"
        raise CliError(msg)


def _check_exists(spec: StoreSpec) -> None:
    """A read must find the store, not create an empty one."""
    if spec.kind == "disk":
        if not os.path.isfile(os.path.join(spec.target, "cache.db")):
            what = "no such folder" if not os.path.exists(spec.target) else "no cache.db in it"
            msg = f"no DiskCache at {spec.target!r} ({what})"
            raise CliError(msg)
        return
    if spec.kind == "json":
        if not os.path.isdir(spec.target):
            msg = f"no JsonCache folder at {spec.target!r}"
            raise CliError(msg)
        return
    path = spec.sqlite_file()
    if path is not None:
        if not os.path.isfile(path):
            msg = f"no SQLite file at {path!r}"
            raise CliError(msg)
        try:  # read-only: never creates or changes the file
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
                found = conn.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (spec.table,)).fetchone()
            conn.close()
        except sqlite3.DatabaseError as err:
            msg = f"{path!r} is not a readable SQLite database: {err}"
            raise CliError(msg) from None
        if not found:
            msg = f"the SQLite file {path!r} has no table {spec.table!r} (choose one with --table)"
            raise CliError(msg)
        return
    if spec.kind == "url":
        _check_server_table(spec)
    if spec.kind == "redis":
        _check_redis(spec)


def _check_redis(spec: StoreSpec) -> None:
    """The server answers (a Redis store exists as soon as its server does: an unused prefix is empty)."""
    try:
        import redis
    except ImportError:
        msg = f"reading {spec} needs the redis package; pip install 'oxicache[redis]'"
        raise CliError(msg) from None
    try:
        client = redis.Redis.from_url(spec.target, socket_connect_timeout=10, socket_timeout=10)
        try:
            client.ping()
        finally:
            client.close()
    except (redis.RedisError, ValueError) as err:
        msg = f"cannot connect to {spec}: {spec.scrub(str(err))}"
        raise CliError(msg) from None


def _check_server_table(spec: StoreSpec) -> None:
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    url = sqlalchemy.engine.make_url(spec.target)
    driver = {"postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg", "mysql": "mysql+pymysql",
              "mariadb": "mariadb+pymysql"}.get(url.drivername)
    if driver:
        url = url.set(drivername=driver)
    try:
        engine = sqlalchemy.create_engine(url, poolclass=NullPool, connect_args={"connect_timeout": 10})
    except ImportError as err:
        extra = "postgresql" if url.get_backend_name() == "postgresql" else "mysql"
        msg = f"no driver for {spec} ({spec.scrub(str(err))}); pip install 'oxicache[{extra}]'"
        raise CliError(msg) from None
    try:
        with engine.connect() as conn:
            found = sqlalchemy.inspect(conn).has_table(spec.table)
    except sqlalchemy.exc.SQLAlchemyError as err:
        first = (str(getattr(err, "orig", None) or err).strip().splitlines() or [""])[0]
        msg = f"cannot connect to {spec}: {spec.scrub(first)}"
        raise CliError(msg) from None
    finally:
        engine.dispose()
    if not found:
        msg = f"the database {spec} has no table {spec.table!r} (choose one with --table)"
        raise CliError(msg)


def open_store(spec: StoreSpec, *, create: bool = False) -> BaseCache:
    """The cache ``spec`` names. Unless ``create``, the store must already exist (reads, removals and
    verification never create one)."""
    if spec.kind in ("sqlite", "url"):
        _check_table_name(spec)
    try:
        if not create:
            _check_exists(spec)
        elif spec.kind == "redis":
            _check_redis(spec)  # nothing to create: the server must answer
        if spec.kind == "disk":
            from oxicache.backends.disk import DiskCache

            return DiskCache(spec.target)
        if spec.kind == "json":
            from oxicache.backends.jsonfile import JsonCache

            return JsonCache(spec.target)
        if spec.kind == "redis":
            from oxicache.backends.rediscache import RedisCache

            return RedisCache(spec.target, prefix=spec.prefix)
        from oxicache.backends.database import DatabaseCache

        if spec.kind == "sqlite":
            return DatabaseCache(provider="sqlite", database=spec.target, table=spec.table)
        return DatabaseCache(url=spec.target, table=spec.table)
    except CliError:
        raise
    except (CacheError, OSError, ImportError, ValueError, TypeError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        msg = f"cannot open {spec}: {spec.scrub(first)}"
        raise CliError(msg) from None


def allow_classes(names: list[str]) -> None:
    """``--allow module:QualName``: import each class (the working directory is importable, as with
    ``python -m``) and let the codec revive its instances."""
    if not names:
        return
    from oxicache.codec import allow

    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    for name in names:
        module_name, sep, qualname = name.partition(":")
        if not sep or not module_name or not qualname:
            msg = f"--allow takes module:QualName (as in a stored value's type name), got {name!r}"
            raise CliError(msg)
        if module_name == "__main__":
            msg = (f"--allow {name}: a class defined in the script that was run (__main__) cannot be imported by "
                   f"the CLI (here __main__ is the CLI itself); move {qualname} into a module (e.g. models.py, "
                   f"imported by the script; entries stored from then on name models:{qualname}), or read these "
                   f"entries from Python, where the script's class is allowed by memoize")
            raise CliError(msg)
        try:
            obj: Any = importlib.import_module(module_name)
            for part in qualname.split("."):
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as err:
            msg = f"--allow {name}: cannot import it ({err})"
            raise CliError(msg) from None
        try:
            allow(obj)
        except (TypeError, ValueError) as err:
            msg = f"--allow {name}: {err}"
            raise CliError(msg) from None


# ---- entries -------------------------------------------------------------------------------------

def key_hex(key: int) -> str:
    return f"{key:032x}"


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


@dataclass
class Filters:
    """--func, --tag, --annotated and --annotation KEY=VALUE (all given must match)."""

    funcs: list[str] = field(default_factory=list)
    annotated: bool = False
    annotations: list[tuple[str, str | None]] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)  # any of them (memoize(tags=...), metadata["tags"])

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Filters:
        pairs: list[tuple[str, str | None]] = []
        for item in getattr(args, "annotation", None) or []:
            key, sep, value = item.partition("=")
            if not key:
                msg = f"--annotation takes KEY=VALUE or KEY, got {item!r}"
                raise CliError(msg)
            pairs.append((key, value if sep else None))
        tags = list(getattr(args, "tag", None) or [])
        for tag in tags:
            if not tag:
                raise CliError("--tag takes a non-empty tag name")
        return cls(list(getattr(args, "func", None) or []), bool(getattr(args, "annotated", False)), pairs, tags)

    def active(self) -> bool:
        return bool(self.funcs or self.annotated or self.annotations or self.tags)

    def only_funcs(self) -> bool:
        return bool(self.funcs) and not self.annotated and not self.annotations and not self.tags

    def only_tags(self) -> bool:
        return bool(self.tags) and not self.funcs and not self.annotated and not self.annotations

    def match(self, entry: CacheEntry) -> bool:
        if self.funcs and entry.func not in self.funcs:
            return False
        if self.tags:
            stored = entry.metadata.get("tags")
            if not isinstance(stored, list) or not set(self.tags).intersection(t for t in stored if isinstance(t, str)):
                return False
        if self.annotated and not entry.annotated:
            return False
        if self.annotations:
            annotation = entry.metadata.get("annotation")
            if not isinstance(annotation, dict):
                return False
            for key, wanted in self.annotations:
                if key not in annotation:
                    return False
                if wanted is None:
                    continue
                value = annotation[key]
                # "n=1" matches the int 1 and the str "1"; "flag=true" matches True.
                if not (_same(value, _parse_value(wanted)) or _same(value, wanted)):
                    return False
        return True


def _same(a: Any, b: Any) -> bool:
    return type(a) is type(b) and bool(a == b)


def add_filter_args(sub: argparse.ArgumentParser) -> None:
    group = sub.add_argument_group("filters (every one given must match)")
    group.add_argument("--func", action="append", metavar="NAME",
                       help="entries of this function identity (CacheEntry.func); repeat for several")
    group.add_argument("--tag", action="append", metavar="TAG",
                       help="entries carrying this tag (memoize(tags=...)); repeat for any of several")
    group.add_argument("--annotated", action="store_true", help="entries with an expected value (cache.annotate)")
    group.add_argument("--annotation", action="append", metavar="KEY=VALUE",
                       help='entries whose metadata["annotation"][KEY] equals VALUE (JSON or text); '
                            "KEY alone: has that key; repeat for several")


class capture_damage:
    """Collects the CacheWarnings (damaged records) raised while reading, instead of Python's default
    two-line warning display; ``report()`` prints them one per line."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self._ctx = warnings.catch_warnings(record=True)

    def __enter__(self) -> capture_damage:
        self._caught = self._ctx.__enter__()
        warnings.simplefilter("always", CacheWarning)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._ctx.__exit__(exc_type, exc, tb)
        for w in self._caught or []:
            if issubclass(w.category, CacheWarning):
                self.messages.append(str(w.message))
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)

    def report(self, prog: str) -> None:
        for message in self.messages:  # they name stored types and values
            print(f"{prog}: warning: {printable(message.removeprefix('oxicache: '))}", file=sys.stderr)

    def summary(self, prog: str) -> None:
        """One line for all the unreadable records (a listing of a large store must not print one warning per
        record): how many hold classes not allowed here, with the --allow that reads them, and how many are
        damaged."""
        if not self.messages:
            return
        classes: Counter[str] = Counter()
        damaged = 0
        for message in self.messages:
            found = _NOT_ALLOWED.search(message)
            if found:
                classes[found.group(1)] += 1
            else:
                damaged += 1
        parts = []
        if classes:
            names = ", ".join(f"{name} ({n})" for name, n in classes.most_common(5))
            more = f" and {len(classes) - 5} more classes" if len(classes) > 5 else ""
            fixes = " ".join(f"--allow {name}" for name in list(classes)[:5] if not name.startswith("__main__:"))
            how = f"; read them with {fixes}" if fixes else ""
            if any(name.startswith("__main__:") for name in classes):
                how += "; a __main__ class cannot be imported by the CLI (oxicache --allow explains)"
            parts.append(f"{sum(classes.values()):,} hold values of classes not allowed here: {names}{more}{how}")
        if damaged:
            parts.append(f"{damaged:,} damaged (oxicache verify lists them)")
        total = len(self.messages)
        print(f"{prog}: warning: {total:,} record{'s' if total != 1 else ''} could not be read and "
              f"{'are' if total != 1 else 'is'} left out: {printable('; '.join(parts))}", file=sys.stderr)


#: The stored type name in a ValueNotAllowedError's message (rust/codec/allow.rs writes it).
_NOT_ALLOWED = re.compile(r"is not allowed; .*?\(stored as ([^\s;]+);")


def entries(cache: BaseCache, filters: Filters) -> Generator[CacheEntry, None, None]:
    """The entries that pass ``filters``, streamed in the backend's order (``close()`` stops reading)."""
    for entry in cache.iter_entries():
        if filters.match(entry):
            yield entry


def resolve_keys(cache: BaseCache, texts: list[str]) -> tuple[list[int], list[str]]:
    """Key arguments: 32 hex digits, a unique hex prefix (4+ digits) or ``entry.key`` in decimal (33+
    digits). Returns (keys, arguments that matched no entry); an ambiguous prefix is a CliError."""
    found: list[int] = []
    missing: list[str] = []
    prefixes: list[str] = []
    for text in texts:
        t = text.strip().lower()
        if re.fullmatch(r"[0-9a-f]{32}", t):
            found.append(int(t, 16))
        elif re.fullmatch(r"[0-9]{33,39}", t) and int(t) < 1 << 128:
            found.append(int(t))
        elif re.fullmatch(r"[0-9a-f]{4,31}", t):
            prefixes.append(t)
        else:
            msg = f"not a key: {text!r} (give the 32 hex digits of `oxicache ls --json`, a prefix of 4 or more, or entry.key in decimal)"
            raise CliError(msg)
    if prefixes:
        all_keys = [key_hex(e.key) for e in cache.iter_entries()]
        for prefix in prefixes:
            hits = [k for k in all_keys if k.startswith(prefix)]
            if len(hits) > 1:
                msg = f"the key prefix {prefix!r} matches {len(hits)} entries; give more digits"
                raise CliError(msg)
            if hits:
                found.append(int(hits[0], 16))
            else:
                missing.append(prefix)
    return found, missing
