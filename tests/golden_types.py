"""Helper types for the golden key cases (tests/data/golden_keys.json).

Always import this module as top-level `golden_types` (tests/ on sys.path): the keys embed each class's
identity, `module.qualname`, e.g. "golden_types.Point". Renaming, moving or re-nesting anything here changes
the golden keys. `namespace()` is the namespace the golden expressions are evaluated in.
"""

import collections
import dataclasses
import datetime
import decimal
import enum
import math
import pathlib
import struct
import sys
import uuid

import numpy as np
import pydantic


class Color(enum.Enum):
    RED = 1
    GREEN = "green"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


class Mode(str, enum.Enum):  # StrEnum-like (enum.StrEnum needs Python 3.11)
    READ = "r"
    WRITE = "w"


class Perm(enum.IntFlag):
    R = 4
    W = 2


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: int


@dataclasses.dataclass
class Segment:
    start: Point
    end: Point
    label: str = ""
    tags: list = dataclasses.field(default_factory=list)
    cached: int = dataclasses.field(default=0, init=False)  # init=False fields are still fields


class Config(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="allow")
    name: str
    size: int = 0


class Job(pydantic.BaseModel):
    config: Config
    tags: list[str] = []
    origin: Point | None = None


class Versioned:
    """Opts into keys with __cache_key__."""

    def __init__(self, name, version):
        self.name, self.version = name, version

    def __cache_key__(self):
        return (self.name, self.version)


class KeyedTag(str):
    """A str subclass with __cache_key__: rule 2 wins over rule 16."""

    def __cache_key__(self):
        return str(self).lower()


class Tag(str):
    pass


class MyInt(int):
    pass


class MyFloat(float):
    pass


class MyList(list):
    pass


class MyBytes(bytes):
    pass


class Outer:
    class Inner:
        pass


Pair = collections.namedtuple("Pair", "left right")


def f64(hex16: str) -> float:
    """A float from its 16 hex digits (big-endian), e.g. a NaN with a payload."""
    return struct.unpack(">d", bytes.fromhex(hex16))[0]


def namespace() -> dict:
    """Names available to the golden expressions."""
    return {
        "gt": sys.modules[__name__],
        "np": np,
        "math": math,
        "datetime": datetime,
        "dt": datetime.datetime,
        "timezone": datetime.timezone,
        "timedelta": datetime.timedelta,
        "Decimal": decimal.Decimal,
        "UUID": uuid.UUID,
        "pathlib": pathlib,
        "collections": collections,
        "OrderedDict": collections.OrderedDict,
        "f64": f64,
    }
