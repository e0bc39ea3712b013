"""Dynamical-systems analysis of recurrent models and small analytic systems.

* :mod:`~nmrnn.analysis.fixed_points`: fixed and slow points of any model of the library (or any
  function ``F(x, u)``), with parts of the state optionally held fixed; Jacobians, eigenvalues and
  stability.
* :mod:`~nmrnn.analysis.continuation`: following a fixed point along a parameter, with Hopf and
  fold (saddle-node) detection.
* :mod:`~nmrnn.analysis.systems`: the 2-neuron system of paper 000, normal forms, an RK4
  integrator and limit-cycle measurements.
"""

from .continuation import (
    BIFURCATION_KINDS,
    CONTINUATION_METHODS,
    Bifurcation,
    Branch,
    ModelFamily,
    continue_fixed_point,
)
from .fixed_points import (
    KINDS,
    METHODS,
    STABILITY_LABELS,
    FixedPointReport,
    FixedPoints,
    System,
    classify_stability,
    eig_sorted,
    find_fixed_points,
    linearize,
    make_system,
    sample_states,
    speed,
    stability_margins,
)
from .systems import (
    TWO_NEURON_W,
    CycleStats,
    TwoNeuronFamily,
    cycle_stats,
    integrate,
    two_neuron_cycle_frequency,
    two_neuron_cycle_radius,
    two_neuron_field,
    two_neuron_hopf_n,
    two_neuron_jacobian,
    two_neuron_origin_eigenvalues,
)

__all__ = [
    "BIFURCATION_KINDS",
    "Bifurcation",
    "Branch",
    "CONTINUATION_METHODS",
    "CycleStats",
    "FixedPointReport",
    "FixedPoints",
    "KINDS",
    "METHODS",
    "ModelFamily",
    "STABILITY_LABELS",
    "System",
    "TWO_NEURON_W",
    "TwoNeuronFamily",
    "classify_stability",
    "continue_fixed_point",
    "cycle_stats",
    "eig_sorted",
    "find_fixed_points",
    "integrate",
    "linearize",
    "make_system",
    "sample_states",
    "speed",
    "stability_margins",
    "two_neuron_cycle_frequency",
    "two_neuron_cycle_radius",
    "two_neuron_field",
    "two_neuron_hopf_n",
    "two_neuron_jacobian",
    "two_neuron_origin_eigenvalues",
]
