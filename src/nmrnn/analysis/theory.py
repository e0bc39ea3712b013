"""NM-RNN theory (paper 001, supplement A and B): the semilinear LSTM of Proposition 1 and the
exact neuromodulatory signal of a rank-1 NM-RNN.

Time is measured in steps of ``dt`` throughout; ``alpha = dt / tau_x`` is the leak of the
output-generating network per step, and "``tau_x`` in steps" means ``tau_x / dt = 1 / alpha``.
Arrays are batch-major, as everywhere in the library: inputs ``(*batch, T, P)``, targets
``(*batch, T)`` (one output channel), states ``(*batch, T, size)``.

Conventions: the library's NM-RNN against the paper
-----------------------------------------------------
:class:`~nmrnn.models.NMRNN` implements (``a_x = dt / tau_x``, ``a_z = dt / tau_z``)::

    z_t = (1 - a_z) z_{t-1} + a_z (W_z phi(z_{t-1}) + B_z u_t + B_zx x_{t-1})
    s_t = sigmoid(A_z z_t + b_z)
    x_t = (1 - a_x) x_{t-1} + a_x (L diag(s_t) R^T phi_x(x_{t-1}) / N + B_x u_t)
    y_t = C x_t + d

* **Order of updates.** ``z`` is updated first and the gains of the *new* ``z_t`` scale the ``x``
  update, exactly as in supplement eq. 1-2 and in the authors' reference code. This order is what
  makes the semilinear LSTM of Proposition 1 lag one step behind the NM-RNN.
* **1/N scaling.** Supplement eq. 1 has ``(1/N) L S_t R^T``; so does the library (``scale_by_n``,
  the default). With ``symmetric=True`` the factor is orthonormalised to ``L = sqrt(N) Q`` so that
  ``L^T L / N = I``, the hypothesis of Proposition 1. (The reference code uses unit-norm ``Q``
  without the ``1/N``: the recurrence ``Q S Q^T`` is the same.)
* **Linearised model and tau_x.** Proposition 1 uses supplement eq. 1-3: ``phi = identity`` in
  *both* subnetworks and no leak in ``x`` (``tau_x = dt``). The library's ``linearized=True`` sets
  ``phi_x = identity`` and ``tau_x = dt`` but keeps ``activation`` (tanh by default) in ``z``, as
  the reference code's linear-symmetric NM-RNN does. A ``tanh`` in ``z`` cannot be produced by the
  semilinear LSTM's affine output gate, so :func:`semilinear_lstm_from_nmrnn` needs
  ``activation="identity"`` (with ``activation="identity"`` the ``x`` network is linear too).
  Section B (the rank-1 signal) is in continuous time with a general ``tau_x`` (the rank-1 MWG
  network has ``tau_x = 2``); the functions here use the library's Euler step, for which the
  exact signal is written with a backward difference (see :func:`exact_rank1_signal`); the paper's
  eq. 16 is its ``dt -> 0`` limit (:func:`approximate_rank1_signal` with ``discrete=False``).
* **Readout.** ``y_t = C x_t + d`` in both.

Corrections to the supplement's construction (Proposition 1)
-------------------------------------------------------------
The proof's gate values are right but a few of the stated parameters do not produce them; the
builder uses the values that do (each is checked numerically by the tests):

1. The output gate's first ``K`` entries must equal ``1/2``; the proof sets ``b_o = 0`` *and*
   zeroes the first ``K`` rows of ``W_o``, which gives 0. Here ``b_o = [1/2 * 1_K; 0; 0]``.
2. ``h_t`` stores ``w_{t-1} / 2``, so the map back to ``z_t`` is
   ``W_zh = (2 a_z B_zx R | I_M | 0)``, not ``(a_z B_zx R | I_M | 0)`` (the readout ``C'`` has the
   factor 2 already).
3. In supplement eq. 8 and ``W_o`` the identity multiplying ``z_{t-1}`` is ``I_M``, not ``I_K``;
   the ``W_c`` block is the matrix ``(2/N) R^T B_x`` (the printed block multiplies by ``u_{t-1}``).
4. The count of nontrivial parameters omits the ``K`` entries of ``b_o`` (item 1); and the blocks
   ``A_z W_zh`` (forget gate) and ``A W_zh`` (output gate) are zero on the last ``P`` columns of
   ``h`` because ``W_zh`` is, so ``(K + M) P`` of the counted entries are structurally zero.
   :func:`proposition1_parameter_count` reports the paper's formula and both corrections.
5. The bound on ``Q`` (forget bias) is not needed: the last ``M + P`` rows of ``W_f`` are zero, so
   that gate is exactly ``sigmoid(Q)``; any ``Q`` with ``sigmoid(Q) == 1`` in floating point works
   (``Q = 50`` does in float32 and float64).
6. The construction starts from the NM-RNN's zero initial state and needs the LSTM cell to start at
   ``c_{-1} = [0_K; 1_M; 1_P]`` (the proof's convention ``c_t = [w_{t-1}; 1; 1]`` for every ``t``);
   that initial cell state is part of the built model (the buffer ``c_init``).

Rank-1 signal (section B): the 1/N and the two normalisations of "w"
-------------------------------------------------------------------
Section B writes ``(1/N) L s R^T = s~ L^ R^^T`` with ``s~ = |L| |R| s``, dropping the ``1/N``;
its eq. 14-16 therefore hold for an unscaled recurrence. The functions here keep the model's
scale (``1/N`` if ``scale_by_n``), so eq. 16 reads ``s = (1 + tau_x f' / (f - d)) / (scale R^T L)``;
for the symmetric orthonormal model ``scale R^T L = 1`` and the plateau value is ``s = 1``.
The rank-1 state of section B (eq. 12, called ``h(t)`` in the paper's Fig. 3B) is
``w = L^^T x`` with the *unit* vector ``L^ = L / |L|``, whereas Proposition 1's low-rank state is
``w = R^T x / N``; they differ by a factor ``|L| / N`` (``1 / sqrt(N)`` for ``L^T L = N``).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .._validation import check_nonnegative_int, check_positive, check_positive_int
from ..activations import get_activation
from ..models.base import (
    AbstractRecurrentModel,
    Trajectory,
    check_inputs,
    simulate,
    zeros_state,
)
from ..models.nmrnn import NMRNN

__all__ = [
    "MWGRank1Setting",
    "Proposition1Count",
    "PowerLaw",
    "Proposition1Trajectory",
    "Rank1Params",
    "Rank1Signal",
    "SemilinearLSTM",
    "SemilinearLSTMState",
    "SemilinearLSTMWeights",
    "approximate_rank1_signal",
    "exact_rank1_signal",
    "lagged_inputs",
    "make_mwg_rank1_nmrnn",
    "mwg_rank1_setting",
    "nm_state_decoder",
    "proposition1_parameter_count",
    "ramp_power_law",
    "ramp_power_law_coefficients",
    "rank1_params",
    "reproduce_nmrnn",
    "semilinear_lstm_from_nmrnn",
]


# ==============================================================================================
# Shared helpers
# ==============================================================================================


def _require_nmrnn(model, what: str) -> None:
    if not isinstance(model, NMRNN):
        raise ValueError(f"{what} needs an NMRNN, got {type(model).__name__}")


def _full_input_matrix(weight, channels: tuple[int, ...] | None, n_in: int) -> np.ndarray:
    """Embed a weight acting on selected input channels into one acting on all ``n_in`` (host)."""
    weight = np.asarray(weight)
    if channels is None:
        return weight
    full = np.zeros((weight.shape[0], n_in), weight.dtype)
    full[:, list(channels)] = weight
    return full


# ==============================================================================================
# Proposition 1: the semilinear LSTM
# ==============================================================================================


class SemilinearLSTMState(NamedTuple):
    h: Array  # (*batch, H) hidden state
    c: Array  # (*batch, H) cell state


class SemilinearLSTMWeights(NamedTuple):
    """Weights of a :class:`SemilinearLSTM` with hidden size ``H``, input size ``P'`` and ``O``
    outputs. Every gate matrix acts on the concatenation ``[h_{t-1}, u'_t]``: shape ``(H, H + P')``;
    biases ``(H,)``; readout ``C (O, H)``, ``d (O,)``; ``c_init (H,)`` is the cell state before the
    first input (``None``: zeros)."""

    W_f: Array
    b_f: Array
    W_i: Array
    b_i: Array
    W_c: Array
    b_c: Array
    W_o: Array
    b_o: Array
    C: Array
    d: Array
    c_init: Array | None = None


class SemilinearLSTM(AbstractRecurrentModel):
    """The "semilinear LSTM" of supplement eq. 4-6 (paper 001), with a linear readout::

        f_t = sigmoid(W_f [h_{t-1}, u'_t] + b_f)      i_t = sigmoid(W_i [h_{t-1}, u'_t] + b_i)
        g_t = W_c [h_{t-1}, u'_t] + b_c               c_t = f_t * c_{t-1} + i_t * g_t
        o_t = W_o [h_{t-1}, u'_t] + b_o               h_t = o_t * c_t
        y_t = C h_t + d

    Unlike the LSTM, the cell candidate ``g_t``, the output gate ``o_t`` and the hidden state have
    no nonlinearity. ``dt`` is 1 (a discrete-time model; time in steps). The initial state is
    ``h = 0`` and ``c = c_init`` (a fixed buffer, zeros unless given).

    Build it either randomly (``key``, PyTorch-like ``U(-1/sqrt(H), 1/sqrt(H))``) or from explicit
    ``weights`` (:class:`SemilinearLSTMWeights`); :func:`semilinear_lstm_from_nmrnn` does the
    latter.
    """

    W_f: Float[Array, "H HP"]
    b_f: Float[Array, " H"]
    W_i: Float[Array, "H HP"]
    b_i: Float[Array, " H"]
    W_c: Float[Array, "H HP"]
    b_c: Float[Array, " H"]
    W_o: Float[Array, "H HP"]
    b_o: Float[Array, " H"]
    C: Float[Array, "O H"]
    d: Float[Array, " O"]
    c_init: Float[Array, " H"]
    n_in: int = eqx.field(static=True)
    n_hidden: int = eqx.field(static=True)
    n_out: int = eqx.field(static=True)
    dt: float = eqx.field(static=True)

    param_groups: ClassVar[dict[str, tuple[str, ...]]] = {
        "recurrent": ("W_f", "b_f", "W_i", "b_i", "W_c", "b_c", "W_o", "b_o"),
        "readout": ("C", "d"),
    }
    buffers: ClassVar[tuple[str, ...]] = ("c_init",)
    state_fields: ClassVar[tuple[str, ...]] = ("h", "c")

    def __init__(
        self,
        n_in: int,
        n_hidden: int,
        n_out: int,
        *,
        key: PRNGKeyArray | None = None,
        weights: SemilinearLSTMWeights | None = None,
    ):
        check_positive_int("n_in", n_in)
        check_positive_int("n_hidden", n_hidden)
        check_positive_int("n_out", n_out)
        if (key is None) == (weights is None):
            raise ValueError("SemilinearLSTM needs exactly one of key (random init) or weights")
        self.n_in, self.n_hidden, self.n_out, self.dt = int(n_in), int(n_hidden), int(n_out), 1.0
        n_h, n_cols = self.n_hidden, self.n_hidden + self.n_in
        shapes = {
            "W_f": (n_h, n_cols), "b_f": (n_h,), "W_i": (n_h, n_cols), "b_i": (n_h,),
            "W_c": (n_h, n_cols), "b_c": (n_h,), "W_o": (n_h, n_cols), "b_o": (n_h,),
            "C": (self.n_out, n_h), "d": (self.n_out,),
        }  # fmt: skip
        if weights is None:
            keys = jr.split(key, len(shapes))
            bound = 1.0 / np.sqrt(n_h)
            values = {
                name: jr.uniform(k, shape, minval=-bound, maxval=bound)
                for k, (name, shape) in zip(keys, shapes.items(), strict=True)
            }
            values["d"] = jnp.zeros(self.n_out)
            c_init = jnp.zeros(n_h)
        else:
            values = {}
            for name, shape in shapes.items():
                value = jnp.asarray(getattr(weights, name))
                if value.shape != shape:
                    raise ValueError(
                        f"SemilinearLSTM weight {name} must have shape {shape} "
                        f"(n_in={n_in}, n_hidden={n_hidden}, n_out={n_out}), got {value.shape}"
                    )
                values[name] = value
            c_init = jnp.zeros(n_h) if weights.c_init is None else jnp.asarray(weights.c_init)
            if c_init.shape != (n_h,):
                raise ValueError(f"c_init must have shape ({n_h},), got {c_init.shape}")
        for name, value in values.items():
            setattr(self, name, value)
        self.c_init = c_init

    def initial_state(self, batch_shape=()):
        c = jnp.broadcast_to(self.c_init, (*batch_shape, self.n_hidden))
        return SemilinearLSTMState(zeros_state(batch_shape, self.n_hidden), c)

    def step(self, state, u, key=None):
        hu = jnp.concatenate([state.h, jnp.broadcast_to(u, (*state.h.shape[:-1], self.n_in))], -1)
        f = jax.nn.sigmoid(hu @ self.W_f.T + self.b_f)
        i = jax.nn.sigmoid(hu @ self.W_i.T + self.b_i)
        g = hu @ self.W_c.T + self.b_c
        o = hu @ self.W_o.T + self.b_o
        c = f * state.c + i * g
        return SemilinearLSTMState(o * c, c)

    def readout(self, state):
        return state.h @ self.C.T + self.d


def lagged_inputs(
    inputs: Float[Array, "*batch T P"], *, extra_step: bool = False
) -> Float[Array, "*batch T2 2P"]:
    """The inputs ``u'_t = [u_t; u_{t-1}]`` of Proposition 1, with ``u_{-1} = 0``.

    Args:
        inputs: ``(T, P)`` or ``(*batch, T, P)``, the NM-RNN's inputs (time in steps).
        extra_step: append one step with ``u_T = 0`` (output ``T + 1`` steps long). The semilinear
            LSTM's output at step ``t`` is the NM-RNN's output at ``t - 1``, so one extra step is
            needed to obtain all ``T`` outputs; the value of ``u_T`` does not affect them.

    Returns:
        ``(*batch, T, 2P)``, or ``(*batch, T + 1, 2P)`` with ``extra_step``.
    """
    inputs = jnp.asarray(inputs)
    if inputs.ndim < 2:
        raise ValueError(f"inputs must have shape (T, P) or (batch, T, P), got {inputs.shape}")
    zero = jnp.zeros_like(inputs[..., :1, :])
    if extra_step:
        current = jnp.concatenate([inputs, zero], axis=-2)
        previous = jnp.concatenate([zero, inputs], axis=-2)
    else:
        current = inputs
        previous = jnp.concatenate([zero, inputs[..., :-1, :]], axis=-2)
    return jnp.concatenate([current, previous], axis=-1)


def _check_proposition1(nmrnn, atol: float) -> None:
    """Refuse NM-RNNs outside the hypotheses of Proposition 1 (before any tracing)."""
    _require_nmrnn(nmrnn, "semilinear_lstm_from_nmrnn")
    if nmrnn.x_activation != "identity":
        raise ValueError(
            "Proposition 1 needs a linearized NM-RNN (supplement eq. 1-3: phi = identity and "
            f"tau_x = dt); got x_activation={nmrnn.x_activation!r}"
        )
    if nmrnn.tau_x != nmrnn.dt:
        raise ValueError(
            "Proposition 1 needs tau_x = dt (no leak in x, supplement eq. 1); got "
            f"tau_x={nmrnn.tau_x}, dt={nmrnn.dt}"
        )
    if nmrnn.activation != "identity":
        raise ValueError(
            "Proposition 1 needs a linear neuromodulatory network (supplement eq. 2); "
            f"got activation={nmrnn.activation!r} in z (NMRNN(linearized=True) keeps it); "
            "build the NM-RNN with activation='identity'"
        )
    if not nmrnn.symmetric:
        raise ValueError(
            "Proposition 1 needs a symmetric NM-RNN (L = R, symmetric=True); got symmetric=False"
        )
    if not nmrnn.scale_by_n:
        raise ValueError(
            "Proposition 1 needs the 1/N scaling of the recurrence (scale_by_n=True); "
            "got scale_by_n=False"
        )
    L, _ = nmrnn.factors()
    gram = np.asarray(L.T @ L) / nmrnn.n_hidden
    err = float(np.max(np.abs(gram - np.eye(nmrnn.rank))))
    if not err <= atol:
        raise ValueError(
            "Proposition 1 needs orthonormal columns, L^T L / N = I; the largest deviation is "
            f"{err:.3g} > atol={atol:g} (build the NM-RNN with orthonormalize=True)"
        )


class _Prop1Blocks(NamedTuple):
    """The NM-RNN arrays the construction uses, in float64 NumPy (built once, on the host)."""

    K: int
    M: int
    P: int
    N: int
    a_z: float
    L: np.ndarray  # (N, K), L^T L / N = I
    W_z: np.ndarray  # (M, M)
    B_z: np.ndarray  # (M, P) on all input channels
    B_zx: np.ndarray  # (M, N), zeros without feedback
    A_z: np.ndarray  # (K, M)
    b_z: np.ndarray  # (K,)
    B_x: np.ndarray  # (N, P) on all input channels
    C: np.ndarray  # (O, N)
    d: np.ndarray  # (O,)
    dtype: object


def _prop1_blocks(nmrnn: NMRNN) -> _Prop1Blocks:
    m = nmrnn.materialize()
    L, _ = m.factors()
    f64 = lambda a: np.asarray(a, dtype=np.float64)  # noqa: E731
    M, P, N = m.n_nm, m.n_in, m.n_hidden
    return _Prop1Blocks(
        K=m.rank, M=M, P=P, N=N, a_z=m.dt / m.tau_z, L=f64(L), W_z=f64(m.W_z),
        B_z=f64(_full_input_matrix(m.B_z, m.z_inputs, P)),
        B_zx=np.zeros((M, N)) if m.B_zx is None else f64(m.B_zx),
        A_z=f64(m.A_z), b_z=f64(m.b_z), B_x=f64(_full_input_matrix(m.B_x, m.x_inputs, P)),
        C=f64(m.C), d=f64(m.d), dtype=jnp.asarray(m.C).dtype,
    )  # fmt: skip


def _decoder(b: _Prop1Blocks) -> np.ndarray:
    """``W_zh = (2 a_z B_zx L | I_M | 0)``, ``(M, K + M + P)``."""
    return np.concatenate([2.0 * b.a_z * b.B_zx @ b.L, np.eye(b.M), np.zeros((b.M, b.P))], axis=1)


def nm_state_decoder(nmrnn: NMRNN) -> Float[Array, "M H"]:
    """The matrix ``W_zh (M, K + M + P)`` with ``z_t = W_zh h_t`` in the Proposition-1 LSTM.

    ``W_zh = (2 a_z B_zx R | I_M | 0)`` with ``a_z = dt / tau_z`` (``B_zx = 0`` without feedback);
    the factor 2 is correction 2 of the module docstring. Same checks as
    :func:`semilinear_lstm_from_nmrnn`.
    """
    _check_proposition1(nmrnn, atol=1e-4)
    blocks = _prop1_blocks(nmrnn)
    return jnp.asarray(_decoder(blocks), dtype=blocks.dtype)


def semilinear_lstm_from_nmrnn(
    nmrnn: NMRNN, *, forget_bias: float = 50.0, atol: float = 1e-4
) -> SemilinearLSTM:
    """Proposition 1: a semilinear LSTM that reproduces a linearized symmetric NM-RNN.

    The NM-RNN must satisfy the proposition's hypotheses (checked here, each refusal names the
    failing option): ``phi = identity`` in both subnetworks (``activation="identity"``),
    ``tau_x = dt``, ``symmetric=True``, ``scale_by_n=True`` and ``L^T L / N = I`` within ``atol``
    (``orthonormalize=True``). The feedback ``B_zx`` and input routing (``x_inputs``,
    ``z_inputs``) are supported. The LSTM reproduces the noise-free NM-RNN started from its zero
    initial state.

    With ``K = rank``, ``M = n_nm``, ``P = n_in``, ``a_z = dt / tau_z``,
    ``A = (1 - a_z) I_M + a_z W_z`` and ``Pi = I_N - L L^T / N``, the LSTM has hidden size
    ``H = K + M + P``, inputs ``u'_t = [u_t; u_{t-1}]`` (:func:`lagged_inputs`) and, acting on
    ``[h_{t-1}, u_t, u_{t-1}]``:

    * forget gate: rows ``1..K`` ``[A_z W_zh | 0 | 0]``, bias ``[b_z; Q 1_{M+P}]``
      (so ``f_t = [s_{t-1}; 1]``), ``Q = forget_bias``;
    * input gate: all zero (``i_t = 1/2``);
    * cell candidate: rows ``1..K`` ``[0 | 0 | (2/N) L^T B_x]``;
    * output gate: rows ``K+1..K+M`` ``[A W_zh | a_z B_z | a_z B_zx Pi B_x]``, rows ``K+M+1..H``
      ``[0 | 0 | I_P]``, bias ``[1/2 1_K; 0; 0]``;
    * readout ``C' = [2 C L | 0 | C Pi B_x]``, ``d' = d``; initial cell ``[0_K; 1_M; 1_P]``.

    Then, for ``t >= 0``: ``c_t = [w_{t-1}; 1; 1]`` with ``w_t = L^T x_t / N``;
    ``h_t = [w_{t-1} / 2; z_t - a_z B_zx L w_{t-1}; u_{t-1}]``; ``z_t = W_zh h_t``
    (:func:`nm_state_decoder`, no lag) and ``C' h_t + d' = y_{t-1}`` (one step of lag, with
    ``y_{-1} = d``). :func:`reproduce_nmrnn` runs it and undoes the lag.

    Args:
        nmrnn: the NM-RNN (trained or not).
        forget_bias: ``Q``; must make ``sigmoid(Q) == 1`` in floating point for exactness.
        atol: tolerance of the orthonormality check.
    """
    check_positive("forget_bias", forget_bias)
    check_positive("atol", atol)
    _check_proposition1(nmrnn, atol)
    b = _prop1_blocks(nmrnn)
    K, M, P, N, O = b.K, b.M, b.P, b.N, b.C.shape[0]
    H = K + M + P
    A = (1.0 - b.a_z) * np.eye(M) + b.a_z * b.W_z
    W_zh = _decoder(b)  # (M, H)
    residual_input = b.B_x - b.L @ (b.L.T @ b.B_x) / N  # Pi B_x, (N, P)

    cols = H + 2 * P  # [h_{t-1} (H) | u_t (P) | u_{t-1} (P)]
    h_cols, u_cols, v_cols = slice(0, H), slice(H, H + P), slice(H + P, cols)
    top, mid, bot = slice(0, K), slice(K, K + M), slice(K + M, H)

    W_f = np.zeros((H, cols))
    W_f[top, h_cols] = b.A_z @ W_zh
    b_f = np.concatenate([b.b_z, np.full(M + P, float(forget_bias))])
    W_c = np.zeros((H, cols))
    W_c[top, v_cols] = (2.0 / N) * b.L.T @ b.B_x
    W_o = np.zeros((H, cols))
    W_o[mid, h_cols] = A @ W_zh
    W_o[mid, u_cols] = b.a_z * b.B_z
    W_o[mid, v_cols] = b.a_z * b.B_zx @ residual_input
    W_o[bot, v_cols] = np.eye(P)
    b_o = np.zeros(H)
    b_o[top] = 0.5
    C = np.zeros((O, H))
    C[:, top] = 2.0 * b.C @ b.L
    C[:, bot] = b.C @ residual_input
    c_init = np.zeros(H)
    c_init[K:] = 1.0
    cast = lambda a: jnp.asarray(a, dtype=b.dtype)  # noqa: E731
    weights = SemilinearLSTMWeights(
        W_f=cast(W_f), b_f=cast(b_f), W_i=cast(np.zeros((H, cols))), b_i=cast(np.zeros(H)),
        W_c=cast(W_c), b_c=cast(np.zeros(H)), W_o=cast(W_o), b_o=cast(b_o), C=cast(C),
        d=cast(b.d), c_init=cast(c_init),
    )  # fmt: skip
    return SemilinearLSTM(2 * P, H, O, weights=weights)


class Proposition1Trajectory(NamedTuple):
    """The NM-RNN quantities read out of the Proposition-1 LSTM, aligned with the NM-RNN's steps.

    ``outputs (*batch, T, O)``: ``y_t``; ``w (*batch, T, K)``: ``w_t = L^T x_t / N``;
    ``z (*batch, T, M)``: ``z_t``; ``lstm``: the LSTM's own trajectory over ``T + 1`` steps.
    """

    outputs: Array
    w: Array
    z: Array
    lstm: Trajectory


def reproduce_nmrnn(nmrnn: NMRNN, inputs: Float[Array, "*batch T P"]) -> Proposition1Trajectory:
    """Run the Proposition-1 LSTM of ``nmrnn`` on ``inputs`` (the NM-RNN's, ``(*batch, T, P)``)
    and return the NM-RNN's outputs, low-rank state and neuromodulatory state at every step.

    The LSTM runs ``T + 1`` steps on ``lagged_inputs(inputs, extra_step=True)``; its step ``t + 1``
    gives ``y_t`` and ``w_t`` (``c_{t+1}[:K]``), its step ``t`` gives ``z_t`` (``W_zh h_t``).
    """
    lstm = semilinear_lstm_from_nmrnn(nmrnn)
    check_inputs(nmrnn, inputs)
    traj = simulate(lstm, lagged_inputs(inputs, extra_step=True))
    K = nmrnn.rank
    z = traj.states.h[..., :-1, :] @ nm_state_decoder(nmrnn).T
    return Proposition1Trajectory(
        outputs=traj.outputs[..., 1:, :], w=traj.states.c[..., 1:, :K], z=z, lstm=traj
    )


class Proposition1Count(NamedTuple):
    """Nontrivial parameters of the Proposition-1 LSTM, term by term as in the proof.

    ``forget = (K+1)(K+M+P)``, ``input = 0``, ``cell = P K``, ``output = M (K+M+3P) + P``,
    ``readout = O (K+1+P)``; ``paper_total`` is their sum (the proof's formula). ``output_bias = K``
    is the bias the proof omits (correction 1), ``structural_zeros = (K+M) P`` the counted entries
    that are zero by construction (correction 4); ``total = paper_total + output_bias`` and
    ``nonzero = total - structural_zeros`` (the nonzero entries for generic NM-RNN parameters with
    feedback and a nonzero ``d``).
    """

    forget: int
    input: int
    cell: int
    output: int
    readout: int
    paper_total: int
    output_bias: int
    structural_zeros: int
    total: int
    nonzero: int


def proposition1_parameter_count(rank: int, n_nm: int, n_in: int, n_out: int) -> Proposition1Count:
    """Count the Proposition-1 LSTM's nontrivial parameters (``K = rank``, ``M = n_nm``,
    ``P = n_in``, ``O = n_out``); see :class:`Proposition1Count`. The paper's total is
    ``O(max{K^2, M^2, PK, PM, OK, OP})``."""
    K = check_positive_int("rank", rank)
    M = check_positive_int("n_nm", n_nm)
    P = check_positive_int("n_in", n_in)
    O = check_positive_int("n_out", n_out)
    forget = (K + 1) * (K + M + P)
    cell = P * K
    output = M * (K + M + 3 * P) + P
    readout = O * (K + 1 + P)
    paper_total = forget + cell + output + readout
    total = paper_total + K
    zeros = (K + M) * P
    return Proposition1Count(
        forget=forget, input=0, cell=cell, output=output, readout=readout,
        paper_total=paper_total, output_bias=K, structural_zeros=zeros, total=total,
        nonzero=total - zeros,
    )  # fmt: skip


# ==============================================================================================
# Rank-1 exact neuromodulatory signal (supplement B, eq. 10-16)
# ==============================================================================================


class Rank1Params(eqx.Module):
    """What the rank-1 formulas need from a rank-1 NM-RNN (one output channel).

    ``L``, ``R``: ``(N,)`` the factors actually used by the recurrence (orthonormalised and
    ``R = L`` if symmetric); ``B_x``: ``(N, P)`` the x-input weights on *all* input channels;
    ``c``: ``(N,)`` the readout row; ``d``: ``()`` its bias. ``alpha = dt / tau_x`` (per step),
    ``scale`` the recurrence prefactor (``1/N`` or 1), ``activation`` the x-network's ``phi``.
    """

    L: Float[Array, " N"]
    R: Float[Array, " N"]
    B_x: Float[Array, "N P"]
    c: Float[Array, " N"]
    d: Float[Array, ""]
    alpha: float = eqx.field(static=True)
    scale: float = eqx.field(static=True)
    activation: str = eqx.field(static=True)

    @property
    def tau_steps(self) -> float:
        """``tau_x / dt``: the x time constant in steps."""
        return 1.0 / self.alpha

    @property
    def plateau(self) -> Array:
        """``s_inf = 1 / (scale R^T L)``: the signal that holds a constant output (eq. 16 with
        ``f' = 0``); 1 for the symmetric orthonormal model."""
        return 1.0 / (self.scale * jnp.dot(self.R, self.L))


def rank1_params(model: NMRNN, output: int = 0) -> Rank1Params:
    """Extract :class:`Rank1Params` from a rank-1 :class:`~nmrnn.models.NMRNN`.

    Args:
        model: an NM-RNN with ``rank == 1`` (any ``phi``; the exact signal handles a nonlinear x
            network, eq. 14; eq. 16 and the power law need ``phi = identity``).
        output: which output channel is the target's.
    """
    _require_nmrnn(model, "rank1_params")
    if model.rank != 1:
        raise ValueError(
            f"the rank-1 formulas (supplement B) need an NM-RNN of rank 1, got rank={model.rank}"
        )
    check_nonnegative_int("output", output)
    if output >= model.n_out:
        raise ValueError(f"output={output} is out of range for n_out={model.n_out}")
    m = model.materialize()
    L, R = (np.asarray(a) for a in m.factors())
    return Rank1Params(
        L=jnp.asarray(L[:, 0]),
        R=jnp.asarray(R[:, 0]),
        B_x=jnp.asarray(_full_input_matrix(m.B_x, m.x_inputs, m.n_in)),
        c=jnp.asarray(np.asarray(m.C)[output]),
        d=jnp.asarray(np.asarray(m.d)[output]),
        alpha=m.dt / m.tau_x,
        scale=1.0 / m.n_hidden if m.scale_by_n else 1.0,
        activation=m.x_activation,
    )


class Rank1Signal(NamedTuple):
    """The theoretical signal for a target ``f_t`` (time in steps).

    ``s (*batch, T)``: the gain ``s_t`` (NaN where it is undetermined); ``w (*batch, T)``: the
    rank-1 state ``w_t = L^^T x_t`` of eq. 12 (``h(t)`` in the paper's Fig. 3B);
    ``w_perp (*batch, T, N)``: the residual ``(I - L^ L^^T) x_t`` (``None`` for the approximate
    signal, which neglects it).
    """

    s: Array
    w: Array
    w_perp: Array | None


def _as_target(targets) -> np.ndarray | Array:
    """Shape check only (no device work): returns an object with ``.shape``."""
    if not hasattr(targets, "shape"):
        targets = np.asarray(targets, np.float32)
    if len(targets.shape) < 1:
        raise ValueError(f"targets must have shape (T,) or (batch, T), got {targets.shape}")
    return targets


def exact_rank1_signal(
    params: Rank1Params,
    targets: Float[Array, "*batch T"],
    inputs: Float[Array, "*batch T P"] | None = None,
    x_init: Float[Array, "*batch N"] | None = None,
) -> Rank1Signal:
    """The signal ``s_t`` that makes a rank-1 NM-RNN output exactly ``f_t`` (eq. 10-14, Euler).

    Discrete-time form of supplement eq. 10-14 for the library's Euler step. With
    ``L^ = L / |L|``, ``x = w L^ + w_perp`` and ``a = alpha = dt / tau_x``:

    * the residual does not feel ``s``: ``w_perp_t = (1 - a) w_perp_{t-1} + a Pi B_x u_t``
      (``Pi = I - L^ L^^T``; eq. 10-11);
    * the readout fixes the rank-1 state: ``w_t = (f_t - c^T w_perp_t - d) / (c^T L^)`` (eq. 12);
    * the x update along ``L^`` then gives (eq. 13-14, backward difference)::

        s_t = [ (w_t - (1 - a) w_{t-1}) / a - L^^T B_x u_t ] / ( scale |L| R^T phi(x_{t-1}) )

      where ``(w_t - (1 - a) w_{t-1}) / a = w_{t-1} + tau_x (w_t - w_{t-1}) / dt`` is the discrete
      ``w + tau_x dw/dt``.

    Feeding this ``s_t`` into the NM-RNN's x update reproduces ``f_t`` exactly (for ``t >= 0``).
    ``s_t`` is NaN where ``R^T phi(x_{t-1}) = 0`` (e.g. ``t = 0`` from the zero state; the output
    then does not depend on ``s_t``, and is reachable only if ``f_t`` equals the input-driven
    value). The formula needs ``c^T L != 0``.

    Args:
        params: from :func:`rank1_params`.
        targets: ``f_t``, ``(T,)`` or ``(*batch, T)``, for steps ``t = 0..T-1``.
        inputs: ``(*batch, T, P)`` on all the model's input channels; ``None`` means none.
        x_init: the state ``x_{-1}`` before the first step, ``(N,)`` or ``(*batch, N)``;
            ``None`` means the model's zero initial state.
    """
    targets = _as_target(targets)
    N, P = params.B_x.shape
    T = targets.shape[-1]
    if inputs is None:
        inputs = np.zeros((*targets.shape, P), np.float32)
    in_shape = np.shape(inputs)
    if len(in_shape) < 2 or in_shape[-1] != P or in_shape[-2] != T:
        raise ValueError(
            f"inputs must have shape (..., T={T}, P={P}) to match targets {targets.shape}, got "
            f"{in_shape}"
        )
    if x_init is None:
        x_init = np.zeros(N, np.float32)
    x_shape = np.shape(x_init)
    if len(x_shape) < 1 or x_shape[-1] != N:
        raise ValueError(f"x_init must have shape (..., N={N}), got {x_shape}")
    try:
        np.broadcast_shapes(targets.shape[:-1], in_shape[:-2], x_shape[:-1])
    except ValueError:
        raise ValueError(
            f"the batch shapes of targets {targets.shape}, inputs {in_shape} and x_init "
            f"{x_shape} do not broadcast"
        ) from None
    return _exact_rank1_core(params, targets, inputs, x_init)


@eqx.filter_jit
def _exact_rank1_core(params: Rank1Params, targets, inputs, x_init) -> Rank1Signal:
    N, P = params.B_x.shape
    T = targets.shape[-1]
    batch = jnp.broadcast_shapes(targets.shape[:-1], inputs.shape[:-2], x_init.shape[:-1])
    targets = jnp.broadcast_to(targets, (*batch, T))
    inputs = jnp.broadcast_to(inputs, (*batch, T, P))
    x_init = jnp.broadcast_to(x_init, (*batch, N))

    a = params.alpha
    norm_l = jnp.linalg.norm(params.L)
    l_hat = params.L / norm_l
    phi = get_activation(params.activation)

    drive = inputs @ params.B_x.T  # (*batch, T, N): B_x u_t
    drive_along = drive @ l_hat  # (*batch, T): L^^T B_x u_t
    drive_perp = drive - drive_along[..., None] * l_hat

    w_perp0 = x_init - (x_init @ l_hat)[..., None] * l_hat

    def body(w_perp, b_perp):
        new = (1.0 - a) * w_perp + a * b_perp
        return new, new

    _, w_perp = jax.lax.scan(body, w_perp0, jnp.moveaxis(drive_perp, -2, 0))
    w_perp = jnp.moveaxis(w_perp, 0, -2)  # (*batch, T, N)

    c_l = jnp.dot(params.c, l_hat)
    w = (targets - w_perp @ params.c - params.d) / c_l  # eq. 12

    w_prev = jnp.concatenate([(x_init @ l_hat)[..., None], w[..., :-1]], axis=-1)
    w_perp_prev = jnp.concatenate([w_perp0[..., None, :], w_perp[..., :-1, :]], axis=-2)
    x_prev = w_prev[..., None] * l_hat + w_perp_prev
    numerator = (w - (1.0 - a) * w_prev) / a - drive_along
    denominator = params.scale * norm_l * (phi(x_prev) @ params.R)
    safe = jnp.where(denominator == 0, 1.0, denominator)
    s = jnp.where(denominator == 0, jnp.nan, numerator / safe)
    return Rank1Signal(s=s, w=w, w_perp=w_perp)


def _require_linear(params: Rank1Params, what: str) -> None:
    if params.activation != "identity":
        raise ValueError(
            f"{what} holds for a linear output-generating network (phi = identity, eq. 16); "
            f"the model has activation={params.activation!r}; use exact_rank1_signal instead"
        )


def approximate_rank1_signal(
    params: Rank1Params,
    targets: Float[Array, "*batch T"],
    slopes: Float[Array, "*batch T"] | None = None,
    *,
    discrete: bool = True,
) -> Rank1Signal:
    """The paper's approximate signal (eq. 16) and rank-1 state (eq. 12), neglecting the inputs and
    the residual mode ``w_perp``; needs ``phi = identity``.

    * ``w_t = (f_t - d) / (c^T L^)`` (eq. 12 with ``w_perp = 0``, ``J = 0``).
    * ``discrete=False``: eq. 16, ``s_t = s_inf (1 + tau f'_t / (f_t - d))`` with
      ``s_inf = 1 / (scale R^T L)``, ``tau = tau_x / dt`` and ``slopes = f'`` per step (``None``:
      ``jnp.gradient`` of ``targets``).
    * ``discrete=True`` (default): the same for the Euler step,
      ``s_t = s_inf (1 + tau (f_t - f_{t-1}) / (f_{t-1} - d))`` with ``f_{-1} = f_0``; this is
      :func:`exact_rank1_signal` without inputs, started on the rank-1 mode at rest
      (``x_{-1} = w_0 L^``). ``slopes`` is ignored.

    Args:
        params: from :func:`rank1_params`.
        targets: ``f_t``, ``(*batch, T)``, time in steps.
        slopes: ``f'_t`` per step, ``(*batch, T)``, for ``discrete=False``.
    """
    _require_linear(params, "approximate_rank1_signal")
    targets = _as_target(targets)
    if not discrete and slopes is not None and np.shape(slopes) != tuple(targets.shape):
        raise ValueError(
            f"slopes must have the shape of targets {tuple(targets.shape)}, got {np.shape(slopes)}"
        )
    return _approximate_rank1_core(params, targets, slopes, discrete)


@eqx.filter_jit
def _approximate_rank1_core(params: Rank1Params, targets, slopes, discrete: bool) -> Rank1Signal:
    targets = jnp.asarray(targets)
    l_hat = params.L / jnp.linalg.norm(params.L)
    w = (targets - params.d) / jnp.dot(params.c, l_hat)
    tau = params.tau_steps
    if discrete:
        previous = jnp.concatenate([targets[..., :1], targets[..., :-1]], axis=-1)
        s = params.plateau * (1.0 + tau * (targets - previous) / (previous - params.d))
    else:
        slopes = jnp.gradient(targets, axis=-1) if slopes is None else jnp.asarray(slopes)
        s = params.plateau * (1.0 + tau * slopes / (targets - params.d))
    return Rank1Signal(s=s, w=w, w_perp=None)


class PowerLaw(NamedTuple):
    """``s(t) = s_inf (1 + tau / (t - t0))`` on a linear ramp (time in steps).

    ``s_inf``: the plateau ``1 / (scale R^T L)``; ``t0``: the time at which the ramp's line crosses
    the readout bias ``d`` (the pole); ``tau``: ``tau_x / dt``; the exponent is -1:
    ``s - s_inf = s_inf tau (t - t0)^-1``.
    """

    s_inf: Array
    t0: Array
    tau: float


def _check_ramp(interval, low, high) -> None:
    check_positive("interval", interval)
    if float(high) == float(low):
        raise ValueError(f"a ramp needs high != low, got low={low}, high={high}")


def ramp_power_law_coefficients(
    params: Rank1Params, *, t_go: float, interval: float, low: float = -0.5, high: float = 0.5
) -> PowerLaw:
    """Coefficients of the power law of :func:`ramp_power_law` (see :class:`PowerLaw`).

    The MWG ramp is ``f(t) = low + (high - low)(t - t_go) / interval`` on
    ``[t_go, t_go + interval]``; with slope ``k = (high - low) / interval``,
    ``f(t) - d = k (t - t0)`` and ``t0 = t_go + (d - low) / k``.
    """
    _require_linear(params, "the ramp power law")
    _check_ramp(interval, low, high)
    k = (high - low) / interval
    return PowerLaw(s_inf=params.plateau, t0=t_go + (params.d - low) / k, tau=params.tau_steps)


def ramp_power_law(
    params: Rank1Params,
    t: Float[Array, " T"],
    *,
    t_go: float,
    interval: float,
    low: float = -0.5,
    high: float = 0.5,
    discrete: bool = True,
) -> Float[Array, " T"]:
    """Closed form of eq. 16 for the MWG target (flat ``low``, linear ramp, flat ``high``).

    ``s = s_inf`` on the flat parts and a power law with exponent -1 on the ramp:

    * ``discrete=False`` (eq. 16, continuous time): ``s(t) = s_inf (1 + tau / (t - t0))`` for
      ``t_go <= t < t_go + interval``;
    * ``discrete=True`` (Euler step, backward difference; equals
      :func:`approximate_rank1_signal` with ``discrete=True``): ``s_t = s_inf (1 + tau /
      (t - 1 - t0))`` for ``t_go < t <= t_go + interval``.

    ``t`` (any shape) and ``t_go``, ``interval`` are in steps; see
    :func:`ramp_power_law_coefficients` for ``s_inf``, ``t0``, ``tau``.
    """
    law = ramp_power_law_coefficients(params, t_go=t_go, interval=interval, low=low, high=high)
    t = jnp.asarray(t, dtype=jnp.result_type(float))
    if discrete:
        on_ramp = (t > t_go) & (t <= t_go + interval)
        lag = t - 1.0
    else:
        on_ramp = (t >= t_go) & (t < t_go + interval)
        lag = t
    ramp = law.s_inf * (1.0 + law.tau / jnp.where(on_ramp, lag - law.t0, 1.0))
    return jnp.where(on_ramp, ramp, law.s_inf * jnp.ones_like(t))


# ==============================================================================================
# The paper's rank-1 Measure-Wait-Go setting
# ==============================================================================================


@dataclasses.dataclass(frozen=True)
class MWGRank1Setting:
    """The rank-1 MWG experiment of paper 001 (supplement C.2-C.3, Fig. 3B).

    ``model``: :class:`~nmrnn.models.NMRNN` options (N=100, M=20, K=1, tau_x=2, tau_z=10,
    symmetric, linear); ``train``: :class:`~nmrnn.train.TrainConfig` fields (full-batch Adam,
    lr 1e-3, 50k steps, on the 40-trial training set); ``test_intervals``: the intervals of
    Fig. 3B (7 and 23 extrapolated, 15 interpolated).

    The supplement calls the network "linearized" with ``tau_x = 2``: the x network is linear
    (``x_activation="identity"``) with a leak; the z network keeps ``tanh`` as in the authors'
    "linear symmetric" model (the rank-1 theory involves only the x network). ``task``: the MWG
    options. The loss is scored around the ramp (``mask_pad``): from the zero initial state a
    rank-1 network with gains below 1 can only let its state decay, so it cannot output the
    pre-cue level from t = 0; it sets its state with the cues, holds it (s ~ 1) and releases it
    into the ramp (s < 1), which is the mechanism the theory describes.
    """

    model: dict = dataclasses.field(
        default_factory=lambda: {
            "n_hidden": 100,
            "n_nm": 20,
            "rank": 1,
            "tau_x": 2.0,
            "tau_z": 10.0,
            "dt": 1.0,
            "activation": "tanh",
            "x_activation": "identity",
            "symmetric": True,
        }
    )
    train: dict = dataclasses.field(
        default_factory=lambda: {
            "steps": 50_000,
            "lr": 1e-3,
            "optimizer": "adam",
            "clip": None,
            "fixed_batch": True,
            "batch_size": 40,
            "noise": False,
        }
    )
    test_intervals: tuple[int, ...] = (7, 15, 23)
    task: dict = dataclasses.field(default_factory=lambda: {"mask_pad": 5})


def mwg_rank1_setting() -> MWGRank1Setting:
    """The paper's rank-1 MWG setting (see :class:`MWGRank1Setting`)."""
    return MWGRank1Setting()


def make_mwg_rank1_nmrnn(*, key: PRNGKeyArray, n_in: int = 3, n_out: int = 1) -> NMRNN:
    """A fresh NM-RNN in the paper's rank-1 MWG setting (3 input channels, 1 output)."""
    options = dict(mwg_rank1_setting().model)
    n_hidden = options.pop("n_hidden")
    return NMRNN(n_in, n_hidden, n_out, key=key, **options)
