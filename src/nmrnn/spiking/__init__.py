"""Spiking networks and their rate reduction (M6; paper 000, supplement section 1).

* :class:`LIFNetwork`: leaky integrate-and-fire neurons with exponential synaptic currents and
  volume-transmitted neuromodulators that gate the synapses (``W_eff = W + sum_k n_k T_k``),
  batched and compiled, with a stated integration scheme (:mod:`nmrnn.spiking.lif`).
* :func:`lif_rate`: the steady-state rate curve (eq. 9, with the refractory period).
* :func:`reduce_network` / :class:`LIFRateModel`: the rate model with the paper's parameter map,
  and :func:`compare_reduction` to measure where the reduction holds.
"""

from .lif import (
    DEFAULT_NEURON,
    LIFNetwork,
    LIFState,
    LIFTrajectory,
    lif_rate,
    measured_rates,
    rheobase,
)
from .reduction import (
    LIFRateModel,
    RateTrajectory,
    ReductionErrors,
    compare_reduction,
    nrmse,
    reduce_network,
)

__all__ = [
    "DEFAULT_NEURON",
    "LIFNetwork",
    "LIFRateModel",
    "LIFState",
    "LIFTrajectory",
    "RateTrajectory",
    "ReductionErrors",
    "compare_reduction",
    "lif_rate",
    "measured_rates",
    "nrmse",
    "reduce_network",
    "rheobase",
]
