import json
from pathlib import Path

import pytest

from nmrnn.cli import main


@pytest.mark.parametrize("sub", [[], ["train"], ["evaluate"], ["compare"], ["reproduce"], ["list"]])
def test_help_everywhere(sub, capsys):
    with pytest.raises(SystemExit) as e:
        main([*sub, "--help"])
    assert e.value.code == 0
    assert "usage: nmrnn" in capsys.readouterr().out


def test_train_then_evaluate(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["train", "--model", "lowrank", "--task", "mwg", "--out", str(out), "--hidden", "10",
               "--model-opt", "rank=2", "--steps", "20", "--fixed-batch", "--steps-per-call", "10", "--no-progress"])
    assert rc == 0
    assert {p.name for p in out.iterdir()} >= {"config.json", "checkpoint.npz", "curve.csv", "metrics.json"}
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["model_options"] == {"rank": 2} and cfg["n_hidden"] == 10
    assert main(["evaluate", str(out), "--json"]) == 0
    printed = capsys.readouterr().out
    assert '"extrapolated"' in printed


def test_match_params_picks_the_paper_size(tmp_path, capsys):
    rc = main(["train", "--model", "vanilla", "--task", "mwg", "--out", str(tmp_path / "r"),
               "--match-params", "1059", "--steps", "2", "--steps-per-call", "2", "--no-progress"])
    assert rc == 0
    assert json.loads((tmp_path / "r" / "config.json").read_text())["n_hidden"] == 31


@pytest.mark.parametrize(
    "argv, msg",
    [
        (["train", "--model", "nope", "--task", "mwg", "--out", "X"], "unknown model 'nope'; valid choices"),
        (["train", "--model", "vanilla", "--task", "nope", "--out", "X"], "unknown task 'nope'; valid choices"),
        (["train", "--model", "vanilla", "--task", "mwg", "--out", "X", "--hidden", "0"], "n_hidden must be a positive integer"),
        (["train", "--model", "nmrnn", "--task", "mwg", "--out", "X", "--model-opt", "tau_x=-1"], "tau_x must be a positive number"),
        (["train", "--model", "nmrnn", "--task", "mwg", "--out", "X", "--model-opt", "dt=5", "--model-opt", "tau_x=2"], "dt=5.0 is larger than tau_x=2.0"),
        (["train", "--model", "vanilla", "--task", "mwg", "--out", "X", "--steps", "0"], "steps must be a positive integer"),
        (["train", "--model", "vanilla", "--task", "mwg", "--out", "X", "--model-opt", "colour=3"], "unknown option"),
        (["compare", "--task", "nope"], "unknown task 'nope'"),
        (["compare", "--models", "nmrnn", "vanilla"], "needs an explicit size"),
        (["compare", "--task", "mwg", "--seeds", "0"], "seeds must be a positive integer, got 0"),
        (["compare", "--task", "mwg", "--workers", "0"], "workers must be a positive integer, got 0"),
        (["compare", "--task", "mwg", "--out", "X", "--train-opt", "colour=3"], "unknown training option(s) ['colour']"),
        (["compare", "--task", "mwg", "--out", "X", "--train-opt", "restart_each_block=2"],
         "restart_each_block takes true/false"),
        (["compare", "--task", "mwg", "--out", "X", "--train-opt", "restart_each_block=true"],
         "restart_each_block needs select_best_block"),
        (["evaluate", "/nonexistent/run"], "not a run directory"),
    ],
)
def test_bad_input_is_refused_with_a_message(argv, msg, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert msg in err and len(err.strip().splitlines()) == 1  # one line
    assert out == ""  # nothing announced before the refusal
    assert not (tmp_path / "X").exists()  # nothing written before validation


def test_compare_small_writes_table_summary_and_figures(tmp_path, capsys):
    out = tmp_path / "cmp"
    rc = main(["compare", "--models", "nmrnn:12:n_nm=2,rank=2,tau_z=20", "vanilla", "--steps", "20",
               "--seeds", "2", "--out", str(out), "--no-progress"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "trained loss" in printed and "extrapolated loss" in printed
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["models"]["nmrnn:12:n_nm=2,rank=2,tau_z=20"]["per_seed"]) == 2
    vanilla = summary["models"]["vanilla"]
    assert vanilla["params"] >= summary["models"]["nmrnn:12:n_nm=2,rank=2,tau_z=20"]["params"]
    for f in ("learning_curves.png", "ramps.png"):
        assert (out / "figures" / f).stat().st_size > 0
    assert (out / "table.csv").read_text().startswith("model,N,params,steps")
    # A second invocation reuses the finished runs.
    assert main(["compare", "--models", "nmrnn:12:n_nm=2,rank=2,tau_z=20", "vanilla", "--steps", "20",
                 "--seeds", "2", "--out", str(out), "--no-progress", "--no-figures"]) == 0
    assert "reusing finished run" in capsys.readouterr().out


@pytest.mark.parametrize("reproduced, strict, code", [(False, False, 0), (False, True, 3), (True, True, 0)])
def test_reproduce_exit_status_and_strict(tmp_path, monkeypatch, capsys, reproduced, strict, code):
    import nmrnn.experiments.registry as registry

    def fake(name, out, **kwargs):
        return {"reproduced": reproduced, "verdict": "reproduced" if reproduced else "not reproduced"}

    monkeypatch.setattr(registry, "run_reproduction", fake)
    argv = ["reproduce", "hopf", "--out", str(tmp_path / "r")] + (["--strict"] if strict else [])
    assert main(argv) == code
    assert f"reproduced: {reproduced}" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["reproduce", "hopf", "--search"], "reproduction 'hopf' has no stored search; the ones with a search: sine-meta, composition"),
    (["reproduce", "composition", "--search", "--trials", "0"], "trials must be a positive integer"),
    (["reproduce", "composition", "--trials", "3"], "--trials applies to --search only"),
])
def test_reproduce_search_refuses_bad_arguments_in_one_line(tmp_path, capsys, argv, message):
    assert main(argv + ["--out", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("argv, message", [
    (["reproduce", "multitask", "--opt", "reading=paper"],
     "unknown value of multitask's option reading 'paper'; valid choices: supplement, script"),
    (["reproduce", "multitask", "--opt", "rank=3"], "unknown option(s) rank for reproduction 'multitask'"),
    (["reproduce", "hopf", "--opt", "reading=script"], "reproduction 'hopf' has no options"),
    (["reproduce", "mwg", "--opt", "restarts=sometimes"],
     "unknown value of mwg's option restarts 'sometimes'; valid choices: off, on"),
    (["reproduce", "multitask", "--opt", "reading"], "expected KEY=VALUE"),
])
def test_reproduce_refuses_a_bad_option_in_one_line(tmp_path, capsys, argv, message):
    assert main(argv + ["--out", str(tmp_path / "r")]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and len(captured.err.strip().splitlines()) == 1 and not captured.out
    assert not (tmp_path / "r").exists()


def test_reproduce_passes_its_options_and_names_the_default_folder_after_them(tmp_path, monkeypatch, capsys):
    import nmrnn.experiments.registry as registry

    calls = []

    def fake(name, out, **kwargs):
        calls.append((out, kwargs["options"]))
        return {"reproduced": True, "verdict": "reproduced"}

    monkeypatch.setattr(registry, "run_reproduction", fake)
    monkeypatch.chdir(tmp_path)
    for opts in ([], ["--opt", "reading=supplement"], ["--opt", "reading=script"]):
        assert main(["reproduce", "multitask", "--profile", "smoke", *opts]) == 0
    assert calls == [(Path("results/reproduce-multitask"), {}),
                     (Path("results/reproduce-multitask"), {"reading": "supplement"}),
                     (Path("results/reproduce-multitask-reading-script"), {"reading": "script"})]
    main(["reproduce", "--list"])
    assert "--opt reading=supplement|script (default supplement)" in capsys.readouterr().out


def test_reproduce_search_runs_the_registered_search(tmp_path, monkeypatch, capsys):
    import nmrnn.experiments.registry as registry

    calls = []

    def fake(name, out, **kwargs):
        calls.append((name, out, kwargs))
        return {"best": {"GRU": {"lr": 1e-3}}, "trials": {"GRU": []}}

    monkeypatch.setattr(registry, "run_search", fake)
    assert main(["reproduce", "composition", "--search", "--profile", "smoke", "--trials", "2",
                 "--out", str(tmp_path / "s")]) == 0
    (name, out, kwargs), = calls
    assert name == "composition" and out == tmp_path / "s"
    assert kwargs["profile"] == "smoke" and kwargs["trials"] == 2 and kwargs["seed"] == 0
    assert "stored the smoke profile's search of composition" in capsys.readouterr().out


def test_compare_reference_protocol_is_refused_for_a_task_without_one(tmp_path, capsys):
    assert main(["compare", "--task", "eft", "--protocol", "reference", "--profile", "smoke", "--out", str(tmp_path / "c")]) == 2
    assert "protocol 'reference'" in capsys.readouterr().err
    assert not (tmp_path / "c").exists()


def test_a_signal_after_the_command_is_done_leaves_with_its_exit_code():
    """SIGTERM during the interpreter's teardown (here an exit handler that takes its time) after
    the command finished: the process ends with the command's code, not killed by the signal."""
    import signal
    import subprocess
    import sys

    code = (
        "import atexit, time, nmrnn.cli as cli\n"
        "def teardown():\n"
        "    print('in teardown', flush=True)\n"
        "    time.sleep(30)\n"
        "def main(**kwargs):\n"
        "    atexit.register(teardown)\n"
        "    return 0\n"
        "cli.main = main\n"
        "cli.entry()\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline() == "in teardown\n"  # main returned, the exit handler runs
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_second_signal_during_the_clean_up_after_a_stop_is_ignored():
    """The first SIGTERM stops the command; one more while it cleans up (here a slow ``finally``)
    neither cuts the clean-up short nor kills the process: it finishes, prints its one line and
    leaves with 143."""
    import signal
    import subprocess
    import sys

    code = (
        "import sys, time, nmrnn.cli as cli\n"
        "def slow(args):\n"
        "    try:\n"
        "        print('running', flush=True)\n"
        "        time.sleep(60)\n"
        "    finally:\n"
        "        print('cleaning up', flush=True)\n"
        "        time.sleep(1.5)\n"
        "        print('cleaned up', flush=True)\n"
        "cli.cmd_list = slow\n"
        "sys.argv = ['nmrnn', 'list']\n"
        "cli.entry()\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert proc.stdout.readline() == "running\n"
        proc.send_signal(signal.SIGTERM)
        assert proc.stdout.readline() == "cleaning up\n"
        proc.send_signal(signal.SIGTERM)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        assert out == "cleaned up\n"
        assert proc.returncode == 143
        assert err.strip().splitlines() == [
            "nmrnn list: stopped by SIGTERM; run again with the same arguments (--resume for train) to continue"]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_the_console_script_writes_each_line_as_it_is_printed(tmp_path):
    """``nmrnn`` into a file or pipe (a log of a long run, the output of its worker processes) is
    line-buffered: a line is there once printed, before the command ends."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    env["PYTHONPATH"] = src + os.pathsep + os.environ.get("PYTHONPATH", "")

    code = (
        "import sys, time, nmrnn.cli as cli\n"
        "def main(**kwargs):\n"
        "    print('started', sys.stdout.line_buffering)\n"
        "    time.sleep(20)\n"
        "    return 0\n"
        "cli.main = main\n"
        "cli.entry()\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout.readline() == "started True\n"  # blocks until the line arrives
        assert proc.poll() is None  # the command is still running
    finally:
        proc.kill()
        proc.wait()


def test_the_console_script_runs_the_exit_handlers_and_leaves_with_the_commands_code(tmp_path):
    """After the command the exit handlers still run (here one that writes a file, as temporary
    folders are removed by theirs) and the process ends with the command's code."""
    import subprocess
    import sys

    marker = tmp_path / "handler-ran"
    code = (
        "import atexit, pathlib, nmrnn.cli as cli\n"
        "def main(**kwargs):\n"
        f"    atexit.register(lambda: pathlib.Path({str(marker)!r}).write_text('yes'))\n"
        "    print('done')\n"
        "    return 3\n"
        "cli.main = main\n"
        "cli.entry()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 3
    assert done.stdout == "done\n"
    assert marker.read_text() == "yes"
