"""The command's store subcommands: ls, show, stats, rm, clear, export, import, verify (docs/cli.md)."""

from __future__ import annotations

import argparse
import itertools
import json
import os
import pprint
import stat
import sys
import tempfile
from collections import Counter
from typing import IO, Any, Callable

from oxicache.cli.stores import (
    CliError,
    Filters,
    StoreSpec,
    add_filter_args,
    allow_classes,
    capture_damage,
    entries,
    key_hex,
    open_store,
    parse_store,
    printable,
    resolve_keys,
    whole_ints,
)
from oxicache._core import CacheEntry
from oxicache.cli.progress import Progress, run_with_spinner
from oxicache.cli.width import cut, ljust, width
from oxicache.base import BaseCache
from oxicache.codec import decode_json, encode_binary, encode_json, unrevived_placeholders
from oxicache.durations import resolve_ttl
from oxicache.errors import ValueDecodingError
from oxicache.records import dump_record

__all__ = ["SUBCOMMANDS"]

Handler = Callable[[argparse.Namespace], int]
_FIELDS = ("func", "inputs", "output", "expected", "metadata")
_FUNC_WIDTH = 40
_SHORT_KEY = 12  # hex digits of a key in tables (any unique prefix of 4+ is accepted back)


def _short(value: Any, width: int) -> str:
    """One line of at most ``width`` terminal columns: the repr of a value (a str func shown as it is), with
    control characters escaped (a ``__repr__`` of a stored class may return anything)."""
    text = " ".join(printable(value if isinstance(value, str) and width == _FUNC_WIDTH else _brief_repr(value)).split())
    return cut(text, width)  # in terminal columns: a wide character takes two


class _LongInt:
    """Stands for an int too long for ``repr`` under Python's int/str limit, in a one-line summary."""

    def __init__(self, n: int) -> None:
        n = abs(n)
        digits = int((n.bit_length() - 1) * 0.30102999566398120) + 1  # this, or one more
        self.digits = digits + 1 if n >= 10**digits else digits

    def __repr__(self) -> str:
        return f"<int of {self.digits:,} digits>"


def _brief_repr(value: Any) -> str:
    """``repr(value)``; an int past Python's int/str limit (``sys.set_int_max_str_digits``), alone or in
    plain lists, tuples, sets and dicts, is shown as ``<int of N digits>`` (a table shows the start of a
    value anyway, and converting a huge int costs time); anything else holding one is shown in full."""
    try:
        return repr(value)
    except ValueError:
        pass
    try:
        return repr(_summarized(value))
    except ValueError:
        with whole_ints():
            return repr(value)


def _summarized(value: Any) -> Any:
    if type(value) is int:
        try:
            repr(value)
        except ValueError:
            return _LongInt(value)
        return value
    if type(value) in (list, tuple, set, frozenset):
        items = [_summarized(v) for v in value]
        return items if type(value) is list else tuple(items) if type(value) is tuple else _Shown(value, items)
    if type(value) is dict:
        return {_summarized(k) if type(k) is int else k: _summarized(v) for k, v in value.items()}
    return value


class _Shown:
    """A set or frozenset of summarized items, shown as the original's repr would show it."""

    def __init__(self, original: Any, items: list[Any]) -> None:
        self.text = ("{" + ", ".join(map(repr, items)) + "}") if items else f"{type(original).__name__}()"
        if type(original) is frozenset and items:
            self.text = f"frozenset({self.text})"

    def __repr__(self) -> str:
        return self.text


def _table(rows: list[list[str]], head: list[str]) -> str:
    # Cells hold stored text (function names): escaped before the widths are measured.
    rows = [[printable(cell) for cell in row] for row in rows]
    widths = [max(width(r[i]) for r in [head, *rows]) for i in range(len(head))]  # columns, not characters
    lines = ["  ".join(ljust(c, w) for c, w in zip(r, widths)).rstrip() for r in [head, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _json_text(value: Any) -> str:
    """The codec's tagged JSON of ``value``, with no character a terminal acts on (the same JSON value).
    Ints of any length are written whole (JSON text is where they must be exact)."""
    with whole_ints():
        return printable(encode_json(value), as_json=True)


def _entry_json(entry: CacheEntry) -> str:
    return _json_text({"key": key_hex(entry.key), **entry.to_dict()})


def _store(args: argparse.Namespace, *, create: bool = False) -> tuple[StoreSpec, BaseCache]:
    spec = parse_store(args.store, args.table, args.prefix)
    allow_classes(args.allow or [])
    return spec, open_store(spec, create=create)


def _prog(args: argparse.Namespace) -> str:
    return f"oxicache {args.command}"


# ---- ls ------------------------------------------------------------------------------------------

def _cmd_ls(args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 0:
        msg = f"--limit must be 0 or more, got {args.limit}"
        raise CliError(msg)
    spec, cache = _store(args)
    filters = Filters.from_args(args)
    more = False
    with cache, capture_damage() as damage:
        if args.limit is None:
            shown = sorted(entries(cache, filters), key=lambda e: (e.func, e.key))
        else:
            # A limit streams, in the store's order: reading stops one entry past the limit (which tells
            # whether there are more), instead of reading and sorting a store of millions for 5 lines.
            stream = entries(cache, filters)
            shown = list(itertools.islice(stream, args.limit + 1))
            stream.close()
            more = len(shown) > args.limit
            del shown[args.limit:]
    damage.summary(_prog(args))  # one line, however many records
    if args.json:
        print("[" + ",\n".join(_entry_json(e) for e in shown) + "]")
        return 0
    rows = [[key_hex(e.key)[:_SHORT_KEY], _short(e.func, _FUNC_WIDTH), _short(e.inputs, 40), _short(e.output, 30),
             _short(e.expected, 30) if e.annotated else ""] for e in shown]
    if rows:
        print(_table(rows, ["KEY", "FUNC", "INPUTS", "OUTPUT", "EXPECTED"]))
    count = f"{len(shown)} entr{'y' if len(shown) == 1 else 'ies'}"
    if more:
        print(f"{count} shown (--limit {args.limit}, in the store's order); {spec} has more: oxicache stats counts them")
    else:
        print(f"{count} in {spec}")
    return 0


# ---- show ----------------------------------------------------------------------------------------

def _cmd_show(args: argparse.Namespace) -> int:
    spec, cache = _store(args)
    filters = Filters.from_args(args)
    missing: list[str] = []
    with cache, capture_damage() as damage:
        if args.keys:
            keys, missing = resolve_keys(cache, args.keys)
            found = []
            for key in keys:
                entry = cache[key]
                if entry is ... or not filters.match(entry):
                    missing.append(key_hex(key))
                else:
                    found.append(entry)
        else:
            found = sorted(entries(cache, filters), key=lambda e: (e.func, e.key))
    damage.report(_prog(args))
    if args.json:
        print("[" + ",\n".join(_entry_json(e) for e in found) + "]")
    else:
        blocks = []
        for entry in found:
            lines = [f"key       {key_hex(entry.key)}", f"func      {printable(entry.func)}"]
            for name in ("inputs", "output", "expected", "metadata"):
                value = getattr(entry, name)
                if name == "expected" and not entry.annotated:
                    continue
                # pformat's own line breaks are kept; any other control character is escaped
                with whole_ints():  # shown in full, however long
                    text = pprint.pformat(value, width=100, sort_dicts=False)
                text = "\n          ".join(printable(line) for line in text.split("\n"))
                lines.append(f"{name:<10}{text}")
            blocks.append("\n".join(lines))
        if blocks:
            print("\n\n".join(blocks))
    for text in missing:
        print(f"{_prog(args)}: no entry with key {text} in {spec}", file=sys.stderr)
    return 1 if missing else 0


# ---- stats ---------------------------------------------------------------------------------------

def _size_of(spec: StoreSpec, cache: BaseCache) -> int | None:
    if spec.kind == "disk":
        return int(cache.volume())  # type: ignore[attr-defined]
    if spec.kind == "json":
        return sum(e.stat().st_size for e in os.scandir(spec.target) if e.name.endswith(".json") and e.is_file())
    path = spec.sqlite_file()
    if path is not None:
        return sum(os.path.getsize(p) for p in (path, path + "-wal") if os.path.exists(p))
    return None


def _cmd_stats(args: argparse.Namespace) -> int:
    spec, cache = _store(args)
    filters = Filters.from_args(args)
    per_func: Counter[str] = Counter()
    annotated: Counter[str] = Counter()
    with cache, capture_damage() as damage:
        for entry in entries(cache, filters):
            per_func[entry.func] += 1
            annotated[entry.func] += entry.annotated
        size = _size_of(spec, cache)
        backend = type(cache).__name__
    damage.summary(_prog(args))  # one line, however many records
    total = sum(per_func.values())
    if args.json:
        print(json.dumps({
            "store": spec.masked(), "backend": backend,
            "table": spec.table if spec.kind in ("sqlite", "url") else None,
            "prefix": spec.prefix if spec.kind == "redis" else None,
            "entries": total, "annotated": sum(annotated.values()), "unreadable": len(damage.messages),
            "bytes": size, "functions": {f: {"entries": n, "annotated": annotated[f]} for f, n in sorted(per_func.items())},
        }, indent=2))
        return 0
    place = {"sqlite": f", table {spec.table}", "url": f", table {spec.table}", "redis": f", prefix {spec.prefix}"}
    where = f"{spec} ({backend}{place.get(spec.kind, '')})"
    print(f"store       {where}")
    print(f"entries     {total:,}" + (" (matching the filters)" if filters.active() else ""))
    print(f"annotated   {sum(annotated.values()):,}")
    if damage.messages:
        print(f"unreadable  {len(damage.messages):,} (see oxicache verify)")
    if size is not None:
        print(f"size        {_human_bytes(size)}")
    if per_func:
        print()
        print(_table([[f, f"{n:,}", f"{annotated[f]:,}"] for f, n in sorted(per_func.items())],
                     ["FUNC", "ENTRIES", "ANNOTATED"]))
    return 0


def _human_bytes(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:,} bytes" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


# ---- rm / clear ----------------------------------------------------------------------------------

def _removed_line(entry: CacheEntry) -> str:
    return f"removed {key_hex(entry.key)[:_SHORT_KEY]}  {_short(entry.func, _FUNC_WIDTH)}  {_short(entry.inputs, 60)}"


def _cmd_rm(args: argparse.Namespace) -> int:
    filters = Filters.from_args(args)
    if not args.keys and not filters.active():
        msg = "rm needs keys or a filter (--func, --tag, --annotated, --annotation); to remove everything use clear --yes"
        raise CliError(msg)
    spec, cache = _store(args)
    missing: list[str] = []
    removed = 0
    with cache, capture_damage() as damage:
        if args.keys:
            keys, missing = resolve_keys(cache, args.keys)
            targets = []
            for key in keys:
                entry = cache[key]
                if entry is ... or not filters.match(entry):
                    missing.append(key_hex(key))
                else:
                    targets.append(entry)
        else:
            targets = list(entries(cache, filters))
        with Progress("removing", len(targets)) as bar:
            for entry in targets:
                if cache.remove(entry):
                    removed += 1
                    print(_removed_line(entry))
                bar.advance()
    damage.report(_prog(args))
    for text in missing:
        print(f"{_prog(args)}: no entry with key {text} in {spec}", file=sys.stderr)
    print(f"removed {removed} entr{'y' if removed == 1 else 'ies'} from {spec}")
    return 1 if missing else 0


def _cmd_clear(args: argparse.Namespace) -> int:
    filters = Filters.from_args(args)
    if not filters.active() and not args.yes:
        spec = parse_store(args.store, args.table, args.prefix)  # shown with its password hidden
        msg = f"clear without a filter removes every entry of {spec}; pass --yes to do it"
        raise CliError(msg)
    spec, cache = _store(args)
    with cache, capture_damage() as damage:
        if not filters.active():
            counts = Counter({"(all)": len(cache)})
            cache.clear()
        elif filters.only_funcs():
            counts = Counter({f: cache.clear_function(f) for f in dict.fromkeys(filters.funcs)})
        elif filters.only_tags():  # the store's tag index where it has one (cache.invalidate)
            counts = Counter({"(tagged)": cache.invalidate(tags=filters.tags)})
        else:
            targets = list(entries(cache, filters))
            counts = Counter()
            with Progress("clearing", len(targets)) as bar:
                for entry in targets:
                    if cache.remove(entry):
                        counts[entry.func] += 1
                    bar.advance()
    damage.report(_prog(args))
    for func, n in sorted(counts.items()):
        if func not in ("(all)", "(tagged)"):
            print(f"removed {n:,} entr{'y' if n == 1 else 'ies'} of {printable(func)}")
    total = sum(counts.values())
    print(f"removed {total:,} entr{'y' if total == 1 else 'ies'} from {spec}")
    return 0


# ---- export / import -----------------------------------------------------------------------------

def _cmd_export(args: argparse.Namespace) -> int:
    spec, cache = _store(args)
    filters = Filters.from_args(args)
    out_path = None if args.output in (None, "-") else _export_target(args.output)
    folder = os.path.dirname(out_path) if out_path else None
    if folder is not None and not os.path.isdir(folder):
        msg = f"cannot write {args.output!r}: no folder {folder!r}"
        raise CliError(msg)
    mode = None if out_path is None else _file_mode(out_path)
    # Written to a temporary file first: an error part way leaves no partial export behind.
    try:
        tmp: IO[str] = tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=folder, prefix=".oxicache-export-",
                                                   suffix=".tmp", delete=False)
    except OSError as err:
        msg = f"cannot write {args.output or 'a temporary file'!r}: {err.strerror or err}"
        raise CliError(msg) from None
    count = 0
    blocked: Counter[str] = Counter()  # classes the CLI does not revive, in entries to export
    try:
        # Values of classes the CLI does not revive read as placeholders, so a record's function is known:
        # only entries that are to be exported need their classes (--func f is not blocked by others).
        with cache, capture_damage() as damage, unrevived_placeholders() as made, \
                Progress("exporting", len(cache)) as bar:
            seen = 0
            for entry in cache.iter_entries():
                bar.advance()
                placeholders, seen = made[seen:], len(made)
                if filters.match(entry):
                    if placeholders:
                        blocked.update(set(placeholders))
                        continue
                    tmp.write(_json_text(entry.to_dict()))
                    tmp.write("\n")
                    count += 1
        tmp.close()
        if blocked:
            names = " ".join(f"--allow {name}" for name in sorted(blocked))
            main = " (a __main__ class cannot be imported by the CLI: see oxicache --allow)" if any(
                name.startswith("__main__:") for name in blocked) else ""
            msg = printable(f"entries to export hold values of classes the CLI does not revive "
                            f"({', '.join(sorted(blocked))}); nothing was written; read them with {names}{main}")
            raise CliError(msg)
        if damage.messages:
            damage.report(_prog(args))
            msg = (f"{len(damage.messages)} record(s) of {spec} could not be read, so the export would be "
                   "incomplete; nothing was written (a type named in the warning needs --allow module:Class)")
            raise CliError(msg)
        if out_path is None:
            with open(tmp.name, encoding="utf-8") as src:
                for line in src:
                    sys.stdout.write(line)
            sys.stdout.flush()
        else:
            os.chmod(tmp.name, 0o600 if mode is None else mode)  # mkstemp's file is private until now
            os.replace(tmp.name, out_path)
    finally:
        tmp.close()
        if os.path.exists(tmp.name):
            os.unlink(tmp.name)
    where = "stdout" if out_path is None else args.output
    print(f"exported {count:,} entr{'y' if count == 1 else 'ies'} from {spec} to {where}", file=sys.stderr)
    return 0


def _export_target(given: str) -> str:
    """The file ``-o`` replaces: the path given, or for a symbolic link the file the link points to (the
    link stays, as with a shell's ``>``; replacing the link itself would quietly cut it)."""
    path = os.path.abspath(given)
    target = os.path.realpath(path) if os.path.islink(path) else path
    if os.path.isdir(target):
        via = f" (the link points to {target!r})" if target != path else ""
        msg = f"cannot write {given!r}: it is a folder{via}; give a file name"
        raise CliError(msg)
    return target


def _file_mode(path: str) -> int:
    """The permission bits of the finished export: an existing file's own, else a new file's under the
    umask (0666 & ~umask), as `>` would give it."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _read_lines(path: str) -> list[CacheEntry]:
    """Every entry of a JSON lines export, all validated before anything is written."""
    name = "stdin" if path == "-" else repr(path)
    try:
        if path == "-":
            data = sys.stdin.buffer.read()
        else:
            with open(path, "rb") as f:
                data = f.read()
        text = data.decode("utf-8")
    except OSError as err:
        msg = f"cannot read {name}: {err.strerror or err}"
        raise CliError(msg) from None
    except UnicodeDecodeError as err:
        msg = f"{name} is not JSON lines: not UTF-8 text (byte {err.start})"
        raise CliError(msg) from None
    result = []
    # JSON text never holds a raw newline, but may hold U+2028 and friends, which str.splitlines splits on.
    for number, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        try:
            with whole_ints():  # an export holds ints of any length (as the store did)
                record = decode_json(line)
        except ValueDecodingError as err:
            hint = "; allow its class with --allow module:Class" if "not allowed" in str(err) else ""
            msg = f"{name} line {number} is not an oxicache JSON entry: {err}{hint}"
            raise CliError(msg) from None
        result.append(_entry_of(record, f"{name} line {number}"))
    return result


def _entry_of(record: Any, where: str) -> CacheEntry:
    if not isinstance(record, dict):
        msg = f"{where} is not an entry: expected a JSON object, got {type(record).__name__}"
        raise CliError(msg)
    unknown = sorted(str(k) for k in record if k not in _FIELDS)
    if unknown:
        msg = f"{where} is not an entry: unknown field(s) {', '.join(unknown)} (an entry has {', '.join(_FIELDS)})"
        raise CliError(msg)
    func, inputs = record.get("func"), record.get("inputs")
    if not isinstance(func, str) or not func or not isinstance(inputs, dict):
        msg = f'{where} is not an entry: it needs "func" (a non-empty string) and "inputs" (an object)'
        raise CliError(msg)
    if not isinstance(record.get("metadata", {}), dict):
        msg = f'{where} is not an entry: "metadata" must be an object'
        raise CliError(msg)
    try:
        return CacheEntry.from_dict(record)
    except (TypeError, ValueError) as err:
        msg = f"{where} is not an entry: {err}"
        raise CliError(msg) from None


def _check_storable(entry: CacheEntry, spec: StoreSpec, where: str) -> None:
    """What storing ``entry`` checks, done for every entry before the first is written: its annotation's
    ttl, its key, and its values in the store's encoding (JSON text for JsonCache, binary records for the
    others)."""
    try:
        ttl = resolve_ttl(None, entry.metadata.get("annotation"))
    except (TypeError, ValueError) as err:
        msg = f'{where}: metadata["annotation"]["ttl"] is not a time to live: {err}'
        raise CliError(msg) from None
    try:
        entry.key  # noqa: B018 (computed for its errors)
        if spec.kind == "json":
            dump_record(entry, ttl)
        else:
            encode_binary(entry.to_dict())
    except (TypeError, ValueError) as err:  # KeyEncodingError, ValueEncodingError
        msg = f"{where} cannot be stored in {spec}: {err}"
        raise CliError(msg) from None


def _cmd_import(args: argparse.Namespace) -> int:
    spec = parse_store(args.store, args.table, args.prefix)
    allow_classes(args.allow or [])
    new = _read_lines(args.file)  # the whole file is checked before the store is even opened
    if spec.kind in ("sqlite", "url"):
        from oxicache.backends._sql import MAX_FUNC

        for number, entry in enumerate(new, 1):
            if len(entry.func) > MAX_FUNC:
                msg = (f"entry {number} of {args.file!r}: its func ({entry.func[:40]!r}...) is longer than the "
                       f"{MAX_FUNC} characters of DatabaseCache's func column")
                raise CliError(msg)
    for number, entry in enumerate(new, 1):
        _check_storable(entry, spec, f"entry {number} of {args.file!r}")
    cache = open_store(spec, create=True)
    with cache, Progress("importing", len(new)) as bar:
        for entry in new:
            cache.add(entry)
            bar.advance()
    print(f"imported {len(new):,} entr{'y' if len(new) == 1 else 'ies'} into {spec}", file=sys.stderr)
    return 0


# ---- verify --------------------------------------------------------------------------------------

def _cmd_verify(args: argparse.Namespace) -> int:
    spec, cache = _store(args)
    with cache:
        total = len(cache)
        problems = run_with_spinner(f"verifying {total:,} entries", cache.verify)
    for problem in problems:  # they quote stored funcs, values and type names
        print(f"problem: {printable(problem)}")
    if any("is not allowed" in p for p in problems):
        print("note: values of a class need --allow module:Class to be read (the class named in the problem)")
    if problems:
        print(f"{spec}: {len(problems)} problem{'s' if len(problems) != 1 else ''} in {total:,} entries")
        return 1
    print(f"{spec}: {total:,} entr{'y' if total == 1 else 'ies'}, no problems found")
    return 0


# ---- registration --------------------------------------------------------------------------------

def _common(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("store", metavar="STORE",
                     help="disk:PATH, json:PATH, sqlite:PATH, a database URL (postgresql://..., mysql://..., sqlite:///...) "
                          "or a Redis URL (redis://HOST:PORT/DB, rediss://..., unix:///PATH)")
    sub.add_argument("--table", metavar="NAME", help="DatabaseCache table (default oxicache_entries)")
    sub.add_argument("--prefix", metavar="PREFIX", help="RedisCache key prefix (default oxicache)")
    sub.add_argument("--allow", action="append", metavar="MODULE:CLASS",
                     help="import this dataclass / pydantic / Enum / named tuple class so stored instances can be read")


def _add(handler: Handler, *, filters: bool = True, json_out: bool = False, keys: str | None = None) -> Callable[[argparse.ArgumentParser], Handler]:
    def add(sub: argparse.ArgumentParser) -> Handler:
        _common(sub)
        if keys:
            sub.add_argument("keys", nargs="*", metavar="KEY", help=keys)
        if json_out:
            sub.add_argument("--json", action="store_true", help="machine-readable JSON (values in the codec's tagged JSON)")
        if filters:
            add_filter_args(sub)
        return handler
    return add


def _add_ls(sub: argparse.ArgumentParser) -> Handler:
    _add(_cmd_ls, json_out=True)(sub)
    sub.add_argument("--limit", type=int, metavar="N", help="show at most N entries")
    return _cmd_ls


def _add_clear(sub: argparse.ArgumentParser) -> Handler:
    _add(_cmd_clear)(sub)
    sub.add_argument("--yes", action="store_true", help="needed to clear without a filter (removes every entry)")
    return _cmd_clear


def _add_export(sub: argparse.ArgumentParser) -> Handler:
    _add(_cmd_export)(sub)
    sub.add_argument("-o", "--output", metavar="FILE", help="write here (default: stdout); replaced only once complete")
    return _cmd_export


def _add_import(sub: argparse.ArgumentParser) -> Handler:
    _common(sub)
    sub.add_argument("file", metavar="FILE", help="a JSON lines file written by oxicache export (- for stdin)")
    return _cmd_import


KEY_HELP = "32 hex digits (as oxicache ls --json shows), a unique prefix of 4 or more, or entry.key in decimal"

# name -> (help, function that adds the subcommand's arguments and returns its handler)
SUBCOMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], Handler]]] = {
    "ls": ("list the entries of a store", _add_ls),
    "show": ("show entries in full", _add(_cmd_show, json_out=True, keys=f"entries to show (default: all that match); {KEY_HELP}")),
    "stats": ("count a store's entries per function", _add(_cmd_stats, json_out=True)),
    "rm": ("remove entries by key or filter", _add(_cmd_rm, keys=f"entries to remove; {KEY_HELP}")),
    "clear": ("remove every entry, or those matching the filters", _add_clear),
    "export": ("write entries as JSON lines (one CacheEntry per line)", _add_export),
    "import": ("store the entries of a JSON lines export", _add_import),
    "verify": ("check that every record of a store can be read", _add(_cmd_verify, filters=False)),
}
