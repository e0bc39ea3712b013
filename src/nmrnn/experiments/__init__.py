"""Recipes that reproduce published results, and their figures.

* :mod:`~nmrnn.experiments.registry`: the registry ``REPRODUCTIONS`` of one-command reproductions
  (``nmrnn reproduce NAME``) and :func:`run_reproduction`, which writes ``summary.json`` and
  ``report.md`` in a common format.
* :mod:`~nmrnn.experiments.compare`: parameter-matched model comparisons across seeds.
* :mod:`~nmrnn.experiments.profiles`: the one profile type (``"smoke"``, ``"quick"``,
  ``"paper"``) every reproduction and comparison declares its settings with.
* :mod:`~nmrnn.experiments.hopf`: R6, the 2-neuron Hopf study of paper 000 (section 5).
* :mod:`~nmrnn.experiments.nmrnn_paper`: R1 (MWG) and R3 (EFT) of paper 001, through ``compare``.
* :mod:`~nmrnn.experiments.nmrnn_theory`: R2 (rank-1 signal) and R5 (Proposition 1) of paper 001.
* :mod:`~nmrnn.experiments.flipflop`: T8, the flip-flop's memories and saddles.

Papers are cited by the ids of docs/references.md.
"""

from .registry import PROFILES, REPRODUCTIONS, Reproduction, check, register, run_reproduction

__all__ = ["PROFILES", "REPRODUCTIONS", "Reproduction", "check", "register", "run_reproduction"]
