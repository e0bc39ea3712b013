"""Bad input is refused early with a ``ValueError`` that names the bad value and what is allowed."""

from __future__ import annotations

import re

import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from models_cases import FAMILY_CASES, FAMILY_IDS, N_IN, build

from nmrnn.models import make_model, simulate


def _make(name, n_in=3, n_out=1, n_hidden=8, **options):
    return make_model(name, n_in=n_in, n_out=n_out, n_hidden=n_hidden, key=jr.PRNGKey(0), **options)


BAD_CONSTRUCTIONS = [
    # sizes
    ("vanilla", dict(n_hidden=0), "n_hidden must be a positive integer, got 0"),
    ("lowrank", dict(n_in=-2), "n_in must be a positive integer, got -2"),
    ("nmrnn", dict(n_out=0), "n_out must be a positive integer, got 0"),
    ("lstm", dict(n_hidden=2.5), "n_hidden must be a positive integer, got 2.5"),
    ("gru", dict(n_hidden=True), "n_hidden must be a positive integer, got True"),
    ("enmrnn", dict(n_hidden=-4), "n_hidden must be a positive integer, got -4"),
    ("nmrnn", dict(n_nm=0), "n_nm must be a positive integer, got 0"),
    ("enmrnn", dict(n_nm=-1), "n_nm must be a positive integer, got -1"),
    ("lowrank", dict(rank=0), "rank must be a positive integer, got 0"),
    ("enmrnn", dict(t_rank=0), "t_rank must be a positive integer, got 0"),
    ("lowrank", dict(rank=9), "rank=9 must not exceed n_hidden=8"),
    ("nmrnn", dict(rank=12), "rank=12 must not exceed n_hidden=8"),
    # time constants
    ("vanilla", dict(tau=0.0), "tau must be a positive number, got 0.0"),
    ("vanilla", dict(tau=float("nan")), "tau must be a positive number, got nan"),
    ("lowrank", dict(tau=-3.0), "tau must be a positive number, got -3.0"),
    ("vanilla", dict(dt=0), "dt must be a positive number, got 0"),
    ("vanilla", dict(dt=20.0, tau=10.0), "dt=20.0 is larger than tau=10.0"),
    ("nmrnn", dict(tau_z=0.5), "dt=1.0 is larger than tau_z=0.5"),
    ("nmrnn", dict(tau_x=-1.0), "tau_x must be a positive number, got -1.0"),
    ("enmrnn", dict(tau_n=0.5), "dt=1.0 is larger than tau_n=0.5"),
    ("enmrnn", dict(tau_r=0.0), "tau_r must be a positive number, got 0.0"),
    # nonlinearities and other choices
    ("vanilla", dict(activation="sigmoidal"), "unknown activation 'sigmoidal'; valid choices: tanh, relu"),
    ("nmrnn", dict(activation="gelu"), "unknown activation 'gelu'"),
    ("enmrnn", dict(activation="elu"), "unknown activation 'elu'"),
    ("nmrnn", dict(x_activation="swish"), "unknown x_activation 'swish'"),
    ("nmrnn", dict(linearized=True, x_activation="tanh"), "linearized=True sets the x network's phi to identity; got x_activation='tanh'"),
    ("enmrnn", dict(nm_activation="exp"), "unknown nm_activation 'exp'"),
    ("vanilla", dict(readout_from="output"), "unknown readout_from 'output'; valid choices: state, rate"),
    # noise, Dale's law, masks
    ("vanilla", dict(sigma_rec=-0.1), "sigma_rec must be a non-negative number, got -0.1"),
    ("nmrnn", dict(sigma_rec=float("inf")), "sigma_rec must be a non-negative number, got inf"),
    ("vanilla", dict(dale=True, exc_fraction=1.5), "exc_fraction must lie in [0, 1], got 1.5"),
    ("enmrnn", dict(dale=True, exc_fraction=-0.2), "exc_fraction must be a non-negative number, got -0.2"),
    ("vanilla", dict(mask=np.ones((3, 3))), "mask must have shape (n_hidden, n_hidden)=(8, 8), got (3, 3)"),
    # channel routing of the NM-RNN
    ("nmrnn", dict(x_inputs=[0, 3]), "x_inputs has channel(s) [3] outside 0..2 (n_in=3)"),
    ("nmrnn", dict(z_inputs=[-1, 1]), "z_inputs has channel(s) [-1] outside 0..2 (n_in=3)"),
    ("nmrnn", dict(x_inputs=[]), "x_inputs must name at least one input channel, got an empty list"),
    ("nmrnn", dict(z_inputs=[1, 1]), "z_inputs repeats a channel: [1, 1]"),
    ("nmrnn", dict(x_inputs=[0.5, 2]), "x_inputs must list integer channel indices, got [0.5, 2]"),
    ("nmrnn", dict(z_inputs=["1"]), "z_inputs must list integer channel indices, got ['1']"),
    # the Transformer
    ("transformer", dict(n_hidden=10, n_heads=4), "n_hidden=10 must be a multiple of n_heads=4"),
    ("transformer", dict(n_heads=0), "n_heads must be a positive integer, got 0"),
    ("transformer", dict(n_layers=0), "n_layers must be a positive integer, got 0"),
    ("transformer", dict(d_ff=-3), "d_ff must be a positive integer, got -3"),
    ("transformer", dict(positions="rotary"), "unknown positions 'rotary'; valid choices: sinusoidal, learned"),
    ("transformer", dict(positions="learned", max_len=0), "max_len must be a positive integer, got 0"),
    ("transformer", dict(norm="sandwich"), "unknown norm 'sandwich'; valid choices: pre, post"),
    ("transformer", dict(activation="swish"), "unknown activation 'swish'; valid choices: relu, gelu"),
    # HiPPO-LegT
    ("hippo_legt", dict(memory_order=0), "memory_order must be a positive integer, got 0"),
    ("hippo_legt", dict(memory_size=-1), "memory_size must be a positive integer, got -1"),
    ("hippo_legt", dict(theta=0.0), "theta must be a positive number, got 0.0"),
    ("hippo_legt", dict(theta=-5), "theta must be a positive number, got -5"),
    ("hippo_legt", dict(dt=0), "dt must be a positive number, got 0"),
    ("hippo_legt", dict(transition="legs"), "unknown transition 'legs'; valid choices: legt, lmu"),
    ("hippo_legt", dict(discretization="euler"), "unknown discretization 'euler'; valid choices: bilinear, zoh"),
]


@pytest.mark.parametrize(
    "name,options,message", BAD_CONSTRUCTIONS, ids=[f"{n}-{'-'.join(o)}-{i}" for i, (n, o, _) in enumerate(BAD_CONSTRUCTIONS)]
)
def test_bad_constructor_arguments_are_refused(name, options, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        _make(name, **options)


def test_unknown_model_and_option_names_are_refused():
    with pytest.raises(ValueError, match=re.escape("unknown model 'mamba'; valid choices: vanilla, lowrank")):
        _make("mamba")
    with pytest.raises(ValueError, match=re.escape("unknown option(s) tau_x for model 'vanilla'; valid options:")):
        _make("vanilla", tau_x=3.0)


@pytest.mark.parametrize("case", FAMILY_CASES, ids=FAMILY_IDS)
def test_simulate_refuses_inputs_with_the_wrong_number_of_channels(case):
    model = build(case)
    cls = type(model).__name__
    with pytest.raises(ValueError, match=re.escape(f"inputs have 4 channels but the {cls} expects n_in={N_IN}")):
        simulate(model, jnp.zeros((2, 5, 4)))
    with pytest.raises(ValueError, match=re.escape(f"inputs have 1 channels but the {cls} expects n_in={N_IN}")):
        simulate(model, jnp.zeros((5, 1)))
    with pytest.raises(ValueError, match=re.escape("inputs must have shape (T, n_in) or (batch, T, n_in); got shape (5,)")):
        simulate(model, jnp.zeros(5))
