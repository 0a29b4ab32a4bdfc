"""Fixtures of the reliability matrix (tests/reliability/, rows R1-R25 of the matrix).

- ``seed``: a per-test random seed, printed to stderr (shown with a failure) and overridable with
  OXICACHE_SEED=<n> to replay a failure.

``watchdog`` and the ``expected_value`` oracle are in reliability_support.py.
"""

from __future__ import annotations

import os
import random
import sys

import pytest


@pytest.fixture
def seed(request: pytest.FixtureRequest) -> int:
    value = int(os.environ.get("OXICACHE_SEED") or random.SystemRandom().randrange(2**32))
    print(f"\n[{request.node.nodeid}] seed={value} (replay with OXICACHE_SEED={value})", file=sys.stderr)
    request.node.user_properties.append(("seed", value))
    return value
