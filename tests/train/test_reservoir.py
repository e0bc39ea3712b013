"""Reservoir mode: any registered model trained through its ``"readout"`` group keeps its
recurrence as initialised (fixed random recurrence, trained readout: reservoir computing)."""

from __future__ import annotations

import jax
import jax.random as jr
import numpy as np
import pytest

from nmrnn.models import MODELS, make_model
from nmrnn.models.base import parameter_paths
from nmrnn.tasks.standard import FlipFlop
from nmrnn.train import Stage, TrainConfig, fit

OPTIONS = {"lowrank": dict(rank=2), "nmrnn": dict(n_nm=2, rank=2)}


@pytest.mark.parametrize("name", sorted(n for n in MODELS if n != "semilinear_lstm"))
def test_reservoir_mode_trains_only_the_readout(name):
    task = FlipFlop(n_bits=2, n_steps=12)
    model = make_model(name, n_in=2, n_out=2, n_hidden=6, key=jr.PRNGKey(0), **OPTIONS.get(name, {}))
    cfg = TrainConfig(stages=(Stage(3, group="readout"),), lr=1e-2, batch_size=4, steps_per_call=3)
    res = fit(model, task, cfg, key=jr.PRNGKey(1))
    readout = set(parameter_paths(model, "readout"))
    assert readout
    before = dict(zip(parameter_paths(model), jax.tree.leaves(_params(model)), strict=True))
    after = dict(zip(parameter_paths(res.model), jax.tree.leaves(_params(res.model)), strict=True))
    for path, value in before.items():
        if path in readout:
            assert not np.allclose(np.asarray(after[path]), np.asarray(value)), path
        else:
            np.testing.assert_array_equal(np.asarray(after[path]), np.asarray(value), err_msg=path)


def _params(model):
    import equinox as eqx

    from nmrnn.models import trainable_filter

    return eqx.filter(model, trainable_filter(model))
