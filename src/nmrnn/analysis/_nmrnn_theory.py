"""Shared helpers of the NM-RNN theory modules (:mod:`.proposition1`, :mod:`.rank1`)."""

from __future__ import annotations

import numpy as np

from ..models.nmrnn import NMRNN


def require_nmrnn(model, what: str) -> None:
    """Refuse anything but an :class:`~nmrnn.models.NMRNN` (the theory is about that model)."""
    if not isinstance(model, NMRNN):
        raise ValueError(f"{what} needs an NMRNN, got {type(model).__name__}")


def full_input_matrix(weight, channels: tuple[int, ...] | None, n_in: int) -> np.ndarray:
    """Embed a weight acting on selected input channels into one acting on all ``n_in`` (host)."""
    weight = np.asarray(weight)
    if channels is None:
        return weight
    full = np.zeros((weight.shape[0], n_in), weight.dtype)
    full[:, list(channels)] = weight
    return full
