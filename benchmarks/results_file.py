"""The benchmark scripts' shared results file: each prints its dated section and appends it to
``benchmarks/RESULTS.md``."""

from __future__ import annotations

from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")


def publish(text: str, *, write: bool) -> None:
    """Print ``text`` and, if ``write``, append it to ``RESULTS.md`` after a blank line."""
    print(text)
    if write:
        with open(RESULTS, "a") as f:
            f.write("\n" + text)
