"""Neuron nonlinearities by name.

Every model takes its nonlinearity as a string so that configurations stay plain data (JSON in run
directories, command-line flags). ``get_activation(name)`` returns the function; unknown names are
refused with the list of valid ones.

The ReLU-Tanh nonlinearity with *trainable* per-neuron excitability, ``E_i * relu(tanh(x) + e_i)``,
is implemented inside :class:`nmrnn.models.ENMRNN` because its parameters belong to the model; the
parameter-free form here is ``relu(tanh(x))`` (E = 1, e = 0).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from ._validation import check_choice


def lif_rate(current, k: float = 1.0, threshold: float = 1.0, v_reset: float = 0.0):
    """Steady-state firing rate of a leaky integrate-and-fire neuron (paper 000, eq. 9).

    ``f(I) = -k / ln| (k*threshold - I) / (k*v_reset - I) |`` above rheobase (``I > k*threshold``),
    and 0 below. ``k`` is the leak conductance in units where the membrane time constant is 1.
    """
    current = jnp.asarray(current)
    above = current > k * threshold
    # Evaluate the log only where it is defined; elsewhere feed a safe value and mask.
    safe = jnp.where(above, current, k * threshold + 1.0)
    ratio = jnp.abs((k * threshold - safe) / (k * v_reset - safe))
    rate = -k / jnp.log(ratio)
    return jnp.where(above, rate, 0.0)


def _identity(x):
    return x


def _relutanh(x):
    return jax.nn.relu(jnp.tanh(x))


ACTIVATIONS: dict[str, Callable] = {
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "identity": _identity,
    "sigmoid": jax.nn.sigmoid,
    "softplus": jax.nn.softplus,
    "relutanh": _relutanh,
    "lif": lif_rate,
}


def get_activation(name: str) -> Callable:
    """Return the nonlinearity called ``name`` (see ``ACTIVATIONS`` for the valid names)."""
    check_choice("activation", name, ACTIVATIONS)
    return ACTIVATIONS[name]
