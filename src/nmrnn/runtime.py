"""The compiled-program cache shared by every ``nmrnn`` process on a machine.

Compiling dominates short jobs: a short ``nmrnn compare`` spends about a third of its time in
XLA's compiler (``benchmarks/RESULTS.md``), and every process of a grid, a sweep or a second run of
the same command compiles the same programs again. JAX's persistent compilation cache keeps the
compiled programs on disk; :func:`enable_compilation_cache` switches it on, and the ``nmrnn``
command does so for every subcommand (local workers inherit it).

Where: ``$NMRNN_COMPILATION_CACHE`` if set (``off`` disables it), else
``$XDG_CACHE_HOME/nmrnn/xla`` (``~/.cache/nmrnn/xla``), in a subfolder per JAX version and number
of usable CPUs. The CPU count is part of the key because XLA's CPU compiler splits loops over the
CPUs it can use when the process starts, which changes the last bits of some results: a program
compiled in a process confined to one CPU must not be reused by one that has two. A JAX cache
directory chosen by the user (``JAX_COMPILATION_CACHE_DIR`` or ``jax.config``) is respected as is,
and so is ``JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS`` (default here: programs that took over
0.1 s to compile). The ``nmrnn`` command switches the cache on; a Python program calling
:func:`nmrnn.cli.main` or the library keeps its own JAX settings unless it calls
:func:`enable_compilation_cache` (or ``main(argv, compilation_cache=True)``).

The numbers do not depend on the cache: a program loaded from it is the program the compiler
would have produced (tested).
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "NMRNN_COMPILATION_CACHE"
_OFF = {"", "0", "off", "false", "no", "none"}
MIN_COMPILE_SECONDS = 0.1  # cache programs that took longer than this to compile


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def compilation_cache_dir() -> Path | None:
    """The cache folder this process would use, or ``None`` when switched off."""
    import jax

    text = os.environ.get(ENV)
    if text is not None and text.strip().lower() in _OFF:
        return None
    if text:
        root = Path(text).expanduser()
    else:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        root = Path(base) / "nmrnn" / "xla"
    return root / f"jax-{jax.__version__}-cpus{usable_cpus()}"


def enable_compilation_cache(path: str | Path | None = None) -> Path | None:
    """Switch JAX's persistent compilation cache on for this process and return its folder.

    ``path``: the folder (default :func:`compilation_cache_dir`). Returns ``None`` and changes
    nothing when the cache is switched off (``NMRNN_COMPILATION_CACHE=off``) or its folder cannot
    be created; returns the user's own folder when one is already configured. Call it before the
    first compilation whose program should be cached.
    """
    import jax

    configured = jax.config.jax_compilation_cache_dir
    if configured:
        return Path(configured)
    folder = Path(path) if path is not None else compilation_cache_dir()
    if folder is None:
        return None
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None  # a read-only home: compile as usual
    jax.config.update("jax_compilation_cache_dir", str(folder))
    if "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS" not in os.environ:  # else the user's choice
        jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    return folder


# Each program XLA:CPU compiles keeps about 18 memory mappings for as long as JAX's caches hold
# it, and Linux refuses new mappings past ``vm.max_map_count`` (65530 by default): a process that
# compiles a few thousand programs (a long sweep worker, a test session) then dies with a
# segmentation fault inside the compiler. Clearing JAX's caches releases them; programs compiled
# again come from the on-disk cache when it is on.
MAP_FRACTION = 0.5  # release the compiled programs past this fraction of the limit
_MAX_MAP_COUNT = Path("/proc/sys/vm/max_map_count")
_SELF_MAPS = Path("/proc/self/maps")


def memory_maps() -> tuple[int, int] | None:
    """``(mappings of this process, the system's limit)``, or ``None`` where the OS does not
    say (not Linux)."""
    try:
        limit = int(_MAX_MAP_COUNT.read_text().split()[0])
        with _SELF_MAPS.open("rb") as f:
            count = sum(1 for _ in f)
    except (OSError, ValueError, IndexError):
        return None
    return count, limit


def release_compiled_programs(fraction: float = MAP_FRACTION) -> bool:
    """Clear JAX's caches of compiled programs when this process holds more than ``fraction``
    of the memory mappings the system allows; returns whether it did. Cheap enough to call before
    every training run (one read of ``/proc/self/maps``); :func:`nmrnn.train.fit` does."""
    maps = memory_maps()
    if maps is None or maps[0] <= fraction * maps[1]:
        return False
    import gc

    import jax

    jax.clear_caches()
    gc.collect()
    return True
