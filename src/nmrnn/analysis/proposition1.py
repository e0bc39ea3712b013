"""Proposition 1 of paper 001 (supplement A; docs/references.md): the semilinear LSTM
(:class:`~nmrnn.models.SemilinearLSTM`) that reproduces a linearised symmetric NM-RNN.

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
  Section B (the rank-1 signal, :mod:`nmrnn.analysis.rank1`) is in continuous time with a
  general ``tau_x`` (the rank-1 MWG network has ``tau_x = 2``).
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
"""

from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from .._validation import check_positive, check_positive_int
from ..models.base import Trajectory, check_inputs, simulate
from ..models.nmrnn import NMRNN
from ..models.semilinear import SemilinearLSTM, SemilinearLSTMWeights
from ._nmrnn_theory import full_input_matrix, require_nmrnn

__all__ = [
    "Proposition1Count",
    "Proposition1Trajectory",
    "lagged_inputs",
    "nm_state_decoder",
    "proposition1_parameter_count",
    "reproduce_nmrnn",
    "semilinear_lstm_from_nmrnn",
]


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
    require_nmrnn(nmrnn, "semilinear_lstm_from_nmrnn")
    if nmrnn.x_activation != "identity":
        raise ValueError(
            "Proposition 1 needs a linearized NM-RNN (supplement eq. 1-3: phi = identity and "
            f"tau_x = dt); got x_activation={nmrnn.x_activation!r}"
        )
    tau_x = float(nmrnn.tau_x)  # a host number: time constants may be stored as arrays
    if tau_x != nmrnn.dt:
        raise ValueError(
            "Proposition 1 needs tau_x = dt (no leak in x, supplement eq. 1); got "
            f"tau_x={tau_x}, dt={nmrnn.dt}"
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
        K=m.rank, M=M, P=P, N=N, a_z=float(m.dt / m.tau_z), L=f64(L), W_z=f64(m.W_z),
        B_z=f64(full_input_matrix(m.B_z, m.z_inputs, P)),
        B_zx=np.zeros((M, N)) if m.B_zx is None else f64(m.B_zx),
        A_z=f64(m.A_z), b_z=f64(m.b_z), B_x=f64(full_input_matrix(m.B_x, m.x_inputs, P)),
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

