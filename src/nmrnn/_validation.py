"""Argument checks shared by every constructor and entry point.

Every public constructor validates its arguments eagerly, before any array is allocated or any
function is compiled, and raises ``ValueError`` naming the bad value and what is allowed.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np


def _integer(value: Any) -> int | None:
    """``value`` as an int if it is an integer (a Python or NumPy integer, or a finite float with
    no fraction); None otherwise. Booleans are not integers here."""
    if isinstance(value, bool | np.bool_):
        return None
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real) and math.isfinite(value) and float(value).is_integer():
        return int(value)
    return None


def check_positive_int(name: str, value: Any) -> int:
    """Return ``value`` as an int if it is a positive integer, else raise ``ValueError``."""
    v = _integer(value)
    if v is None or v <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return v


def check_nonnegative_int(name: str, value: Any) -> int:
    """Return ``value`` as an int if it is an integer >= 0, else raise ``ValueError``."""
    v = _integer(value)
    if v is None or v < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
    return v


def check_positive(name: str, value: Any) -> float:
    """Return ``value`` as a float if it is finite and > 0, else raise ``ValueError``.

    Booleans and text are refused (``True`` is not the number 1 here)."""
    if isinstance(value, bool | str):
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number, got {value!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    return v


def check_nonnegative(name: str, value: Any) -> float:
    if isinstance(value, bool | str):
        raise ValueError(f"{name} must be a non-negative number, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a non-negative number, got {value!r}") from None
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"{name} must be a non-negative number, got {value!r}")
    return v


def check_fraction(name: str, value: Any) -> float:
    v = check_nonnegative(name, value)
    if v > 1:
        raise ValueError(f"{name} must lie in [0, 1], got {value!r}")
    return v


def check_time_constants(dt: Any, **taus: Any) -> tuple[float, dict[str, float]]:
    """Check ``dt > 0`` and every ``tau > 0`` with ``dt <= tau`` (Euler stability of the leak)."""
    dt_v = check_positive("dt", dt)
    out = {}
    for name, tau in taus.items():
        tau_v = check_positive(name, tau)
        if dt_v > tau_v:
            raise ValueError(
                f"dt={dt_v} is larger than {name}={tau_v}; the Euler step needs dt <= {name}"
            )
        out[name] = tau_v
    return dt_v, out


def check_choice(name: str, value: Any, allowed: Iterable[str]) -> str:
    allowed = list(allowed)
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; valid choices: {', '.join(map(str, allowed))}")
    return value


def check_known_options(kind: str, options: Mapping[str, Any], allowed: Iterable[str]) -> None:
    allowed = sorted(allowed)
    bad = sorted(set(options) - set(allowed))
    if bad:
        raise ValueError(
            f"unknown option(s) {', '.join(bad)} for {kind}; valid options: {', '.join(allowed)}"
        )


def check_table(
    value: Any, what: str, fields: Iterable[str], required: Iterable[str] = (), noun: str = "field",
    container: str = "an object",
) -> dict:
    """``value`` as a dict of known keys with every required key present (a file-based config).

    Raises ``ValueError``: "{what} must be {container}", "unknown {noun}(s) ...; valid {noun}s:
    ...", "missing {noun}(s) ...".
    """
    if not isinstance(value, dict):
        raise ValueError(f"{what} must be {container}, got {type(value).__name__}")
    fields = list(fields)
    unknown = sorted(set(value) - set(fields))
    if unknown:
        raise ValueError(f"unknown {noun}(s) {', '.join(unknown)}; valid {noun}s: {', '.join(fields)}")
    missing = [k for k in required if k not in value]
    if missing:
        raise ValueError(f"missing {noun}(s) {', '.join(missing)}")
    return value


#: Seeds cover the unsigned 64-bit range; :func:`seed_key` folds the high 32 bits in, so no two
#: seeds of the range share a key.
SEED_MAX = 2**64 - 1


def check_seed(value: Any) -> int:
    """Return ``value`` as an int if it is a seed in ``[0, 2**64 - 1]``, else raise ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
        raise ValueError(f"seed must be an integer in [0, 2**64 - 1], got {value!r}")
    if not 0 <= int(value) <= SEED_MAX:
        raise ValueError(f"seed must be an integer in [0, 2**64 - 1], got {value!r}")
    return int(value)


def seed_key(seed: int):
    """The PRNG key of ``seed``: ``PRNGKey(seed)`` below ``2**32``; above, the low 32 bits make the
    key and the high 32 bits are folded in (``PRNGKey`` alone would alias or overflow)."""
    import jax.random as jr

    seed = check_seed(seed)
    lo, hi = seed & 0xFFFFFFFF, seed >> 32
    key = jr.PRNGKey(lo)
    return key if hi == 0 else jr.fold_in(key, hi)
