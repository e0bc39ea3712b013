"""Recurrent models behind one interface (see :mod:`nmrnn.models.base`), and a registry by name.

``make_model(name, n_in=..., n_out=..., n_hidden=..., key=..., **options)`` builds any model;
``param_count`` counts its trainable scalars exactly; ``match_size`` picks the hidden size of a
baseline whose parameter count matches a target (the smallest size that reaches it).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax.random as jr

from .._validation import check_choice, check_known_options, check_positive_int
from .base import (
    AbstractRecurrentModel,
    Trajectory,
    check_trainable,
    group_names,
    param_breakdown,
    param_count,
    parameter_fields,
    parameter_paths,
    simulate,
    trainable_filter,
)
from .cornn import CoRNN, CoState
from .enmrnn import ENMRNN, ENMState
from .gated import GRU, LSTM, HState, LSTMState
from .hippo import HiPPOLegT, HiPPOState
from .leaky import LeakyRNN, LeakyState, LowRankRNN
from .nmrnn import NMRNN, NMState
from .semilinear import SemilinearLSTM, SemilinearLSTMState, SemilinearLSTMWeights
from .transformer import Transformer, TransformerStates

#: Registry: command-line / config name -> class.
MODELS: dict[str, type[AbstractRecurrentModel]] = {
    "vanilla": LeakyRNN,
    "lowrank": LowRankRNN,
    "nmrnn": NMRNN,
    "enmrnn": ENMRNN,
    "gru": GRU,
    "lstm": LSTM,
    "cornn": CoRNN,
    "hippo_legt": HiPPOLegT,
    "transformer": Transformer,
    "semilinear_lstm": SemilinearLSTM,
}


def model_options(name: str) -> dict[str, Any]:
    """Keyword options (with defaults) that model ``name`` accepts besides the sizes and key."""
    cls = MODELS[check_choice("model", name, MODELS)]
    sig = inspect.signature(cls.__init__)
    skip = {"self", "n_in", "n_hidden", "n_out", "key"}
    return {k: p.default for k, p in sig.parameters.items() if k not in skip}


#: The parametrisation of each model in the NM-RNN authors' code (lindermanlab/nm-rnn:
#: ``rnn_code.py`` for the equations, ``util.py`` for the initialisations, the MWG scripts for
#: the initial states): model options that select it. Every model starts from 0.1 in every
#: state variable and draws its readout bias from N(0, 1/N) (the LSTM has none).
#:
#: * NM-RNN: L orthonormalised by QR to unit-norm columns at every forward pass, no 1/N,
#:   L and R from N(0, 1).
#: * LR-RNN: the same unit-norm QR of L *and* the 1/N, L and R from N(0, 1).
#: * vanilla RNN: ``W ~ N(0, 1)`` applied as ``W / N``.
#: * LSTM: normal initialisation, no readout bias.
REFERENCE_OPTIONS: dict[str, dict[str, Any]] = {
    "nmrnn": dict(orthonormalize=True, orthonormal_scale="unit", scale_by_n=False, factor_std=1.0,
                  init_value=0.1, readout_bias_init="normal"),
    "lowrank": dict(orthonormalize=True, orthonormal_scale="unit", scale_by_n=True, factor_std=1.0,
                    init_value=0.1, readout_bias_init="normal"),
    "vanilla": dict(scale_by_n=True, gain=1.0, init_value=0.1, readout_bias_init="normal"),
    "lstm": dict(init="normal", readout_bias=False, init_value=0.1),
}


def reference_options(name: str, **overrides: Any) -> dict[str, Any]:
    """The options of model ``name`` that give the NM-RNN authors' parametrisation
    (:data:`REFERENCE_OPTIONS`), updated with ``overrides``. Models the authors' code does not
    have (GRU, e-nmRNN, ...) are refused."""
    check_choice("model", name, MODELS)
    if name not in REFERENCE_OPTIONS:
        raise ValueError(
            f"the NM-RNN authors' code has no {name!r} model; the reference parametrisation is "
            f"defined for {sorted(REFERENCE_OPTIONS)}"
        )
    return {**REFERENCE_OPTIONS[name], **overrides}


def make_model(
    name: str, *, n_in: int, n_out: int, n_hidden: int, key, **options: Any
) -> AbstractRecurrentModel:
    """Build model ``name`` (one of ``MODELS``); unknown names or options are refused."""
    check_choice("model", name, MODELS)
    check_known_options(f"model {name!r}", options, model_options(name))
    return MODELS[name](n_in, n_hidden, n_out, key=key, **options)


def count_for(name: str, *, n_in: int, n_out: int, n_hidden: int, **options: Any) -> int:
    """Parameter count of a model without allocating its arrays."""
    model = eqx.filter_eval_shape(
        lambda: make_model(name, n_in=n_in, n_out=n_out, n_hidden=n_hidden, key=jr.PRNGKey(0), **options)
    )
    return param_count(model)


def hidden_multiple(name: str, **options: Any) -> int:
    """Hidden sizes model ``name`` takes with ``options`` are the multiples of this number (the
    Transformer: ``n_heads``; 1 for most models: the ``hidden_multiple`` hook)."""
    cls = MODELS[check_choice("model", name, MODELS)]
    return check_positive_int("hidden_multiple", cls.hidden_multiple(**options))


def match_size(
    name: str, target: int, *, n_in: int, n_out: int, max_hidden: int = 4096, **options: Any
) -> int:
    """Smallest hidden size whose parameter count reaches ``target``.

    "Reaches" (>=) rather than "nearest" is the rule that gives the NM-RNN paper's matched sizes
    on MWG against the NM-RNN (N=100, M=5, K=3; 1059 parameters): LR-RNN 106 (1061), vanilla 31
    (1086), LSTM 15 (1156). Counts grow monotonically with the size, so a bisection finds it. Only
    sizes the model takes are searched: at least ``min_hidden`` (a low-rank model needs N >= rank)
    and multiples of :func:`hidden_multiple` (a Transformer's width is a multiple of its heads).

    Most models' counts are quadratic in the size, so the quadratic through the counts of the
    three smallest sizes is tried first; its answer is kept only when the counts of that size and
    the one below confirm it (five counts instead of the bisection's dozen; each count traces the
    model's constructor), else the bisection decides.
    """
    check_positive_int("target", target)
    check_positive_int("max_hidden", max_hidden)
    check_choice("model", name, MODELS)
    step = hidden_multiple(name, **options)
    lo = -(-max(1, MODELS[name].min_hidden(**options)) // step)  # sizes are k * step, k in [lo, hi]
    hi = max_hidden // step

    counts: dict[int, int] = {}

    def count(k: int) -> int:
        if k not in counts:
            counts[k] = count_for(name, n_in=n_in, n_out=n_out, n_hidden=k * step, **options)
        return counts[k]

    unreachable = f"no {name} with n_hidden <= {max_hidden} reaches {target} parameters; raise max_hidden"
    if hi < lo:
        raise ValueError(unreachable)
    guess = _quadratic_guess(count, lo, hi, target)
    if guess is not None and count(guess) >= target and (guess == lo or count(guess - 1) < target):
        return guess * step
    if count(hi) < target:
        raise ValueError(unreachable)
    while lo < hi:
        mid = (lo + hi) // 2
        if count(mid) >= target:
            hi = mid
        else:
            lo = mid + 1
    return lo * step


def _quadratic_guess(count: Callable[[int], int], lo: int, hi: int, target: int) -> int | None:
    """The smallest k in [lo, hi] at which the quadratic through ``count`` at lo, lo + 1, lo + 2
    (Newton's forward differences) reaches ``target``; None when there are fewer than three sizes
    or the quadratic does not grow."""
    if hi - lo < 2:
        return None
    c0, c1, c2 = count(lo), count(lo + 1), count(lo + 2)
    d1, d2 = c1 - c0, c2 - 2 * c1 + c0
    if c0 >= target:
        return lo
    if d1 <= 0 or d2 < 0:
        return None

    def q(j: int) -> int:  # the quadratic at k = lo + j
        return c0 + j * d1 + d2 * j * (j - 1) // 2

    if d2 == 0:
        j = -(-(target - c0) // d1)
    else:  # the positive root of c0 + d1 j + d2 j (j - 1) / 2 = target, then the integer step
        a, b = d2 / 2, d1 - d2 / 2
        j = max(0, math.ceil((-b + math.sqrt(b * b + 4 * a * (target - c0))) / (2 * a)) - 1)
    while q(j) < target:
        j += 1
    while j > 0 and q(j - 1) >= target:
        j -= 1
    return lo + j if lo + j <= hi else None


__all__ = [
    "AbstractRecurrentModel",
    "CoRNN",
    "CoState",
    "ENMRNN",
    "ENMState",
    "GRU",
    "HState",
    "HiPPOLegT",
    "HiPPOState",
    "LSTM",
    "LSTMState",
    "LeakyRNN",
    "LeakyState",
    "LowRankRNN",
    "MODELS",
    "REFERENCE_OPTIONS",
    "NMRNN",
    "NMState",
    "SemilinearLSTM",
    "SemilinearLSTMState",
    "SemilinearLSTMWeights",
    "Trajectory",
    "Transformer",
    "TransformerStates",
    "check_trainable",
    "count_for",
    "group_names",
    "hidden_multiple",
    "make_model",
    "match_size",
    "model_options",
    "param_breakdown",
    "param_count",
    "parameter_fields",
    "parameter_paths",
    "reference_options",
    "simulate",
    "trainable_filter",
]
