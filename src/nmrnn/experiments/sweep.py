"""Hyperparameter sweeps on Optuna (``nmrnn sweep``, ``nmrnn worker``).

A sweep is a :class:`SweepSpec` (a TOML file or a dict): one model on one task, a base training
config, and the parameters to search, each addressing a training field (``train.lr``), a model
option (``model.tau``), a task option (``task.X``) or ``n_hidden``. Every trial trains
``seeds_per_trial`` ordinary run directories ``<out>/trials/<number>_seed<k>`` through
:func:`nmrnn.train.run.ensure_run` (the one training path); the trial's value is the mean of
``metric`` (``"<evaluation set>/<metric>"`` of ``metrics.json``, or ``final_train_loss``) over
its seeds.

Storage and workers:

* the study lives in an Optuna storage: by default a journal file ``<out>/study.journal`` (no
  server); any Optuna database URL (``sqlite:///...``, ``postgresql://...``) is passed to
  :class:`optuna.storages.RDBStorage`. The spec is stored as the study's user attribute ``spec``;
  joining a study with a different spec is refused, listing the differences (``n_trials`` may
  change: a study can be extended).
* workers ask for trials until ``n_trials`` trials are *claimed* in the storage, counted across
  every process: finished ones (complete, or failed by divergence) plus the running and waiting
  ones. For journal files the count and the ask happen under one file lock; on database
  storages a trial asked past the count is *surplus* (failed at once, left out of the counts and
  results; see :func:`work`), so the count is met exactly on both.
* a worker killed mid-trial: every trial records its owner's ``pid`` and ``host``; a worker that
  starts (and before each ask) marks the running trials of dead processes on its host as failed
  and enqueues them again. The retry keeps the original trial's number as ``origin``, so it uses
  the same seeds and the same run directories and resumes from their checkpoints. Database
  storages also use Optuna's heartbeat, which catches workers lost on other hosts. A finished
  trial is never run again: trials are counted by origin, and an origin whose latest trial
  completed is done.
* a run that diverges (:class:`~nmrnn.train.NonFiniteLossError`) fails its trial (state
  ``FAIL``, the message in the user attribute ``error``) and the search goes on.

Seeds are explicit: the seeds of trial ``t`` are drawn from ``SeedSequence([study_seed, t, k])``;
the sampler of each worker is seeded from ``(study_seed, worker index, trials already in the
study)``, so a resumed sweep does not replay the samples it already tried.

After the sweep :func:`run_sweep` writes ``trials.csv`` (every trial), ``best.md`` (the best five),
``summary.json`` and ``figures/`` (Optuna's optimisation history, parameter importances and
parallel coordinates; a figure Optuna cannot draw is skipped with a note).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import datetime
import fcntl
import inspect
import io
import json
import math
import os
import socket
import sys
import threading
import tomllib
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._validation import check_choice, check_positive_int, check_seed, check_table
from ..models import MODELS
from ..options import coerce, coerce_options, signature_types
from ..tasks import TASKS
from ..train.checkpoint import atomic_write_json, atomic_write_text
from ..train.config import TrainConfig
from ..train.guard import FolderLock, process_alive
from ..train.loop import NonFiniteLossError
from ..train.run import RunSpec, _diff, check_run_path, ensure_run, read_json

SPEC_FILE = "sweep.json"
JOURNAL = "study.journal"
KINDS = ("float", "int", "categorical")
DIRECTIONS = ("minimize", "maximize")
#: top-level entries of ``metrics.json`` that a sweep can optimise besides ``<set>/<metric>``.
SCALAR_METRICS = ("final_train_loss", "train_seconds")
_MODEL_SKIP = ("self", "key", "n_in", "n_hidden", "n_out")
#: seconds after which a running trial without an owner pid is taken as lost.
_NO_OWNER_GRACE = 60.0
_HEARTBEAT_INTERVAL = 60
_HEARTBEAT_GRACE = 180


# ----------------------------------------------------------------------------------------------
# the spec
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParamSpec:
    """One searched parameter.

    ``target``: ``"train.<field>"``, ``"model.<option>"``, ``"task.<option>"`` or ``"n_hidden"``.
    ``kind``: ``"float"`` or ``"int"`` (a range ``low < high``, log-uniform with ``log=True``,
    which needs ``low > 0``) or ``"categorical"`` (``choices``: numbers, text, booleans).
    """

    target: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    choices: tuple[Any, ...] | None = None

    def __post_init__(self):
        name = self.target
        if self.kind not in KINDS:
            raise ValueError(f"param {name}: unknown kind {self.kind!r}; valid kinds: {', '.join(KINDS)}")
        if not isinstance(self.log, bool):
            raise ValueError(f"param {name}: log takes true/false, got {self.log!r}")
        if self.kind == "categorical":
            if self.low is not None or self.high is not None or self.log:
                raise ValueError(f"param {name}: a categorical parameter takes choices only, not low/high/log")
            if not isinstance(self.choices, list | tuple) or not self.choices:
                raise ValueError(f"param {name}: choices must be a non-empty list, got {self.choices!r}")
            for c in self.choices:
                if c is not None and not isinstance(c, bool | int | float | str):
                    raise ValueError(f"param {name}: choice {c!r} is not allowed; choices are numbers, text, booleans or null")
            if len({json.dumps(c) for c in self.choices}) != len(self.choices):
                raise ValueError(f"param {name}: choices must be distinct, got {list(self.choices)!r}")
            object.__setattr__(self, "choices", tuple(self.choices))
            return
        if self.choices is not None:
            raise ValueError(f"param {name}: a {self.kind} parameter takes low/high, not choices")
        for bound in ("low", "high"):
            v = getattr(self, bound)
            if v is None:
                raise ValueError(f"param {name}: a {self.kind} parameter needs {bound}")
            ok = not isinstance(v, bool) and isinstance(v, int | float) and math.isfinite(v)
            if self.kind == "int":
                ok = ok and v == int(v)
            if not ok:
                what = "an integer" if self.kind == "int" else "a finite number"
                raise ValueError(f"param {name}: {bound} must be {what}, got {v!r}")
            object.__setattr__(self, bound, int(v) if self.kind == "int" else float(v))
        if self.low >= self.high:
            raise ValueError(f"param {name}: empty range low={self.low!r} >= high={self.high!r}; need low < high")
        if self.log and self.low <= 0:
            raise ValueError(f"param {name}: a log range needs low > 0, got low={self.low!r}")

    def values(self) -> tuple[Any, ...]:
        """The values that bound the parameter (its range ends, or every choice): what is checked
        against the model, task and training config before the sweep starts."""
        return self.choices if self.kind == "categorical" else (self.low, self.high)

    def suggest(self, trial) -> Any:
        if self.kind == "float":
            return trial.suggest_float(self.target, self.low, self.high, log=self.log)
        if self.kind == "int":
            return trial.suggest_int(self.target, self.low, self.high, log=self.log)
        return trial.suggest_categorical(self.target, list(self.choices))

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind}
        if self.kind == "categorical":
            d["choices"] = list(self.choices)
        else:
            d.update(low=self.low, high=self.high, log=self.log)
        return d


_PARAM_KEYS = ("kind", "low", "high", "log", "choices")


@dataclass(frozen=True)
class SweepSpec:
    """A hyperparameter search: what is trained, what is searched, and what is optimised.

    Every field is validated on construction, before anything is trained or written: ranges,
    parameter targets (typed against the model's and task's signatures and the training config,
    and every range end or choice checked by building the run's model and task abstractly), the
    metric (against the task's evaluation sets), the sampler and the direction.
    """

    model: str
    task: str
    params: tuple[ParamSpec, ...]
    n_hidden: int = 100
    model_options: dict[str, Any] = field(default_factory=dict)
    task_options: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    metric: str = "train/loss"
    direction: str = "minimize"
    n_trials: int = 20
    seeds_per_trial: int = 1
    sampler: str = "TPESampler"
    study_seed: int = 0

    def __post_init__(self):
        check_choice("model", self.model, MODELS)
        check_choice("task", self.task, TASKS)
        check_positive_int("n_hidden", self.n_hidden)
        for name in ("model_options", "task_options", "train"):
            if not isinstance(getattr(self, name), dict):
                raise ValueError(f"{name} must be a table of option = value pairs, got {getattr(self, name)!r}")
        object.__setattr__(self, "n_trials", check_positive_int("n_trials", self.n_trials))
        object.__setattr__(self, "seeds_per_trial", check_positive_int("seeds_per_trial", self.seeds_per_trial))
        object.__setattr__(self, "study_seed", check_seed(self.study_seed))
        if self.direction not in DIRECTIONS:
            raise ValueError(f"unknown direction {self.direction!r}; valid directions: {', '.join(DIRECTIONS)}")
        sampler_class(self.sampler)
        object.__setattr__(self, "model_options", coerce_options(
            f"model {self.model!r}", self.model_options, MODELS[self.model].__init__, skip=_MODEL_SKIP))
        object.__setattr__(self, "task_options", coerce_options(
            f"task {self.task!r}", self.task_options, TASKS[self.task].__init__))
        base = TrainConfig.from_dict(self.train)
        object.__setattr__(self, "train", {k: v for k, v in base.to_dict().items() if k in self.train})
        params = tuple(self.params)
        if not params:
            raise ValueError("params is empty; give at least one parameter to search")
        for p in params:
            if not isinstance(p, ParamSpec):
                raise ValueError(f"params must be ParamSpec entries, got {p!r}")
        targets = [p.target for p in params]
        dup = sorted({t for t in targets if targets.count(t) > 1})
        if dup:
            raise ValueError(f"param(s) {', '.join(dup)} given more than once")
        object.__setattr__(self, "params", params)
        try:
            self._abstract_build(self.run_spec({}, seed=0))
        except ValueError as err:
            raise ValueError(f"the base settings are refused: {err}") from None
        for p in params:
            self._check_param(p)
        self._check_metric()

    # -- validation ------------------------------------------------------------------------

    def _check_param(self, p: ParamSpec) -> None:
        section, _, name = p.target.partition(".")
        if p.target == "n_hidden":
            annotation = "int"
        elif section == "train" and name:
            fields = {f.name: f.type for f in dataclasses.fields(TrainConfig) if f.name != "stages"}
            if name not in fields:
                raise ValueError(f"param {p.target}: unknown training field {name!r}; valid: {', '.join(sorted(fields))}")
            annotation = fields[name]
        elif section in ("model", "task") and name:
            fn = MODELS[self.model].__init__ if section == "model" else TASKS[self.task].__init__
            types = signature_types(fn, _MODEL_SKIP if section == "model" else ("self", "key"))
            owner = f"{section} {getattr(self, section)!r}"
            if name not in types:
                raise ValueError(f"param {p.target}: {owner} has no option {name!r}; valid options: {', '.join(sorted(types))}")
            annotation = types[name]
        else:
            raise ValueError(
                f"unknown parameter target {p.target!r}; valid targets: train.<field>, model.<option>, "
                "task.<option>, n_hidden"
            )
        kind = str(annotation)
        if p.kind == "float" and "float" not in kind and "int" in kind:
            raise ValueError(f"param {p.target}: {name or p.target} takes integers ({kind}); use kind = \"int\"")
        for value in p.values():
            try:
                coerce(p.target, value, annotation)
                self._abstract_build(self.run_spec({p.target: value}, seed=0))
            except ValueError as err:
                raise ValueError(f"param {p.target}: value {value!r} is refused: {err}") from None

    @staticmethod
    def _abstract_build(spec: RunSpec) -> None:
        """Build the run's model and task on shapes only (checks every option, allocates nothing)."""
        import equinox as eqx

        eqx.filter_eval_shape(spec.build)

    def _check_metric(self) -> None:
        if self.metric in SCALAR_METRICS:
            return
        set_name, sep, metric = self.metric.partition("/")
        from ..tasks import make_task

        task = make_task(self.task, **self.task_options)
        from .._validation import seed_key

        batches = task.evaluation_batches(seed_key(0))
        allowed = [f"{s}/<metric>" for s in batches] + list(SCALAR_METRICS)
        if not sep or set_name not in batches:
            raise ValueError(f"unknown metric {self.metric!r}; valid metrics: {', '.join(allowed)}")
        batch = batches[set_name]
        try:  # the metric names, from outputs of the targets' shape (no model needed)
            names = list(task.evaluate(np.zeros(np.shape(batch.targets), np.float32), batch))
        except Exception:  # a task whose outputs differ in shape: checked after the first run
            return
        if metric not in names:
            raise ValueError(f"unknown metric {self.metric!r}; {set_name} has: {', '.join(f'{set_name}/{n}' for n in names)}")

    # -- runs ------------------------------------------------------------------------------

    def run_spec(self, values: Mapping[str, Any], seed: int) -> RunSpec:
        """The :class:`RunSpec` of one seed of a trial whose parameters are ``values``
        (``{target: value}``), on top of the base settings."""
        train = dict(self.train)
        model_opts = dict(self.model_options)
        task_opts = dict(self.task_options)
        n_hidden = self.n_hidden
        for target, value in values.items():
            section, _, name = target.partition(".")
            if target == "n_hidden":
                n_hidden = value
            elif section == "train":
                train[name] = value
            elif section == "model":
                model_opts[name] = value
            else:
                task_opts[name] = value
        return RunSpec(self.model, n_hidden, self.task, TrainConfig.from_dict(train), seed, model_opts, task_opts)

    def trial_seeds(self, origin: int) -> list[int]:
        """The run seeds of trial ``origin`` (deterministic in ``study_seed`` and the number)."""
        return [
            int(np.random.SeedSequence([self.study_seed, origin, k]).generate_state(1, np.uint64)[0])
            for k in range(self.seeds_per_trial)
        ]

    # -- (de)serialisation -----------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["params"] = {p.target: p.to_dict() for p in self.params}
        return json.loads(json.dumps(d))

    @classmethod
    def from_dict(cls, d: Any) -> SweepSpec:
        """A spec from a dict (the TOML tables, or :meth:`to_dict`); unknown keys are refused."""
        check_table(d, "a sweep spec", [f.name for f in dataclasses.fields(cls)],
                    required=("model", "task", "params", "metric"), noun="sweep field", container="a table")
        params = d["params"]
        if not isinstance(params, dict):
            raise ValueError(f"params must be a table of target = {{kind, low, high, log, choices}}, got {params!r}")
        entries = []
        for target, p in params.items():
            if not isinstance(p, dict):
                raise ValueError(f"param {target}: expected a table with kind, low, high, log, choices, got {p!r}")
            bad = sorted(set(p) - set(_PARAM_KEYS))
            if bad:
                raise ValueError(f"param {target}: unknown key(s) {', '.join(bad)}; valid keys: {', '.join(_PARAM_KEYS)}")
            if "kind" not in p:
                raise ValueError(f"param {target}: missing kind; valid kinds: {', '.join(KINDS)}")
            entries.append(ParamSpec(target, **p))
        for k in ("model", "task", "sampler", "metric", "direction"):
            if k in d and not isinstance(d[k], str):
                raise ValueError(f"{k} must be text, got {d[k]!r}")
        return cls(**{**d, "params": tuple(entries)})


def load_spec(path: str | Path) -> SweepSpec:
    """A spec from a TOML file, a JSON file, or a sweep folder (its ``sweep.json``)."""
    path = Path(path)
    if path.is_dir():
        path = path / SPEC_FILE
    if not path.exists():
        raise FileNotFoundError(f"no sweep spec at {path}")
    if path.suffix == ".toml":
        try:
            data = tomllib.loads(path.read_text())
        except tomllib.TOMLDecodeError as err:
            raise ValueError(f"{path} is not valid TOML ({err})") from None
    else:
        data = read_json(path)
    try:
        return SweepSpec.from_dict(data)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None


#: Samplers that stop the study from inside Optuna's own ``optimize`` loop (workers ask and tell
#: themselves, so that the trial count holds across processes).
_UNSUPPORTED_SAMPLERS = ("BruteForceSampler",)


def sampler_class(name: str) -> type:
    """The ``optuna.samplers`` class called ``name`` (one that can be built without arguments)."""
    import optuna

    allowed = []
    for n in sorted(set(dir(optuna.samplers)) - set(_UNSUPPORTED_SAMPLERS)):
        cls = getattr(optuna.samplers, n)
        if isinstance(cls, type) and issubclass(cls, optuna.samplers.BaseSampler) and not inspect.isabstract(cls):
            required = [
                p for p in inspect.signature(cls).parameters.values()
                if p.default is inspect.Parameter.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
            ]
            if not required:
                allowed.append(n)
    if name not in allowed:
        raise ValueError(f"unknown sampler {name!r}; valid samplers: {', '.join(allowed)}")
    return getattr(optuna.samplers, name)


def make_sampler(spec: SweepSpec, seed: int):
    cls = sampler_class(spec.sampler)
    return cls(seed=seed) if "seed" in inspect.signature(cls).parameters else cls()


# ----------------------------------------------------------------------------------------------
# storage and study
# ----------------------------------------------------------------------------------------------


def default_storage(out_dir: str | Path) -> str:
    return str(Path(out_dir) / JOURNAL)


def _is_url(storage: str) -> bool:
    return "://" in storage


def open_storage(storage: str):
    """An Optuna storage: a database URL (``sqlite:///``, ``postgresql://`` ...; with Optuna's
    heartbeat and a retry of lost trials) or the path of a journal file."""
    import optuna

    if not isinstance(storage, str) or not storage.strip():
        raise ValueError(f"storage must be a database URL or a journal file path, got {storage!r}")
    if _is_url(storage):
        import sqlalchemy.exc

        try:  # the URL as shown in messages: without its password
            shown = sqlalchemy.engine.make_url(storage).render_as_string(hide_password=True)
        except Exception:
            shown = storage
        # Optuna 4.9 renamed failed_trial_callback (the old name warns, and goes in 6.0)
        params = inspect.signature(optuna.storages.RDBStorage).parameters
        callback = ("heartbeat_stale_trial_callback" if "heartbeat_stale_trial_callback" in params
                    else "failed_trial_callback")
        try:
            with warnings.catch_warnings():  # the heartbeat is "experimental" in Optuna
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    storage, heartbeat_interval=_HEARTBEAT_INTERVAL, grace_period=_HEARTBEAT_GRACE,
                    **{callback: _retry_lost},
                )
        except ImportError as err:  # the database driver (psycopg2, pymysql, ...) is missing
            cause = err.__cause__ or err
            hint = "install its database driver"
            if storage.startswith("postgres"):  # SQLAlchemy's default driver differs by version
                hint = "for PostgreSQL: pip install -e \".[postgres]\" and a postgresql+psycopg2:// URL"
            raise ValueError(f"cannot open the storage {shown}: {cause}; {hint}") from None
        except sqlalchemy.exc.SQLAlchemyError as err:  # unreachable, refused, bad URL, no database
            cause = getattr(err, "orig", None) or err
            lines = [ln.strip() for ln in str(cause).splitlines() if ln.strip()]
            raise ValueError(f"cannot open the storage {shown}: "
                             f"{lines[0] if lines else type(cause).__name__}") from None
    path = check_run_path(Path(storage).parent) / Path(storage).name
    if path.is_dir():
        raise IsADirectoryError(f"journal storage {path} is a folder, expected a file")
    path.parent.mkdir(parents=True, exist_ok=True)
    from optuna.storages.journal import JournalFileBackend

    return optuna.storages.JournalStorage(JournalFileBackend(str(path)))


def open_study(spec: SweepSpec, storage, study_name: str, *, sampler_seed: int = 0):
    """Create the study in ``storage`` (a URL, a journal path or an opened storage), or join it
    if it exists with the same spec (``n_trials`` aside); a different spec is refused listing the
    differences."""
    import optuna

    st = open_storage(storage) if isinstance(storage, str) else storage
    study = optuna.create_study(storage=st, study_name=study_name, direction=spec.direction,
                                sampler=make_sampler(spec, sampler_seed), load_if_exists=True)
    mine = spec.to_dict()
    saved = study.user_attrs.get("spec")
    if saved is None:
        study.set_user_attr("spec", mine)
    else:
        diffs = _spec_diff(saved, mine)
        if diffs:
            raise ValueError(f"study {study_name!r} was made with a different spec: " + "; ".join(diffs))
    if study.direction.name.lower() != spec.direction:
        raise ValueError(f"study {study_name!r} has direction {study.direction.name.lower()}, the spec {spec.direction}")
    return study


def _spec_diff(saved: Any, mine: dict[str, Any]) -> list[str]:
    if not isinstance(saved, dict):
        return [f"spec: {saved!r} (saved) vs a sweep spec (now)"]
    return _diff({k: v for k, v in saved.items() if k != "n_trials"},
                 {k: v for k, v in mine.items() if k != "n_trials"})


def _origin(trial) -> int:
    return int(trial.user_attrs.get("origin", trial.number))


def claimed(trials) -> dict[int, Any]:
    """``{origin: latest trial}`` of every trial origin that is done or under way: its latest
    trial completed, failed for good, or is running or waiting. A trial lost with its worker and
    enqueued again counts once, through its retry; surplus trials (see :func:`work`) not at all."""
    import optuna

    latest: dict[int, Any] = {}
    for t in sorted(trials, key=lambda t: t.number):
        if not t.user_attrs.get("surplus"):
            latest[_origin(t)] = t
    ok = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL,
          optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.WAITING)
    return {o: t for o, t in latest.items() if t.state in ok and not t.user_attrs.get("lost")}


def _retry_lost(study, trial) -> None:
    """Enqueue a lost trial again (Optuna's heartbeat callback): a sweep's with its parameters and
    origin, a grid's (:mod:`nmrnn.experiments.grid`) with its run directory."""
    if "run_dir" in trial.user_attrs:
        attrs = {k: trial.user_attrs[k] for k in ("run_dir", "group") if k in trial.user_attrs}
    else:
        attrs = {"origin": _origin(trial)}
    study.enqueue_trial(dict(trial.params), user_attrs=attrs)


def reap_lost_trials(study, storage) -> list[int]:
    """Mark the running trials whose worker is gone as failed (``lost``) and enqueue them again.

    A trial is lost when its owner ``pid`` on this host is dead, or when it has had no owner for
    a minute (its worker died between taking it and recording itself). Trials of other hosts are
    left to the heartbeat of database storages. Returns the numbers of the trials reaped.

    The retry is enqueued before the trial is failed: a worker killed in between leaves a running
    trial of a dead owner (reaped again), never a lost trial without a retry; a trial retried
    twice (two workers reaping it at once) runs once, the second retry being surplus."""
    import optuna
    from optuna.trial import TrialState

    if getattr(storage, "get_heartbeat_interval", lambda: None)():
        with warnings.catch_warnings():  # "experimental" in Optuna
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
    host = socket.gethostname()
    now = datetime.datetime.now()
    study_id = storage.get_study_id_from_name(study.study_name)
    reaped = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid, owner_host = t.user_attrs.get("pid"), t.user_attrs.get("host")
        if pid is None:
            started = t.datetime_start or now
            if (now - started).total_seconds() < _NO_OWNER_GRACE:
                continue
        elif owner_host != host or process_alive(int(pid)):
            continue
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
        try:
            storage.set_trial_user_attr(trial_id, "lost", True)
        except (RuntimeError, ValueError):  # finished or reaped by another worker meanwhile
            continue
        study.enqueue_trial(dict(t.params), user_attrs={"origin": _origin(t)})
        try:
            storage.set_trial_state_values(trial_id, TrialState.FAIL)
        except (RuntimeError, ValueError):  # reaped by another worker meanwhile
            continue
        reaped.append(t.number)
    return reaped


@contextlib.contextmanager
def _ask_lock(storage: str) -> Iterator[None]:
    """Serialise count-then-ask between the processes sharing a journal file."""
    if _is_url(storage):
        yield
        return
    lock = Path(storage).with_name(f".{Path(storage).name}.ask.lock")
    with open(lock, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class _Heartbeat:
    """Record a database storage's heartbeat of one trial from a thread while it trains."""

    def __init__(self, storage, trial_id: int):
        interval = storage.get_heartbeat_interval() if hasattr(storage, "get_heartbeat_interval") else None
        self._stop = threading.Event()
        self._thread = None
        if interval:
            def beat():
                while True:
                    storage.record_heartbeat(trial_id)
                    if self._stop.wait(interval):
                        return

            self._thread = threading.Thread(target=beat, daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()


# ----------------------------------------------------------------------------------------------
# workers
# ----------------------------------------------------------------------------------------------


def trial_dir(out_dir: str | Path, origin: int, k: int) -> Path:
    return Path(out_dir) / "trials" / f"{origin}_seed{k}"


def run_trial(spec: SweepSpec, out_dir: str | Path, origin: int, values: Mapping[str, Any], *,
              progress: bool = False) -> tuple[float, list[float]]:
    """Train every seed of trial ``origin`` with parameters ``values``; returns the trial's value
    (the mean of the metric over seeds) and the per-seed values. Raises ``NonFiniteLossError``
    when a run diverges or gives a non-finite metric."""
    per_seed = []
    for k, seed in enumerate(spec.trial_seeds(origin)):
        outcome = ensure_run(trial_dir(out_dir, origin, k), spec.run_spec(values, seed), progress=progress)
        per_seed.append(metric_value(outcome.metrics, spec.metric))
    bad = [v for v in per_seed if not math.isfinite(v)]
    if bad:
        raise NonFiniteLossError(f"trial {origin}: {spec.metric} is not finite ({per_seed})")
    return float(np.mean(per_seed)), per_seed


def metric_value(metrics: Mapping[str, Any], metric: str) -> float:
    """``metric`` (``"set/name"`` or a top-level entry) of a run's ``metrics.json``."""
    if metric in metrics and not isinstance(metrics[metric], dict):
        return float(metrics[metric])
    set_name, _, name = metric.partition("/")
    try:
        return float(metrics[set_name][name])
    except (KeyError, TypeError):
        raise ValueError(f"metric {metric!r} is not in the run's metrics ({sorted(metrics)})") from None


def work(spec: SweepSpec, out_dir: str | Path, *, storage: str | None = None, study_name: str | None = None,
         n_trials: int | None = None, worker_index: int = 0, progress: bool = False,
         log: Callable[[str], None] | None = print) -> int:
    """One worker: join the study and run trials until ``n_trials`` are claimed across every
    process sharing the storage. Returns the number of trials this worker finished.

    The count is exact on every storage. A journal file serialises count-then-ask under a file
    lock; on a database another worker may ask between this worker's count and its ask, so each
    asked trial is checked against the trials numbered before it (Optuna numbers trials in the
    order they are created, so every worker sees the same ones): a new trial with ``n_trials``
    origins before it, or a retry whose origin completed or is already being retried by an
    earlier trial, is *surplus*: failed at once with the user attribute ``surplus`` and left out
    of the counts, :func:`claimed` and the results."""
    from optuna.trial import TrialState

    out = check_run_path(out_dir)
    n_trials = check_positive_int("n_trials", n_trials if n_trials is not None else spec.n_trials)
    storage = storage or default_storage(out)
    study_name = study_name or default_study_name(out)
    st = open_storage(storage)
    study = open_study(spec, st, study_name)
    study_id = st.get_study_id_from_name(study_name)
    n_existing = len(study.get_trials(deepcopy=False))
    seed = int(np.random.SeedSequence([spec.study_seed, worker_index, n_existing]).generate_state(1)[0])
    study.sampler = make_sampler(spec, seed)
    done = 0
    while True:
        with _ask_lock(storage):
            reaped = reap_lost_trials(study, st)
            if reaped and log:
                log(f"trial(s) {reaped} lost with their worker: enqueued again")
            trials = study.get_trials(deepcopy=False)
            waiting = any(t.state == TrialState.WAITING for t in trials)
            if len(claimed(trials)) >= n_trials and not waiting:
                return done
            with warnings.catch_warnings():  # Optuna's heartbeat note on asking outside optimize
                warnings.filterwarnings("ignore", message="Heartbeat of storage", category=UserWarning)
                trial = study.ask()
            trial.set_user_attr("pid", os.getpid())
            trial.set_user_attr("host", socket.gethostname())
            if "origin" not in trial.user_attrs:
                trial.set_user_attr("origin", trial.number)
            origin = _origin(trial)
            others = [t for t in study.get_trials(deepcopy=False)
                      if t.number != trial.number and not t.user_attrs.get("surplus")]
            if origin == trial.number:  # a new trial
                surplus = len({_origin(t) for t in others if t.number < trial.number}) >= n_trials
            else:  # a retry (enqueued twice when two workers reaped its trial at once)
                surplus = any(
                    _origin(t) == origin and (
                        t.state == TrialState.COMPLETE
                        or (t.number != origin and t.number < trial.number and not t.user_attrs.get("lost")
                            and t.state in (TrialState.RUNNING, TrialState.WAITING)))
                    for t in others
                )
            if surplus:
                trial.set_user_attr("surplus", True)
                study.tell(trial, state=TrialState.FAIL)
                if log:
                    log(f"trial {trial.number} (origin {origin}) is surplus: "
                        + ("the study has its count" if origin == trial.number else "its origin is taken"))
                if origin == trial.number:
                    return done
                continue
        values = {p.target: p.suggest(trial) for p in spec.params}
        beat = _Heartbeat(st, st.get_trial_id_from_study_id_trial_number(study_id, trial.number))
        try:
            trial.set_user_attr("run_dirs", [str(trial_dir("", origin, k)) for k in range(spec.seeds_per_trial)])
            trial.set_user_attr("seeds", spec.trial_seeds(origin))
            if log:
                log(f"trial {trial.number} (origin {origin}): {values}")
            value, per_seed = run_trial(spec, out, origin, values, progress=progress)
        except NonFiniteLossError as err:
            beat.stop()
            trial.set_user_attr("error", str(err))
            study.tell(trial, state=TrialState.FAIL)
            if log:
                log(f"trial {trial.number} failed: {err}")
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the checkpoint is written; retry later
            beat.stop()
            trial.set_user_attr("lost", True)
            # the retry first: killed in between, this trial is reaped (and retried) again
            study.enqueue_trial(values, user_attrs={"origin": origin})
            study.tell(trial, state=TrialState.FAIL)
            raise
        except BaseException as err:
            beat.stop()
            with contextlib.suppress(Exception):
                trial.set_user_attr("error", f"{type(err).__name__}: {err}")
                study.tell(trial, state=TrialState.FAIL)
            raise
        else:
            beat.stop()
            trial.set_user_attr("per_seed", per_seed)
            study.tell(trial, value)
            if log:
                log(f"trial {trial.number}: {spec.metric} = {value:.4g}")
        done += 1


def default_study_name(out_dir: str | Path) -> str:
    return Path(out_dir).resolve().name


def run_sweep(
    spec: SweepSpec,
    out_dir: str | Path,
    *,
    workers: int = 1,
    n_trials: int | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    force: bool = False,
    progress: bool = False,
    figures: bool = True,
    log: Callable[[str], None] | None = print,
) -> dict[str, Any]:
    """Run the sweep ``spec`` into ``out_dir`` with ``workers`` local processes (1: this one);
    an interrupted sweep resumes. Writes ``trials.csv``, ``best.md``, ``summary.json`` and
    ``figures/``; returns the summary (with the best-trials ``table``)."""
    if not isinstance(spec, SweepSpec):
        raise ValueError(f"spec must be a SweepSpec, got {type(spec).__name__}")
    from .grid import check_storage, check_workers

    workers = check_workers(workers, force)
    n_trials = check_positive_int("n_trials", n_trials if n_trials is not None else spec.n_trials)
    check_storage(storage)  # an unreachable database is refused before the folder is made
    out = check_run_path(out_dir)
    storage = storage or default_storage(out)
    study_name = study_name or default_study_name(out)
    with FolderLock(out):
        saved = out / SPEC_FILE
        if saved.exists():
            old = read_json(saved)
            diffs = _spec_diff(old, spec.to_dict())
            if diffs:
                raise ValueError(f"{out} holds a sweep with a different spec: " + "; ".join(diffs))
        study = open_study(spec, storage, study_name)
        atomic_write_json(saved, spec.to_dict())
        if workers == 1:
            work(spec, out, storage=storage, study_name=study_name, n_trials=n_trials,
                 progress=progress, log=log)
        else:
            _run_workers(out, storage, study_name, n_trials, workers, log)
        summary = summarize(study, spec, out, storage=storage)
        if figures:
            summary["figures"], summary["figure_notes"] = make_figures(study, spec, out / "figures")
            summary["figures"] = [str(Path(f).relative_to(out)) for f in summary["figures"]]
        write_results(out, summary)
    return summary


def _run_workers(out: Path, storage: str, study_name: str, n_trials: int, workers: int, log) -> None:
    from .grid import local_worker_cpu, run_local_workers

    cmd = [sys.executable, "-m", "nmrnn.cli", "worker", "--storage", storage, "--study", study_name,
           "--spec", str(out), "--out", str(out), "--n-trials", str(n_trials), "--no-progress"]
    run_local_workers([[*cmd, "--worker-index", str(i), *local_worker_cpu(i, workers)] for i in range(workers)],
                      log, where=f" on {storage}")


# ----------------------------------------------------------------------------------------------
# results
# ----------------------------------------------------------------------------------------------


def _seconds(t) -> float | None:
    if t.datetime_start is None or t.datetime_complete is None:
        return None
    return (t.datetime_complete - t.datetime_start).total_seconds()


def summarize(study, spec: SweepSpec, out_dir: str | Path, *, storage: str = "", top: int = 5) -> dict[str, Any]:
    """The study as data: every trial, counts per state, the best ``top`` trials and the table.
    Surplus trials (asked after the count was met, see :func:`work`) are only counted, as
    ``surplus``."""
    import optuna

    every = study.get_trials(deepcopy=False)
    trials = [t for t in every if not t.user_attrs.get("surplus")]
    rows = [
        {
            "number": t.number,
            "origin": _origin(t),
            "state": t.state.name,
            "value": t.value,
            "seconds": _seconds(t),
            "params": dict(t.params),
            "per_seed": t.user_attrs.get("per_seed"),
            "run_dirs": t.user_attrs.get("run_dirs"),
            "error": t.user_attrs.get("error"),
            "lost": bool(t.user_attrs.get("lost", False)),
        }
        for t in trials
    ]
    complete = [r for r in rows if r["state"] == "COMPLETE"]
    complete.sort(key=lambda r: r["value"], reverse=spec.direction == "maximize")
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["state"]] = counts.get(r["state"], 0) + 1
    best = complete[:top]
    return {
        "study": study.study_name,
        "storage": storage,
        "optuna": optuna.__version__,
        "spec": spec.to_dict(),
        "metric": spec.metric,
        "direction": spec.direction,
        "counts": counts,
        "surplus": len(every) - len(trials),
        "trials": rows,
        "best": best,
        "table": format_best(best, spec),
    }


def format_best(best: list[dict], spec: SweepSpec) -> str:
    """A Markdown table of the best trials (rank, trial, value, parameters)."""
    targets = [p.target for p in spec.params]
    head = ["rank", "trial", f"{spec.metric} ({'mean' if spec.seeds_per_trial > 1 else 'value'}, n={spec.seeds_per_trial})", *targets]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(" --- " for _ in head) + "|"]
    for i, r in enumerate(best, 1):
        vals = [_fmt(r["params"].get(t)) for t in targets]
        lines.append("| " + " | ".join([str(i), str(r["number"]), f"{r['value']:.4e}", *vals]) + " |")
    if not best:
        lines.append("| " + " | ".join(["-", "-", "no complete trial", *["-"] * len(targets)]) + " |")
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def trials_csv(summary: Mapping[str, Any]) -> str:
    targets = list(summary["spec"]["params"])
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["number", "origin", "state", "value", "seconds", *targets, "error"])
    for r in summary["trials"]:
        w.writerow([r["number"], r["origin"], r["state"] + (" (lost)" if r["lost"] else ""),
                    "" if r["value"] is None else repr(r["value"]),
                    "" if r["seconds"] is None else f"{r['seconds']:.3f}",
                    *[r["params"].get(t, "") for t in targets], r["error"] or ""])
    return buf.getvalue()


def write_results(out_dir: Path, summary: dict[str, Any]) -> None:
    out_dir = Path(out_dir)
    atomic_write_text(out_dir / "trials.csv", trials_csv(summary))
    md = [f"# Sweep {summary['study']}", "",
          f"{summary['direction']} {summary['metric']}; trials by state: "
          + ", ".join(f"{k} {v}" for k, v in sorted(summary["counts"].items())), "",
          summary["table"], ""]
    for note in summary.get("figure_notes", []):
        md.append(f"- {note}")
    atomic_write_text(out_dir / "best.md", "\n".join(md) + "\n")
    atomic_write_json(out_dir / "summary.json", {k: v for k, v in summary.items() if k != "table"})


def make_figures(study, spec: SweepSpec, fig_dir: str | Path) -> tuple[list[Path], list[str]]:
    """Optuna's optimisation history, parameter importances (two or more parameters and enough
    complete trials) and parallel coordinates, as PNG. Returns the files written and a note for
    each figure skipped."""
    import optuna
    import optuna.visualization.matplotlib as ovm

    from ..plotting._common import plt, save

    fig_dir = Path(fig_dir)
    n_complete = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
    plots: dict[str, Callable[[], Any]] = {
        "optimization_history": lambda: ovm.plot_optimization_history(study),
        "parallel_coordinate": lambda: ovm.plot_parallel_coordinate(study),
    }
    notes = []
    if len(spec.params) >= 2 and n_complete >= 2:
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=int(spec.study_seed % 2**32))
        plots["param_importances"] = lambda: ovm.plot_param_importances(study, evaluator=evaluator)
    else:
        notes.append(f"param_importances skipped: needs >= 2 parameters and >= 2 complete trials "
                     f"(have {len(spec.params)} and {n_complete})")
    written = []
    for name, draw in plots.items():
        if n_complete == 0:
            notes.append(f"{name} skipped: no complete trial")
            continue
        # Optuna's plots switch matplotlib to its ggplot style: keep that to these figures
        with warnings.catch_warnings(), plt.rc_context():
            warnings.simplefilter("ignore")
            try:
                ax = draw()
            except (ValueError, RuntimeError, ImportError, TypeError, ZeroDivisionError) as err:
                notes.append(f"{name} skipped: {err}")
                plt.close("all")
                continue
            axes = np.ravel(ax) if isinstance(ax, np.ndarray) else [ax]
            written.append(save(axes[0].figure, fig_dir / f"{name}.png"))
    return written, notes


__all__ = [
    "ParamSpec",
    "SweepSpec",
    "claimed",
    "load_spec",
    "make_figures",
    "open_study",
    "reap_lost_trials",
    "run_sweep",
    "run_trial",
    "summarize",
    "work",
]
