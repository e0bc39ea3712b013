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


class CheckpointError(ValueError):
    """A checkpoint file that cannot be used; the message names the file and the field."""


def read_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every array of a checkpoint file, read without pickle; ``CheckpointError`` if the file is
    missing, a folder, empty, truncated, not an ``.npz`` archive or holds object arrays."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"checkpoint {path} is a folder, not a checkpoint file")
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist") from None
    except Exception as err:  # zipfile.BadZipFile, EOFError, ValueError (object arrays), OSError
        raise CheckpointError(
            f"checkpoint {path} cannot be read ({type(err).__name__}): it is empty, truncated or not a "
            "checkpoint written by nmrnn; delete it to start the run again"
        ) from None


def load_checkpoint(path: Path, skeletons: dict[str, Any], files: dict[str, np.ndarray] | None = None) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Load what :func:`save_checkpoint` wrote, filling each skeleton's leaves.

    Every array is checked against its skeleton leaf: present, same shape, a real floating type
    where the skeleton is floating (no bool or complex), an integer type where it is an integer,
    and finite. Raises :class:`CheckpointError` naming the file and the field otherwise (e.g. a
    checkpoint written by a different model or optimiser).
    """
    files = read_arrays(path) if files is None else files
    trees = {}
    for name, skeleton in skeletons.items():
        leaves, treedef = jax.tree.flatten(skeleton)
        count_arr = files.get(f"{name}/__count__")
        count = int(count_arr) if count_arr is not None and np.ndim(count_arr) == 0 and np.issubdtype(count_arr.dtype, np.integer) else -1
        if count != len(leaves):
            raise CheckpointError(
                f"checkpoint {path} holds {count if count >= 0 else 'no valid count of'} arrays for "
                f"{name!r}, the current {name} has {len(leaves)}: it was written by a different "
                "configuration"
            )
        new = []
        for i, ref in enumerate(leaves):
            field = f"{name}/{i}"
            if field not in files:
                raise CheckpointError(f"checkpoint {path} lacks the array {field}")
            arr = files[field]
            ref_dtype = jnp.asarray(ref).dtype
            if tuple(arr.shape) != tuple(np.shape(ref)):
                raise CheckpointError(
                    f"checkpoint {path}: {field} has shape {arr.shape}, expected "
                    f"{tuple(np.shape(ref))}: it was written by a different configuration"
                )
            if jnp.issubdtype(ref_dtype, jnp.floating):
                if not np.issubdtype(arr.dtype, np.floating):
                    raise CheckpointError(f"checkpoint {path}: {field} has dtype {arr.dtype}, expected a real float")
                if not np.all(np.isfinite(arr)):
                    raise CheckpointError(f"checkpoint {path}: {field} holds NaN or infinite values")
            elif jnp.issubdtype(ref_dtype, jnp.integer) and not np.issubdtype(arr.dtype, np.integer):
                raise CheckpointError(f"checkpoint {path}: {field} has dtype {arr.dtype}, expected an integer")
            new.append(jnp.asarray(arr, dtype=ref_dtype))
        trees[name] = jax.tree.unflatten(treedef, new)
    arrays = {k[len("array/"):]: v for k, v in files.items() if k.startswith("array/")}
    return trees, arrays
