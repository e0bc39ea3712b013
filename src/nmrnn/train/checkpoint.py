"""Checkpoints without pickle, written atomically.

A checkpoint is one ``.npz`` file: the leaves of each saved pytree as ``<name>/<i>`` arrays plus
plain arrays (step, learning curve). Loading needs a *skeleton* pytree of the same structure (a
freshly built model, an optimiser state from ``optimizer.init``); the file is read with
``allow_pickle=False``. Writes go to a temporary file in the same folder, are flushed to disk, and
replace the old checkpoint with ``os.replace``: a crash or kill mid-write leaves the previous
checkpoint intact.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def atomic_write_bytes(path: Path, write) -> None:
    """Call ``write(fileobj)`` on a temp file next to ``path`` then rename it onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file ordinary permissions
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, lambda f: f.write(text.encode()))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2) + "\n")


def _leaves(tree) -> list:
    leaves = jax.tree.leaves(tree)
    for leaf in leaves:
        if not isinstance(leaf, (jax.Array, np.ndarray, np.generic)):
            raise TypeError(f"checkpointed pytrees may hold only arrays, found {type(leaf).__name__}")
    return leaves


def save_checkpoint(path: Path, trees: dict[str, Any], arrays: dict[str, Any]) -> None:
    """Save named pytrees (their array leaves) and named plain arrays to ``path`` atomically."""
    payload: dict[str, np.ndarray] = {}
    for name, tree in trees.items():
        for i, leaf in enumerate(_leaves(tree)):
            payload[f"{name}/{i}"] = np.asarray(leaf)
        payload[f"{name}/__count__"] = np.asarray(len(_leaves(tree)))
    for name, arr in arrays.items():
        payload[f"array/{name}"] = np.asarray(arr)
    atomic_write_bytes(path, lambda f: np.savez(f, **payload))


def load_checkpoint(path: Path, skeletons: dict[str, Any]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Load what :func:`save_checkpoint` wrote, filling each skeleton's leaves.

    Raises ``ValueError`` if the file's structure does not match the skeletons (a different model
    or optimiser than the one that wrote it).
    """
    with np.load(Path(path), allow_pickle=False) as data:
        files = dict(data.items())
    trees = {}
    for name, skeleton in skeletons.items():
        leaves, treedef = jax.tree.flatten(skeleton)
        count = int(files.get(f"{name}/__count__", -1))
        if count != len(leaves):
            raise ValueError(
                f"checkpoint {path} holds {count} arrays for {name!r}, the current {name} has "
                f"{len(leaves)}: it was written by a different configuration"
            )
        new = []
        for i, ref in enumerate(leaves):
            arr = files[f"{name}/{i}"]
            if tuple(arr.shape) != tuple(np.shape(ref)):
                raise ValueError(
                    f"checkpoint {path}: {name} array {i} has shape {arr.shape}, expected "
                    f"{tuple(np.shape(ref))}: it was written by a different configuration"
                )
            new.append(jnp.asarray(arr, dtype=jnp.asarray(ref).dtype))
        trees[name] = jax.tree.unflatten(treedef, new)
    arrays = {k[len("array/"):]: v for k, v in files.items() if k.startswith("array/")}
    return trees, arrays
