"""What a setting may be, declared once beside it, and one line when a value is not that.

Every preset field, every ``--set`` value, every operator parameter and every
value a measurement file records goes through these rules. A rule turns the raw
value (from YAML, JSON or the command line) into the typed value or raises a
``UserError`` that names the key, the value and what is allowed:

    >>> Number(gt=0).parse(float("nan"), "tv.tau")
    Traceback (most recent call last):
    ...
    lvtino.errors.UserError: tv.tau=nan: expected a finite number > 0

Dataclass fields carry their rule in ``field(metadata=...)`` (see ``setting``),
so the type, the default and the bounds of a setting are read in one place.
"""

from __future__ import annotations

import dataclasses
import math
import reprlib
from dataclasses import dataclass
from typing import Any

from lvtino.errors import UserError


@dataclass(frozen=True)
class Number:
    """A finite number, optionally whole, odd and bounded (ge/gt below, le/lt above)."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    integer: bool = False
    odd: bool = False

    def describe(self) -> str:
        kind = "an odd whole number" if self.odd else "a whole number" if self.integer else "a finite number"
        if self.ge is not None and self.le is not None:
            return f"{kind} from {_show(self.ge)} to {_show(self.le)}"
        bounds = [f"{op} {_show(v)}" for op, v in ((">=", self.ge), (">", self.gt), ("<=", self.le), ("<", self.lt))
                  if v is not None]
        return kind + (" " + " and ".join(bounds) if bounds else "")

    def parse(self, value: Any, key: str):
        fail = UserError(f"{_pair(key, value)}: expected {self.describe()}")
        if isinstance(value, bool) or value is None:
            raise fail
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise fail from None
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise fail
        if self.integer:
            if value != int(value):
                raise fail
            value = int(value)
            if self.odd and value % 2 == 0:
                raise fail
        else:
            value = float(value)
        if ((self.ge is not None and value < self.ge) or (self.gt is not None and value <= self.gt)
                or (self.le is not None and value > self.le) or (self.lt is not None and value >= self.lt)):
            raise fail
        return value


def whole(ge: int | None = None, le: int | None = None, odd: bool = False) -> Number:
    """A whole number within [ge, le] (odd if asked)."""
    return Number(ge=ge, le=le, integer=True, odd=odd)


@dataclass(frozen=True)
class Choice:
    """One of a fixed set of names."""

    options: tuple[str, ...]

    def describe(self) -> str:
        return "one of " + ", ".join(self.options)

    def parse(self, value: Any, key: str) -> str:
        if not isinstance(value, str) or value not in self.options:
            raise UserError(f"{_pair(key, value)}: expected {self.describe()}")
        return value


@dataclass(frozen=True)
class Text:
    """Any text."""

    def describe(self) -> str:
        return "text"

    def parse(self, value: Any, key: str) -> str:
        if not isinstance(value, str):
            raise UserError(f"{_pair(key, value)}: expected text")
        return value


@dataclass(frozen=True)
class Flag:
    """true or false."""

    def describe(self) -> str:
        return "true or false"

    def parse(self, value: Any, key: str) -> bool:
        if not isinstance(value, bool):
            raise UserError(f"{_pair(key, value)}: expected true or false")
        return value


@dataclass(frozen=True)
class Optional:
    """``rule``, or nothing (null)."""

    rule: Any

    def describe(self) -> str:
        return f"{self.rule.describe()}, or null"

    def parse(self, value: Any, key: str):
        return None if value is None else self.rule.parse(value, key)


FINITE = Number()
WHOLE = whole()


def setting(default: Any = dataclasses.MISSING, rule: Any = None, factory: Any = dataclasses.MISSING):
    """A dataclass field with its rule (for lists: the rule of each element)."""
    if factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=factory, metadata={"rule": rule})
    return dataclasses.field(default=default, metadata={"rule": rule})


def rule_of(f: dataclasses.Field) -> Any:
    return f.metadata.get("rule")


def _pair(key: str, value: Any) -> str:
    """``--flag value`` for a command-line flag, ``key=value`` for a setting."""
    return f"{key} {_show(value)}" if key.startswith("-") else f"{key}={_show(value)}"


def show(value: Any) -> str:
    """A value as an error line shows it: short, whatever it is."""
    return _show(value)


def _show(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return f"{value:g}"
    if isinstance(value, str):
        return value if value and value.strip() == value and len(value) < 60 else repr(value[:60])
    text = _SHORT.repr(value)  # bounded in depth and items: a shared or huge structure is never expanded
    return text if len(text) < 60 else text[:57] + "..."


_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxdict, _SHORT.maxstring, _SHORT.maxother = 2, 4, 4, 40, 40


MAX_FACTOR = 64  # frames or pixels one measured sample may stand for, per axis (an operator's factors)
MAX_TEXT_BYTES = 64 << 20  # a preset, a manifest, a models file or a stats JSON: far below this
MAX_DEPTH = 64  # nesting of a YAML or JSON document lvtino reads (its own presets nest 4 deep)


def read_text_file(path, what: str, limit: int = MAX_TEXT_BYTES) -> str:
    """The text of a file the user named (a preset, a manifest, a stats JSON), or one line saying why not: a
    folder, a pipe or a device (which could block or never end), a file over ``limit`` bytes, not UTF-8 text.
    A UTF-8 byte-order mark (what some spreadsheet programs write) is dropped."""
    import os
    import stat
    from pathlib import Path

    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise UserError(f"{what} {path}: no such file") from None
    except OSError as err:
        raise UserError(f"{what} {path}: cannot be read ({err.strerror})") from None
    if stat.S_ISDIR(st.st_mode):
        raise UserError(f"{what} {path}: is a folder, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise UserError(f"{what} {path}: not a regular file (a pipe, socket or device); give a file")
    if st.st_size > limit:
        raise UserError(f"{what} {path}: {st.st_size / 2**20:.0f} MB, larger than the {limit >> 20} MB such a file "
                        "may be")
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
    except OSError as err:
        raise UserError(f"{what} {path}: cannot be read ({err.strerror})") from None
    if len(data) > limit:  # grew while read
        raise UserError(f"{what} {path}: larger than the {limit >> 20} MB such a file may be")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UserError(f"{what} {path}: not a text file") from None


def parse_yaml(text: str, source: str) -> Any:
    """A YAML document (safe: no tags that build Python objects), nested at most ``MAX_DEPTH`` deep, or one line
    naming ``source`` and what is wrong."""
    import yaml

    return _parse(yaml.safe_load, text, source, yaml.YAMLError,
                  lambda err: f"not valid YAML ({' '.join(str(err).split())[:160]})")


def parse_json(text: str, source: str) -> Any:
    """A JSON document nested at most ``MAX_DEPTH`` deep, or one line naming ``source``."""
    import json

    return _parse(json.loads, text, source, ValueError, lambda err: "not a JSON file")


def _parse(load, text: str, source: str, error: type, why) -> Any:
    try:
        data = load(text)
    except error as err:
        raise UserError(f"{source}: {why(err)}") from None
    except RecursionError:  # nested deeper than the parser's own recursion
        data = None
        _too_deep(source)
    check_depth(data, source)
    return data


def check_depth(data: Any, source: str, limit: int = MAX_DEPTH) -> None:
    """Refuse a document nested deeper than ``limit``, walked without recursion; a node shared through YAML's
    aliases is walked again only when reached deeper than before (a "billion laughs" document stays cheap)."""
    deepest: dict[int, int] = {}
    stack = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        if depth > limit:
            _too_deep(source, limit)
        if deepest.get(id(node), 0) >= depth:
            continue
        deepest[id(node)] = depth
        stack.extend((child, depth + 1) for child in children)


def _too_deep(source: str, limit: int = MAX_DEPTH) -> None:
    raise UserError(f"{source}: nested more than {limit} levels deep; not a file lvtino reads")
