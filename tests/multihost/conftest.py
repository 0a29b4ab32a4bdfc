"""Fixtures of the multi-host tests (tests/multihost/): a fleet of network namespaces with its own
redis-server (see multihost_support.py)."""

from __future__ import annotations

import uuid
from typing import Iterator

import pytest

from multihost_support import Fleet, require_fleet


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Fleet:
    """One server namespace running redis-server and three worker hosts, removed after the module's
    tests whatever their outcome (and by the next run, if this one is killed)."""
    made = require_fleet(lambda: Fleet.start(tmp_path_factory.mktemp("multihost")))
    request.addfinalizer(made.close)
    return made


@pytest.fixture
def prefix(fleet: Fleet) -> Iterator[str]:
    """A fresh key prefix on the fleet's server; its keys are deleted afterwards."""
    p = f"mh{uuid.uuid4().hex[:12]}"
    yield p
    client = fleet.client()
    try:
        names = list(client.scan_iter(match=f"{p}:*"))
        if names:
            client.delete(*names)
    finally:
        client.close()
