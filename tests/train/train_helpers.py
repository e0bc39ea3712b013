"""Shared pieces of the training tests."""

import equinox as eqx
import jax
import jax.random as jr
import numpy as np
import pytest

from nmrnn.models import make_model
from nmrnn.train import fit


def small_nmrnn(seed=0):
    return make_model("nmrnn", n_in=3, n_out=1, n_hidden=12, n_nm=3, rank=2, tau_x=10.0, tau_z=20.0, key=jr.PRNGKey(seed))


def leaves_equal(a, b):
    la, lb = jax.tree.leaves(eqx.filter(a, eqx.is_array)), jax.tree.leaves(eqx.filter(b, eqx.is_array))
    return len(la) == len(lb) and all(np.array_equal(x, y) for x, y in zip(la, lb, strict=True))


class _Stop(Exception):
    pass


def interrupt_and_resume(task, config, key, run_dir, stop_at):
    """Train a fresh :func:`small_nmrnn` into ``run_dir``, stop it after step ``stop_at``, then
    resume it; returns the resumed result."""

    def interrupt(step, losses):
        if step == stop_at:
            raise _Stop

    with pytest.raises(_Stop):
        fit(small_nmrnn(), task, config, key=key, run_dir=run_dir, callback=interrupt)
    return fit(small_nmrnn(), task, config, key=key, run_dir=run_dir, resume=True)
