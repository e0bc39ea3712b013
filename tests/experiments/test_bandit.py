"""R10's criteria on synthetic numbers: each clause decides on its own, and a policy that did not
learn leaves the decoding clauses undecided."""

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
