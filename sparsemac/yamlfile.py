"""Strict YAML for every file sparsemac reads (configs, networks, sweep specs).

One loader, so the three file kinds follow one set of rules:

* the file must be UTF-8 text (a binary file is one clear error, not a ``UnicodeDecodeError``);
* a key given twice in one mapping is refused (``file:line: duplicate key 'rows' (first on
  line 1)``), where plain PyYAML silently keeps the last one;
* mappings and sequences remember their line and the line of each key or item
  (:class:`MarkedDict`, :class:`MarkedList`), so later checks can name ``file:line``;
* integers follow YAML 1.2 (no base-60): an unquoted ``2:4`` stays the string ``"2:4"``;
* a syntax error is one line, ``file:line: not valid YAML: <problem>``.

Errors are raised as the caller's own exception class (``ConfigError``, ``NetworkError``,
``SpecError``), all subclasses of ``ValueError``.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

__all__ = ["MarkedDict", "MarkedList", "load_text", "load_file", "read_text"]


class MarkedDict(dict):
    """A mapping that remembers its own line and the line of each key (1-based)."""

    line = 0

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.lines: dict = {}


class MarkedList(list):
    """A sequence that remembers its own line and the line of each item (1-based)."""

    line = 0

    def __init__(self, *a):
        super().__init__(*a)
        self.lines: list[int] = []


class _Duplicate(Exception):
    def __init__(self, line: int, key, first: int):
        super().__init__(line, key, first)
        self.line, self.key, self.first = line, key, first


class _Loader(yaml.SafeLoader):
    pass


def _mapping(loader, node):
    loader.flatten_mapping(node)
    out = MarkedDict()
    out.line = node.start_mark.line + 1
    for k_node, v_node in node.value:
        key = loader.construct_object(k_node, deep=True)
        line = k_node.start_mark.line + 1
        if key in out:
            raise _Duplicate(line, key, out.lines[key])
        out[key] = loader.construct_object(v_node, deep=True)
        out.lines[key] = line
    return out


def _sequence(loader, node):
    out = MarkedList(loader.construct_object(n, deep=True) for n in node.value)
    out.line = node.start_mark.line + 1
    out.lines = [n.start_mark.line + 1 for n in node.value]
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _sequence)
# YAML 1.1 reads ``2:4`` as the base-60 integer 124; drop that rule (as YAML 1.2 did)
_INT = "tag:yaml.org,2002:int"
_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag != _INT]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver(_INT, re.compile(
    r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$"),
    list("-+0123456789"))


def load_text(text: str, source: str, error: type[Exception] = ValueError):
    """Parse ``text`` (from ``source``, for messages); raises ``error`` with one line."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except _Duplicate as exc:
        raise error(f"{source}:{exc.line}: duplicate key {exc.key!r} (first on line "
                    f"{exc.first})") from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        ctx = ""
        if exc.context and exc.context_mark and exc.context_mark is not mark:
            ctx = f" ({exc.context} on line {exc.context_mark.line + 1})"
        raise error(f"{source}:{line}: not valid YAML: {exc.problem}{ctx}") from None
    except yaml.YAMLError as exc:
        raise error(f"{source}: not valid YAML: {str(exc).splitlines()[0]}") from None


def read_text(path, what: str, error: type[Exception] = ValueError) -> str:
    """The UTF-8 text of ``path``; ``what`` names the file kind in errors ("config file")."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except IsADirectoryError:
        raise error(f"{what} must be a file, not the folder {str(path)!r}") from None
    except OSError as exc:
        raise error(f"cannot read {what} {str(path)!r}: {exc.strerror}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{what} {str(path)!r} must be UTF-8 text, not binary (byte "
                    f"{raw[exc.start]:#04x} at offset {exc.start})") from None


def load_file(path, what: str, error: type[Exception] = ValueError):
    """:func:`read_text` then :func:`load_text` (source = the path as given)."""
    return load_text(read_text(path, what, error), str(path), error)
