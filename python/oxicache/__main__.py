"""``python -m oxicache``: the same command line as the ``oxicache`` console script."""

from oxicache.cli import main

raise SystemExit(main())
