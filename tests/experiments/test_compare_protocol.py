"""``compare --protocol reference``: the NM-RNN authors' parametrisation and training recipe."""

import json

import pytest

from nmrnn.experiments.compare import ModelEntry, plan_for, run_compare
from nmrnn.experiments.nmrnn_paper import arm_training
from nmrnn.models import REFERENCE_OPTIONS


def test_reference_plan_for_mwg_follows_the_authors_scripts():
    plan = plan_for("mwg", "reference")
    by = {e.label: e for e in plan.models}
    assert plan.train == {"clip_mode": "value", "select_best_block": 1000} and plan.fixed_batch
    assert plan.steps["paper"] == 70_000 and plan.lr == 1e-2 and plan.optimizer == "adamw"
    assert [g for g, _ in by["NM-RNN"].stages] == ["lowrank", "nm", "all"]
    assert by["LR-RNN"].stages == (("all", 1.0),)  # 70k steps
    assert by["vanilla RNN"].stages == (("all", 5 / 7),) and by["vanilla RNN"].train == {"lr": 1e-3}  # 50k at 1e-3
    for e in plan.models:
        assert REFERENCE_OPTIONS[e.model].items() <= e.options.items()
    with pytest.raises(ValueError, match="defined for task"):
        plan_for("eft", "reference")
    with pytest.raises(ValueError, match="protocol"):
        plan_for("mwg", "authors")


def test_reference_comparison_trains_each_model_with_its_recipe(tmp_path):
    summary = run_compare("mwg", out_dir=tmp_path / "c", profile="smoke", protocol="reference", figures=False,
                          log=None, steps=70)
    assert summary["protocol"] == "reference"
    sizes = {k: v["n_hidden"] for k, v in summary["models"].items()}
    assert sizes == {"NM-RNN": 100, "LR-RNN": 106, "vanilla RNN": 31, "LSTM": 15}  # the paper's matched sizes
    runs = {p.name: json.loads((p / "config.json").read_text()) for p in (tmp_path / "c" / "runs").iterdir()}
    nm, lr, van = runs["nm-rnn_seed0"], runs["lr-rnn_seed0"], runs["vanilla-rnn_seed0"]
    assert [(s["group"], s["steps"]) for s in nm["train"]["stages"]] == [("lowrank", 10), ("nm", 10), ("all", 50)]
    assert [s["steps"] for s in lr["train"]["stages"]] == [70]
    assert van["train"]["lr"] == 1e-3 and [s["steps"] for s in van["train"]["stages"]] == [50]
    for r in runs.values():
        assert r["train"]["clip_mode"] == "value" and r["train"]["select_best_block"] == 1000
    assert nm["model_options"]["orthonormal_scale"] == "unit" and nm["model_options"]["scale_by_n"] is False


def test_reference_protocol_applies_the_authors_options_to_given_models(tmp_path):
    summary = run_compare("mwg", out_dir=tmp_path / "c", profile="smoke", protocol="reference", figures=False, log=None,
                          models=[ModelEntry("NM", "nmrnn", 20, {"n_nm": 3, "rank": 2}), ModelEntry("LR", "lowrank", None, {"rank": 2, "init_value": 0.0})])
    assert summary["models"]["NM"]["options"]["orthonormal_scale"] == "unit"
    assert summary["models"]["LR"]["options"]["init_value"] == 0.0  # the entry's own option wins
    with pytest.raises(ValueError, match="no 'gru' model"):
        run_compare("mwg", out_dir=tmp_path / "d", profile="smoke", protocol="reference", log=None,
                    models=[ModelEntry("NM", "nmrnn", 20, {"n_nm": 3, "rank": 2}), ModelEntry("G", "gru")])


def test_training_options_reach_every_model_and_are_checked_before_anything_is_written(tmp_path):
    summary = run_compare("mwg", out_dir=tmp_path / "c", profile="smoke", protocol="reference", figures=False,
                          log=None, steps=14, train={"restart_each_block": True})
    for label, info in summary["models"].items():
        assert info["train"]["restart_each_block"] is True, label
    for p in (tmp_path / "c" / "runs").iterdir():
        cfg = json.loads((p / "config.json").read_text())["train"]
        assert cfg["restart_each_block"] is True and cfg["select_best_block"] == 1000, p.name
    bad = [({"colour": 3}, r"unknown training option\(s\) \[.colour.\]"), ({"restart_each_block": "yes please"}, "restart_each_block takes"),
           ({"restart_each_block": True}, "needs select_best_block")]  # the standard protocol keeps no blocks
    for train, message in bad:
        with pytest.raises(ValueError, match=message):
            run_compare("mwg", out_dir=tmp_path / "d", profile="smoke", protocol="standard", log=None, train=train)
        assert not (tmp_path / "d").exists()


def test_r1_restarts_option_reaches_the_reference_arm_only():
    assert arm_training("off") == {"reference": {}, "standard": {}}
    assert arm_training("on") == {"reference": {"restart_each_block": True}, "standard": {}}
    with pytest.raises(ValueError, match="restarts"):
        arm_training("sometimes")
