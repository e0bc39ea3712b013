"""The compiled-program cache shared by every ``nmrnn`` process on a machine.

Compiling dominates short jobs: a short ``nmrnn compare`` spends about a third of its time in
XLA's compiler (``benchmarks/RESULTS.md``), and every process of a grid, a sweep or a second run of
the same command compiles the same programs again. JAX's persistent compilation cache keeps the
compiled programs on disk; :func:`enable_compilation_cache` switches it on, and the ``nmrnn``
command does so for every subcommand (local workers inherit it).

Where: ``$NMRNN_COMPILATION_CACHE`` if set (``off`` disables it), else
``$XDG_CACHE_HOME/nmrnn/xla`` (``~/.cache/nmrnn/xla``), in a subfolder per JAX version and number
of CPUs of the process's runtime (:func:`runtime_cpus`). The CPU count is part of the key because
XLA's CPU compiler splits loops over the CPUs it can use when the process starts, which changes
the last bits of some results: a program compiled in a process confined to one CPU must not be
reused by one that has two. A JAX cache
directory chosen by the user (``JAX_COMPILATION_CACHE_DIR`` or ``jax.config``) is respected as is,
and so is ``JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS`` (default here: every program, however
fast it compiled; JAX's own default of 1 s, or 0.1 s, leaves out the many small initialisation
and evaluation programs, which a short comparison grid spends about 2 s compiling again in every
run: ``benchmarks/RESULTS.md``). The ``nmrnn`` command switches the cache on; a Python program calling
:func:`nmrnn.cli.main` or the library keeps its own JAX settings unless it calls
:func:`enable_compilation_cache` (or ``main(argv, compilation_cache=True)``).

The numbers do not depend on the cache: a program loaded from it is the program the compiler
would have produced (tested).

**One-CPU runtimes.** :func:`start_one_cpu_runtime` starts this process's JAX runtime as on a
machine with one CPU. Runs trained in one-CPU runtimes give the same numbers bit for bit whichever
process, worker or machine (of one CPU type and JAX version) trains them, so the grids of runs of
:mod:`nmrnn.experiments.grid` train in them: a grid's result is the same for any number of
workers. They are also the fast way to share a machine: two one-CPU worker processes on two cores
each train about as fast as one process alone, while two processes whose runtimes both span the
two cores slow each other down (``benchmarks/bench_grid.py``).
"""

from __future__ import annotations

import os
from pathlib import Path

ENV = "NMRNN_COMPILATION_CACHE"
_OFF = {"", "0", "off", "false", "no", "none"}
MIN_COMPILE_SECONDS = 0.0  # cache every program, however fast it compiled


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


#: CPUs of this process's JAX runtime when :func:`start_one_cpu_runtime` started it (else None).
_RUNTIME_CPUS: int | None = None


def runtime_cpus() -> int:
    """The number of CPUs XLA's CPU runtime of this process was started with: 1 after
    :func:`start_one_cpu_runtime`, else the CPUs the process may use."""
    return _RUNTIME_CPUS if _RUNTIME_CPUS is not None else usable_cpus()


def _runtime_started() -> bool:
    try:
        from jax._src import xla_bridge
    except ImportError:  # pragma: no cover - a JAX without this module: assume not started
        return False
    return bool(xla_bridge.backends_are_initialized())


def _confine_threads(cpus: set[int]) -> None:
    """Set the CPU affinity of every thread of this process (threads started later inherit it)."""
    import contextlib

    for tid in os.listdir("/proc/self/task"):
        with contextlib.suppress(OSError):  # a thread that ended meanwhile
            os.sched_setaffinity(int(tid), cpus)


def start_one_cpu_runtime(cpu: int | None = None) -> int | None:
    """Start this process's JAX runtime as on a machine with one CPU (see the module docstring);
    returns the CPU it started on, or ``None`` where the OS has no CPU affinity (not Linux).

    XLA's CPU compiler splits loops over the CPUs a process may use when its runtime starts, and
    that changes the last bits of some results; a runtime started while the process is confined
    to one CPU computes as every other one-CPU runtime does. ``cpu``: keep every thread of the
    process on that CPU (local workers get one each); ``None``: start on the first usable CPU,
    then let the threads run on any (a worker started by hand, the test session).

    Must be called before the process's first JAX computation: ``RuntimeError`` if a runtime with
    more CPUs has started already; ``ValueError`` for a CPU the process may not use.
    """
    global _RUNTIME_CPUS
    if not hasattr(os, "sched_setaffinity"):
        return None
    allowed = set(os.sched_getaffinity(0))
    if cpu is not None and (isinstance(cpu, bool) or not isinstance(cpu, int) or cpu not in allowed):
        raise ValueError(f"cpu {cpu!r} is not one this process may use; usable CPUs: "
                         f"{', '.join(str(c) for c in sorted(allowed))}")
    if _runtime_started():
        if runtime_cpus() != 1:
            raise RuntimeError(
                f"JAX's runtime of this process has already started with {runtime_cpus()} CPUs; a "
                "one-CPU runtime must be started before the first JAX computation")
        if cpu is not None:
            _confine_threads({cpu})
        return cpu if cpu is not None else min(allowed)
    start = cpu if cpu is not None else min(allowed)
    _confine_threads({start})
    import jax.numpy as jnp

    jnp.zeros(1).block_until_ready()  # the runtime and its threads start here, on one CPU
    _RUNTIME_CPUS = 1
    if cpu is None:
        _confine_threads(allowed)
    return start


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
    return root / f"jax-{jax.__version__}-cpus{runtime_cpus()}"


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
