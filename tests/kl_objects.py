"""Knowledge-object classes for tests/test_klstore.py, importable by name from a second process.

Import as top-level `kl_objects` (tests/ is on sys.path).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import pydantic


@dataclasses.dataclass
class Fact:
    id: int
    text: str
    tags: frozenset[str] = frozenset()


class Doc(pydantic.BaseModel):
    id: str
    title: str
    sections: list[tuple[str, int]] = []


class Row(NamedTuple):
    id: int
    value: float
