"""Fixtures of the reproduction tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """``smoke_run(name)``: the summary of ``run_reproduction(name, ..., profile="smoke")``,
    run once per session into ``smoke_run.dir(name)`` (shared by the smoke and resume tests)."""
    from nmrnn.experiments.registry import run_reproduction

    root = tmp_path_factory.mktemp("smoke")
    cache: dict[str, dict] = {}

    def get(name: str) -> dict:
        if name not in cache:
            cache[name] = run_reproduction(name, root / name, profile="smoke", seed=0)
        return cache[name]

    get.dir = lambda name: root / name
    return get
