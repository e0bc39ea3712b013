"""The reproduction registry: validation, the common summary/report format, atomic writes."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from nmrnn.experiments import registry
from nmrnn.experiments.registry import (
    REPRODUCTIONS,
    Choice,
    Reproduction,
    check,
    format_report,
    lazy,
    register,
    run_reproduction,
    to_jsonable,
)


@pytest.fixture
def dummy(monkeypatch):
    """Register throw-away reproductions for one test (the registry is restored afterwards)."""
    monkeypatch.setattr(registry, "REPRODUCTIONS", dict(REPRODUCTIONS))
    calls = []

    def good(out_dir, profile, seed):
        calls.append((out_dir, profile, seed))
        (out_dir / "figures").mkdir(exist_ok=True)
        (out_dir / "figures" / "a.png").write_bytes(b"png")
        return {
            "checks": [check("value near 1", np.float32(1.0001), True, "|v - 1| < 1e-3"),
                       check("pair", np.array([1.5, 2.5]), True, "anything")],
            "metrics": {"v": np.float64(1.0001), "nested": {"c": 1 + 2j, "bad": float("nan")}},
            "settings": {"steps": np.int64(3), "grid": (0.1, 0.2)},
            "figures": ["figures/a.png"],
            "notes": "a note",
        }

    def failing_check(out_dir, profile, seed):
        return {"checks": [check("ok", 1, True, "c"), check("not ok", 2, False, "c")]}

    def crash(out_dir, profile, seed):
        raise RuntimeError("boom")

    for name, fn in (("good", good), ("half", failing_check), ("crash", crash)):
        register(Reproduction(name, "R0", "paper X", f"{name} dummy", "a claim", fn))
    return calls


def test_run_writes_summary_and_report(dummy, tmp_path):
    out = tmp_path / "deep" / "run"
    summary = run_reproduction("good", out, profile="paper", seed=3)
    assert dummy == [(out, "paper", 3)]
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk == summary
    assert summary["reproduced"] is True and summary["status"] == "finished"
    assert summary["profile"] == "paper" and summary["seed"] == 3
    assert summary["claim"] == "a claim" and summary["result_id"] == "R0"
    assert summary["checks"][0]["value"] == pytest.approx(1.0001, rel=1e-6)
    assert summary["checks"][1]["value"] == [1.5, 2.5]
    assert summary["metrics"]["nested"] == {"c": [1.0, 2.0], "bad": None}
    assert summary["settings"] == {"steps": 3, "grid": [0.1, 0.2]}
    assert summary["elapsed_s"] >= 0 and "nmrnn" in summary["versions"]
    report = (out / "report.md").read_text()
    assert report.startswith("# R0 `good`: good dummy")
    assert "**Reproduced: yes**" in report
    assert "| value near 1 | 1.0001 | \\|v - 1\\| < 1e-3 | pass |" in report
    assert "![a](figures/a.png)" in report and "a note" in report
    # atomic writes leave no temporary files behind
    assert sorted(p.name for p in out.iterdir()) == ["figures", "report.md", "summary.json"]


def test_reproduced_false_when_a_check_fails(dummy, tmp_path):
    summary = run_reproduction("half", tmp_path)
    assert summary["reproduced"] is False
    assert "**Reproduced: NO**" in (tmp_path / "report.md").read_text()
    assert "| not ok | 2 | c | FAIL |" in (tmp_path / "report.md").read_text()


def test_a_crash_is_recorded_and_reraised(dummy, tmp_path):
    with pytest.raises(RuntimeError, match="boom"):
        run_reproduction("crash", tmp_path)
    failed = json.loads((tmp_path / "summary.json").read_text())
    assert failed["status"] == "failed" and failed["reproduced"] is False
    assert "RuntimeError: boom" in failed["error"]


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (("nope", "x"), "unknown reproduction 'nope'; valid choices: .*hopf"),
        (("hopf", "x", "full"), "unknown profile 'full'; valid choices: smoke, quick, paper"),
        (("hopf", "x", "quick", -1), r"seed must be an integer in \[0, 2\*\*64 - 1\], got -1"),
    ],
)
def test_bad_arguments_refused_before_running(args, match, tmp_path):
    name, _, *rest = args
    with pytest.raises(ValueError, match=match):
        run_reproduction(name, tmp_path / "never", *rest)
    assert not (tmp_path / "never").exists()


def test_options_are_checked_defaulted_passed_and_recorded(monkeypatch, tmp_path):
    monkeypatch.setattr(registry, "REPRODUCTIONS", dict(REPRODUCTIONS))
    seen = []

    def fn(out_dir, profile, seed, size="small"):
        seen.append(size)
        return {"checks": [check("ok", size, True, "c")]}

    register(Reproduction("opt", "R0", "p", "d", "c", fn,
                          options={"size": Choice({"small": "the paper's", "large": "the code's"}, "small", "sizes")}))
    assert run_reproduction("opt", tmp_path / "a")["options"] == {"size": "small"}
    summary = run_reproduction("opt", tmp_path / "b", options={"size": "large"})
    assert seen == ["small", "large"] and summary["options"] == {"size": "large"}
    assert "seed 0, size `large`" in (tmp_path / "b" / "report.md").read_text()
    for bad, match in (({"size": "huge"}, "unknown value of opt's option size 'huge'; valid choices: small, large"),
                       ({"colour": "red"}, "unknown option.* colour for reproduction 'opt'; valid options: size")):
        with pytest.raises(ValueError, match=match):
            run_reproduction("opt", tmp_path / "never", options=bad)
    with pytest.raises(ValueError, match="reproduction 'hopf' has no options; got size"):
        run_reproduction("hopf", tmp_path / "never", options={"size": "small"})
    assert not (tmp_path / "never").exists()
    assert "options" not in run_reproduction("hopf", tmp_path / "h", profile="smoke")
    with pytest.raises(ValueError, match="defaults to 'x', not one of its values"):
        register(Reproduction("opt2", "R0", "p", "d", "c", fn, options={"size": Choice({"small": ""}, "x")}))


def test_output_path_that_is_a_file_is_refused(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(ValueError, match="is not a folder"):
        run_reproduction("hopf", f)


def test_register_refuses_duplicates_and_bad_names(monkeypatch):
    monkeypatch.setattr(registry, "REPRODUCTIONS", dict(REPRODUCTIONS))
    with pytest.raises(ValueError, match="already registered"):
        register(Reproduction("hopf", "R6", "p", "d", "c", lambda *a: {}))
    with pytest.raises(ValueError, match="lower-case slug"):
        register(Reproduction("Bad Name", "R0", "p", "d", "c", lambda *a: {}))
    with pytest.raises(ValueError, match="unknown profile"):
        register(Reproduction("x", "R0", "p", "d", "c", lambda *a: {}, runtime={"fast": "1 s"}))


def test_every_reproduction_states_its_runtime_per_profile():
    from nmrnn.experiments.profiles import PROFILE_NAMES

    for name, rep in REPRODUCTIONS.items():
        assert set(rep.runtime) == set(PROFILE_NAMES), name


def test_hopf_is_registered_lazily():
    rep = REPRODUCTIONS["hopf"]
    assert rep.result_id == "R6" and "Hopf" in rep.description
    assert rep.run.__name__ == "hopf.run"
    assert callable(lazy("hopf"))


def test_every_registered_reproduction_resolves_to_a_run_function():
    import importlib
    import inspect

    for name, rep in REPRODUCTIONS.items():
        module, attr = rep.run.target
        fn = getattr(importlib.import_module(module), attr)
        assert list(inspect.signature(fn).parameters)[:3] == ["out_dir", "profile", "seed"], name
        # result ids: R<n> (published results), T<n> (the field's standard tasks, e.g. T8) or M<n>
        # (the derivation behind a model of the spec: M6's rate reduction, M4's local rules)
        assert rep.result_id[:1] in ("R", "T", "M") and rep.claim and rep.description
        if rep.search is not None:
            module, attr = rep.search.target
            fn = getattr(importlib.import_module(module), attr)
            assert list(inspect.signature(fn).parameters)[:3] == ["out_dir", "profile", "seed"], name
            assert {"grid", "trials", "log"} <= set(inspect.signature(fn).parameters), name


def test_the_readme_names_every_reproduction_that_trains_a_grid():
    """The README's list of the reproductions that take ``--workers``/``--storage`` is the registry's."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    listed = re.search(r"the reproductions that train several networks \(([^)]*)\)", readme)
    assert listed, "README: the sentence listing the reproductions that train a grid"
    names = re.findall(r"`([^`]+)`", listed.group(1))
    assert names == [n for n, rep in REPRODUCTIONS.items() if registry.trains_grid(rep)]


def test_the_reproductions_with_a_stored_search():
    assert registry.searching() == ["sine-meta", "composition"]


@pytest.mark.parametrize(
    "name, kwargs, match",
    [
        ("hopf", {}, "reproduction 'hopf' has no stored search; the ones with a search: sine-meta, composition"),
        ("nope", {}, "unknown reproduction 'nope'"),
        ("composition", {"profile": "full"}, "unknown profile 'full'"),
        ("composition", {"trials": 0}, "trials must be a positive integer, got 0"),
        ("composition", {"trials": 2.5}, "trials must be a positive integer, got 2.5"),
        ("composition", {"seed": -1}, "seed must be"),
    ],
)
def test_a_search_with_bad_arguments_is_refused_before_running(name, kwargs, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        registry.run_search(name, tmp_path / "never", **kwargs)
    assert not (tmp_path / "never").exists()


def test_a_search_runs_at_the_profiles_settings_and_is_stored_where_the_profile_reads_it(tmp_path, monkeypatch):
    """The composition search at the smoke settings with one trial per model: every model's best
    values are stored under the profile, and the trials ran into the given folder."""
    import dataclasses

    from nmrnn.experiments import composition

    stored = tmp_path / "stored.json"
    monkeypatch.setattr(composition, "STORED", stored)
    found = registry.run_search("composition", tmp_path / "search", profile="smoke", trials=1)
    on_disk = json.loads(stored.read_text())
    assert list(on_disk) == ["smoke"] and on_disk["smoke"]["best"] == found["best"]
    assert found["settings"]["sweep_trials"] == 1
    s = composition.PROFILES["smoke"]
    assert set(found["best"]) == set(s.models)
    assert all(len(rows) == 1 for rows in found["trials"].values())
    assert (tmp_path / "search" / "sweeps").is_dir()
    # the smoke profile now reads its hyperparameters from the stored search
    hyper, source, _ = composition.hyperparameters(
        dataclasses.replace(s, hyper="stored"), "smoke", tmp_path / "unused", 0, None)
    assert hyper == found["best"] and "stored TPE search" in source


def test_to_jsonable():
    assert to_jsonable({"a": np.arange(3), "b": np.float32(0.5), "c": (1, 2), "d": math.inf}) == {
        "a": [0, 1, 2], "b": 0.5, "c": [1, 2], "d": None}
    assert to_jsonable(np.array([1 + 1j])) == [[1.0, 1.0]]
    with pytest.raises(TypeError, match="cannot write"):
        to_jsonable(object())


def test_format_report_is_plain_markdown():
    text = format_report({
        "result_id": "R9", "name": "x", "description": "d", "paper": "p", "claim": "c", "reproduced": False,
        "criterion": "k", "profile": "quick", "seed": 0, "checks": [check("a|b", 1.0, False, "c")],
    })
    assert "a\\|b" in text and text.endswith("\n")


def test_verdicts_distinguish_failed_and_undecided_checks():
    from nmrnn.experiments.registry import check, verdict_of

    ok = check("a", 1, True, "c")
    assert verdict_of([ok]) == "reproduced"
    assert verdict_of([ok, check("b", 1, False, "c")]) == "not reproduced"
    undecided = check("b", 1, True, "c", decided=False)
    assert undecided["passed"] is False and undecided["decided"] is False
    assert verdict_of([ok, undecided]) == "undecided"
    assert verdict_of([check("b", 1, False, "c"), undecided]) == "not reproduced"


def test_a_stored_profile_result_keeps_the_other_profiles_and_refuses_unknown_ones(tmp_path):
    import json

    from nmrnn.experiments.profiles import store_profile_result

    path = tmp_path / "search.json"
    store_profile_result(path, "quick", {"lr": 1e-3})
    store_profile_result(path, "smoke", {"lr": 2e-3})
    store_profile_result(path, "quick", {"lr": 5e-3})
    assert json.loads(path.read_text()) == {"quick": {"lr": 5e-3}, "smoke": {"lr": 2e-3}}
    before = path.read_text()
    with pytest.raises(ValueError, match="fast"):
        store_profile_result(path, "fast", {"lr": 1.0})
    assert path.read_text() == before
