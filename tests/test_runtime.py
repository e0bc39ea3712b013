"""The command line's persistent compilation cache: where it lives, that it is used, and that the
numbers do not depend on it."""

import shutil
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from nmrnn.runtime import compilation_cache_dir, usable_cpus

SRC = str(Path(__file__).resolve().parents[1] / "src")


def test_cache_folder_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("NMRNN_COMPILATION_CACHE", str(tmp_path / "c"))
    folder = compilation_cache_dir()
    assert folder.parent == tmp_path / "c"
    assert folder.name == f"jax-{jax.__version__}-cpus{usable_cpus()}"
    for off in ("off", "0", "OFF", ""):
        monkeypatch.setenv("NMRNN_COMPILATION_CACHE", off)
        assert compilation_cache_dir() is None
    monkeypatch.delenv("NMRNN_COMPILATION_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert compilation_cache_dir().parent == tmp_path / "xdg" / "nmrnn" / "xla"


def _train(out: Path, cache: str, cpus: str | None = None) -> np.lib.npyio.NpzFile:
    # every program cached, however long it took to compile (the default threshold of 0.1 s would
    # make the set of cached programs depend on the machine's load)
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": SRC, "NMRNN_COMPILATION_CACHE": cache,
           "HOME": str(out.parent), "XLA_FLAGS": "--xla_force_host_platform_device_count=1",
           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
    cmd = [sys.executable, "-m", "nmrnn.cli", "train", "--model", "nmrnn", "--task", "mwg", "--hidden", "12",
           "--steps", "30", "--no-progress", "--out", str(out)]
    if cpus is not None:
        cmd = ["taskset", "-c", cpus, *cmd]
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return np.load(out / "checkpoint.npz")


def _same(a, b) -> bool:
    return sorted(a.files) == sorted(b.files) and all(np.array_equal(a[k], b[k]) for k in a.files)


def _entries(folder: Path) -> set[str]:
    return {p.name for p in folder.rglob("*") if p.is_file()}


def test_second_run_loads_the_programs_and_gives_the_same_numbers(tmp_path):
    cache = tmp_path / "cache"
    off = _train(tmp_path / "off", "off")
    assert not cache.exists()
    first = _train(tmp_path / "first", str(cache))
    entries = _entries(cache)
    assert entries, "the first run cached nothing"
    second = _train(tmp_path / "second", str(cache))
    assert _entries(cache) == entries  # every program came from the cache
    assert _same(off, first) and _same(first, second)


@pytest.mark.skipif(shutil.which("taskset") is None or usable_cpus() < 2,
                    reason="needs taskset and two usable CPUs")
def test_processes_confined_to_one_cpu_use_their_own_programs(tmp_path):
    cache = tmp_path / "cache"
    _train(tmp_path / "two", str(cache))
    _train(tmp_path / "one", str(cache), cpus="0")
    folders = sorted(p.name for p in cache.iterdir())
    assert folders == sorted({f"jax-{jax.__version__}-cpus{usable_cpus()}", f"jax-{jax.__version__}-cpus1"})
