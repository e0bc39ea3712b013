"""Protections around everything that writes results: folder locks, a memory guard, and signals
that stop a run cleanly.

* :class:`FolderLock`: an exclusive lock per run directory (and per comparison, sweep or
  reproduction folder), a ``.lock`` file holding the owner's pid and host. A second writer is
  refused naming the holder; a lock whose process is gone (killed) is stale and taken over. The
  lock is re-entrant within a process. Taking it removes the temporary files of writes that a kill
  interrupted (``.<name>.*.tmp``, see :func:`nmrnn.train.checkpoint.atomic_write_bytes`).
* :func:`estimate_memory` / :func:`check_memory`: what a run needs (parameters, optimiser state,
  the batch, the activations a backward pass keeps, the learning curve on the host) against the
  memory available, refused up front with both numbers.
* :func:`deferred_signals`: SIGINT and SIGTERM during training only set a flag; the loop finishes
  the compiled chunk in flight, writes its checkpoint and stops by raising :class:`Interrupted`
  (exit 130 for SIGINT, 143 for SIGTERM at the command line). No signal interrupts compiled code.
* :func:`stop_on_signals`: around a whole command, the first SIGINT/SIGTERM raises
  :class:`Interrupted`; once a stop is under way (raised there, or recorded by
  :func:`deferred_signals`) further signals are ignored, so the clean-up that follows a stop
  (checkpoints, a study's bookkeeping, the exit message) is never cut short by a second signal.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import socket
import threading
from pathlib import Path
from typing import Any

LOCK = ".lock"


class FolderLockedError(RuntimeError):
    """Another live process holds the folder's lock."""


class MemoryLimitError(ValueError):
    """A run would need more memory than is available (refused before any allocation)."""


class Interrupted(KeyboardInterrupt):
    """Training stopped on SIGINT or SIGTERM after writing its checkpoint; ``signum`` says which."""

    def __init__(self, signum: int, message: str = ""):
        super().__init__(message or f"stopped by {signal.Signals(signum).name}")
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + int(self.signum)


# ----------------------------------------------------------------------------------------------
# locks
# ----------------------------------------------------------------------------------------------

_HELD: dict[str, int] = {}
_HELD_LOCK = threading.Lock()


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (one owned by another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_owner(path: Path) -> tuple[int | None, str]:
    try:
        text = path.read_text().split()
        return int(text[0]), text[1] if len(text) > 1 else ""
    except (OSError, ValueError, IndexError):
        return None, ""


def clean_temp_files(folder: Path) -> list[Path]:
    """Remove the temporary files that killed atomic writes left in ``folder``."""
    removed = []
    for tmp in Path(folder).glob(".*.tmp"):
        with contextlib.suppress(OSError):
            tmp.unlink()
            removed.append(tmp)
    return removed


class FolderLock:
    """``with FolderLock(folder):`` — exclusive, re-entrant within the process, stale-aware."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.path = self.folder / LOCK

    def acquire(self) -> None:
        key = str(self.folder.resolve())
        with _HELD_LOCK:
            if key in _HELD:
                _HELD[key] += 1
                return
        self.folder.mkdir(parents=True, exist_ok=True)
        me = f"{os.getpid()} {socket.gethostname()}\n"
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                pid, host = _read_owner(self.path)
                if pid is not None and host == socket.gethostname() and pid != os.getpid() and process_alive(pid):
                    raise FolderLockedError(
                        f"{self.folder} is in use by process {pid} (lock {self.path}); wait for it "
                        "to finish or stop it"
                    ) from None
                if pid is not None and host and host != socket.gethostname():
                    raise FolderLockedError(
                        f"{self.folder} is locked by process {pid} on host {host} ({self.path}); "
                        "remove the lock file if that process is gone"
                    ) from None
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()  # stale: its process is gone
                continue
            with os.fdopen(fd, "w") as f:
                f.write(me)
            break
        else:  # pragma: no cover - a race lost three times
            raise FolderLockedError(f"could not take the lock {self.path}")
        with _HELD_LOCK:
            _HELD[key] = 1
        clean_temp_files(self.folder)

    def release(self) -> None:
        key = str(self.folder.resolve())
        with _HELD_LOCK:
            count = _HELD.get(key, 0)
            if count > 1:
                _HELD[key] = count - 1
                return
            _HELD.pop(key, None)
        with contextlib.suppress(FileNotFoundError):
            pid, _ = _read_owner(self.path)
            if pid == os.getpid():
                self.path.unlink()

    def __enter__(self) -> FolderLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


# ----------------------------------------------------------------------------------------------
# memory
# ----------------------------------------------------------------------------------------------


def available_memory() -> int:
    """Bytes of memory available to a new allocation (``MemAvailable`` on Linux)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return 2**62


def estimate_memory(model: Any, task: Any, config: Any, n_terms: int = 1) -> dict[str, int]:
    """Bytes a training run needs, by part (shapes only: nothing is allocated).

    * ``parameters``: every array of the model;
    * ``optimiser``: Adam's two moments, the gradient and the update (4x the trainable part);
    * ``batch``: inputs, targets and mask of one batch (twice: the fixed batch and a sampled one);
    * ``activations``: what the backward pass keeps, about 8 values per state variable per trial
      and time step (the states and the step's intermediates);
    * ``curve``: the per-step losses and terms on the host (float64, twice for the file).
    """
    import equinox as eqx
    import jax
    import numpy as np

    item = 4
    leaves = [x for x in jax.tree.leaves(model) if eqx.is_array(x) or isinstance(x, jax.ShapeDtypeStruct)]
    n_arrays = sum(int(np.prod(x.shape)) for x in leaves)
    from ..models.base import param_count

    trainable = param_count(model)
    batch = int(config.batch_size or getattr(task, "default_batch_size", 64))
    n_steps = int(getattr(task, "n_steps", 1) or 1)
    width = int(getattr(task, "n_in", 1)) + 2 * int(getattr(task, "n_out", 1))
    try:
        state = jax.eval_shape(lambda: model.initial_state(()))
        state_size = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(state))
    except Exception:  # sequence models without a state: count the hidden size
        state_size = int(getattr(model, "n_hidden", 1))
    return {
        "parameters": n_arrays * item,
        "optimiser": 4 * trainable * item,
        "batch": 2 * batch * n_steps * width * item,
        "activations": 8 * batch * n_steps * state_size * item,
        "curve": 2 * 8 * int(config.total_steps) * (1 + n_terms),
    }


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} PiB"  # pragma: no cover


def check_memory(model: Any, task: Any, config: Any, *, fraction: float = 0.8) -> int:
    """Refuse a run whose :func:`estimate_memory` exceeds ``fraction`` of the available memory
    (``MemoryLimitError`` with the estimate, its largest part and the limit). Returns the bytes."""
    parts = estimate_memory(model, task, config)
    total = sum(parts.values())
    limit = int(fraction * available_memory())
    if total > limit or not math.isfinite(total):
        big = max(parts, key=parts.get)
        raise MemoryLimitError(
            f"this run needs about {_fmt_bytes(total)} (mostly {big}: {_fmt_bytes(parts[big])}) but "
            f"{_fmt_bytes(limit)} is available ({fraction:.0%} of free memory); reduce the hidden size, "
            "batch size, trial length or steps, or pass --ignore-memory-limit if you know better"
        )
    return total


# ----------------------------------------------------------------------------------------------
# signals
# ----------------------------------------------------------------------------------------------


class _Flag:
    def __init__(self):
        self.signum: int | None = None


# Signals are process-wide, and so is this: the first stop signal of the command under way (set by
# :func:`deferred_signals` and :func:`stop_on_signals`, read and reset by the latter).
_STOP = _Flag()


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def _handling_stop_signals(handler, restore=None):
    """``handler`` for SIGINT and SIGTERM within the block; on leaving, each previous handler is
    put back (through ``restore(previous)`` when given)."""
    previous = {s: signal.signal(s, handler) for s in _STOP_SIGNALS}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, restore(h) if restore is not None else h)


@contextlib.contextmanager
def deferred_signals():
    """Within the block SIGINT/SIGTERM only record themselves (``flag.signum``); the caller checks
    the flag at safe points. Outside the main thread this does nothing (signals go to the main
    thread only)."""
    flag = _Flag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        if flag.signum is None:
            flag.signum = signum
        if _STOP.signum is None:
            _STOP.signum = signum

    with _handling_stop_signals(handler):
        yield flag


@contextlib.contextmanager
def stop_on_signals(restore=None):
    """Within the block the first SIGINT or SIGTERM raises :class:`Interrupted` (a
    ``KeyboardInterrupt``; exit code 130 / 143); once a stop is under way, raised here or recorded
    by a :func:`deferred_signals` block inside, later signals are ignored. On leaving, each signal's
    previous handler is put back, passed through ``restore(handler)`` when given (for example to
    ignore signals after a command is done). Outside the main thread this does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if _STOP.signum is None:
            _STOP.signum = signum
            raise Interrupted(signum)

    _STOP.signum = None
    try:
        with _handling_stop_signals(handler, restore):
            yield
    finally:
        _STOP.signum = None


__all__ = [
    "FolderLock",
    "FolderLockedError",
    "Interrupted",
    "MemoryLimitError",
    "available_memory",
    "check_memory",
    "clean_temp_files",
    "deferred_signals",
    "estimate_memory",
    "process_alive",
    "stop_on_signals",
]
