"""Hostile and careless input at the command line: every case gets one line naming the bad value
or file, exit 2 for bad input (1 for a failure at run time), no traceback, and nothing written or
corrupted. Plus: a chunk-end NaN leaves a finite checkpoint, folder locks, signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import jax.random as jr
import numpy as np
import pytest

from nmrnn.cli import main
from nmrnn.models import make_model
from nmrnn.tasks import make_task
from nmrnn.train import NonFiniteLossError, TrainConfig, fit
from nmrnn.train.checkpoint import read_arrays
from nmrnn.train.guard import LOCK, FolderLock, FolderLockedError
from nmrnn.train.objectives import Penalty, Supervised
from nmrnn.train.run import RunSpec

TINY = ["--model", "vanilla", "--task", "mwg", "--hidden", "6", "--steps", "20", "--steps-per-call", "10",
        "--checkpoint-every", "10", "--fixed-batch", "--no-progress"]


def run_cli(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def refused(capsys, *argv, code=2, match=None):
    got, out, err = run_cli(capsys, *argv)
    assert got == code, (got, out, err)
    assert "Traceback" not in err and "Traceback" not in out
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert lines and lines[-1].startswith("nmrnn "), err
    if match is not None:
        assert match in lines[-1], lines[-1]
    return lines[-1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A finished tiny run directory to corrupt (copied per test)."""
    out = tmp_path_factory.mktemp("base") / "run"
    assert main(["train", *TINY, "--out", str(out)]) == 0
    return out


@pytest.fixture()
def run_copy(trained, tmp_path):
    import shutil

    dst = tmp_path / "run"
    shutil.copytree(trained, dst)
    return dst


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(Path(folder).iterdir()) if p.is_file()}


# ------------------------------------------------------------------------------------------------
# options: typed from the signatures, never misread
# ------------------------------------------------------------------------------------------------


def test_boolean_options_are_read_as_booleans(tmp_path, capsys):
    out = tmp_path / "r"
    assert run_cli(capsys, "train", *TINY, "--out", str(out), "--model-opt", "dale=False")[0] == 0
    assert json.loads((out / "config.json").read_text())["model_options"] == {"dale": False}
    refused(capsys, "train", *TINY, "--out", str(tmp_path / "b"), "--model-opt", "dale=yes", match="dale='yes'")
    assert not (tmp_path / "b").exists()


@pytest.mark.parametrize(
    "args,match",
    [
        (["--model-opt", "tau=true"], "tau=True"),
        (["--model-opt", "tau=fast"], "tau='fast'"),
        (["--model-opt", "activation=3"], "activation=3"),
        (["--model-opt", "nope=1"], "unknown option(s) nope"),
        (["--task-opt", "intervals=12"], "intervals=12"),
        (["--task-opt", "intervals=[12,true]"], "intervals"),
        (["--stages", ""], "--stages is empty"),
        (["--stages", "all:0"], "stage steps must be a positive integer"),
        (["--clip", "-1"], "clip must be a positive number, got -1.0"),
        (["--lr", "0"], "lr must be a positive number"),
        (["--lr", "abc"], "--lr takes a number, got 'abc'"),
        (["--steps", "2.5"], "--steps takes an integer"),
        (["--batch-size", "0"], "batch_size must be a positive integer"),
        (["--seed", "-1"], "seed must be an integer in [0, 2**64 - 1], got -1"),
        (["--seed", str(2**64)], "seed must be an integer in [0, 2**64 - 1]"),
        (["--optimizer", "sgd"], "invalid choice: 'sgd'"),
    ],
)
def test_bad_options_are_refused_before_anything_is_written(tmp_path, capsys, args, match):
    out = tmp_path / "r"
    refused(capsys, "train", *TINY, "--out", str(out), *args, match=match)
    assert not out.exists()


def test_empty_out_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    refused(capsys, "train", *TINY, "--out", "", match="expected a path, got an empty string")
    assert list(tmp_path.iterdir()) == []


def test_file_based_config_uses_the_same_typed_parser():
    good = RunSpec("vanilla", 6, "mwg", TrainConfig(), 0, {"dale": "False"}, {}).to_dict()
    assert good["model_options"] == {"dale": False}
    for bad, match in [
        ([], "must be an object"),
        (None, "must be an object"),
        ({"model": "vanilla"}, "missing field(s) n_hidden, task, train"),
        ({**good, "n_hidden": "6"}, "n_hidden must be a positive integer"),
        ({**good, "train": {"lr": "0.1"}}, "lr takes a number"),
        ({**good, "train": {"fixed_batch": "maybe"}}, "fixed_batch takes true/false/1/0"),
        ({**good, "extra": 1}, "unknown field(s) extra"),
        ({**good, "model": 3}, "field model must be a name"),
    ]:
        with pytest.raises(ValueError, match=None) as err:
            RunSpec.from_dict(bad)
        assert match in str(err.value), (bad, str(err.value))


# ------------------------------------------------------------------------------------------------
# seeds
# ------------------------------------------------------------------------------------------------


def test_seeds_cover_the_64_bit_range_without_aliasing():
    keys = {s: tuple(np.asarray(RunSpec("vanilla", 6, "mwg", TrainConfig(), s).train_key()).tolist())
            for s in (0, 1, 2**32, 2**32 + 1, 2**63, 2**64 - 1)}
    assert len(set(keys.values())) == len(keys)
    # below 2**32 the key is the one PRNGKey(seed) always gave
    np.testing.assert_array_equal(
        RunSpec("vanilla", 6, "mwg", TrainConfig(), 7).model_key(), jr.fold_in(jr.PRNGKey(7), 0)
    )


def test_a_high_seed_trains(tmp_path, capsys):
    code, _, err = run_cli(capsys, "train", *TINY, "--out", str(tmp_path / "r"), "--seed", str(2**63 + 5))
    assert code == 0, err


# ------------------------------------------------------------------------------------------------
# corrupted files
# ------------------------------------------------------------------------------------------------


def _corrupt_npz(path: Path, change):
    arrays = read_arrays(path)
    change(arrays)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


CHECKPOINT_CASES = {
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]),
    "empty": lambda p: p.write_bytes(b""),
    "garbage": lambda p: p.write_bytes(os.urandom(300)),
    "missing key": lambda p: _corrupt_npz(p, lambda a: a.pop("model/0")),
    "scalar as vector": lambda p: _corrupt_npz(p, lambda a: a.__setitem__("array/step", np.asarray([10]))),
    "nan weights": lambda p: _corrupt_npz(p, lambda a: a.__setitem__("model/0", np.full_like(a["model/0"], np.nan))),
    "bool weights": lambda p: _corrupt_npz(p, lambda a: a.__setitem__("model/0", a["model/0"] > 0)),
    "complex weights": lambda p: _corrupt_npz(p, lambda a: a.__setitem__("model/0", a["model/0"] + 1j)),
    "wrong shape": lambda p: _corrupt_npz(p, lambda a: a.__setitem__("model/0", a["model/0"][:1])),
    "object array": lambda p: p.write_bytes(_pickled_npz()),
}


def _pickled_npz() -> bytes:
    import io

    buf = io.BytesIO()
    np.savez(buf, **{"model/0": np.asarray([{"a": 1}], dtype=object)})
    return buf.getvalue()


@pytest.mark.parametrize("case", sorted(CHECKPOINT_CASES))
def test_corrupted_checkpoints_are_named_not_tracebacks(run_copy, capsys, case):
    ckpt = run_copy / "checkpoint.npz"
    CHECKPOINT_CASES[case](ckpt)
    before = snapshot(run_copy)
    line = refused(capsys, "evaluate", str(run_copy), match="checkpoint")
    assert str(ckpt) in line or "checkpoint.npz" in line
    assert "allow_pickle" not in line
    line = refused(capsys, "train", *TINY, "--out", str(run_copy), "--resume")
    assert "checkpoint" in line
    assert snapshot(run_copy) == before  # nothing rewritten


def test_checkpoint_that_is_a_folder(run_copy, capsys):
    (run_copy / "checkpoint.npz").unlink()
    (run_copy / "checkpoint.npz").mkdir()
    refused(capsys, "evaluate", str(run_copy), match="is a folder")


@pytest.mark.parametrize(
    "content,match",
    [
        ("[1, 2]", "must be an object"),
        ("null", "must be an object"),
        ("{}", "missing field(s)"),
        ('{"model": "vanilla", "n_hidden": "x", "task": "mwg", "train": {}}', "n_hidden must be a positive integer"),
        ('{"model": "vanilla", "n_hidden": 6, "task": "mwg", "train": []}', "field train must be an object"),
        ("{not json", "not valid JSON"),
    ],
)
def test_broken_config_json_is_named(run_copy, capsys, content, match):
    (run_copy / "config.json").write_text(content)
    line = refused(capsys, "evaluate", str(run_copy), match=match)
    assert "config.json" in line


def test_not_a_run_directory(tmp_path, capsys):
    refused(capsys, "evaluate", str(tmp_path / "nothing"), match="is not a run directory")
    (tmp_path / "f").write_text("x")
    refused(capsys, "evaluate", str(tmp_path / "f"), match="is not a run directory")


# ------------------------------------------------------------------------------------------------
# refused runs leave nothing; resource guard; filesystem errors
# ------------------------------------------------------------------------------------------------


def test_refused_run_leaves_no_folder_and_the_corrected_command_runs(tmp_path, capsys):
    out = tmp_path / "r"
    refused(capsys, "train", *TINY, "--out", str(out), "--stages", "nope:10", match="unknown parameter group 'nope'")
    assert not out.exists()
    assert run_cli(capsys, "train", *TINY, "--out", str(out), "--stages", "all:20")[0] == 0


@pytest.mark.parametrize(
    "args,part",
    [
        (["--hidden", "100000"], "optimiser"),
        (["--steps", "1e12"], "curve"),
        (["--batch-size", "1000000000"], "activations"),
        (["--task-opt", "n_steps=1000000000", "--task-opt", "test_measure=20"], "activations"),
    ],
)
def test_resource_guard_refuses_runs_that_do_not_fit(tmp_path, capsys, args, part):
    out = tmp_path / "r"
    argv = [a for a in TINY if a not in ("--hidden", "6")]
    argv = ["train", *argv, "--hidden", "6", "--out", str(out), *args] if "--hidden" not in args else ["train", *argv, "--out", str(out), *args]
    line = refused(capsys, *argv, match="needs about")
    assert part in line and "--ignore-memory-limit" in line
    assert not out.exists()


def test_filesystem_errors_are_one_line(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    refused(capsys, "train", *TINY, "--out", str(f), match="exists and is not a folder")
    refused(capsys, "train", *TINY, "--out", str(f / "run"), match="is a file, not a folder")
    refused(capsys, "compare", "--models", "vanilla:4", "--steps", "2", "--seeds", "1", "--out", str(f), "--no-progress",
            match="exists and is not a folder")


def test_existing_run_without_resume(trained, capsys):
    refused(capsys, "train", *TINY, "--out", str(trained), match="already holds a run")


# ------------------------------------------------------------------------------------------------
# non-finite values never reach a checkpoint
# ------------------------------------------------------------------------------------------------


def test_chunk_end_nan_leaves_a_finite_checkpoint(tmp_path):
    """A term whose value is exactly 0 but whose gradient is infinite once the readout bias has
    moved (after the first step): the loss at step 1 is finite, the update at the end of the
    second chunk makes the weights non-finite. That state must never be saved."""
    task = make_task("mwg")
    model = make_model("vanilla", n_in=3, n_out=1, n_hidden=5, key=jr.PRNGKey(0))

    def singular(m, traj, data):
        d = m.d[0]
        on = jnp.abs(d) > 0.25
        inner = jnp.where(on, d - jax.lax.stop_gradient(d), 1.0)  # value 0, derivative 1
        return jnp.where(on, jnp.sqrt(inner), 0.0)  # value 0, derivative infinite

    cfg = TrainConfig(steps=6, steps_per_call=1, checkpoint_every=1, fixed_batch=True, lr=0.5,
                      optimizer="adam", clip=None)
    objective = Supervised("mse", [Penalty(singular, name="singular")], [1.0])
    with pytest.raises(NonFiniteLossError, match=r"parameters became non-finite at step 1") as err:
        fit(model, task, cfg, key=jr.PRNGKey(1), run_dir=tmp_path, objective=objective)
    assert "last good checkpoint (step 1)" in str(err.value)
    arrays = read_arrays(tmp_path / "checkpoint.npz")
    assert int(arrays["array/step"]) == 1
    assert all(np.all(np.isfinite(v)) for k, v in arrays.items() if v.dtype.kind == "f")


# ------------------------------------------------------------------------------------------------
# locks
# ------------------------------------------------------------------------------------------------


def test_second_writer_is_refused_naming_the_holder(tmp_path, capsys):
    out = tmp_path / "r"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / LOCK).write_text(f"{holder.pid} {os.uname().nodename}\n")
        line = refused(capsys, "train", *TINY, "--out", str(out), match=f"in use by process {holder.pid}")
        assert "lock" in line
        with pytest.raises(FolderLockedError):
            FolderLock(out).acquire()
    finally:
        holder.kill()
        holder.wait()
    # the holder is gone: its lock is stale and taken over; leftover temp files are cleaned up
    (out / ".checkpoint.npz.abc.tmp").write_bytes(b"half")
    assert run_cli(capsys, "train", *TINY, "--out", str(out), "--resume")[0] == 0
    assert not (out / ".checkpoint.npz.abc.tmp").exists()
    assert not (out / LOCK).exists()


def test_two_concurrent_writers_one_refused(tmp_path):
    """The first writer trains far longer than the second needs to start (however fast the
    machine), is still running when the second is refused, and then stops cleanly on SIGTERM."""
    out = tmp_path / "r"
    cmd = [sys.executable, "-m", "nmrnn.cli", "train", *[a if a != "20" else "1000000" for a in TINY], "--out", str(out)]
    first = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(600):
            if (out / LOCK).exists():
                break
            time.sleep(0.05)
        second = subprocess.run([*cmd, "--resume"], capture_output=True, text=True, timeout=120)
        assert second.returncode == 2, second.stderr
        assert f"in use by process {first.pid}" in second.stderr
        assert "Traceback" not in second.stderr
        assert first.poll() is None  # undisturbed
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=300)
    assert first.returncode == 143, first.stderr.read()


# ------------------------------------------------------------------------------------------------
# signals
# ------------------------------------------------------------------------------------------------


def _final_arrays(folder: Path) -> dict[str, np.ndarray]:
    return {k: v for k, v in read_arrays(folder / "checkpoint.npz").items()}


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signals_stop_cleanly_and_resume_bit_identically(tmp_path, sig, code):
    args = [a if a != "20" else "3000" for a in TINY]
    ref = tmp_path / "ref"
    assert main(["train", *args, "--out", str(ref)]) == 0
    rng = np.random.default_rng(int(sig))
    out = tmp_path / "r"
    cmd = [sys.executable, "-m", "nmrnn.cli", "train", *args, "--out", str(out)]
    codes = []
    for attempt in range(3):
        proc = subprocess.Popen(cmd + (["--resume"] if out.exists() else []), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        time.sleep(float(rng.uniform(2.5, 7.0)))
        for _ in range(1 + attempt):  # repeated signals at random moments
            if proc.poll() is None:
                proc.send_signal(sig)
                time.sleep(float(rng.uniform(0.0, 0.3)))
        _, err = proc.communicate(timeout=300)
        codes.append(proc.returncode)
        assert proc.returncode in (0, code, 2), (proc.returncode, err)
        assert "Traceback" not in err and "Segmentation" not in err
        if proc.returncode == 0:
            break
    assert all(c >= 0 for c in codes), codes  # never killed by a signal (a crash)
    if codes[-1] != 0:
        done = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
    a, b = _final_arrays(ref), _final_arrays(out)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)


def test_progress_lines_in_logs_not_carriage_returns(tmp_path):
    out = tmp_path / "r"
    cmd = [sys.executable, "-m", "nmrnn.cli", "train", *[a for a in TINY if a != "--no-progress"], "--out", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "\r" not in done.stderr
    assert "step 10/20" in done.stderr and "step 20/20" in done.stderr


def test_after_the_first_stop_signal_later_ones_are_ignored():
    """``stop_on_signals``: the first signal raises Interrupted; once a stop is under way, raised
    there or recorded by ``deferred_signals`` (training), later ones are ignored; the handlers
    before it are back afterwards."""
    from nmrnn.train.guard import Interrupted, deferred_signals, stop_on_signals

    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    with pytest.raises(Interrupted) as info, stop_on_signals():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(1)  # the handler runs here
    assert info.value.exit_code == 143
    with stop_on_signals():  # a new command: stops again
        with pytest.raises(Interrupted):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)
        os.kill(os.getpid(), signal.SIGTERM)  # while cleaning up after the stop: ignored
        time.sleep(0.2)
    with stop_on_signals():
        with deferred_signals() as flag:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.2)
        assert flag.signum == signal.SIGINT
        os.kill(os.getpid(), signal.SIGTERM)  # the training loop now stops: ignored
        time.sleep(0.2)
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
