"""Grids of fixed runs (models x seeds x settings) as Optuna studies of fixed trials.

A comparison or a reproduction trains a fixed list of runs. :func:`run_grid` stores that list in
an Optuna study (a journal file inside the grid's folder by default, or any storage URL) and
enqueues one trial per unfinished run; workers take trials and train their run directories. The
same mechanism as the sweeps (:mod:`nmrnn.experiments.sweep`), so:

* ``workers=N`` trains N runs at a time on this machine, each in a worker process of its own whose
  JAX runtime has one CPU (:func:`nmrnn.runtime.start_one_cpu_runtime`; each local worker is kept
  on a CPU of its own): XLA's results depend in their last bits on the CPUs a runtime starts
  with, so runs trained in one-CPU runtimes are the same whichever worker trains them, and
  one-CPU workers share the cores without slowing each other. ``workers=1`` is one such worker
  process too, unless this process's runtime already has one CPU (a worker, the test session) or
  runs on an accelerator: then the runs train here;
* ``nmrnn worker --storage URL --study NAME --out DIR`` joins the grid from another machine that
  sees the same folder (a shared file system) and storage;
* every run is an ordinary run directory with a deterministic spec and seed, trained in a one-CPU
  runtime, so the result is the same whichever worker trains a run, in whichever order: identical
  to a serial run (``processes=False`` trains a one-worker grid in this process whatever its
  runtime, for callers that need the runs in-process; its numbers are then this runtime's);
* a worker killed mid-run leaves its trial to be retried (its pid is dead, or the database
  heartbeat stops); the run resumes from its last checkpoint; a finished run is never trained
  again (its run directory says so, whatever the study says);
* a run that diverges is recorded as a failed trial and the grid reports it after every other
  run is done;
* with ``ensemble=True`` (the accelerator default, :func:`nmrnn.train.default_ensemble_vmap`) a
  worker takes the waiting runs of one group (the seeds of one model) together and trains them as
  one vmapped ensemble.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .._validation import check_positive_int
from ..train.loop import NonFiniteLossError, default_ensemble_vmap
from ..train.run import RunSpec, check_run_path, ensure_run, finished_metrics, train_runs

GRID_JOURNAL = "grid.journal"
GRID_ATTR = "grid"
_NO_OWNER_GRACE = 60.0  # s: a running trial with no recorded worker is lost after this
_POLL = 1.0  # s: how often the coordinator looks at runs other machines are training


@dataclasses.dataclass(frozen=True)
class GridJob:
    """One run of a grid: its folder (relative to the grid's folder), its spec, and its group
    (runs of one group may train as one ensemble: the seeds of one model)."""

    run_dir: str
    spec: RunSpec
    group: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"run_dir": self.run_dir, "group": self.group, "spec": self.spec.to_dict()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GridJob:
        return cls(str(d["run_dir"]), RunSpec.from_dict(d["spec"]), str(d.get("group", "")))


@dataclasses.dataclass(frozen=True)
class GridOptions:
    """How a grid is run (the ``--workers``/``--storage``/``--study``/``--force`` of the command
    line): local worker processes, a shared storage and study name, ensembles of seeds, and
    ``processes`` (``None``: one-CPU worker processes unless this process's runtime is one
    already, see the module docstring; ``False``: a one-worker grid trains in this process;
    ``True``: always worker processes)."""

    workers: int = 1
    storage: str | None = None
    study_name: str | None = None
    force: bool = False
    ensemble: bool | None = None
    processes: bool | None = None

    def __post_init__(self):
        check_workers(self.workers, self.force)
        if self.processes is False and self.workers != 1:
            raise ValueError(f"training in this process (processes=False, --in-process) needs workers=1, got {self.workers}")
        for name in ("storage", "study_name"):
            v = getattr(self, name)
            if v is not None and (not isinstance(v, str) or not v.strip()):
                raise ValueError(f"{name} must be a non-empty string, got {v!r}")
        check_storage(self.storage)

    def part(self, name: str) -> GridOptions:
        """The options for one of several grids of a job (study ``<study>-<name>``)."""
        study = None if self.study_name is None else f"{self.study_name}-{name}"
        return dataclasses.replace(self, study_name=study)

    def kwargs(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def check_storage(storage: str | None) -> None:
    """Refuse an unreachable database storage (a URL) with one line, before anything is
    written; journal files are made where they are needed."""
    if storage is not None and "://" in str(storage):
        from .sweep import open_storage

        open_storage(storage)


def check_workers(workers: Any, force: bool = False) -> int:
    """``workers`` as a positive int, at most the CPUs of this machine unless ``force``."""
    workers = check_positive_int("workers", workers)
    cpus = os.cpu_count() or 1
    if workers > cpus and not force:
        raise ValueError(f"workers={workers} is more than the {cpus} CPUs of this machine; "
                         "pass force=True (--force) to start them anyway")
    return workers


def _check_jobs(jobs: Sequence[GridJob]) -> list[GridJob]:
    jobs = list(jobs)
    if not jobs:
        raise ValueError("a grid needs at least one run")
    bad = [j for j in jobs if not isinstance(j, GridJob)]
    if bad:
        raise ValueError(f"grid runs must be GridJob, got {type(bad[0]).__name__}")
    dirs = [j.run_dir for j in jobs]
    dup = sorted({d for d in dirs if dirs.count(d) > 1})
    if dup:
        raise ValueError(f"grid runs share run directories: {dup}")
    for d in dirs:
        p = Path(d)
        if p.is_absolute() or ".." in p.parts or not p.parts:
            raise ValueError(f"grid run directory {d!r} must be a relative path inside the grid folder")
    return jobs


# ----------------------------------------------------------------------------------------------
# the study
# ----------------------------------------------------------------------------------------------


def open_grid_study(jobs: Sequence[GridJob], storage: str, study_name: str):
    """Create the grid's study in ``storage``, or join it. A study holding another list of runs
    takes the new list when none of its trials is waiting or running (the run directories say
    what is finished, so runs shared with the old list are not trained again); while another
    grid is under way there, or when the study is a sweep's, it is refused."""
    import optuna
    from optuna.trial import TrialState

    from .sweep import open_storage

    st = open_storage(storage)
    study = optuna.create_study(storage=st, study_name=study_name, load_if_exists=True)
    mine = _jsonable([j.to_dict() for j in jobs])
    attrs = study.user_attrs
    if GRID_ATTR not in attrs and ("spec" in attrs or study.get_trials(deepcopy=False)):
        raise ValueError(f"study {study_name!r} in {storage} is not a grid of runs (a sweep?); choose another --study")
    if attrs.get(GRID_ATTR) != mine:
        live = study.get_trials(deepcopy=False, states=(TrialState.WAITING, TrialState.RUNNING))
        if live:
            raise ValueError(
                f"study {study_name!r} in {storage} holds another grid with {len(live)} run(s) waiting or "
                "under way; let it finish, or choose another --study or folder"
            )
        study.set_user_attr(GRID_ATTR, mine)
    return study, st


def _jsonable(obj: Any) -> Any:
    import json

    return json.loads(json.dumps(obj))


def load_grid(study) -> list[GridJob]:
    """The runs of a grid study."""
    if GRID_ATTR not in study.user_attrs:
        raise ValueError(f"study {study.study_name!r} is not a grid of runs")
    return [GridJob.from_dict(d) for d in study.user_attrs[GRID_ATTR]]


def is_grid_study(storage: str, study_name: str) -> bool:
    """Whether ``study_name`` in ``storage`` is a grid (else a sweep); refuses a missing study."""
    import optuna

    from .sweep import open_storage

    try:
        study = optuna.load_study(study_name=study_name, storage=open_storage(storage))
    except KeyError:
        raise ValueError(f"no study {study_name!r} in {storage}") from None
    return GRID_ATTR in study.user_attrs


def _job_of(trial) -> str | None:
    """The run directory (relative to the grid folder) a trial trains."""
    job = trial.user_attrs.get("run_dir")
    return job if isinstance(job, str) else None


def _latest(trials) -> dict[str, Any]:
    """``{run_dir: its latest trial}``."""
    latest: dict[str, Any] = {}
    for t in sorted(trials, key=lambda t: t.number):
        job = _job_of(t)
        if job is not None:
            latest[job] = t
    return latest


def _reap(study, storage) -> list[str]:
    """Fail the running trials whose worker is gone (its pid on this host is dead, or it never
    recorded itself) and enqueue their runs again; database storages also use their heartbeat.
    Returns the reaped jobs."""
    import datetime

    import optuna
    from optuna.trial import TrialState

    from ..train.guard import process_alive

    if getattr(storage, "get_heartbeat_interval", lambda: None)():
        with warnings.catch_warnings():  # "experimental" in Optuna
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)  # retried by sweep._retry_lost
    host, now, reaped = socket.gethostname(), datetime.datetime.now(), []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid = t.user_attrs.get("pid")
        if pid is None:
            if (now - (t.datetime_start or now)).total_seconds() < _NO_OWNER_GRACE:
                continue
        elif t.user_attrs.get("host") != host or process_alive(int(pid)):
            continue
        trial_id = _trial_id(study, storage, t)
        try:
            storage.set_trial_user_attr(trial_id, "lost", True)
        except (RuntimeError, ValueError):  # finished or reaped by another process meanwhile
            continue
        # the retry first: killed in between, this trial stays running with a dead owner and is
        # reaped again (a second retry finds the run finished and trains nothing)
        if _job_of(t) is not None:
            study.enqueue_trial({}, user_attrs={"run_dir": _job_of(t), "group": t.user_attrs.get("group", "")})
            reaped.append(_job_of(t))
        with contextlib.suppress(RuntimeError, ValueError):
            storage.set_trial_state_values(trial_id, TrialState.FAIL)
    return reaped


def _trial_id(study, storage, trial) -> int:
    return storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(study.study_name), trial.number)


def _enqueue_missing(study, jobs: Sequence[GridJob], out: Path) -> tuple[list[str], list[str]]:
    """Enqueue a trial for every unfinished run that has no waiting or running trial (its run
    directory decides what is finished, not the study; a run that failed before is tried
    again). Returns the runs enqueued and the runs already finished."""
    from optuna.trial import TrialState

    latest = _latest(study.get_trials(deepcopy=False))
    added, finished = [], []
    for job in jobs:
        t = latest.get(job.run_dir)
        if t is not None and t.state in (TrialState.WAITING, TrialState.RUNNING):
            continue
        if finished_metrics(out / job.run_dir, job.spec) is not None:
            finished.append(job.run_dir)
            continue
        study.enqueue_trial({}, user_attrs={"run_dir": job.run_dir, "group": job.group})
        added.append(job.run_dir)
    return added, finished


# ----------------------------------------------------------------------------------------------
# workers
# ----------------------------------------------------------------------------------------------


def work_grid(storage: str, study_name: str, out_dir: str | Path, *, ensemble: bool | None = None,
              max_ensemble: int = 16, progress: bool = False,
              log: Callable[[str], None] | None = print) -> int:
    """One worker of a grid: take waiting runs and train them until none is left. Returns the
    number of runs this worker finished."""
    import optuna

    from .sweep import _ask_lock, open_storage

    out = check_run_path(out_dir)
    st = open_storage(storage)
    study = optuna.load_study(study_name=study_name, storage=st)
    jobs = {j.run_dir: j for j in load_grid(study)}
    ensemble = default_ensemble_vmap() if ensemble is None else bool(ensemble)
    done, last_group = 0, None
    while True:
        with _ask_lock(storage):
            for job in _reap(study, st):
                if log:
                    log(f"run {job} was lost with its worker: enqueued again")
            trials = _claim(study, st, last_group, max_ensemble if ensemble else 1)
            if not trials:
                return done
            for trial in trials:
                trial.set_user_attr("pid", os.getpid())
                trial.set_user_attr("host", socket.gethostname())
        last_group = trials[0].user_attrs.get("group", "")
        done += _train_trials(study, st, trials, jobs, out, progress, log)


def _claim(study, storage, last_group: str | None, most: int) -> list:
    """Take up to ``most`` waiting runs of one group, chosen so that runs of a model are trained
    where that model is already compiled: the group this worker trained last, else a group no
    other worker is training, else the oldest waiting run. Returns their trials (running now)."""
    import optuna
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False, states=(TrialState.WAITING, TrialState.RUNNING))
    waiting = sorted((t for t in trials if t.state == TrialState.WAITING), key=lambda t: t.number)
    if not waiting:
        return []
    group_of = lambda t: t.user_attrs.get("group", "")  # noqa: E731
    busy = {group_of(t) for t in trials if t.state == TrialState.RUNNING}
    first = next((t for t in waiting if last_group and group_of(t) == last_group), None)
    first = first or next((t for t in waiting if group_of(t) and group_of(t) not in busy), None) or waiting[0]
    group = group_of(first)
    picks = [first] + ([t for t in waiting if t is not first and group and group_of(t) == group][: most - 1])
    claimed = []
    for t in picks:
        trial_id = _trial_id(study, storage, t)
        if storage.set_trial_state_values(trial_id, TrialState.RUNNING):  # False: taken meanwhile
            claimed.append(optuna.trial.Trial(study, trial_id))
    return claimed


def _train_trials(study, storage, trials, jobs: dict[str, GridJob], out: Path, progress: bool, log) -> int:
    from optuna.trial import TrialState

    from .sweep import _Heartbeat

    picked = [(t, _job_of(t)) for t in trials]
    unknown = [t for t, j in picked if j not in jobs]
    for t in unknown:  # not a run of this grid (e.g. enqueued by hand): never trained
        t.set_user_attr("error", "trial names no run of this grid")
        study.tell(t, state=TrialState.FAIL)
    picked = [(t, j) for t, j in picked if t not in unknown]
    if not picked:
        return 0
    beats = [_Heartbeat(storage, _trial_id(study, storage, t)) for t, _ in picked]
    finished = 0
    try:
        dirs = [out / jobs[j].run_dir for _, j in picked]
        specs = [jobs[j].spec for _, j in picked]
        if len(picked) > 1:
            todo = [i for i, (d, s) in enumerate(zip(dirs, specs, strict=True)) if finished_metrics(d, s) is None]
            if len(todo) > 1:
                if log:
                    log(f"  training {len(todo)} runs as one ensemble: {', '.join(picked[i][1] for i in todo)}")
                try:
                    train_runs([dirs[i] for i in todo], [specs[i] for i in todo], resume=True,
                               progress=progress, vmap=True)
                except NonFiniteLossError:
                    pass  # trained one by one below, so that only the diverging run fails
        for (trial, j), run_dir, spec in zip(picked, dirs, specs, strict=True):
            if log and finished_metrics(run_dir, spec) is None:
                log(f"  training {j} ...")
            try:
                metrics = ensure_run(run_dir, spec, progress=progress).metrics
            except NonFiniteLossError as err:
                trial.set_user_attr("error", str(err))
                study.tell(trial, state=TrialState.FAIL)
                if log:
                    log(f"  run {j} failed: {err}")
                continue
            trial.set_user_attr("metrics", _jsonable(metrics))
            study.tell(trial, 0.0)
            finished += 1
    except KeyboardInterrupt:  # the checkpoints are written; the runs are retried later
        for trial, _ in picked:
            _fail_if_running(study, trial, lost=True)
        raise
    except BaseException as err:
        for trial, _ in picked:
            _fail_if_running(study, trial, error=f"{type(err).__name__}: {err}")
        raise
    finally:
        for b in beats:
            b.stop()
    return finished


def _fail_if_running(study, trial, *, lost: bool = False, error: str | None = None) -> None:
    from optuna.trial import TrialState

    with contextlib.suppress(Exception):
        current = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if trial.number not in {t.number for t in current}:
            return
        if lost:
            trial.set_user_attr("lost", True)
            study.enqueue_trial({}, user_attrs={"run_dir": _job_of(trial), "group": trial.user_attrs.get("group", "")})
        if error:
            trial.set_user_attr("error", error)
        study.tell(trial, state=TrialState.FAIL)


# ----------------------------------------------------------------------------------------------
# the coordinator
# ----------------------------------------------------------------------------------------------


def run_grid(
    jobs: Sequence[GridJob],
    out_dir: str | Path,
    *,
    workers: int = 1,
    storage: str | None = None,
    study_name: str | None = None,
    force: bool = False,
    ensemble: bool | None = None,
    processes: bool | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = print,
) -> list[dict]:
    """Train every run of the grid ``jobs`` into ``out_dir`` and return their metrics, in order.

    ``workers``: one-CPU worker processes on this machine (``processes``: see
    :class:`GridOptions`; 1 trains here when this process's runtime has one CPU). ``storage`` (default: the journal
    file ``out_dir/grid.journal``) and ``study_name`` (default: the folder's name) let workers on
    other machines join (``nmrnn worker``). Runs already finished are not trained again. A run
    that diverges fails the grid with a ``NonFiniteLossError`` naming it, after the other runs.
    """
    import optuna

    from .sweep import _ask_lock

    jobs = _check_jobs(jobs)
    workers = check_workers(workers, force)
    check_storage(storage)
    out = check_run_path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    storage = storage or str(out / GRID_JOURNAL)
    study_name = study_name or out.resolve().name
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study, st = open_grid_study(jobs, storage, study_name)
    with _ask_lock(storage):
        _reap(study, st)
        _, finished = _enqueue_missing(study, jobs, out)
    if log:
        for run_dir in finished:
            log(f"  reusing finished run {run_dir}")
    in_process = workers == 1 and not _needs_worker_processes(processes)
    while True:
        if in_process:
            work_grid(storage, study_name, out, ensemble=ensemble, progress=progress, log=log)
        else:
            _run_workers(storage, study_name, out, workers, ensemble, log)
        if not _under_way(study, jobs):
            break
        time.sleep(_POLL)  # runs that workers elsewhere are training
        with _ask_lock(storage):
            _reap(study, st)
    return _collect(study, jobs, out)


def _under_way(study, jobs) -> bool:
    from optuna.trial import TrialState

    latest = _latest(study.get_trials(deepcopy=False))
    mine = {j.run_dir for j in jobs}
    return any(t.state in (TrialState.RUNNING, TrialState.WAITING) for r, t in latest.items() if r in mine)


def _collect(study, jobs: Sequence[GridJob], out: Path) -> list[dict]:
    latest = _latest(study.get_trials(deepcopy=False))
    results, failed = [], []
    for job in jobs:
        metrics = finished_metrics(out / job.run_dir, job.spec)
        if metrics is None:
            t = latest.get(job.run_dir)
            why = t.user_attrs.get("error", "not finished") if t is not None else "not trained"
            failed.append(f"{job.run_dir}: {why}")
        results.append(metrics)
    if failed:
        raise NonFiniteLossError(f"{len(failed)} run(s) of the grid did not finish: " + "; ".join(failed))
    return results


def _needs_worker_processes(processes: bool | None) -> bool:
    """Whether a one-worker grid trains in a worker process (see :class:`GridOptions`)."""
    if processes is not None:
        return bool(processes)
    import jax

    from ..runtime import runtime_cpus

    return jax.default_backend() == "cpu" and runtime_cpus() > 1


def local_worker_cpu(i: int, workers: int) -> list[str]:
    """``--cpu`` for local worker ``i`` of ``workers``: a CPU of its own while there are enough of
    them (else the workers' one-CPU runtimes are left to the scheduler)."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    return ["--cpu", str(cpus[i])] if workers <= len(cpus) else []


def _run_workers(storage: str, study_name: str, out: Path, workers: int, ensemble: bool | None, log) -> None:
    cmd = [sys.executable, "-m", "nmrnn.cli", "worker", "--storage", storage, "--study", study_name,
           "--out", str(out), "--no-progress"]
    if ensemble is not None:
        cmd.append("--ensemble" if ensemble else "--no-ensemble")
    run_local_workers([[*cmd, *local_worker_cpu(i, workers)] for i in range(workers)], log)


def run_local_workers(cmds: Sequence[Sequence[str]], log, where: str = "") -> None:
    """Start one worker process per command line and wait for all of them (sweeps and grids). On
    an interrupt the workers are terminated (they stop cleanly at their next checkpoint); a worker
    that fails raises ``RuntimeError`` naming it."""
    procs = [subprocess.Popen(list(c)) for c in cmds]
    if log:
        log(f"  started {len(procs)} workers (pids {', '.join(str(p.pid) for p in procs)}){where}")
    try:
        codes = [p.wait() for p in procs]
    except BaseException:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            p.wait()
        raise
    bad = [(i, c) for i, c in enumerate(codes) if c != 0]
    if bad:
        raise RuntimeError("worker(s) failed: " + ", ".join(f"worker {i} exit code {c}" for i, c in bad))
