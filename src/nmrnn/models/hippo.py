"""HiPPO-LegT recurrent cell (M5; Gu, Dao, Ermon, Rudra & Re, NeurIPS 2020): a nonlinear hidden
state ``h`` beside a fixed linear Legendre memory ``c`` of the recent past, the Legendre Memory Unit
(Voelker, Kajic & Eliasmith, NeurIPS 2019) in the HiPPO authors' normalisation.

The cell follows the HiPPO authors' RNN cell (HazyResearch/hippo-code, ``model/memory.py``:
``MemoryCell`` with ``LTICell``; the LegT cell is ``LegendreTranslateCell`` in ``model/opcell.py``,
the transition is ``transition('legt', N)`` in ``model/op.py``, the same function as in
HazyResearch/state-spaces ``src/models/hippo/hippo.py``), in its default wiring (input to memory
and to hidden, memory to hidden, no hidden-to-hidden matrix, biases, a sigmoid gate)::

    f_t = W_fu u_t + W_fh h_{t-1} + b_f                      memory input, (M,)
    c_t = A_d c_{t-1} + B_d f_t                              per memory channel, (M, K)
    h~_t = tanh(W_hu u_t + W_hc vec(c_t) + b_h)
    g_t = sigmoid(W_gu u_t + W_gc vec(c_t) + b_g)            (gate=False: g_t = 1)
    h_t = (1 - g_t) h_{t-1} + g_t h~_t,      y_t = C h_t + d

with ``M = memory_size`` memory channels (default 1, as the authors') of order ``K =
memory_order`` (default ``n_hidden``, as the authors'). ``vec(c)`` is row-major: entry ``m K + k``
is coefficient ``k`` of channel ``m``; the state field ``c`` holds it, shape ``(*batch, M K)``.

**The memory.** ``(A_d, B_d)`` discretise the continuous system ``c' = A c / theta + B f /
theta`` of a sliding window of length ``theta`` (in the units of ``dt``) with step ``dt``. They are
never trained (:meth:`HiPPOLegT.transition_matrices` derives them from the constant ``theta``;
``materialize`` stores them in the constants ``A_d``, ``B_d``, so changing ``theta`` does not
recompile). Two conventions for the window-1 matrices (:func:`legt_transition`):

* ``transition="legt"`` (default; the HiPPO authors' ``'legt'``): with ``r_n = sqrt(2n + 1)``,
  ``A_nk = -r_n r_k`` for ``n >= k`` and ``-(-1)^(n-k) r_n r_k`` for ``n < k``; ``B_n = r_n``.
  The coefficients are those of the normalised shifted Legendre basis: the input a delay ``s``
  ago is ``f(t - s) ~ sum_n c_n r_n P_n(1 - 2 s / theta)`` (:func:`legendre_decoder`).
* ``transition="lmu"`` (Voelker et al. 2019, eq. 2; the HiPPO authors' ``'lmu'``):
  ``A_nk = (2n + 1) (-1)^(n-k+1)`` for ``n >= k`` and ``-(2n + 1)`` for ``n < k``; ``B_n = (2n + 1)
  (-1)^n``, decoded as ``f(t - s) ~ sum_n m_n P_n(2 s / theta - 1)``. The two are the same system
  up to the change of variables ``c_n = (-1)^n m_n / r_n``.

Discretisation (``discretization``): ``"bilinear"`` (default: the generalised bilinear transform
with alpha = 1/2, Tustin's rule, the default of the authors' stand-alone operator ``HiPPO`` in
``model/hippo.py`` and of their scale-invariant cells; ``A_d = (I - dt A/2)^-1 (I + dt A/2)``,
``B_d = (I - dt A/2)^-1 dt B`` with ``A, B`` already divided by theta) or ``"zoh"`` (zero-order
hold, ``A_d = expm(dt A)``, ``B_d = A^-1 (A_d - I) B``, computed from the exponential of the
augmented matrix). Both are what ``scipy.signal.cont2discrete`` returns. **Choice**: the authors'
``LTICell``, which their LegT cell uses, defaults to ``'zoh'`` with ``dt = 0.01`` (a window of 100
steps); this module takes the bilinear rule as the default and the same window (``theta = 100``
steps of ``dt = 1``); ``discretization="zoh"`` gives that cell's default exactly. For windows of
many steps the two differ little (both decode the input to within a few percent, see
:func:`legendre_decoder`).

**Initialisation** (the authors'): ``[W_fu, W_fh]`` Kaiming-uniform for a linear unit
(``U(+-sqrt(3 / fan_in))``), ``[W_hu, W_hc]`` Xavier-normal, ``[W_gu, W_gc]`` Kaiming-normal for a
linear unit (``N(0, 1 / fan_in)``), every bias and the readout as PyTorch's ``nn.Linear``
(``U(+-1/sqrt(fan_in))``); ``fan_in`` counts the concatenated inputs of each map. States start at
``init_value`` (0). Parameters (``P`` inputs, ``N`` hidden, ``O`` outputs)::

    M (P + N + 1) + N (P + M K + 1) [+ N (P + M K + 1) with the gate] + O N + O
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import jax.scipy.linalg as jsl
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .._validation import check_choice, check_positive, check_positive_int
from .base import AbstractRecurrentModel, initial_state_parameter, replace_fields, time_constant

TRANSITIONS = ("legt", "lmu")
DISCRETIZATIONS = ("bilinear", "zoh")


def legt_transition(order: int, transition: str = "legt") -> tuple[np.ndarray, np.ndarray]:
    """The continuous ``(A (K, K), B (K,))`` of the Legendre memory of window 1, in float64.

    ``transition="legt"``: the HiPPO authors' normalisation; ``"lmu"``: Voelker et al.'s. See the
    module docstring for both closed forms. For a window ``theta``, use ``A / theta, B / theta``.
    """
    K = check_positive_int("memory_order", order)
    check_choice("transition", transition, TRANSITIONS)
    n = np.arange(K, dtype=np.float64)
    row, col = n[:, None], n[None, :]
    sign = (-1.0) ** (row - col)
    if transition == "legt":
        r = np.sqrt(2 * n + 1)
        A = -np.where(row >= col, 1.0, sign) * r[:, None] * r[None, :]
        B = r
    else:
        A = np.where(row >= col, -sign, -1.0) * (2 * row + 1)
        B = (2 * n + 1) * (-1.0) ** n
    return A, B


def discretize(A, B, step, method: str = "bilinear") -> tuple[Array, Array]:
    """``(A_d, B_d)`` of ``c' = A c + B f`` over a step ``step`` (a number or a scalar array).

    ``method="bilinear"`` (Tustin, generalised bilinear transform with alpha = 1/2) or ``"zoh"``
    (zero-order hold); both agree with ``scipy.signal.cont2discrete``. ``A (K, K)``, ``B (K,)``.
    """
    check_choice("discretization", method, DISCRETIZATIONS)
    A, B = jnp.asarray(A), jnp.asarray(B)
    K = A.shape[0]
    eye = jnp.eye(K, dtype=A.dtype)
    if method == "bilinear":
        left = eye - (step / 2) * A
        A_d = jnp.linalg.solve(left, eye + (step / 2) * A)
        B_d = jnp.linalg.solve(left, step * B)
        return A_d, B_d
    augmented = jnp.zeros((K + 1, K + 1), A.dtype).at[:K, :K].set(A).at[:K, K].set(B)
    E = jsl.expm(step * augmented)
    return E[:K, :K], E[:K, K]


def legendre_decoder(memory_order: int, delays, theta: float, transition: str = "legt") -> np.ndarray:
    """``(len(delays), K)`` matrix ``D`` with ``f(t - s) ~ (D @ c_t)`` for each delay ``s`` in
    ``[0, theta]`` (units of ``dt``): the shifted Legendre polynomials of the window, in the
    normalisation of ``transition``. For analysis (what the memory holds); not used in training.

    With a sampled input both discretisations treat each sample as held over its step, so delay
    ``s`` is measured from half a step before the last sample: ``D[s] @ c`` after step ``T - 1``
    estimates the input at step ``T - 1 - s / dt + 1/2``. The estimate is best inside the window;
    at its two ends a truncated Legendre series rings.
    """
    from scipy.special import eval_legendre

    K = check_positive_int("memory_order", memory_order)
    check_choice("transition", transition, TRANSITIONS)
    x = np.asarray(delays, dtype=np.float64)[:, None] / check_positive("theta", theta)
    n = np.arange(K)[None, :]
    if transition == "legt":
        return np.sqrt(2 * n + 1) * eval_legendre(n, 1 - 2 * x)
    return eval_legendre(n, 2 * x - 1)


class HiPPOState(NamedTuple):
    h: Array  # (*batch, N) hidden state
    c: Array  # (*batch, M K) Legendre memory, channel-major


class HiPPOLegT(AbstractRecurrentModel):
    """HiPPO-LegT cell with a linear readout of ``h``. See the module docstring."""

    W_fu: Float[Array, "M P"]
    W_fh: Float[Array, "M N"]
    b_f: Float[Array, " M"]
    W_hu: Float[Array, "N P"]
    W_hc: Float[Array, "N MK"]
    b_h: Float[Array, " N"]
    W_gu: Float[Array, "N P"] | None
    W_gc: Float[Array, "N MK"] | None
    b_g: Float[Array, " N"] | None
    C: Float[Array, "O N"]
    d: Float[Array, " O"]
    theta: Array
    A_d: Float[Array, "K K"] | None
    B_d: Float[Array, " K"] | None
    n_in: int = eqx.field(static=True)
    n_hidden: int = eqx.field(static=True)
    n_out: int = eqx.field(static=True)
    dt: float = eqx.field(static=True)
    memory_order: int = eqx.field(static=True)
    memory_size: int = eqx.field(static=True)
    transition: str = eqx.field(static=True)
    discretization: str = eqx.field(static=True)
    gate: bool = eqx.field(static=True)

    param_groups: ClassVar[dict[str, tuple[str, ...]]] = {
        "memory": ("W_fu", "W_fh", "b_f"),
        "recurrent": ("W_fh", "b_f", "W_hc", "b_h", "W_gc", "b_g"),
        "input": ("W_fu", "W_hu", "W_gu"),
        "readout": ("C", "d"),
    }
    #: ``theta`` and the discrete transition (set by ``materialize``) are fixed, never trained.
    constants: ClassVar[tuple[str, ...]] = ("theta", "A_d", "B_d")
    state_fields: ClassVar[tuple[str, ...]] = ("h", "c")

    def __init__(
        self,
        n_in: int,
        n_hidden: int,
        n_out: int,
        *,
        memory_order: int | None = None,
        memory_size: int = 1,
        theta: float = 100.0,
        dt: float = 1.0,
        transition: str = "legt",
        discretization: str = "bilinear",
        gate: bool = True,
        init_value: float = 0.0,
        learn_init: bool = False,
        key: PRNGKeyArray,
    ):
        P, N, O = check_positive_int("n_in", n_in), check_positive_int("n_hidden", n_hidden), check_positive_int("n_out", n_out)
        K = N if memory_order is None else check_positive_int("memory_order", memory_order)
        M = check_positive_int("memory_size", memory_size)
        self.theta, self.dt = time_constant(check_positive("theta", theta)), check_positive("dt", dt)
        self.transition = check_choice("transition", transition, TRANSITIONS)
        self.discretization = check_choice("discretization", discretization, DISCRETIZATIONS)
        self.n_in, self.n_hidden, self.n_out = P, N, O
        self.memory_order, self.memory_size, self.gate = K, M, bool(gate)
        self.A_d = self.B_d = None
        self.init_value = float(init_value)
        self.state0 = initial_state_parameter(HiPPOState, {"h": N, "c": M * K}, init_value, learn_init)
        k = jr.split(key, 7)

        def uniform(kk, shape, bound):
            return jr.uniform(kk, shape, minval=-bound, maxval=bound)

        # memory input: Kaiming-uniform (linear unit) over (u, h)
        W_f = uniform(k[0], (M, P + N), np.sqrt(3.0 / (P + N)))
        self.W_fu, self.W_fh = W_f[:, :P], W_f[:, P:]
        self.b_f = uniform(k[1], (M,), 1.0 / np.sqrt(P + N))
        # hidden candidate: Xavier-normal over (u, vec c)
        fan = P + M * K
        W_h = np.sqrt(2.0 / (fan + N)) * jr.normal(k[2], (N, fan))
        self.W_hu, self.W_hc = W_h[:, :P], W_h[:, P:]
        self.b_h = uniform(k[3], (N,), 1.0 / np.sqrt(fan))
        if self.gate:  # gate: Kaiming-normal (linear unit) over (u, vec c)
            W_g = jr.normal(k[4], (N, fan)) / np.sqrt(fan)
            self.W_gu, self.W_gc = W_g[:, :P], W_g[:, P:]
            self.b_g = uniform(k[5], (N,), 1.0 / np.sqrt(fan))
        else:
            self.W_gu = self.W_gc = self.b_g = None
        kC, kd = jr.split(k[6])
        self.C, self.d = uniform(kC, (O, N), 1.0 / np.sqrt(N)), uniform(kd, (O,), 1.0 / np.sqrt(N))

    # -- the memory -----------------------------------------------------------------------------
    def continuous_transition(self) -> tuple[np.ndarray, np.ndarray]:
        """The continuous ``(A, B)`` of the window ``theta = 1`` (float64; divide by ``theta``)."""
        return legt_transition(self.memory_order, self.transition)

    def transition_matrices(self) -> tuple[Array, Array]:
        """The discrete ``(A_d (K, K), B_d (K,))`` of one step ``dt`` (precomputed by
        ``materialize``, else computed here from ``theta``)."""
        if self.A_d is not None:
            return self.A_d, self.B_d
        dtype = jnp.result_type(self.W_hc)
        A, B = (jnp.asarray(a, dtype) for a in self.continuous_transition())
        return discretize(A, B, self.dt / self.theta.astype(dtype), self.discretization)

    def materialize(self):
        if self.A_d is not None:
            return self
        A_d, B_d = self.transition_matrices()
        return replace_fields(self, A_d=A_d, B_d=B_d)

    # -- the recurrent interface ----------------------------------------------------------------
    def state_sizes(self):
        return {"h": self.n_hidden, "c": self.memory_size * self.memory_order}

    @property
    def state_type(self):
        return HiPPOState

    def step(self, state, u, *, key=None):
        h, c = state
        A_d, B_d = self.transition_matrices()
        f = u @ self.W_fu.T + h @ self.W_fh.T + self.b_f  # (*batch, M)
        mem = c.reshape(*c.shape[:-1], self.memory_size, self.memory_order)
        mem = mem @ A_d.T + f[..., None] * B_d
        c_new = mem.reshape(c.shape)
        candidate = jnp.tanh(u @ self.W_hu.T + c_new @ self.W_hc.T + self.b_h)
        if self.gate:
            g = jax.nn.sigmoid(u @ self.W_gu.T + c_new @ self.W_gc.T + self.b_g)
            h_new = (1.0 - g) * h + g * candidate
        else:
            h_new = candidate
        return HiPPOState(h_new, c_new)

    def readout(self, state):
        return state.h @ self.C.T + self.d


__all__ = [
    "DISCRETIZATIONS",
    "TRANSITIONS",
    "HiPPOLegT",
    "HiPPOState",
    "discretize",
    "legendre_decoder",
    "legt_transition",
]
