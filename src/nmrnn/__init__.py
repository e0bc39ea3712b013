"""nmrnn: neuromodulated recurrent neural networks in JAX.

Models (:mod:`nmrnn.models`), tasks (:mod:`nmrnn.tasks`), training (:mod:`nmrnn.train`),
analyses (:mod:`nmrnn.analysis`) and reproductions of published results
(:mod:`nmrnn.experiments`), wired together by the ``nmrnn`` command line.
"""

__version__ = "0.1.0"
