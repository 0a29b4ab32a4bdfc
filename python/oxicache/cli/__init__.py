"""Command line: ``oxicache`` (also ``python -m oxicache``). docs/cli.md is the reference.

Every subcommand plugs in through ``SUBCOMMANDS``: a function that adds its arguments to a subparser and
returns the function to run. ``bench`` lives in ``bench.py``; the store subcommands (``ls``, ``show``,
``stats``, ``rm``, ``clear``, ``export``, ``import``, ``verify``) in ``commands.py``, on the store specs and
output helpers of ``stores.py``.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Sequence

from oxicache import __version__
from oxicache.cli.bench import add_bench
from oxicache.cli.commands import SUBCOMMANDS as STORE_SUBCOMMANDS
from oxicache.cli.stores import CliError, printable

__all__ = ["main"]


# name -> (help, function that adds the subcommand's arguments and returns its handler)
_SUBCOMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], Callable[[argparse.Namespace], int]]]] = {
    "bench": ("time memoized calls and key hashing against functools.lru_cache", add_bench),
    **STORE_SUBCOMMANDS,
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="oxicache", description="oxicache command line tools")
    parser.add_argument("--version", action="version", version=f"oxicache {__version__}")
    subs = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (help_text, add) in _SUBCOMMANDS.items():
        sub = subs.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(handler=add(sub))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``oxicache`` console script and of ``python -m oxicache``."""
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    # Keys after an option (`show STORE --table T KEY`): argparse leaves them over; they are more keys.
    if extra and isinstance(getattr(args, "keys", None), list) and not any(a.startswith("-") for a in extra):
        args.keys += extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return int(args.handler(args) or 0)
    except CliError as exc:  # bad input: one line, no traceback, nothing written
        # the message may quote stored text or a server's reply: escaped (a password is masked where it is built)
        print(f"oxicache {args.command}: error: {printable(str(exc))}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `oxicache ls ... | head`
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
