"""The degeneracy reproduction's pieces (:mod:`nmrnn.experiments.degeneracy`): settings refused
before training, the design of conditions (shared base, parameter-matched neuromodulated
models), the decision rule of a clause against its definition, the bootstrap of per-network
values against a plain loop, and the clauses on synthetic populations with known answers. The
smoke profile end to end is in ``test_smoke.py``."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from nmrnn.experiments import degeneracy as de
from nmrnn.models import count_for
from nmrnn.tasks import make_task

SMOKE = de.PROFILES["smoke"]


@pytest.mark.parametrize("change, msg", [
    (dict(networks=1), "at least 2"),
    (dict(gains=(2.0, 0.5)), "base level 1.0 is not among"),
    (dict(sizes=(8,)), "at least two levels"),
    (dict(regularisations=("none", "dropout")), "unknown regularisation"),
    (dict(regularisations=("l2", "none")), "start with 'none'"),
    (dict(complexity={"flipflop": (2, 9)}), "unknown complexity level"),
    (dict(tasks=("mwg",)), "unknown task 'mwg'"),
    (dict(tasks=("flipflop", "pathint")), "needs steps"),
    (dict(nm_models=("lstm",)), "unknown neuromodulated model"),
    (dict(gains=(1.0, 1.0)), "repeats a level"),
    (dict(fixed_point_search="both"), "fixed_point_search"),
])
def test_settings_are_refused_before_training(change, msg):
    with pytest.raises(ValueError, match=msg):
        dataclasses.replace(SMOKE, **change)


def test_task_setups_build_every_allowed_level_and_their_fixed_point_input():
    for name, setup in de.TASK_SETUPS.items():
        for k in (setup.allowed[0], setup.allowed[-1]):
            task = make_task(name, **setup.options, **setup.complexity(k))
            assert setup.fixed_point_input(task).shape == (task.n_in,)
    romo = make_task("romo", **de.TASK_SETUPS["romo"].complexity(2))
    assert romo.pairs == ((18.0, 10.0), (22.0, 14.0))


def test_design_shares_the_base_and_matches_the_neuromodulated_models():
    cfg = de.PROFILES["quick"]
    cells = de.design(cfg)
    for task in cfg.tasks:
        base = cells[(task, "model", "vanilla")]
        for knob, level in [("complexity", cfg.base_complexity[task]), ("regime", cfg.base_gain),
                            ("size", cfg.base_size), ("regularisation", "none")]:
            assert cells[(task, knob, level)] == base
        t = make_task(task, **base.task_options)
        target = count_for("vanilla", n_in=t.n_in, n_out=t.n_out, n_hidden=base.n_hidden, **base.model_options)
        for m in cfg.nm_models:
            c = cells[(task, "model", m)]
            count = count_for(m, n_in=t.n_in, n_out=t.n_out, n_hidden=c.n_hidden, **c.model_options)
            smaller = count_for(m, n_in=t.n_in, n_out=t.n_out, n_hidden=c.n_hidden - 1, **c.model_options)
            assert smaller < target <= count  # the smallest size reaching the vanilla RNN's count
        assert cells[(task, "regularisation", "lowrank")].model == "lowrank"
        assert cells[(task, "regularisation", "l2")].train_options == {"weight_l2": cfg.l2}
        assert cells[(task, "regime", 0.25)].model_options["gain"] == 0.25
    jobs, conditions = de.grid_jobs(cfg, seed=3)
    assert len(jobs) == len(conditions) * cfg.networks == 160
    assert len({j.run_dir for j in jobs}) == len(jobs)
    assert sorted({j.spec.seed for j in jobs}) == list(range(3000, 3008))


def test_decide_is_the_stated_rule():
    assert de.decide((-0.3, -0.1), -1) == (True, True)
    assert de.decide((0.1, 0.3), -1) == (False, True)
    assert de.decide((-0.1, 0.2), -1) == (False, False)
    assert de.decide((0.1, 0.3), +1) == (True, True)
    assert de.decide((-0.3, -0.1), +1) == (False, True)
    assert de.decide((-0.1, 0.2), +1) == (False, False)


def test_bootstrap_mean_difference_matches_a_plain_loop():
    low, high = np.array([0.1, 0.2, 0.4, 0.3]), np.array([0.5, 0.9, 0.7])
    diff, lo, hi = de.bootstrap_mean_difference(low, high, seed=5, n_boot=400)
    rng = np.random.default_rng(5)
    draws_high = [rng.choice(high, 3) for _ in range(400)]
    draws_low = [rng.choice(low, 4) for _ in range(400)]
    ref = np.array([np.mean(h) - np.mean(low_) for h, low_ in zip(draws_high, draws_low, strict=True)])
    assert diff == pytest.approx(high.mean() - low.mean())
    assert (lo, hi) == pytest.approx(tuple(np.quantile(ref, [0.05, 0.95])))
    with pytest.raises(ValueError, match="at least 2"):
        de.bootstrap_mean_difference([1.0], high, seed=0)


def _population(rng, s, loc):
    x = rng.normal(loc, 0.05, size=(s, s))
    d = np.abs(x + x.T) / 2
    np.fill_diagonal(d, 0.0)
    return d


def _synthetic(cfg, loc_low, loc_high, n_learned=8, rep=(0.1, 0.6)):
    """Populations where every measure's degeneracy is ``loc_low`` at every level except the
    high levels (``loc_high``); representation change ``rep`` at the lazy and rich levels."""
    rng = np.random.default_rng(0)
    cells = de.design(cfg)
    task = cfg.tasks[0]
    levels = cfg.levels(task)
    high = {cells[(task, "complexity", max(levels["complexity"]))].key, cells[(task, "regime", levels["regime"][-1])].key,
            cells[(task, "size", max(levels["size"]))].key}
    high |= {cells[(task, "regularisation", r)].key for r in levels["regularisation"][1:]}
    infos, mats = {}, {}
    shared = {m: _population(rng, n_learned, loc_low) for m in de.MEASURES}
    for c in sorted({c.key for c in cells.values()}):
        loc = loc_high if c in high else loc_low
        # equal levels: the very same populations (a difference of exactly 0)
        mats[c] = shared if loc == loc_low else {m: _population(rng, n_learned, loc) for m in de.MEASURES}
        r = rep[1] if c == cells[(task, "regime", levels["regime"][-1])].key else rep[0]
        infos[c] = {"n_learned": n_learned, "learned": list(range(n_learned)),
                    "representation_change": list(r + 0.01 * rng.standard_normal(n_learned))}
    return cells, infos, mats


def test_clauses_pass_fail_and_stay_undecided_as_stated():
    # every knob's base level in the middle (or low, for regularisation), the high levels apart
    cfg = dataclasses.replace(SMOKE, networks=8, complexity={"flipflop": (1, 2, 3)}, gains=(2.0, 1.0, 0.5),
                              sizes=(6, 8, 10))
    # every high level lower: the "lower" clauses pass, the "higher" ones (weights under
    # complexity and regime) fail
    cells, infos, mats = _synthetic(cfg, 1.0, 0.5)
    checks, pre = de.clauses(cfg, cells, infos, mats, seed=0)
    assert len(checks) == 2 + 2 + 3 + 3
    for c in checks:
        assert c.get("decided", True)
        assert c["passed"] == ("higher" not in c["name"]), c["name"]
        assert c["value"]["difference"] == pytest.approx(-0.5, abs=0.05)
    assert pre["flipflop"]["interval"][0] > 0
    # equal populations: every clause undecided
    cells, infos, mats = _synthetic(cfg, 1.0, 1.0)
    assert all(c.get("decided") is False and not c["passed"] for c in de.clauses(cfg, cells, infos, mats, seed=0)[0])
    # too few networks learned the task: undecided even where the interval is clear
    cells, infos, mats = _synthetic(cfg, 1.0, 0.5, n_learned=de.MIN_NETWORKS - 1)
    assert all(c.get("decided") is False for c in de.clauses(cfg, cells, infos, mats, seed=0)[0])
    # the regime levels do not differ in feature learning: only the regime clauses are blocked
    cells, infos, mats = _synthetic(cfg, 1.0, 0.5, rep=(0.5, 0.5))
    checks, pre = de.clauses(cfg, cells, infos, mats, seed=0)
    for c in checks:
        regime = ": regime " in c["name"]
        assert (c.get("decided", True) is False) == regime, c["name"]
        assert ("blocked" in c["value"]) == regime


def test_normalised_loss():
    class B:
        mask = np.array([[[1.0], [0.0], [1.0]]])
        targets = np.array([[[1.0], [5.0], [-1.0]]])

    outputs = np.array([[[0.5], [0.0], [-1.0]]])
    assert de.normalised_loss(outputs, B) == pytest.approx(0.25 / 2)
