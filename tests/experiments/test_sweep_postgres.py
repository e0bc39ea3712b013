"""Sweeps on a real PostgreSQL server: two worker processes share one study, one is killed while
it trains, and the study still ends with exactly its trial count, no origin lost or completed
twice; a database that cannot be reached is refused in one line before anything trains; a
comparison's grid of runs shared through the database equals the serial result.

The server is a throwaway one (``initdb`` into a temporary folder, stopped and deleted after the
module). Without the PostgreSQL server binaries or psycopg2 these tests fail, naming what is
missing, unless ``NMRNN_SKIP_POSTGRES=1`` is set (then they are skipped)."""

from __future__ import annotations

import csv
import glob
import json
import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import sqlalchemy
from experiment_helpers import subprocess_env

from nmrnn.experiments.sweep import (
    claimed,
    load_spec,
    open_storage,
    open_study,
    summarize,
    write_results,
)

optuna = pytest.importorskip("optuna")

SKIP_ENV = "NMRNN_SKIP_POSTGRES"
ROLE = "nmrnn"
DATABASE = "sweeps"
N_TRIALS = 4

TOML = """
model = "vanilla"
task = "mwg"
n_hidden = 6
metric = "extrapolated/loss"
n_trials = {n_trials}
study_seed = 7

[train]
steps = {steps}
fixed_batch = true
steps_per_call = 10
checkpoint_every = 10

[params."train.lr"]
kind = "float"
low = 1e-3
high = 1e-1
log = true
"""


def _unavailable(what: str):
    if os.environ.get(SKIP_ENV) == "1":
        pytest.skip(f"{what} ({SKIP_ENV}=1)")
    pytest.fail(f"{what}: install the server (Debian: apt-get install postgresql) and the driver "
                f"(pip install -e '.[postgres]'), or set {SKIP_ENV}=1 to skip these tests", pytrace=False)


def _server_binaries() -> dict[str, str] | None:
    """``initdb``, ``pg_ctl`` and ``postgres``: on PATH, else the newest /usr/lib/postgresql/*/bin."""
    names = ("initdb", "pg_ctl", "postgres")
    found = {n: shutil.which(n) for n in names}
    if all(found.values()):
        return {n: str(Path(p).resolve()) for n, p in found.items()}

    def version(d: str) -> int:
        v = Path(d).parent.name
        return int(v) if v.isdigit() else 0

    for bindir in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True):
        if all((Path(bindir) / n).is_file() for n in names):
            return {n: str(Path(bindir) / n) for n in names}
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _temp_root(as_root: bool) -> str | None:
    """Where the server's folder goes: the usual temporary folder, unless the ``postgres`` user
    could not reach it (root's own folders), then /tmp."""
    if not as_root:
        return None
    base = Path(tempfile.gettempdir()).resolve()
    reachable = all(p.stat().st_mode & 0o001 for p in (base, *base.parents))
    return None if reachable else "/tmp"


@pytest.fixture(scope="module")
def postgres_url():
    """The URL of a database on a throwaway PostgreSQL server listening on 127.0.0.1."""
    bins = _server_binaries()
    if bins is None:
        _unavailable("no PostgreSQL server binaries (initdb, pg_ctl, postgres) on PATH or under "
                     "/usr/lib/postgresql/*/bin")
    try:
        import psycopg2
    except ImportError:
        _unavailable("psycopg2 is not installed")
    as_root = os.geteuid() == 0
    owner = None
    if as_root:  # PostgreSQL refuses to run as root: run it as the postgres system user
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            _unavailable("running as root, the PostgreSQL server needs the 'postgres' system user")

    def as_owner(cmd: list[str]) -> list[str]:
        if owner is None:
            return cmd
        if shutil.which("runuser"):
            return ["runuser", "-u", "postgres", "--", *cmd]
        return ["su", "postgres", "-s", "/bin/sh", "-c", shlex.join(cmd)]

    def run(cmd: list[str], what: str) -> None:
        done = subprocess.run(as_owner(cmd), capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            log = folder / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            pytest.fail(f"{what} failed (exit {done.returncode}): {done.stderr[-2000:]}{tail}", pytrace=False)

    folder = Path(tempfile.mkdtemp(prefix="nmrnn-pg-", dir=_temp_root(as_root)))
    started = False
    try:
        if owner is not None:
            os.chown(folder, owner.pw_uid, owner.pw_gid)
        data = folder / "data"
        run([bins["initdb"], "-D", str(data), "-A", "trust", "-U", ROLE, "-E", "UTF8", "--locale=C",
             "--no-sync"], "initdb")
        for _attempt in range(3):  # the free port may be taken before the server binds it
            port = _free_port()
            options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
            done = subprocess.run(as_owner([bins["pg_ctl"], "-D", str(data), "-l", str(folder / "server.log"),
                                            "-w", "-t", "60", "-o", options, "start"]),
                                  capture_output=True, text=True, timeout=120)
            if done.returncode == 0:
                started = True
                break
        if not started:
            log = folder / "server.log"
            pytest.fail(f"pg_ctl start failed: {done.stderr[-2000:]}"
                        f"{log.read_text()[-2000:] if log.exists() else ''}", pytrace=False)
        conn = psycopg2.connect(host="127.0.0.1", port=port, user=ROLE, dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE {DATABASE}")
        conn.close()
        yield f"postgresql+psycopg2://{ROLE}@127.0.0.1:{port}/{DATABASE}"
    finally:
        if started:
            subprocess.run(as_owner([bins["pg_ctl"], "-D", str(folder / "data"), "-m", "immediate", "stop"]),
                           capture_output=True, timeout=60)
        shutil.rmtree(folder, ignore_errors=True)


def _tail(path: Path) -> str:
    return path.read_text()[-1500:] if path.exists() else ""


def _kill_one_mid_trial(study, workers: dict[int, subprocess.Popen]):
    """Once a trial has finished, SIGKILL the first worker seen beginning another (its runs
    checkpointed but not done); returns that worker, the killed trial's number and the values of
    the trials complete by then (``None, None, None`` when no worker began one in time)."""
    seen: set[int] = set()  # trials seen training
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and all(p.poll() is None for p in workers.values()):
        trials = study.get_trials(deepcopy=False)
        done = any(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
        training = [t for t in trials if t.state == optuna.trial.TrialState.RUNNING and "seeds" in t.user_attrs]
        fresh = [t for t in training if t.number not in seen]
        seen.update(t.number for t in training)
        if done and fresh:
            victim = workers[fresh[0].user_attrs["pid"]]
            time.sleep(0.3)
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            first = {t.number: t.value for t in study.get_trials(deepcopy=False)
                     if t.state == optuna.trial.TrialState.COMPLETE}
            return victim, fresh[0].number, first
        time.sleep(0.05)
    return None, None, None


def test_two_workers_share_a_postgres_study_and_survive_a_killed_worker(postgres_url, tmp_path):
    spec_file = tmp_path / "spec.toml"
    spec_file.write_text(TOML.format(n_trials=N_TRIALS, steps=1000))
    spec = load_spec(spec_file)
    out = tmp_path / "pg"
    name = "pg-kill"
    study = open_study(spec, postgres_url, name)  # made once, as nmrnn sweep does
    worker = [sys.executable, "-m", "nmrnn.cli", "worker", "--storage", postgres_url, "--study", name,
              "--spec", str(spec_file), "--out", str(out), "--no-progress"]
    logs = [tmp_path / f"worker{i}.log" for i in range(2)]

    def start(i: int) -> subprocess.Popen:
        with logs[i].open("w") as f:
            return subprocess.Popen([*worker, "--worker-index", str(i)], env=subprocess_env(), stdout=f,
                                    stderr=subprocess.STDOUT)

    workers = {p.pid: p for p in (start(0), start(1))}
    try:
        victim, killed, first = _kill_one_mid_trial(study, workers)
        assert victim is not None, _tail(logs[0]) + _tail(logs[1])
        assert study.get_trials(deepcopy=False)[killed].state == optuna.trial.TrialState.RUNNING  # mid-trial
        (survivor,) = [p for p in workers.values() if p is not victim]
        assert survivor.wait(timeout=150) == 0, _tail(logs[int(survivor.args[-1])])
    finally:
        for p in workers.values():
            if p.poll() is None:
                p.kill()
                p.wait()
    complete = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    if len(complete) < N_TRIALS:  # the survivor left before it reaped the killed trial: restart one
        restarted = subprocess.run([*worker, "--worker-index", "2"], env=subprocess_env(), capture_output=True,
                                   text=True, timeout=150)
        assert restarted.returncode == 0, restarted.stdout[-1500:] + restarted.stderr[-1500:]

    trials = optuna.load_study(study_name=name, storage=open_storage(postgres_url)).trials
    kept = [t for t in trials if not t.user_attrs.get("surplus")]
    complete = [t for t in kept if t.state == optuna.trial.TrialState.COMPLETE]
    origins = [t.user_attrs["origin"] for t in complete]
    # exactly the count, every origin (the number of the trial that began it) completed once,
    # none lost
    assert len(complete) == len(set(origins)) == N_TRIALS
    assert set(origins) == {t.number for t in kept if t.user_attrs["origin"] == t.number}
    assert {t.user_attrs["origin"] for t in kept} == set(origins)
    assert len(claimed(trials)) == N_TRIALS
    assert all(t.state == optuna.trial.TrialState.FAIL for t in trials if t.user_attrs.get("surplus"))
    # the killed trial is failed as lost and run again under its own number, with its parameters
    lost = trials[killed]
    assert lost.state == optuna.trial.TrialState.FAIL and lost.user_attrs["lost"] is True
    retry = [t for t in complete if t.user_attrs["origin"] == killed]
    assert len(retry) == 1 and retry[0].number > killed and retry[0].params == lost.params
    assert {t.number: t.value for t in trials if t.number in first} == first  # finished trials kept
    assert all(t.user_attrs["pid"] != os.getpid() for t in complete)  # trained by the workers
    with open_storage(postgres_url).engine.connect() as conn:  # every trained trial had a heartbeat
        beating = set(conn.execute(sqlalchemy.text(
            "SELECT trials.number FROM trial_heartbeats JOIN trials USING (trial_id)")).scalars())
    assert {t.number for t in complete} | {killed} <= beating
    for t in complete:  # every finished trial's runs exist, its value their metric
        dirs = [out / d for d in t.user_attrs["run_dirs"]]
        assert dirs and all((d / "checkpoint.npz").is_file() for d in dirs)
        assert dirs[0].name == f"{t.user_attrs['origin']}_seed0"
        losses = [json.loads((d / "metrics.json").read_text())["extrapolated"]["loss"] for d in dirs]
        assert t.value == pytest.approx(sum(losses) / len(losses))

    # the study's best is the best stored trial, and the results agree
    best = min(complete, key=lambda t: t.value)
    study = optuna.load_study(study_name=name, storage=open_storage(postgres_url))
    assert study.best_trial.number == best.number and study.best_value == best.value
    summary = summarize(study, spec, out, storage=postgres_url)
    assert summary["counts"]["COMPLETE"] == N_TRIALS and summary["best"][0]["number"] == best.number
    assert summary["surplus"] == len(trials) - len(kept)
    write_results(out, summary)
    rows = list(csv.DictReader((out / "trials.csv").open()))
    assert sorted(int(r["number"]) for r in rows) == sorted(t.number for t in kept)
    assert sum(r["state"] == "COMPLETE" for r in rows) == N_TRIALS
    assert min(float(r["value"]) for r in rows if r["state"] == "COMPLETE") == best.value
    assert f"| 1 | {best.number} |" in (out / "best.md").read_text()


def test_an_unreachable_database_is_refused_in_one_line(tmp_path):
    url = f"postgresql+psycopg2://x@127.0.0.1:{_free_port()}/db"  # a closed port
    with pytest.raises(ValueError, match=r"^cannot open the storage postgresql\+psycopg2://x@127\.0\.0\.1:\d+/db: "):
        open_storage(url)
    spec_file = tmp_path / "spec.toml"
    spec_file.write_text(TOML.format(n_trials=2, steps=20))
    out = tmp_path / "X"
    done = subprocess.run([sys.executable, "-m", "nmrnn.cli", "sweep", str(spec_file), "--out", str(out),
                           "--storage", url, "--no-progress", "--no-figures"],
                          env=subprocess_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith(f"nmrnn sweep: error: cannot open the storage {url}: ")
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        assert "pip install" in done.stderr  # the driver is named instead
    else:
        assert "Connection refused" in done.stderr
    assert not (out / "trials").exists()  # nothing trained


def test_a_comparison_grid_shared_through_postgres(postgres_url, tmp_path):
    """The grid of a comparison on the database: 2 workers train it, the result equals the
    serial one, every run is trained once (a run directory per trial, none repeated)."""
    from nmrnn.experiments.compare import parse_model_entry, run_compare

    kw = dict(models=[parse_model_entry("vanilla:6"), parse_model_entry("lowrank:6:rank=2")], seeds=2,
              steps=20, profile="smoke", figures=False, log=None)
    shared = run_compare("mwg", out_dir=tmp_path / "shared", workers=2, force=True,
                         storage=postgres_url, study_name="grid-pg", **kw)
    serial = run_compare("mwg", out_dir=tmp_path / "serial", **kw)

    def per_seed(summary):
        return {k: [{m: v for m, v in s.items() if m != "train_seconds"} for s in info["per_seed"]]
                for k, info in summary["models"].items()}

    assert per_seed(shared) == per_seed(serial)
    study = optuna.load_study(study_name="grid-pg", storage=postgres_url)
    done = [t.user_attrs["run_dir"] for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert sorted(done) == sorted(f"runs/{m}_seed{s}" for m in ("vanilla-6", "lowrank-6-rank-2") for s in range(2))
    assert not (tmp_path / "shared" / "grid.journal").exists()  # the database holds the grid
