"""Recipes that reproduce published results, and their figures.

* :mod:`~nmrnn.experiments.registry`: the registry ``REPRODUCTIONS`` of one-command reproductions
  (``nmrnn reproduce NAME``) and :func:`run_reproduction`, which writes ``summary.json`` and
  ``report.md`` in a common format.
* :mod:`~nmrnn.experiments.compare`: parameter-matched model comparisons across seeds.
* :mod:`~nmrnn.experiments.hopf`: R6, the 2-neuron Hopf study of paper 000 (section 5).
"""

from .registry import PROFILES, REPRODUCTIONS, Reproduction, check, register, run_reproduction

__all__ = ["PROFILES", "REPRODUCTIONS", "Reproduction", "check", "register", "run_reproduction"]
