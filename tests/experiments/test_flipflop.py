"""T8 flip-flop: the saddle analysis (:mod:`nmrnn.analysis.saddles`) and the clamp pre-image
(:mod:`nmrnn.analysis.clamping`) on hand-built networks against closed forms, the experiment's
corner matching, a short training run through a run directory, resume of the smoke reproduction
after an interruption, and (slow) the quick reproduction end to end.

Closed form used throughout: the map ``x_i -> w_i tanh(x_i)`` (``w_i > 1``), one neuron per bit,
has on each axis the fixed points ``0`` and ``+/- x*_i`` with ``x*_i = w_i tanh(x*_i)``; the 27
products are 8 stable memories, 12 saddles with one unstable direction (one coordinate 0), 6 with
two, and the centre. The one-step map's eigenvalues are ``w_i (1 - tanh(x_i)^2)``.
"""

from __future__ import annotations

import json

import equinox as eqx
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest
from experiment_helpers import (
    TrainingInterrupted,
    check_smoke_outputs,
    interrupt_training_once,
    without_timings,
)

from nmrnn.analysis import clamp_preimage, find_saddles, follow_unstable_manifolds
from nmrnn.experiments import flipflop, grid
from nmrnn.experiments.flipflop import (
    corner_index,
    corner_label,
    corners,
    match_corners,
    memory_clamp,
    memory_mask,
    summarize,
)
from nmrnn.experiments.profiles import PROFILE_NAMES
from nmrnn.experiments.registry import REPRODUCTIONS, run_reproduction, to_jsonable
from nmrnn.models import make_model, simulate
from nmrnn.models.leaky import LeakyState
from nmrnn.models.nmrnn import NMState
from nmrnn.tasks import FlipFlop
from nmrnn.train import TrainConfig
from nmrnn.train.run import RunSpec, ensure_run

W_GAIN = 2.0
C2 = 12.0  # NM-RNN factors L = R = sqrt(C2) I with N = 3: W_eff = 4 diag(s)
A_Z = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
Z_BAR = np.array([0.5, -0.3])


def x_star(w):
    """Positive root of x = w tanh(x) (w > 1), by fixed-point iteration in NumPy."""
    x = np.full(np.shape(w), 2.0)
    for _ in range(500):
        x = w * np.tanh(x)
    return x


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def hand_vanilla():
    """3 independent tanh neurons, x -> 2 tanh(x); readout x / x* (memories exactly at corners)."""
    m = make_model("vanilla", n_in=3, n_out=3, n_hidden=3, key=jr.PRNGKey(0), tau=1.0, dt=1.0)
    xs = x_star(W_GAIN)
    return eqx.tree_at(
        lambda m: (m.W, m.B, m.C, m.d),
        m,
        (W_GAIN * jnp.eye(3), jnp.eye(3), jnp.eye(3) / xs, jnp.zeros(3)),
    )


def hand_nmrnn():
    """NM-RNN with x_i -> 4 s_i tanh(x_i), z -> 0.9 z (W_z = 0), s = sigmoid(A_z z); at z = 0
    every gain is 1/2 (w = 2), so the readout x / x*(2) puts the z-free memories at the corners."""
    m = make_model(
        "nmrnn", n_in=3, n_out=3, n_hidden=3, key=jr.PRNGKey(1), n_nm=2, rank=3, tau_x=1.0,
        tau_z=10.0,
    )
    c = np.sqrt(C2)
    return eqx.tree_at(
        lambda m: (m.L, m.R, m.W_z, m.A_z, m.b_z, m.C, m.d),
        m,
        (c * jnp.eye(3), c * jnp.eye(3), jnp.zeros((2, 2)), jnp.asarray(A_Z), jnp.zeros(3),
         jnp.eye(3) / x_star(W_GAIN), jnp.zeros(3)),
    )


def random_states(key, n, lim=2.6):
    return jr.uniform(key, (1, n, 3), minval=-lim, maxval=lim)


def expected_points(w):
    """All 27 fixed points of x_i -> w_i tanh(x_i), as a set of rounded tuples."""
    xs = x_star(np.asarray(w, float) * np.ones(3))
    grid = np.array(np.meshgrid(*[(-v, 0.0, v) for v in xs], indexing="ij")).reshape(3, -1).T
    return grid


def assert_same_points(found, expected, atol=1e-4):
    found = np.asarray(found)
    assert len(found) == len(expected)
    d = np.max(np.abs(found[:, None, :] - expected[None]), axis=-1)
    assert np.all(d.min(axis=1) < atol) and np.all(d.min(axis=0) < atol)


# -- small helpers -------------------------------------------------------------------------------


def test_corners_and_their_labels():
    np.testing.assert_array_equal(corners(2), [[-1, -1], [-1, 1], [1, -1], [1, 1]])
    c3 = corners(3)
    assert c3.shape == (8, 3) and len({tuple(r) for r in c3}) == 8
    np.testing.assert_array_equal(corner_index(c3), np.arange(8))
    np.testing.assert_array_equal(corner_index([[0.9, -0.2, 0.0], [-3.0, -1.0, -0.1]]), [5, 0])
    assert corner_label(5, 3) == "+-+" and corner_label(0, 3) == "---"
    with pytest.raises(ValueError, match="n_bits"):
        corners(0)
    with pytest.raises(ValueError, match="readouts must have shape"):
        corner_index([1.0, -1.0])


def test_memory_mask_marks_pulse_free_steps():
    u = np.zeros((2, 4, 3))
    u[0, 1, 2] = -1.0
    u[1, 3, 0] = 1.0
    np.testing.assert_array_equal(memory_mask(u), [[True, False, True, True], [True, True, True, False]])
    with pytest.raises(ValueError, match=r"\(B, T, P\)"):
        memory_mask(np.zeros((4, 3)))


# -- closed forms --------------------------------------------------------------------------------


def test_unstable_manifold_matches_numpy_iteration():
    model = hand_vanilla()
    saddle = np.array([[0.0, x_star(W_GAIN), -x_star(W_GAIN)]])
    v = np.array([[2.0, 0.3, 0.0]])  # deliberately not unit length and not an eigenvector
    paths = follow_unstable_manifolds(model, saddle, v, eps=0.05, n_steps=30)
    assert paths.shape == (1, 2, 31, 3)
    vhat = v[0] / np.linalg.norm(v[0])
    for branch, sign in ((0, -1.0), (1, 1.0)):
        x = saddle[0] + sign * 0.05 * vhat
        ref = [x]
        for _ in range(30):
            x = W_GAIN * np.tanh(x)
            ref.append(x)
        np.testing.assert_allclose(paths[0, branch], np.asarray(ref), atol=1e-5)


def test_vanilla_closed_form_memories_saddles_and_connections():
    model = hand_vanilla()
    states = LeakyState(random_states(jr.PRNGKey(3), 300))
    res = find_saddles(model, states, key=jr.PRNGKey(4), n_samples=200, follow_steps=200)
    cm = match_corners(res)
    fp = res.fixed_points
    assert_same_points(fp.points, expected_points(W_GAIN))
    xs = x_star(W_GAIN)
    # stable points: all coordinates non-zero; readouts exactly at the 8 corners, once each
    assert len(res.stable_index) == 8
    assert np.all(np.abs(fp.points[res.stable_index]) > 1.0)
    assert sorted(cm.stable_corners.tolist()) == list(range(8))
    np.testing.assert_allclose(res.stable_readouts, corners(3)[cm.stable_corners], atol=1e-5)
    assert cm.corner_errors.max() < 1e-5
    # saddles: one unstable direction per zero coordinate, eigenvalue w (1 - tanh(0)^2) = w
    # zero coordinates (the others are beyond +-1); the points are accurate to the finder's
    # tolerance q <= 1e-10, i.e. to about 1e-5 along weakly unstable directions
    n_zero = np.sum(np.abs(fp.points[res.saddle_index]) < 1e-3, axis=1)
    np.testing.assert_array_equal(res.n_unstable, n_zero)
    assert sorted(res.n_unstable.tolist()) == [1] * 12 + [2] * 6
    np.testing.assert_allclose(np.abs(res.unstable_eigenvalues), W_GAIN, atol=1e-5)
    stable_eig = W_GAIN * (1 - np.tanh(xs) ** 2)
    np.testing.assert_allclose(np.abs(fp.eigenvalues[res.stable_index]), stable_eig, atol=1e-5)
    # the centre (all three directions unstable) is labelled "unstable", not saddle
    assert fp.stability.count("unstable") == 1
    # each edge saddle's manifold runs to the two corners that differ in its zero coordinate
    ends = cm.end_corners
    for q in np.flatnonzero(res.n_unstable == 1):
        point = fp.points[res.saddle_index[q]]
        bit = int(np.flatnonzero(np.abs(point) < 1e-3)[0])
        expect = {
            int(corner_index(np.where(np.arange(3) == bit, s, np.sign(point))[None])[0])
            for s in (-1.0, 1.0)
        }
        assert set(ends[q].tolist()) == expect
    # (a face saddle of this exactly symmetric network has two equal unstable eigenvalues; from
    # the exact point, its leading eigenvector can lead to an edge saddle instead of a corner)
    assert res.end_distances[res.n_unstable == 1].max() < 1e-5
    assert len(cm.edges) == 12 and all(bin(a ^ b).count("1") == 1 for a, b in cm.edges)
    # the generic view: 12 pairs of stable points joined, each a one-bit pair of corners
    pairs = res.joined_pairs(1)
    assert len(pairs) == 12
    assert {tuple(sorted(cm.stable_corners[[i, j]].tolist())) for i, j in pairs} == set(cm.edges)
    s = summarize(res)
    assert s["n_stable"] == 8 and s["all_corners_once"] and s["edges_joined"] == 12
    assert s["saddles_by_unstable_dims"] == {"1": 12, "2": 6, "3": 0}
    assert s["labels"] == {"stable": 8, "unstable": 1, "saddle": 18, "marginal": 0}
    assert json.loads(json.dumps(to_jsonable(s)))["edges_joined"] == 12


def test_nmrnn_z_free_and_clamped_match_closed_forms():
    model = hand_nmrnn()
    key = jr.PRNGKey(5)
    states = NMState(random_states(key, 300), 0.1 * jr.normal(jr.fold_in(key, 1), (1, 300, 2)))

    # z free: z relaxes to z* = 0, gains 1/2, w = 2 on every axis; z adds two directions 0.9
    free = find_saddles(model, states, key=jr.PRNGKey(6), n_samples=200, follow_steps=200)
    pts = free.fixed_points.points  # (x, z)
    np.testing.assert_allclose(pts[:, 3:], 0.0, atol=1e-4)  # |0.1 z| <= sqrt(2 tol_q)
    assert_same_points(pts[:, :3], expected_points(W_GAIN))
    assert sorted(free.n_unstable.tolist()) == [1] * 12 + [2] * 6 + [3]  # centre is a saddle here
    free_cm = match_corners(free)
    np.testing.assert_allclose(free.stable_readouts, corners(3)[free_cm.stable_corners], atol=1e-5)
    assert len(free_cm.edges) == 12

    # z clamped at z_bar itself: the step first moves z to F_z(z_bar) = 0.9 z_bar, so the gains
    # are sigmoid(A_z 0.9 z_bar) (the analysis module's documented clamp semantics)
    w_naive = 4 * sigmoid(A_Z @ (0.9 * Z_BAR))
    naive = find_saddles(model, states, key=jr.PRNGKey(7), clamp={"z": Z_BAR}, n_samples=200,
                         follow_steps=200)
    assert naive.fixed_points.free_fields == ("x",)
    assert_same_points(naive.fixed_points.points, expected_points(w_naive))

    # clamped at the pre-image c = z_bar / 0.9 (W_z = 0): the gains are exactly sigmoid(A_z z_bar)
    c = clamp_preimage(model, "z", Z_BAR)
    np.testing.assert_allclose(c, Z_BAR / 0.9, atol=1e-6)
    w = 4 * sigmoid(A_Z @ Z_BAR)
    res = find_saddles(model, states, key=jr.PRNGKey(7), clamp={"z": c}, n_samples=200,
                       follow_steps=200)
    cm = match_corners(res)
    assert_same_points(res.fixed_points.points, expected_points(w))
    np.testing.assert_allclose(res.clamp["z"], c)
    # readouts x*(w_i) / x*(2): corner error in closed form
    err = np.max(np.abs(x_star(w) / x_star(W_GAIN) - 1))
    np.testing.assert_allclose(cm.corner_errors.max(), err, atol=1e-5)
    assert sorted(cm.stable_corners.tolist()) == list(range(8)) and len(cm.edges) == 12
    np.testing.assert_allclose(np.sort(np.abs(res.unstable_eigenvalues[res.n_unstable == 1])),
                               np.sort(np.repeat(w, 4)), atol=1e-5)


def test_memory_clamp_averages_z_over_pulse_free_steps():
    model = hand_nmrnn()
    z = np.zeros((1, 4, 2))
    z[0, :, 0] = [9.0, 1.0, 2.0, 3.0]  # step 0 has a pulse: excluded
    z[0, :, 1] = [9.0, -1.0, 0.0, 1.0]
    u = np.zeros((1, 4, 3))
    u[0, 0, 1] = 1.0
    out = memory_clamp(model, "z", NMState(np.zeros((1, 4, 3)), z), u)
    np.testing.assert_allclose(out["memory_mean"], [2.0, 0.0])
    np.testing.assert_allclose(out["clamp_value"], np.array([2.0, 0.0]) / 0.9, atol=1e-5)
    np.testing.assert_allclose(out["modulation_at_memory_mean"], sigmoid(A_Z @ [2.0, 0.0]), atol=1e-6)
    np.testing.assert_allclose(out["modulation_if_clamped_at_memory_mean"], sigmoid(A_Z @ [1.8, 0.0]),
                               atol=1e-6)
    assert out["preimage_residual"] < 1e-5 and out["memory_steps_fraction"] == 0.75
    np.testing.assert_allclose(out["std_over_memory_steps"], np.sqrt(2 / 3) * np.ones(2), atol=1e-6)
    s_mem = sigmoid(np.array([[1.0, -1.0], [2.0, 0.0], [3.0, 1.0]]) @ A_Z.T)  # (3 steps, K)
    np.testing.assert_allclose(out["modulation_min_over_memory_steps"], s_mem.min(0), atol=1e-6)
    np.testing.assert_allclose(out["modulation_max_over_memory_steps"], s_mem.max(0), atol=1e-6)


def test_clamp_preimage_on_a_nonlinear_z_against_numpy_newton():
    """tanh z network with W_z != 0: the pre-image of a NumPy Newton solve of the same map."""
    model = make_model("nmrnn", n_in=3, n_out=3, n_hidden=5, key=jr.PRNGKey(2), n_nm=2, rank=2,
                       tau_x=1.0, tau_z=4.0)
    W = np.array([[0.5, -1.2], [0.8, 0.3]])
    model = eqx.tree_at(lambda m: m.W_z, model, jnp.asarray(W))
    target = np.array([0.4, -0.7])
    u = np.array([0.0, 1.0, 0.0])
    B_z = np.asarray(model.B_z, np.float64)
    a = 1.0 / 4.0

    def f(c):  # the NM-RNN's z update, written out
        return (1 - a) * c + a * (W @ np.tanh(c) + B_z @ u)

    c = target.copy()
    for _ in range(50):
        jac = (1 - a) * np.eye(2) + a * W * (1 - np.tanh(c) ** 2)[None, :]
        c = c - np.linalg.solve(jac, f(c) - target)
    assert np.max(np.abs(f(c) - target)) < 1e-12
    got = clamp_preimage(model, "z", target, u)
    np.testing.assert_allclose(got, c, atol=1e-5)
    assert np.max(np.abs(c - target)) > 0.05  # not trivially the target itself


# -- bad input -----------------------------------------------------------------------------------


def test_bad_arguments_are_refused_before_work():
    vanilla = hand_vanilla()
    states = LeakyState(random_states(jr.PRNGKey(0), 10))
    with pytest.raises(ValueError, match="interp_fractions"):
        find_saddles(vanilla, states, key=jr.PRNGKey(0), interp_fractions=(0.5, 1.0))
    with pytest.raises(ValueError, match="cannot be set"):
        find_saddles(vanilla, states, key=jr.PRNGKey(0), kind="flow")
    with pytest.raises(ValueError, match="n_samples"):
        find_saddles(vanilla, states, key=jr.PRNGKey(0), n_samples=0)
    with pytest.raises(ValueError, match="cannot clamp"):
        find_saddles(vanilla, states, key=jr.PRNGKey(0), clamp={"z": 0.0})
    with pytest.raises(ValueError, match=r"inputs must have shape \(3,\)"):
        find_saddles(vanilla, states, key=jr.PRNGKey(0), inputs=np.zeros(2))
    with pytest.raises(ValueError, match="unknown field 'z'"):
        clamp_preimage(vanilla, "z", np.zeros(2))
    with pytest.raises(ValueError, match=r"target must have shape \(2,\)"):
        clamp_preimage(hand_nmrnn(), "z", np.zeros(3))
    feedback = make_model("nmrnn", n_in=3, n_out=3, n_hidden=4, key=jr.PRNGKey(0), n_nm=2,
                          rank=2, feedback=True)
    with pytest.raises(ValueError, match="depends on 'x'"):
        clamp_preimage(feedback, "z", np.zeros(2))
    with pytest.raises(ValueError, match=r"shape \(Q, 3\)"):
        follow_unstable_manifolds(vanilla, np.zeros((2, 3)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="eps"):
        follow_unstable_manifolds(vanilla, np.zeros((1, 3)), np.ones((1, 3)), eps=0.0)
    with pytest.raises(ValueError, match="profile"):
        flipflop.run(None, "fast", 0)


def test_flipflop_is_registered():
    rep = REPRODUCTIONS["flipflop"]
    assert rep.result_id == "T8" and set(rep.runtime) == set(PROFILE_NAMES)
    assert rep.run.target == ("nmrnn.experiments.flipflop", "run")


# -- training ------------------------------------------------------------------------------------


def test_short_training_gives_eight_memories_at_the_corners(tmp_path):
    spec = RunSpec(model="vanilla", n_hidden=24, task="flipflop", seed=0,
                   train=TrainConfig(steps=600, lr=1e-2, batch_size=32, noise=False),
                   model_options={"tau": 1.0, "dt": 1.0})
    trained = ensure_run(tmp_path / "a", spec)
    assert trained.metrics["test"]["accuracy"] >= 0.95, trained.metrics
    assert trained.losses[-20:].mean() < 0.2 * trained.losses[:5].mean()
    again = ensure_run(tmp_path / "b", spec)
    np.testing.assert_array_equal(again.losses, trained.losses)  # same spec, same run
    assert ensure_run(tmp_path / "a", spec).metrics == trained.metrics  # reused, not retrained
    task = FlipFlop()
    batch = task.sample(jr.PRNGKey(1), 32)
    traj = simulate(trained.model, batch.inputs)
    res = find_saddles(trained.model, traj.states, key=jr.PRNGKey(2), n_samples=128,
                       follow_steps=300)
    cm = match_corners(res)
    assert len(res.stable_index) == 8
    assert sorted(cm.stable_corners.tolist()) == list(range(8))
    assert cm.corner_errors.max() < flipflop.CORNER_TOL
    assert len(cm.edges) == 12  # every pair of neighbouring memories has its saddle
    # the stable points are fixed points of the trained map to float32 precision
    nxt = trained.model.step(LeakyState(jnp.asarray(res.fixed_points.points[res.stable_index])),
                             jnp.zeros(3)).x
    np.testing.assert_allclose(np.asarray(nxt), res.fixed_points.points[res.stable_index], atol=1e-4)


def test_smoke_profile_writes_summary_report_and_figures(smoke_run):
    check_smoke_outputs("flipflop", smoke_run("flipflop"), smoke_run.dir("flipflop"))


def test_smoke_reproduction_resumes_after_an_interruption(tmp_path, monkeypatch, smoke_run):
    """Interrupt the first training after a checkpoint, run again: the numbers equal an
    uninterrupted run's."""
    reference = smoke_run("flipflop")
    out = tmp_path / "interrupted"
    interrupt_training_once(monkeypatch, grid, after_step=100)  # the networks train as a grid
    with pytest.raises(TrainingInterrupted):
        run_reproduction("flipflop", out, profile="smoke")
    assert (out / "runs" / "vanilla" / "checkpoint.npz").exists()
    assert json.loads((out / "summary.json").read_text())["status"] == "failed"
    monkeypatch.undo()
    resumed = run_reproduction("flipflop", out, profile="smoke")
    assert without_timings(resumed["metrics"]) == without_timings(reference["metrics"])
    assert resumed["checks"] == reference["checks"]


# -- the reproduction (slow) ---------------------------------------------------------------------


@pytest.mark.slow
def test_flipflop_reproduction_quick_profile(tmp_path):
    summary = run_reproduction("flipflop", tmp_path, profile="quick", seed=0)
    failed = [c["name"] for c in summary["checks"] if not c["passed"]]
    assert summary["reproduced"] is True, failed
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    assert summary["result_id"] == "T8"
    assert set(summary["figures"]) == {
        "figures/vanilla.png", "figures/nmrnn_z_free.png", "figures/nmrnn_z_clamped.png"
    }
    for f in summary["figures"]:
        assert (tmp_path / f).stat().st_size > 10_000
    m = summary["metrics"]
    for key in ("fixed_points_z_free", "fixed_points_z_clamped"):
        assert m["nmrnn"][key]["n_stable"] == 8 and m["nmrnn"][key]["edges_joined"] == 12
    assert m["vanilla"]["fixed_points"]["saddles_by_unstable_dims"]["1"] >= 12
    assert m["nmrnn"]["z_clamp"]["preimage_residual"] < 1e-5
    assert "**Reproduced: yes**" in (tmp_path / "report.md").read_text()
