"""Typed options: one parser for ``--model-opt``, ``--task-opt``, the training options and every
file-based config (``config.json``).

Values are read against the annotation of the parameter they set (the model's or task's
constructor signature, a config dataclass field), never guessed:

* ``bool`` accepts ``true/false/True/False/1/0`` (and JSON booleans) only;
* ``int`` and ``float`` accept numbers, never booleans or text (an ``int`` also takes an integral
  float such as ``1e3``);
* ``str`` accepts text only;
* ``None`` (in ``X | None``) accepts JSON ``null`` or ``none``/``None``;
* ``Sequence[X]``, ``list[X]``, ``tuple[X, ...]`` accept a list, typed element-wise;
  ``tuple[X, Y]`` a list of exactly that length;
* anything else (``Any``, mappings, arrays) passes through unchanged.

A bad value raises ``ValueError`` naming the option, the value and what is allowed.
"""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Callable, Mapping
from typing import Any

_TRUE = ("true", "True", "1")
_FALSE = ("false", "False", "0")


def parse_text(text: str) -> Any:
    """A command-line value: JSON if it parses (numbers, lists, true/false, null), else the text."""
    try:
        return json.loads(text)
    except (json.JSONDecodeError, ValueError):
        return text


def split_top(text: str, sep: str) -> list[str]:
    """Split ``text`` at ``sep`` outside brackets."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        if ch == sep and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    parts.append(cur.strip())
    return parts


class _Bad(Exception):
    def __init__(self, allowed: str):
        self.allowed = allowed


def _coerce(value: Any, kind: str) -> Any:
    kind = kind.strip()
    alts = split_top(kind, "|")
    if len(alts) > 1:
        if value is None or (isinstance(value, str) and value in ("none", "None") and "None" in alts):
            if "None" in alts:
                return None
        allowed = []
        for alt in (a for a in alts if a != "None"):
            try:
                return _coerce(value, alt)
            except _Bad as bad:
                allowed.append(bad.allowed)
        if "None" in alts:
            allowed.append("null")
        raise _Bad(" or ".join(allowed))
    if kind == "None":
        if value is None or value in ("none", "None"):
            return None
        raise _Bad("null")
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, int) and value in (0, 1):
            return bool(value)
        if isinstance(value, str) and value in _TRUE + _FALSE:
            return value in _TRUE
        raise _Bad("true/false/1/0")
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int | float) or isinstance(value, str):
            raise _Bad("an integer")
        if isinstance(value, float) and (not math.isfinite(value) or value != int(value)):
            raise _Bad("an integer")
        return int(value)
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _Bad("a number")
        return float(value)
    if kind == "str":
        if not isinstance(value, str):
            raise _Bad("text")
        return value
    head, _, rest = kind.partition("[")
    head = head.strip().split(".")[-1]
    if rest and head in ("Sequence", "list", "tuple", "List", "Tuple"):
        inner = rest[: rest.rindex("]")]
        if isinstance(value, str) or not isinstance(value, list | tuple):
            raise _Bad(f"a list ({kind})")
        args = split_top(inner, ",")
        if head in ("tuple", "Tuple") and not (len(args) == 2 and args[1] == "..."):
            if len(value) != len(args):
                raise _Bad(f"a list of {len(args)} values ({kind})")
            return tuple(_coerce(v, a) for v, a in zip(value, args, strict=True))
        elem = args[0]
        out = [_coerce(v, elem) for v in value]
        return tuple(out) if head in ("tuple", "Tuple", "Sequence") else out
    return value


class OptionError(ValueError):
    """A value its annotation does not allow; ``allowed`` says what would be."""

    def __init__(self, message: str, allowed: str):
        super().__init__(message)
        self.allowed = allowed


def coerce(name: str, value: Any, annotation: Any) -> Any:
    """``value`` read as the type ``annotation`` (a string or a type; see the module docstring).
    Raises :class:`OptionError` (a ``ValueError``)."""
    if annotation is inspect.Parameter.empty or annotation is None:
        return value
    kind = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    try:
        return _coerce(value, kind)
    except _Bad as bad:
        raise OptionError(f"option {name}={value!r} is not allowed: {name} takes {bad.allowed}", bad.allowed) from None


def signature_types(fn: Callable, skip: tuple[str, ...] = ("self", "key")) -> dict[str, Any]:
    """``{parameter: annotation}`` of ``fn`` (annotations as written, strings under
    ``from __future__ import annotations``)."""
    return {k: p.annotation for k, p in inspect.signature(fn).parameters.items() if k not in skip}


def coerce_options(
    kind: str, options: Mapping[str, Any], fn: Callable, skip: tuple[str, ...] = ("self", "key")
) -> dict[str, Any]:
    """Every option of ``options`` read against ``fn``'s signature; unknown names are refused."""
    types = signature_types(fn, skip)
    bad = sorted(set(options) - set(types))
    if bad:
        raise ValueError(
            f"unknown option(s) {', '.join(bad)} for {kind}; valid options: {', '.join(sorted(types))}"
        )
    return {k: coerce(k, v, types[k]) for k, v in options.items()}


__all__ = ["OptionError", "coerce", "coerce_options", "parse_text", "signature_types", "split_top"]
