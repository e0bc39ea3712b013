"""Compositional generalisation (T6; e-nmRNN paper, supplement section 9.2).

``K`` input basis sequences ``mu_k(t)`` and ``K`` output basis sequences ``eta_k(t)`` are fixed
by the task's configuration. A trial is a coefficient vector ``a in R^K``:

    u(t)  = sum_k a_k mu_k(t)        input,  steps 0 .. input_steps - 1
    y*(t) = sum_k a_k eta_k(t)       target, steps output_start .. output_start + output_steps - 1

The network must infer ``a`` from the input sequence and produce the matching composition of the
output basis. The model is trained on one set of coefficient vectors and tested on unseen ones;
the metric is the variance explained on the held-out compositions, and a weak (linear) decoder
of ``a`` from the hidden or neuromodulator states measures how well the network represents the
coefficients (:func:`decode_coefficients`).

Basis functions (the paper does not say how its bases were made; this is the library's choice):
smooth random periodic functions over their window, one independent draw per function and
channel, ``f(t) = sum_{j=1}^{J} (c_j cos(2 pi j t / L) + s_j sin(2 pi j t / L)) / j`` with
``c_j, s_j ~ N(0, 1)``, ``J = n_harmonics`` and ``L`` the window length in steps, each function then
scaled to unit root-mean-square over its window and channels. The draws come from a NumPy
``PCG64`` generator seeded with ``basis_seed`` (input basis: stream 0, output basis: stream 1), so a
configuration always yields the same basis on every platform, and building a task compiles
nothing. The input
basis must be linearly independent (otherwise ``a`` is not identifiable from the input); the
constructor checks this.

Timing: by default the output window starts when the input window ends (``output_start =
input_steps``). The paper writes input and target on the same time axis; taken literally
(``output_start=0``, supported) a causal network would have to produce ``y*(0)``, which depends on
all of ``a``, after seeing only ``u(0)``. Presenting the whole input first makes the task solvable
while keeping its structure. The loss mask is 1 on the output window and 0 elsewhere; the target
is 0 outside it.

Coefficient sets (``scheme``), drawn from a ``PCG64`` generator seeded with ``split_seed``:

* ``"dense"`` (default): every coefficient uniform in [-1, 1]; ``n_train`` training vectors and
  ``n_test`` different test vectors (new linear combinations of the same basis).
* ``"sparse"``: every vector has exactly ``n_active`` non-zero coefficients with magnitudes
  uniform in [0.5, 1] and random signs. The ``C(K, n_active)`` possible supports are split at
  random; a fraction ``test_fraction`` of them (at least one) is held out, so test vectors combine
  basis functions that never appeared together in training.
* ``"explicit"``: ``train_coefficients`` and ``test_coefficients`` given by the caller.

Training batches (``sample``; batch 16 by default) draw training vectors uniformly with
replacement, so ``n_train / 16`` steps make one epoch in expectation (the paper trains for 1000
epochs); ``fixed_batch()`` is the whole training set. Inputs and targets are not rescaled with K:
with coefficients uniform in [-1, 1] their RMS grows like ``sqrt(K / 3)``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any, ClassVar, NamedTuple

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .._validation import (
    check_choice,
    check_nonnegative_int,
    check_positive_int,
)
from .base import AbstractTask, Batch, masked_mse

#: Largest number of basis functions (the paper scans K = 1 .. 20).
MAX_BASIS = 20
SCHEMES = ("dense", "sparse", "explicit")


def _rng(seed: int, stream: int) -> np.random.Generator:
    """The construction-time generator of one named stream of a task seed."""
    return np.random.Generator(np.random.PCG64([seed, stream]))


def smooth_basis(
    rng: np.random.Generator, n_funcs: int, n_steps: int, n_channels: int, n_harmonics: int
) -> np.ndarray:
    """``(n_funcs, n_steps, n_channels)`` smooth random periodic functions (see module docs)."""
    c = rng.standard_normal((n_funcs, n_channels, n_harmonics, 2))
    j = np.arange(1, n_harmonics + 1)
    phase = 2 * np.pi * np.arange(n_steps)[:, None] * j[None, :] / n_steps
    waves = np.stack([np.cos(phase), np.sin(phase)], axis=-1) / j[None, :, None]  # (T, J, 2)
    f = np.einsum("kpjs,tjs->ktp", c, waves)
    return f / np.sqrt(np.mean(f**2, axis=(1, 2), keepdims=True))


def variance_explained(outputs, targets, mask):
    """``1 - SSE / SST`` over the scored entries (``mask > 0``).

    ``SSE = sum m (y - y*)^2``; ``SST = sum m (y* - mean_c)^2``, where ``mean_c`` is the masked mean
    of the targets of output channel ``c`` pooled over trials and time. All arrays ``(B, T, O)``.
    1 for a perfect output, 0 for an output equal to the target mean, negative when worse.
    """
    m = jnp.asarray(mask)
    y = jnp.asarray(outputs)
    t = jnp.asarray(targets)
    mean_c = jnp.sum(m * t, axis=(0, 1)) / jnp.maximum(jnp.sum(m, axis=(0, 1)), 1e-12)
    sse = jnp.sum(m * (y - t) ** 2)
    sst = jnp.sum(m * (t - mean_c) ** 2)
    return 1.0 - sse / jnp.maximum(sst, 1e-12)


def _as_coefficients(name: str, value, k: int) -> np.ndarray:
    try:
        a = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a 2-D array of numbers, got {value!r}") from None
    if a.ndim != 2 or a.shape[1] != k:
        raise ValueError(f"{name} must have shape (n, K={k}), got shape {a.shape}")
    if a.shape[0] == 0:
        raise ValueError(f"{name} is empty; it needs at least one coefficient vector")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite")
    return a


def _check_disjoint(train: np.ndarray, test: np.ndarray) -> None:
    train32 = train.astype(np.float32) + 0.0  # + 0.0 maps -0.0 to 0.0
    test32 = test.astype(np.float32) + 0.0
    seen = {row.tobytes() for row in train32}
    shared = [i for i, row in enumerate(test32) if row.tobytes() in seen]
    if shared:
        raise ValueError(
            f"train and test coefficient sets overlap: test vector(s) {shared[:5]} also appear in "
            "the training set; held-out compositions must be unseen"
        )


def _sparse_sets(
    rng: np.random.Generator, k: int, s: int, test_fraction: float, n_train: int, n_test: int
) -> tuple[np.ndarray, np.ndarray]:
    """Training and test vectors with disjoint supports (scheme ``"sparse"``)."""
    if s > k:
        raise ValueError(f"n_active={s} exceeds the number of basis functions K={k}")
    n_supports = math.comb(k, s)
    if n_supports < 2:
        raise ValueError(
            f"scheme='sparse' with K={k} and n_active={s} has only {n_supports} possible "
            "support; at least 2 are needed to hold some out (use scheme='dense')"
        )
    supports = np.asarray(list(itertools.combinations(range(k), s)), dtype=np.int64)
    order = rng.permutation(n_supports)
    n_held = min(max(1, round(test_fraction * n_supports)), n_supports - 1)
    test_sup, train_sup = supports[order[:n_held]], supports[order[n_held:]]

    def draw(sup, n):
        idx = rng.integers(0, len(sup), n)
        mag = rng.uniform(0.5, 1.0, (n, s))
        sign = np.where(rng.random((n, s)) < 0.5, 1.0, -1.0)
        a = np.zeros((n, k))
        np.put_along_axis(a, sup[idx], mag * sign, axis=1)
        return a

    return draw(train_sup, n_train), draw(test_sup, n_test)


class Composition(AbstractTask):
    """Compositional generalisation with ``K = n_basis`` basis pairs (see the module docstring).

    Args:
        n_basis: K, in 1..20.
        n_in, n_out: channels of the input and output basis sequences.
        input_steps, output_steps: window lengths in steps.
        output_start: first step of the output window (default: ``input_steps``).
        n_harmonics: J, harmonics per basis function.
        basis_seed: seed of the basis functions.
        scheme: ``"dense"``, ``"sparse"`` or ``"explicit"``.
        n_train, n_test: sizes of the training and test sets (``"dense"``/``"sparse"``).
        n_active: non-zero coefficients per vector (``"sparse"``).
        test_fraction: fraction of supports held out (``"sparse"``).
        split_seed: seed of the coefficient sets and the support split.
        train_coefficients, test_coefficients: ``(n, K)`` sets for ``"explicit"``.
    """

    n_basis: int = eqx.field(static=True)
    n_in: int = eqx.field(static=True)
    n_out: int = eqx.field(static=True)
    input_steps: int = eqx.field(static=True)
    output_steps: int = eqx.field(static=True)
    output_start: int = eqx.field(static=True)
    n_steps: int = eqx.field(static=True)
    n_harmonics: int = eqx.field(static=True)
    basis_seed: int = eqx.field(static=True)
    scheme: str = eqx.field(static=True)
    n_active: int = eqx.field(static=True)
    test_fraction: float = eqx.field(static=True)
    split_seed: int = eqx.field(static=True)
    input_basis: Float[Array, "K Ti P"]
    output_basis: Float[Array, "K To O"]
    train_coefficients: Float[Array, "Ntrain K"]
    test_coefficients: Float[Array, "Ntest K"]

    default_batch_size: ClassVar[int] = 16

    def __init__(
        self,
        n_basis: int = 8,
        n_in: int = 1,
        n_out: int = 1,
        input_steps: int = 50,
        output_steps: int = 50,
        output_start: int | None = None,
        n_harmonics: int = 16,
        basis_seed: int = 0,
        scheme: str = "dense",
        n_train: int = 512,
        n_test: int = 128,
        n_active: int = 2,
        test_fraction: float = 0.25,
        split_seed: int = 1,
        train_coefficients: Sequence[Sequence[float]] | None = None,
        test_coefficients: Sequence[Sequence[float]] | None = None,
    ):
        if (
            isinstance(n_basis, bool)
            or not isinstance(n_basis, int | float)
            or int(n_basis) != n_basis
            or not 1 <= n_basis <= MAX_BASIS
        ):
            raise ValueError(f"n_basis (K) must be an integer in 1..{MAX_BASIS}, got {n_basis!r}")
        k = self.n_basis = int(n_basis)
        self.n_in = check_positive_int("n_in", n_in)
        self.n_out = check_positive_int("n_out", n_out)
        self.input_steps = check_positive_int("input_steps", input_steps)
        self.output_steps = check_positive_int("output_steps", output_steps)
        self.output_start = (
            self.input_steps
            if output_start is None
            else check_nonnegative_int("output_start", output_start)
        )
        self.n_steps = max(self.input_steps, self.output_start + self.output_steps)
        self.n_harmonics = check_positive_int("n_harmonics", n_harmonics)
        self.basis_seed = check_nonnegative_int("basis_seed", basis_seed)
        self.scheme = check_choice("scheme", scheme, SCHEMES)
        self.split_seed = check_nonnegative_int("split_seed", split_seed)
        self.n_active = check_positive_int("n_active", n_active)
        tf = float(test_fraction)
        if not 0.0 < tf < 1.0:
            raise ValueError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction!r}")
        self.test_fraction = tf

        # coefficient sets (checked before any basis is drawn)
        explicit_given = train_coefficients is not None or test_coefficients is not None
        if self.scheme == "explicit":
            if train_coefficients is None or test_coefficients is None:
                raise ValueError(
                    "scheme='explicit' needs both train_coefficients and test_coefficients"
                )
            train = _as_coefficients("train_coefficients", train_coefficients, k)
            test = _as_coefficients("test_coefficients", test_coefficients, k)
        else:
            if explicit_given:
                raise ValueError(
                    f"train_coefficients/test_coefficients are only used with scheme='explicit' "
                    f"(got scheme={self.scheme!r})"
                )
            n_train = check_positive_int("n_train", n_train)
            n_test = check_positive_int("n_test", n_test)
            rng = _rng(self.split_seed, 2)
            if self.scheme == "dense":
                a = rng.uniform(-1.0, 1.0, (n_train + n_test, k))
                train, test = a[:n_train], a[n_train:]
            else:
                train, test = _sparse_sets(
                    rng, k, self.n_active, self.test_fraction, n_train, n_test
                )
        _check_disjoint(train, test)
        self.train_coefficients = jnp.asarray(train, dtype=jnp.float32)
        self.test_coefficients = jnp.asarray(test, dtype=jnp.float32)

        mu = smooth_basis(_rng(self.basis_seed, 0), k, self.input_steps, self.n_in, self.n_harmonics)
        eta = smooth_basis(
            _rng(self.basis_seed, 1), k, self.output_steps, self.n_out, self.n_harmonics
        )
        sv = np.linalg.svd(mu.reshape(k, -1), compute_uv=False)
        rank = int(np.sum(sv > 1e-6 * sv[0]))
        if rank < k or sv[-1] < 1e-4 * sv[0]:
            raise ValueError(
                f"the K={k} input basis functions are not (well) linearly independent "
                f"(numerical rank {rank}, singular-value ratio {sv[-1] / sv[0]:.1e}); the "
                f"coefficients could not be recovered from the input. Increase n_harmonics "
                f"(={self.n_harmonics}), input_steps (={self.input_steps}) or n_in (={self.n_in}): "
                f"K must not exceed min(2 * n_harmonics, input_steps) * n_in"
            )
        self.input_basis = jnp.asarray(mu, dtype=jnp.float32)
        self.output_basis = jnp.asarray(eta, dtype=jnp.float32)

    # ------------------------------------------------------------------------------------------

    def _build(self, coefficients) -> Batch:
        a = jnp.asarray(coefficients, dtype=jnp.float32)
        u = jnp.einsum("bk,ktp->btp", a, self.input_basis)
        y = jnp.einsum("bk,ktp->btp", a, self.output_basis)
        inputs = jnp.pad(u, ((0, 0), (0, self.n_steps - self.input_steps), (0, 0)))
        after = self.n_steps - self.output_start - self.output_steps
        pad = ((0, 0), (self.output_start, after), (0, 0))
        targets = jnp.pad(y, pad)
        mask = jnp.pad(jnp.ones_like(y), pad)
        return Batch(inputs, targets, mask, {"coefficients": a})

    def trials(self, coefficients) -> Batch:
        """Deterministic trials from coefficient vectors ``(B, K)``."""
        return self._build(_as_coefficients("coefficients", coefficients, self.n_basis))

    def sample(self, key: PRNGKeyArray, batch_size: int) -> Batch:
        """``batch_size`` training vectors drawn uniformly with replacement from the training set."""
        check_positive_int("batch_size", batch_size)
        idx = jr.randint(key, (batch_size,), 0, self.train_coefficients.shape[0])
        return self._build(self.train_coefficients[idx])

    def train_batch(self) -> Batch:
        """Every training composition, in order."""
        return self._build(self.train_coefficients)

    def test_batch(self) -> Batch:
        """Every held-out composition, in order."""
        return self._build(self.test_coefficients)

    def fixed_batch(self) -> Batch:
        return self.train_batch()

    def evaluation_batches(self, key=None) -> dict[str, Batch]:
        """``train`` (seen compositions) and ``test`` (held-out compositions)."""
        return {"train": self.train_batch(), "test": self.test_batch()}

    def evaluate(self, outputs, batch: Batch) -> dict:
        """Masked MSE and ``variance_explained`` (:func:`variance_explained`)."""
        return {
            "loss": masked_mse(outputs, batch.targets, batch.mask),
            "variance_explained": variance_explained(outputs, batch.targets, batch.mask),
        }


# ----------------------------------------------------------------------------------------------
# linear decoding of the coefficients
# ----------------------------------------------------------------------------------------------


class CoefficientDecoding(NamedTuple):
    """Result of :func:`decode_coefficients`.

    ``decoder``: the fitted ``sklearn.linear_model.Ridge``; ``r2_train`` / ``r2_test``: coefficient
    of determination averaged over the K coefficients (``r2_test`` is ``None`` without test
    data); ``predictions``: decoded test coefficients ``(B_test, K)`` (or training ones without
    test data).
    """

    decoder: Any
    r2_train: float
    r2_test: float | None
    predictions: np.ndarray


def state_features(states, *, field: str | None = None, time_index: Any = -1) -> np.ndarray:
    """``(B, N)`` features from states.

    Args:
        states: ``(B, T, N)`` or ``(B, N)`` array, or a trajectory (anything with ``.states``, e.g.
            ``nmrnn.models.base.Trajectory``) / state NamedTuple together with ``field``.
        field: name of the state variable to read (e.g. ``"r"`` neurons, ``"n"`` neuromodulators
            of the e-nmRNN; ``"x"``, ``"h"`` of other models).
        time_index: for ``(B, T, N)``: an int step (default: the last step), a ``slice`` (averaged
            over those steps) or ``"mean"`` (averaged over all steps).
    """
    if hasattr(states, "states"):
        states = states.states
    if field is not None:
        if not hasattr(states, field):
            fields = getattr(states, "_fields", ())
            raise ValueError(f"the states have no field {field!r}; fields: {', '.join(fields)}")
        states = getattr(states, field)
    elif hasattr(states, "_fields"):
        raise ValueError(f"name the state variable to decode from: field in {states._fields}")
    x = np.asarray(states, dtype=np.float64)
    if x.ndim == 2:
        return x
    if x.ndim != 3:
        raise ValueError(f"states must have shape (B, T, N) or (B, N), got {x.shape}")
    if isinstance(time_index, str):
        if time_index != "mean":
            raise ValueError(f"time_index must be an int, a slice or 'mean', got {time_index!r}")
        return x.mean(axis=1)
    if isinstance(time_index, slice):
        sel = x[:, time_index]
        if sel.shape[1] == 0:
            raise ValueError(f"time_index {time_index} selects no step of {x.shape[1]}")
        return sel.mean(axis=1)
    t = int(time_index)
    if not -x.shape[1] <= t < x.shape[1]:
        raise ValueError(f"time_index={t} is out of range for {x.shape[1]} steps")
    return x[:, t]


def decode_coefficients(
    features,
    coefficients,
    test_features=None,
    test_coefficients=None,
    *,
    field: str | None = None,
    time_index: Any = -1,
    alpha: float = 1e-3,
) -> CoefficientDecoding:
    """Fit a ridge-regression decoder of the coefficients ``a`` from network states.

    ``features`` / ``test_features`` are what :func:`state_features` accepts (arrays ``(B, T, N)``
    or ``(B, N)``, or trajectories with ``field``); ``coefficients`` are ``(B, K)``
    (``batch.info["coefficients"]``). The decoder is fitted on the first set and scored on both.
    For :class:`Composition` trials, ``time_index = task.input_steps - 1`` reads the state when the
    whole input has been seen.
    """
    from sklearn.linear_model import Ridge

    alpha = float(alpha)
    if not math.isfinite(alpha) or alpha < 0:
        raise ValueError(f"alpha must be a non-negative number, got {alpha!r}")
    x = state_features(features, field=field, time_index=time_index)
    a = np.asarray(coefficients, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] != x.shape[0]:
        raise ValueError(
            f"coefficients must have shape ({x.shape[0]}, K) to match the features, got {a.shape}"
        )
    decoder = Ridge(alpha=alpha).fit(x, a)
    r2_train = float(decoder.score(x, a))
    if (test_features is None) != (test_coefficients is None):
        raise ValueError("give both test_features and test_coefficients, or neither")
    if test_features is None:
        return CoefficientDecoding(decoder, r2_train, None, decoder.predict(x))
    xt = state_features(test_features, field=field, time_index=time_index)
    at = np.asarray(test_coefficients, dtype=np.float64)
    if at.shape != (xt.shape[0], a.shape[1]) or xt.shape[1] != x.shape[1]:
        raise ValueError(
            f"test data do not match the training data: features {xt.shape} vs {x.shape}, "
            f"coefficients {at.shape} vs {a.shape}"
        )
    return CoefficientDecoding(decoder, r2_train, float(decoder.score(xt, at)), decoder.predict(xt))
