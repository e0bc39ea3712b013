"""The one profile type of every reproduction and comparison.

A *profile* names a scale at which an experiment runs:

* ``"smoke"``: seconds. Exercises the whole pipeline (training, analysis, ``summary.json``,
  ``report.md``, figures) at a size too small to decide anything; the default test suite runs the
  smoke profile of every registered reproduction end to end. Its verdict is reported but says
  nothing about the paper's claim.
* ``"quick"``: minutes on a 2-core CPU; a reduced schedule whose verdict can differ from the
  paper's (the summary always states the profile).
* ``"paper"``: the published scale (possibly hours).

Every experiment declares its settings once, as a :class:`Profiles` of three values of its own
settings type (a dataclass, a dict, a number), and looks them up with ``profiles[name]``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from .._validation import check_choice

#: Profile names, smallest first.
PROFILE_NAMES: tuple[str, ...] = ("smoke", "quick", "paper")

T = TypeVar("T")


def check_profile(name: str) -> str:
    """Return ``name`` if it is a profile name, else raise ``ValueError`` naming the choices."""
    return check_choice("profile", name, PROFILE_NAMES)


@dataclass(frozen=True)
class Profiles(Generic[T]):
    """One experiment's settings at each profile: ``Profiles(smoke=..., quick=..., paper=...)``.

    ``profiles["quick"]`` returns the quick settings; an unknown name raises ``ValueError``.
    """

    smoke: T
    quick: T
    paper: T

    def __getitem__(self, name: str) -> T:
        return getattr(self, check_profile(name))

    def items(self) -> list[tuple[str, T]]:
        return [(name, getattr(self, name)) for name in PROFILE_NAMES]


__all__ = ["PROFILE_NAMES", "Profiles", "check_profile"]


def store_profile_result(path: Path, profile: str, result: Any) -> None:
    """Store ``result`` under ``profile`` in the JSON file ``path`` (a search's result kept next
    to its experiment, read back by the profiles that reuse it), keeping the other profiles'
    entries; written atomically, so a crash leaves the file as it was."""
    from ..train.checkpoint import atomic_write_text

    stored = json.loads(path.read_text()) if path.exists() else {}
    stored[check_profile(profile)] = result
    atomic_write_text(path, json.dumps(stored, indent=1, sort_keys=True) + "\n")


def search_and_store(profiles: Profiles, profile: str, trials: int | None, path: Path, search) -> dict[str, Any]:
    """Run ``search(settings)`` at ``profile``'s settings (with ``sweep_trials=trials`` when
    given) and store its result under ``profile`` in ``path`` (:func:`store_profile_result`),
    where that profile reads it back. Returns the result."""
    from dataclasses import replace

    settings = profiles[profile]
    if trials is not None:
        settings = replace(settings, sweep_trials=trials)
    found = search(settings)
    store_profile_result(path, profile, found)
    return found
