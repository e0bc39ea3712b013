"""Dynamical-systems analysis of recurrent models and small analytic systems.

* :mod:`~nmrnn.analysis.fixed_points`: fixed and slow points of any model of the library (or any
  function ``F(x, u)``), with parts of the state optionally held fixed; Jacobians, eigenvalues and
  stability.
* :mod:`~nmrnn.analysis.continuation`: following a fixed point along a parameter, with Hopf and
  fold (saddle-node) detection.
* :mod:`~nmrnn.analysis.systems`: the 2-neuron system of paper 000, normal forms, an RK4
  integrator and limit-cycle measurements.
* :mod:`~nmrnn.analysis.saddles`: stable points, the saddles between them and their unstable
  manifolds, for any model (two-pass search, manifold following, summaries).
* :mod:`~nmrnn.analysis.clamping`: the clamp value of a state field whose step uses a given level
  (:func:`clamp_preimage`).
* :mod:`~nmrnn.analysis.alignment`: gradient alignment of the e-nmRNN's neuromodulation with the
  descent direction of a frozen surrogate network (paper 000, supplement section 4), with its
  null and shuffle control.
* :mod:`~nmrnn.analysis.interpret`: interpretation of trained neuromodulated networks (paper 000,
  supplement section 8; R11): cell-type specialisation of the release matrix, NM timescales,
  decoding of the task context, Yang's task variance and clustering, connectivity modularity;
  :mod:`~nmrnn.analysis.decoding`: the cross-validated decoder with a null that they share with
  :func:`nmrnn.rl.analysis.decode`.
* :mod:`~nmrnn.analysis.proposition1`: Proposition 1 of paper 001 (the semilinear LSTM that
  reproduces a linearised NM-RNN); :mod:`~nmrnn.analysis.rank1`: the exact and eq.-16
  neuromodulatory signal of a rank-1 NM-RNN (paper 001, supplement B).

Papers are cited by the ids of docs/references.md.
"""

from .alignment import (
    ALIGNMENT_AVERAGES,
    NM_RATES,
    Alignment,
    AlignmentVectors,
    alignment_statistics,
    alignment_vectors,
    gradient_alignment,
    shuffle_entries,
)
from .clamping import clamp_preimage, field_after_step
from .continuation import (
    BIFURCATION_KINDS,
    CONTINUATION_METHODS,
    Bifurcation,
    Branch,
    ModelFamily,
    continue_fixed_point,
)
from .decoding import NullTest, cross_validated_score, permute_target
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
from .interpret import (
    CENTERINGS,
    CLASSIFIERS,
    CLUSTER_METHODS,
    MIN_TASK_VARIANCE,
    NM_SIGNALS,
    NORMALIZATIONS,
    TIMESCALE_FITS,
    CellTypes,
    ConnectivityModularity,
    ContextDecoding,
    NMStates,
    TaskVariance,
    Timescales,
    UnitClusters,
    YangTrials,
    autocorrelation,
    cell_type_specialisation,
    cluster_units,
    connectivity_modularity,
    decode_context,
    nm_timescales,
    one_hotness,
    release_matrix,
    split_states,
    task_variance,
    window_mean,
    yang_context_features,
    yang_task_variance,
    yang_trials,
)
from .proposition1 import (
    Proposition1Count,
    Proposition1Trajectory,
    lagged_inputs,
    nm_state_decoder,
    proposition1_parameter_count,
    reproduce_nmrnn,
    semilinear_lstm_from_nmrnn,
)
from .rank1 import (
    PowerLaw,
    Rank1Params,
    Rank1Signal,
    approximate_rank1_signal,
    exact_rank1_signal,
    ramp_power_law,
    ramp_power_law_coefficients,
    rank1_params,
)
from .saddles import (
    SaddleAnalysis,
    find_saddles,
    follow_unstable_manifolds,
    free_coordinates,
    saddles_by_unstable_dims,
    search_report,
    summarize_saddles,
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
    "ALIGNMENT_AVERAGES",
    "Alignment",
    "AlignmentVectors",
    "NM_RATES",
    "alignment_statistics",
    "alignment_vectors",
    "gradient_alignment",
    "shuffle_entries",
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
    "PowerLaw",
    "Proposition1Count",
    "Proposition1Trajectory",
    "Rank1Params",
    "Rank1Signal",
    "STABILITY_LABELS",
    "SaddleAnalysis",
    "System",
    "TWO_NEURON_W",
    "TwoNeuronFamily",
    "approximate_rank1_signal",
    "clamp_preimage",
    "classify_stability",
    "continue_fixed_point",
    "cycle_stats",
    "eig_sorted",
    "exact_rank1_signal",
    "field_after_step",
    "find_fixed_points",
    "find_saddles",
    "follow_unstable_manifolds",
    "free_coordinates",
    "integrate",
    "lagged_inputs",
    "linearize",
    "make_system",
    "nm_state_decoder",
    "proposition1_parameter_count",
    "ramp_power_law",
    "ramp_power_law_coefficients",
    "rank1_params",
    "reproduce_nmrnn",
    "saddles_by_unstable_dims",
    "sample_states",
    "search_report",
    "semilinear_lstm_from_nmrnn",
    "speed",
    "stability_margins",
    "summarize_saddles",
    "two_neuron_cycle_frequency",
    "two_neuron_cycle_radius",
    "two_neuron_field",
    "two_neuron_hopf_n",
    "two_neuron_jacobian",
    "two_neuron_origin_eigenvalues",
    "CENTERINGS",
    "CLASSIFIERS",
    "CLUSTER_METHODS",
    "MIN_TASK_VARIANCE",
    "NM_SIGNALS",
    "NORMALIZATIONS",
    "TIMESCALE_FITS",
    "CellTypes",
    "ConnectivityModularity",
    "ContextDecoding",
    "NMStates",
    "NullTest",
    "TaskVariance",
    "Timescales",
    "UnitClusters",
    "YangTrials",
    "autocorrelation",
    "cell_type_specialisation",
    "cluster_units",
    "connectivity_modularity",
    "cross_validated_score",
    "decode_context",
    "nm_timescales",
    "one_hotness",
    "permute_target",
    "release_matrix",
    "split_states",
    "task_variance",
    "window_mean",
    "yang_context_features",
    "yang_task_variance",
    "yang_trials",
]
