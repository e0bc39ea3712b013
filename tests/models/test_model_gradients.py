"""Gradients of a masked-MSE loss through ``simulate`` against central finite differences.

float64 (``jax.enable_x64`` inside a fixture). For every trainable field of every model the
directional derivative along a random unit direction in that field alone is compared with
``(L(p + h v) - L(p - h v)) / 2h``, so a wrong or missing gradient in any one field is caught
(a single global direction could hide a small field behind a large one).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from models_cases import GRADIENT_CASES, GRADIENT_IDS, N_IN, N_OUT, build, random_inputs

from nmrnn.models import parameter_fields, simulate, trainable_filter

T_STEPS = 10
BATCH = 2
H = 1e-6


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def _masked_mse(y, target, mask):
    return jnp.sum(mask * (y - target) ** 2) / jnp.sum(mask)


def _shift(params, field, delta):
    return eqx.tree_at(lambda p: getattr(p, field), params, getattr(params, field) + delta)


@pytest.mark.parametrize("case", GRADIENT_CASES, ids=GRADIENT_IDS)
def test_gradients_match_central_differences(case, x64):
    model = build(case, seed=1)
    rng = np.random.default_rng(11)
    u = jnp.asarray(random_inputs(21, (BATCH, T_STEPS, N_IN)))
    target = jnp.asarray(rng.normal(size=(BATCH, T_STEPS, N_OUT)))
    mask = jnp.asarray((rng.random((BATCH, T_STEPS, N_OUT)) > 0.3).astype(np.float64))
    params, static = eqx.partition(model, trainable_filter(model))

    @jax.jit
    def value_and_grad(p):
        def loss(p):
            return _masked_mse(simulate(eqx.combine(p, static), u).outputs, target, mask)

        return jax.value_and_grad(loss)(p)

    value, grads = value_and_grad(params)
    assert np.isfinite(float(value)) and float(value) > 0
    fields = parameter_fields(model)
    assert fields, "a model without trainable fields"
    nonzero = 0
    for field in fields:
        g = np.asarray(getattr(grads, field))
        assert g.shape == getattr(params, field).shape, field
        v = rng.normal(size=g.shape)
        v /= np.linalg.norm(v)
        plus, _ = value_and_grad(_shift(params, field, H * jnp.asarray(v)))
        minus, _ = value_and_grad(_shift(params, field, -H * jnp.asarray(v)))
        fd = (float(plus) - float(minus)) / (2 * H)
        analytic = float(np.sum(g * v))
        assert analytic == pytest.approx(fd, rel=1e-5, abs=1e-8), field
        nonzero += abs(analytic) > 1e-6
    # every field influences the loss here (the directions are random, so none is zero by chance)
    assert nonzero == len(fields)
