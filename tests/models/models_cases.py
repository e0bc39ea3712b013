"""The model configurations every test in this directory is parametrised over.

Each case is ``(id, registry name, n_hidden, options)``; the options are passed to ``make_model``
and read again by the NumPy reference (``models_reference.py``), which falls back to the
constructor defaults documented in the model modules for options not given here.

Sizes are small and time constants short so that a dozen steps move the state far from rest.
"""

from __future__ import annotations

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np

from nmrnn.models import make_model, simulate, trainable_filter

#: ``simulate`` compiled once per model structure and input shape, shared by every test module
#: (the eager ``simulate`` compiles its scan on every call).
jit_simulate = eqx.filter_jit(simulate)

N_IN = 3
N_OUT = 2

# A fixed 0/1 connectivity mask for the 6-neuron vanilla cases (diagonal cut, about 1/3 zeros).
_MASK = (np.random.default_rng(7).random((6, 6)) > 0.33).astype(np.float64)
np.fill_diagonal(_MASK, 0.0)

CASES: list[tuple[str, str, int, dict]] = [
    ("vanilla", "vanilla", 6, dict(tau=3.0)),
    ("vanilla-bias-dt2", "vanilla", 6, dict(tau=5.0, dt=2.0, bias=True)),
    ("vanilla-dale", "vanilla", 6, dict(tau=3.0, dale=True, exc_fraction=0.67)),
    ("vanilla-mask-relu", "vanilla", 6, dict(tau=3.0, mask=_MASK, activation="relu", bias=True)),
    ("vanilla-dale-mask", "vanilla", 6, dict(tau=3.0, mask=_MASK, dale=True)),
    ("vanilla-rate-readout", "vanilla", 6, dict(tau=3.0, readout_from="rate", activation="softplus")),
    ("lowrank", "lowrank", 7, dict(rank=2, tau=3.0)),
    ("lowrank-noscale-bias", "lowrank", 7, dict(rank=2, tau=3.0, scale_by_n=False, bias=True)),
    ("lowrank-ortho", "lowrank", 7, dict(rank=2, tau=3.0, orthonormalize=True)),
    ("lowrank-ortho-noscale-rate", "lowrank", 7, dict(rank=2, tau=3.0, orthonormalize=True, scale_by_n=False, readout_from="rate")),
    ("nmrnn", "nmrnn", 8, dict(n_nm=3, rank=2, tau_x=3.0, tau_z=5.0)),
    ("nmrnn-noscale", "nmrnn", 8, dict(n_nm=3, rank=2, tau_x=3.0, tau_z=5.0, scale_by_n=False)),
    ("nmrnn-linearized", "nmrnn", 8, dict(n_nm=3, rank=2, tau_z=5.0, linearized=True)),
    ("nmrnn-symmetric", "nmrnn", 8, dict(n_nm=3, rank=2, tau_x=3.0, tau_z=5.0, symmetric=True)),
    ("nmrnn-linear-symmetric", "nmrnn", 8, dict(n_nm=3, rank=2, tau_z=4.0, linearized=True, symmetric=True)),
    ("nmrnn-xact-identity", "nmrnn", 8, dict(n_nm=3, rank=2, tau_x=2.0, tau_z=5.0, x_activation="identity", symmetric=True)),
    ("nmrnn-xact-relu", "nmrnn", 8, dict(n_nm=3, rank=2, tau_x=3.0, tau_z=5.0, x_activation="relu")),
    ("nmrnn-ortho", "nmrnn", 8, dict(n_nm=3, rank=2, tau_x=3.0, tau_z=5.0, orthonormalize=True)),
    ("nmrnn-feedback", "nmrnn", 8, dict(n_nm=3, rank=2, tau_x=3.0, tau_z=5.0, feedback=True)),
    ("nmrnn-channels", "nmrnn", 8, dict(n_nm=3, rank=2, tau_x=3.0, tau_z=5.0, x_inputs=[0, 2], z_inputs=[1])),
    ("nmrnn-channels-overlap-dt", "nmrnn", 8, dict(n_nm=3, rank=2, tau_x=4.0, tau_z=6.0, dt=2.0, x_inputs=[2, 0], z_inputs=[0, 1, 2], feedback=True)),
    ("enmrnn", "enmrnn", 6, dict(n_nm=3, tau_r=3.0, tau_n=4.0)),
    ("enmrnn-factorised", "enmrnn", 6, dict(n_nm=3, t_rank=2, tau_r=3.0, tau_n=4.0)),
    ("enmrnn-tanh", "enmrnn", 6, dict(n_nm=3, tau_r=3.0, tau_n=2.0, activation="tanh")),
    ("enmrnn-lif", "enmrnn", 6, dict(n_nm=3, tau_r=3.0, tau_n=4.0, activation="lif")),
    ("enmrnn-celltypes", "enmrnn", 6, dict(n_nm=3, tau_r=3.0, tau_n=4.0, cell_types=True)),
    ("enmrnn-dale-factorised", "enmrnn", 6, dict(n_nm=3, t_rank=2, tau_r=3.0, tau_n=4.0, dale=True)),
    ("enmrnn-dale-celltypes-tanh-nmrelu", "enmrnn", 6, dict(n_nm=3, tau_r=3.0, tau_n=4.0, dale=True, exc_fraction=0.5, cell_types=True, activation="tanh", nm_activation="softplus")),
    ("gru", "gru", 5, {}),
    ("lstm", "lstm", 5, {}),
    ("cornn", "cornn", 5, dict(dt=0.2, gamma=1.5, epsilon=0.8)),
    ("cornn-imex", "cornn", 5, dict(dt=0.3, gamma=2.0, epsilon=3.0, scheme="imex", init_value=0.2)),
    ("hippo-legt", "hippo_legt", 5, dict(memory_order=4, theta=6.0)),
    ("hippo-lmu-zoh-nogate", "hippo_legt", 5, dict(memory_order=3, memory_size=2, theta=4.0, dt=0.5, transition="lmu",
                                                   discretization="zoh", gate=False, init_value=0.2)),
    ("transformer", "transformer", 6, dict(n_layers=2, n_heads=2, d_ff=10)),
    ("transformer-post-learned-gelu", "transformer", 6, dict(n_layers=1, n_heads=3, d_ff=7, norm="post",
                                                             positions="learned", max_len=16, activation="gelu")),
]

CASE_IDS = [c[0] for c in CASES]
#: The gradient checks skip cases whose differentiated code paths other cases already cover
#: (each skipped option is exercised in combination elsewhere: Dale with a mask, bias in the
#: vanilla case, channel routing in the overlapping-channels case, cell types with Dale, ...).
GRADIENT_SKIP = {
    "vanilla-dale", "vanilla-mask-relu", "lowrank-noscale-bias", "nmrnn-noscale", "nmrnn-channels",
    "nmrnn-xact-identity", "enmrnn-dale-factorised", "enmrnn-celltypes",
}
GRADIENT_CASES = [c for c in CASES if c[0] not in GRADIENT_SKIP]
GRADIENT_IDS = [c[0] for c in GRADIENT_CASES]
#: One case per model family, for the checks that need not run over every option.
FAMILY_CASES = [c for c in CASES if c[0] in ("vanilla-dale-mask", "lowrank-ortho", "nmrnn-channels-overlap-dt", "enmrnn-factorised", "gru", "lstm",
                                               "hippo-legt", "transformer")]
FAMILY_IDS = [c[0] for c in FAMILY_CASES]
CASE_BY_ID = {c[0]: c for c in CASES}
#: Registered models that are sequence models, not one-step maps (no ``initial_state``/``step``).
SEQUENCE_MODELS = frozenset({"transformer"})


@functools.cache
def _constructed(case_id: str, seed: int):
    """The freshly constructed float32 model of a case (cached: construction compiles eagerly)."""
    _, name, n_hidden, options = CASE_BY_ID[case_id]
    with jax.enable_x64(False):
        return make_model(name, n_in=N_IN, n_out=N_OUT, n_hidden=n_hidden, key=jr.PRNGKey(seed), **options)


def build(case, seed: int = 0):
    """The model of ``case`` with every trainable leaf perturbed away from its initial value.

    Constructors start biases at zero and excitabilities at one; perturbing all parameters makes
    a test sensitive to every term of the equations (a dropped bias would otherwise go unseen).
    Buffers (Dale signs, masks) are left as constructed. Arrays are in the current default float
    precision (float64 inside ``jax.enable_x64``). The perturbation is drawn with NumPy so that
    building a model compiles nothing.
    """
    model = _constructed(case[0], seed)
    spec = trainable_filter(model)
    rng = np.random.default_rng(1000 + seed)
    dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32

    def convert(leaf, trainable):
        if not eqx.is_inexact_array(leaf):
            return leaf
        value = np.asarray(leaf, dtype=np.float64)
        if trainable:
            value = value + 0.3 * rng.normal(size=value.shape)
        return jnp.asarray(value, dtype=dtype)

    return jax.tree.map(convert, model, spec)


def random_inputs(seed: int, shape, scale: float = 1.5) -> np.ndarray:
    return scale * np.random.default_rng(seed).normal(size=shape)
