"""R10's criteria on synthetic numbers: each clause decides on its own, and a policy that did not
learn leaves the decoding clauses undecided; its agents train as a grid of runs."""

import numpy as np

from nmrnn.experiments.bandit import ALPHA, LEARNED, PROFILES, WSLS_MARGIN, bandit_checks
from nmrnn.experiments.registry import verdict_of
from nmrnn.rl import PAPER_A2C


def test_every_clause_passes_when_the_numbers_say_so():
    checks = bandit_checks(0.75, 0.7, [0.5, ALPHA / 2, 0.3, 0.9], [0.002, 0.5, 0.5, 0.5])
    assert [c["passed"] for c in checks] == [True, True, True]
    assert verdict_of(checks) == "reproduced"


def test_each_clause_fails_on_its_own():
    weak = bandit_checks(0.7 - WSLS_MARGIN - 0.01, 0.7, [0.001] * 4, [0.001] * 4)
    assert [c["passed"] for c in weak] == [False, True, True]
    no_block = bandit_checks(0.75, 0.7, [ALPHA * 1.01] * 4, [0.001] * 4)  # Bonferroni: 0.0126 is not enough
    assert [c["passed"] for c in no_block] == [True, False, True]
    no_rpe = bandit_checks(0.75, 0.7, [0.001] * 4, [0.2] * 4)
    assert [c["passed"] for c in no_rpe] == [True, True, False]
    assert verdict_of(no_rpe) == "not reproduced"


def test_decoding_is_undecided_when_the_agent_did_not_learn():
    checks = bandit_checks(LEARNED - 0.01, 0.55, [0.001] * 4, [0.001] * 4)
    assert [c.get("decided", True) for c in checks] == [True, False, False]
    assert verdict_of(checks) == "undecided"


def test_the_paper_profile_is_the_papers_scale():
    assert PROFILES["paper"].updates == PAPER_A2C["num_updates"] == 50_000
    assert PROFILES["paper"].n_hidden == 64
    assert PAPER_A2C["lr"] == 7e-4 and PAPER_A2C["entropy_coef"] == 0.3 and PAPER_A2C["critic_coef"] == 0.01


def test_the_agents_train_as_a_grid_and_two_workers_give_the_serial_result(tmp_path):
    """R10's two agents are RunSpecs of the bandit task with the A2C objective and the table's
    numbers, trained as one grid: two one-CPU worker processes give the same runs, bit for bit,
    as training them here one after the other."""
    from nmrnn.experiments.bandit import A2C_OPTIONS, AGENTS, BanditSettings, train_agents
    from nmrnn.experiments.grid import GridOptions
    from nmrnn.train.checkpoint import read_arrays

    settings = BanditSettings(updates=6, n_hidden=8, n_eval=4, n_fit=2, de_maxiter=1, n_shifts=2)
    serial = train_agents(tmp_path / "serial", settings, seed=5)
    parallel = train_agents(tmp_path / "parallel", settings, seed=5, grid=GridOptions(workers=2, force=True))
    assert [j.run_dir for j in serial] == [j.run_dir for j in parallel] == ["agents/e-nmrnn", "agents/vanilla-rnn"]
    for job, (label, name, _) in zip(serial, AGENTS, strict=True):
        spec = job.spec
        assert (job.group, spec.model, spec.task, spec.objective, spec.seed) == (label, name, "bandit", "a2c", 5)
        assert spec.objective_options == A2C_OPTIONS and spec.model_options["sigma_rec"] == PAPER_A2C["hidden_noise_std"]
        assert spec.train.activity_l2 == PAPER_A2C["activity_l2"] and spec.train.lr == PAPER_A2C["lr"]
        assert spec.train.batch_size == PAPER_A2C["n_envs"] and spec.task_options == {"episode_length": 200}
        a = read_arrays(tmp_path / "serial" / job.run_dir / "checkpoint.npz")
        b = read_arrays(tmp_path / "parallel" / job.run_dir / "checkpoint.npz")
        assert a.keys() == b.keys() and int(a["array/step"]) == 6
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=f"{job.run_dir}: {k}")
