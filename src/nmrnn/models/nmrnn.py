"""The NM-RNN of Costacurta et al. 2024 (M3): a small RNN z whose output gates the K rank-one
components of a low-rank RNN x.

    z_t = (1 - a_z) z_{t-1} + a_z (W_z phi(z_{t-1}) + B_z u^z_t [+ B_zx x_{t-1}])
    s_t = sigmoid(A_z z_t + b_z)                                    (K gains, in (0, 1))
    x_t = (1 - a_x) x_{t-1} + a_x (L diag(s_t) R^T phi(x_{t-1}) / N + B_x u^x_t)
    y_t = C x_t + d,                 a_x = dt / tau_x,  a_z = dt / tau_z

The order of updates follows the authors' code: z is updated first and the gains of the *new* z
scale the x update. Variants:

* ``linearized=True``: ``phi = identity`` in the x network and ``tau_x = dt`` (supplement eq. 1-3).
  ``phi`` of the z network stays ``activation`` (tanh).
* ``x_activation``: the x network's nonlinearity when it should differ from the z network's
  (default: ``activation``). ``x_activation="identity"`` with ``tau_x = 2`` and a tanh z network is
  the "linear symmetric" rank-1 model of the authors' code (Fig. 3B).
* ``symmetric=True``: ``R = L`` (one factor), orthonormalised so that ``L^T L / N = I`` (the setting
  of Proposition 1).
* ``orthonormalize`` / ``orthonormal_scale``: the L used is ``sqrt(N) Q`` (``"sqrt_n"``) or the
  raw, unit-norm ``Q`` (``"unit"``) of ``L = QR``, recomputed from the trained L at every forward
  pass.
* ``scale_by_n`` / ``factor_std``: the ``1/N`` of the recurrence, and the standard deviation of
  the initial L and R (default 1 with the 1/N, ``1/sqrt(N)`` without).
* ``clamp_gains``: ``((k, c), ...)`` holds gain ``s_k`` at the constant ``c`` (an ablation).

The authors' code (lindermanlab/nm-rnn, ``nm_rnn`` in ``rnn_code.py``) orthonormalises L to
unit-norm columns, has no 1/N, and draws L and R from N(0, 1), x0 = z0 = 0.1 and a readout bias
from N(0, 1/N): ``NMRNN(..., orthonormalize=True, orthonormal_scale="unit", scale_by_n=False,
factor_std=1.0, init_value=0.1, readout_bias_init="normal")``, which
:func:`nmrnn.models.reference_options` gives. The library's default keeps the 1/N of the paper's
equations with N(0, 1) factors (the paper's text, not its code).

* ``feedback=True``: adds ``B_zx x_{t-1}`` to the z drive.
* ``x_inputs`` / ``z_inputs``: channel indices routed to each subnetwork (the multitask form feeds
  the task-rule channels to z only). ``None`` means all channels.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .._validation import (
    check_choice,
    check_nonnegative,
    check_positive,
    check_positive_int,
    check_time_constants,
)
from ..activations import ACTIVATIONS, get_activation
from .base import (
    ORTHONORMAL_SCALES,
    READOUT_BIAS_INITS,
    AbstractRecurrentModel,
    initial_state_parameter,
    leaky_update,
    narrow_matmul,
    normal_init,
    orthonormal_columns,
    readout_bias,
    replace_fields,
    time_constant,
)
from .bptt import contract, contract_many, value_and_derivative


class NMState(NamedTuple):
    x: Array  # (*batch, N) output-generating network
    z: Array  # (*batch, M) neuromodulatory network


def _channels(name: str, channels: Sequence[int] | None, n_in: int) -> tuple[int, ...] | None:
    if channels is None:
        return None
    if any(isinstance(c, bool) or not isinstance(c, int | np.integer) for c in channels):
        raise ValueError(f"{name} must list integer channel indices, got {list(channels)}")
    chans = tuple(int(c) for c in channels)
    if not chans:
        raise ValueError(f"{name} must name at least one input channel, got an empty list")
    bad = [c for c in chans if not 0 <= c < n_in]
    if bad:
        raise ValueError(f"{name} has channel(s) {bad} outside 0..{n_in - 1} (n_in={n_in})")
    if len(set(chans)) != len(chans):
        raise ValueError(f"{name} repeats a channel: {list(chans)}")
    return chans


def _clamps(clamps, rank: int) -> tuple[tuple[int, float], ...] | None:
    if clamps is None:
        return None
    out = []
    for item in clamps:
        try:
            k, c = item
        except (TypeError, ValueError):
            raise ValueError(f"clamp_gains must be (component, value) pairs, got {item!r}") from None
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or not 0 <= int(k) < rank:
            raise ValueError(f"clamp_gains component {k!r} must be an integer in 0..{rank - 1} (rank={rank})")
        c = float(c)
        if not 0.0 <= c <= 1.0:
            raise ValueError(f"clamp_gains value {c!r} for s_{int(k)} must lie in [0, 1] (a gain is a sigmoid)")
        out.append((int(k), c))
    if len({k for k, _ in out}) != len(out):
        raise ValueError(f"clamp_gains names a component twice: {list(clamps)}")
    return tuple(out) or None


class NMRNN(AbstractRecurrentModel):
    """Neuromodulated low-rank RNN (NM-RNN). See the module docstring for the equations.

    Parameters: ``W_z (M, M)``, ``B_z (M, P_z)``, ``A_z (K, M)``, ``b_z (K)``, ``L (N, K)``,
    ``R (N, K)`` (absent if ``symmetric``), ``B_x (N, P_x)``, ``C (O, N)``, ``d (O)``, and
    ``B_zx (M, N)`` if ``feedback``.
    Groups: ``"nm"`` (the z subnetwork and its gain readout) and ``"lowrank"`` (everything of x);
    ``"readout"`` (C, d: a part of ``"lowrank"``, for reservoir training).
    """

    W_z: Float[Array, "M M"]
    B_z: Float[Array, "M Pz"]
    A_z: Float[Array, "K M"]
    b_z: Float[Array, " K"]
    B_zx: Float[Array, "M N"] | None
    L: Float[Array, "N K"]
    R: Float[Array, "N K"] | None
    B_x: Float[Array, "N Px"]
    C: Float[Array, "O N"]
    d: Float[Array, " O"]
    n_in: int = eqx.field(static=True)
    n_hidden: int = eqx.field(static=True)
    n_nm: int = eqx.field(static=True)
    rank: int = eqx.field(static=True)
    n_out: int = eqx.field(static=True)
    tau_x: Float[Array, ""]
    tau_z: Float[Array, ""]
    dt: float = eqx.field(static=True)
    activation: str = eqx.field(static=True)
    x_activation: str = eqx.field(static=True)
    linearized: bool = eqx.field(static=True)
    symmetric: bool = eqx.field(static=True)
    orthonormalize: bool = eqx.field(static=True)
    orthonormal_scale: str = eqx.field(static=True)
    scale_by_n: bool = eqx.field(static=True)
    clamp_gains: tuple[tuple[int, float], ...] | None = eqx.field(static=True)
    sigma_rec: float = eqx.field(static=True)
    x_inputs: tuple[int, ...] | None = eqx.field(static=True)
    z_inputs: tuple[int, ...] | None = eqx.field(static=True)

    param_groups: ClassVar[dict[str, tuple[str, ...]]] = {
        "nm": ("W_z", "B_z", "A_z", "b_z", "B_zx"),
        "lowrank": ("L", "R", "B_x", "C", "d"),
        "readout": ("C", "d"),
    }
    constants: ClassVar[tuple[str, ...]] = ("tau_x", "tau_z")
    state_fields: ClassVar[tuple[str, ...]] = ("x", "z")
    modulatory_fields: ClassVar[tuple[str, ...]] = ("z",)

    def __init__(
        self,
        n_in: int,
        n_hidden: int,
        n_out: int,
        *,
        n_nm: int = 5,
        rank: int = 3,
        tau_x: float = 10.0,
        tau_z: float = 100.0,
        dt: float = 1.0,
        activation: str = "tanh",
        x_activation: str | None = None,
        linearized: bool = False,
        symmetric: bool = False,
        orthonormalize: bool | None = None,
        feedback: bool = False,
        scale_by_n: bool = True,
        orthonormal_scale: str = "sqrt_n",
        factor_std: float | None = None,
        readout_bias_init: str = "zeros",
        clamp_gains: Sequence[tuple[int, float]] | None = None,
        sigma_rec: float = 0.0,
        x_inputs: Sequence[int] | None = None,
        z_inputs: Sequence[int] | None = None,
        init_value: float = 0.0,
        learn_init: bool = False,
        key: PRNGKeyArray,
    ):
        check_positive_int("n_in", n_in)
        check_positive_int("n_hidden", n_hidden)
        check_positive_int("n_out", n_out)
        check_positive_int("n_nm", n_nm)
        check_positive_int("rank", rank)
        if rank > n_hidden:
            raise ValueError(f"rank={rank} must not exceed n_hidden={n_hidden}")
        if linearized:
            tau_x = dt
        check_time_constants(dt, tau_x=tau_x, tau_z=tau_z)
        check_choice("activation", activation, ACTIVATIONS)
        if x_activation is not None:
            check_choice("x_activation", x_activation, ACTIVATIONS)
            if linearized and x_activation != "identity":
                raise ValueError(
                    f"linearized=True sets the x network's phi to identity; got "
                    f"x_activation={x_activation!r}"
                )
        check_nonnegative("sigma_rec", sigma_rec)
        check_choice("orthonormal_scale", orthonormal_scale, ORTHONORMAL_SCALES)
        check_choice("readout_bias_init", readout_bias_init, READOUT_BIAS_INITS)
        if factor_std is not None:
            check_positive("factor_std", factor_std)
        self.clamp_gains = _clamps(clamp_gains, rank)
        self.x_inputs = _channels("x_inputs", x_inputs, n_in)
        self.z_inputs = _channels("z_inputs", z_inputs, n_in)
        p_x = n_in if self.x_inputs is None else len(self.x_inputs)
        p_z = n_in if self.z_inputs is None else len(self.z_inputs)
        if orthonormalize is None:
            orthonormalize = symmetric

        self.n_in, self.n_hidden, self.n_nm = int(n_in), int(n_hidden), int(n_nm)
        self.rank, self.n_out = int(rank), int(n_out)
        self.tau_x, self.tau_z, self.dt = time_constant(tau_x), time_constant(tau_z), float(dt)
        self.init_value = float(init_value)
        self.state0 = initial_state_parameter(
            NMState, {"x": n_hidden, "z": n_nm}, init_value, learn_init
        )
        self.activation, self.linearized = activation, bool(linearized)
        if linearized:
            x_activation = "identity"
        self.x_activation = activation if x_activation is None else x_activation
        self.symmetric, self.orthonormalize = bool(symmetric), bool(orthonormalize)
        self.orthonormal_scale = orthonormal_scale
        self.scale_by_n, self.sigma_rec = bool(scale_by_n), float(sigma_rec)

        k = jr.split(key, 9)
        # Initial scales follow the reference code: inputs / sqrt(P), readout / sqrt(N), NM
        # weights and gain readout 0.1; N(0,1) factors with the 1/N scaling.
        if factor_std is None:
            factor_std = 1.0 if scale_by_n else 1.0 / np.sqrt(n_hidden)
        factor_scale = float(factor_std)
        self.L = normal_init(k[0], (n_hidden, rank), factor_scale)
        self.R = None if symmetric else normal_init(k[1], (n_hidden, rank), factor_scale)
        self.B_x = normal_init(k[2], (n_hidden, p_x), 1.0 / np.sqrt(p_x))
        self.C = normal_init(k[3], (n_out, n_hidden), 1.0 / np.sqrt(n_hidden))
        self.d = readout_bias(jr.fold_in(key, 9), n_out, n_hidden, readout_bias_init)
        self.W_z = normal_init(k[4], (n_nm, n_nm), 0.1)
        self.B_z = normal_init(k[5], (n_nm, p_z), 1.0 / np.sqrt(p_z))
        self.A_z = normal_init(k[6], (rank, n_nm), 0.1)
        self.b_z = normal_init(k[7], (rank,), 0.1)
        self.B_zx = normal_init(k[8], (n_nm, n_hidden), 0.1 / np.sqrt(n_hidden)) if feedback else None

    # -- derived quantities ------------------------------------------------------------------
    def factors(self) -> tuple[Array, Array]:
        """The (L, R) actually used by the recurrence (``R = L`` when symmetric)."""
        L = orthonormal_columns(self.L, self.orthonormal_scale) if self.orthonormalize else self.L
        R = L if self.symmetric else self.R
        return L, R

    def gains(self, z: Array) -> Array:
        """``s = sigmoid(A_z z + b_z)`` for any leading dims of ``z`` (components in
        ``clamp_gains`` held at their constants)."""
        s = jax.nn.sigmoid(narrow_matmul(z, self.A_z.T) + self.b_z)
        if self.clamp_gains:
            k = jnp.asarray([c[0] for c in self.clamp_gains])
            s = s.at[..., k].set(jnp.asarray([c[1] for c in self.clamp_gains], s.dtype))
        return s

    def materialize(self):
        if not self.orthonormalize:
            return self.with_rates("tau_x", "tau_z")
        L, _ = self.factors()
        return replace_fields(self, L=L, orthonormalize=False).with_rates("tau_x", "tau_z")

    def _x_phi(self):
        return get_activation(self.x_activation)

    def _select(self, u, channels):
        return u if channels is None else u[..., jnp.asarray(channels)]

    # -- interface ---------------------------------------------------------------------------
    def state_sizes(self):
        return {"x": self.n_hidden, "z": self.n_nm}

    @property
    def state_type(self):
        return NMState

    def modulation(self, states):
        """The gains ``s = sigmoid(A_z z + b_z)`` at every step, ``(*batch, T, K)``."""
        return self.gains(states.z)

    @classmethod
    def min_hidden(cls, *, rank: int = 3, **options):
        return int(rank)

    def step(self, state, u, *, key=None):
        phi_z = get_activation(self.activation)
        kx = kz = None
        if key is not None:
            kx, kz = jr.split(key)
        z_drive = narrow_matmul(phi_z(state.z), self.W_z.T) + narrow_matmul(
            self._select(u, self.z_inputs), self.B_z.T
        )
        if self.B_zx is not None:
            z_drive = z_drive + state.x @ self.B_zx.T
        z = leaky_update(state.z, z_drive, self.rate("tau_z"), self.sigma_rec, kz)
        s = self.gains(z)
        L, R = self.factors()
        proj = narrow_matmul(self._x_phi()(state.x), R)
        if self.scale_by_n:
            proj = proj / self.n_hidden
        x_drive = narrow_matmul(proj * s, L.T) + narrow_matmul(self._select(u, self.x_inputs), self.B_x.T)
        x = leaky_update(state.x, x_drive, self.rate("tau_x"), self.sigma_rec, kx)
        return NMState(x, z)

    def readout(self, state):
        return state.x @ self.C.T + self.d

    # -- backward pass by hand (nmrnn.models.bptt) ------------------------------------------
    @property
    def manual_backward(self) -> bool:
        """The hand-written backward applies to the materialised model (L already orthonormal)
        without clamped gains."""
        return not self.orthonormalize and not self.clamp_gains

    def _scale(self) -> float:
        return 1.0 / self.n_hidden if self.scale_by_n else 1.0

    def bptt_residuals(self, prev, new, xs):
        _, R = self.factors()
        fx, dfx = value_and_derivative(self._x_phi(), prev.x)
        fz, dfz = value_and_derivative(get_activation(self.activation), prev.z)
        px = narrow_matmul(fx, R) * self._scale()  # the low-rank projection R^T phi(x) / N
        s = self.gains(new.z)
        # phi'(x) with the 1/N scale: a loop-invariant factor formed for all steps at once
        return (px, s, dfx * self._scale(), dfz), (fx, fz, px, s)

    def bptt_step(self, res, g):
        px, s, dfx, dfz = res
        L, R = self.factors()
        ax, az = self.rate("tau_x"), self.rate("tau_z")
        gq = narrow_matmul(g.x, ax * L)  # cotangent of diag(s) R^T phi(x) / N
        gpre = gq * px * s * (1.0 - s)  # ... of the gains' pre-activation A_z z + b_z
        gz = g.z + narrow_matmul(gpre, self.A_z)  # z_t also reaches x_t through the gains
        gqs = gq * s
        gx = (1.0 - ax) * g.x + narrow_matmul(gqs, R.T) * dfx
        gzd = az * gz  # cotangent of the z drive
        gz_prev = (1.0 - az) * gz + narrow_matmul(gzd, self.W_z) * dfz
        if self.B_zx is not None:
            gx = gx + gzd @ self.B_zx
        return NMState(gx, gz_prev), (g.x, gqs, gpre, gzd)

    def bptt_fields(self):  # with the readout's, which step does not read
        fields = ["L", "B_x", "W_z", "B_z", "A_z", "b_z", "C", "d"]
        return fields + ([] if self.symmetric else ["R"]) + ([] if self.B_zx is None else ["B_zx"])

    def bptt_grads(self, prev, new, xs, post, emits):
        fx, fz, px, s = post
        gx, gqs, gpre, gzd = emits
        ax = self.rate("tau_x")
        dL, dB_x = contract_many(gx, px * s, self._select(xs, self.x_inputs))
        dL, dR = ax * dL, contract(fx, gqs) * self._scale()
        grads = {
            "B_x": ax * dB_x,
            "W_z": contract(gzd, fz),
            "B_z": contract(gzd, self._select(xs, self.z_inputs)),
            "A_z": contract(gpre, new.z),
            "b_z": gpre.reshape(-1, gpre.shape[-1]).sum(0),
            "C": None,
            "d": None,
        }
        if self.symmetric:
            grads["L"] = dL + dR
        else:
            grads["L"], grads["R"] = dL, dR
        if self.B_zx is not None:
            grads["B_zx"] = contract(gzd, prev.x)
        return grads
