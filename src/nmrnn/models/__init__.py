"""Recurrent models behind one interface (see :mod:`nmrnn.models.base`), and a registry by name.

``make_model(name, n_in=..., n_out=..., n_hidden=..., key=..., **options)`` builds any model;
``param_count`` counts its trainable scalars exactly; ``match_size`` picks the hidden size of a
baseline whose parameter count matches a target (the smallest size that reaches it).
"""

from __future__ import annotations

import inspect
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
    """
    check_positive_int("target", target)
    check_positive_int("max_hidden", max_hidden)
    check_choice("model", name, MODELS)
    step = hidden_multiple(name, **options)
    lo = -(-max(1, MODELS[name].min_hidden(**options)) // step)  # sizes are k * step, k in [lo, hi]
    hi = max_hidden // step

    def count(k: int) -> int:
        return count_for(name, n_in=n_in, n_out=n_out, n_hidden=k * step, **options)

    if hi < lo or count(hi) < target:
        raise ValueError(
            f"no {name} with n_hidden <= {max_hidden} reaches {target} parameters; raise max_hidden"
        )
    while lo < hi:
        mid = (lo + hi) // 2
        if count(mid) >= target:
            hi = mid
        else:
            lo = mid + 1
    return lo * step


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
