"""The ``nmrnn`` command line: train, evaluate, compare, reproduce, list.

Every subcommand has ``--help``. Bad arguments are refused with a one-line message naming the bad
value and what is allowed, before any model is compiled.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import signal
import sys
import threading
import traceback
from pathlib import Path
from typing import Any


def _text_kv(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` with the value as text."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def _kv(text: str) -> tuple[str, Any]:
    """``KEY=VALUE``; the value is read as JSON when it parses and typed later against the
    option's annotation (:mod:`nmrnn.options`)."""
    from .options import parse_text

    key, value = _text_kv(text)
    return key, parse_text(value)


def _config_value(kind: str, name: str):
    """An argparse ``type`` for a config field annotated ``kind`` (``"int"``, ``"float | None"``
    ...), read by the one typed parser (:func:`nmrnn.options.coerce`): numbers refuse booleans and
    text, ``none`` gives ``None`` where the field allows it."""
    from .options import OptionError, coerce, parse_text

    def parse(text: str):
        try:
            return coerce(name, parse_text(text), kind)
        except OptionError as err:
            raise argparse.ArgumentTypeError(f"--{name.replace('_', '-')} takes {err.allowed}, got {text!r}") from None

    return parse


def _add_config_args(p: argparse.ArgumentParser, config_cls) -> None:
    """One option per field of ``config_cls`` (a dataclass with ``help`` metadata): the flags, their
    help and their defaults all come from the dataclass, the one source of defaults."""
    import dataclasses

    for f in dataclasses.fields(config_cls):
        flag = "--" + f.name.replace("_", "-")
        help_text = f.metadata.get("help", "")
        choices = f.metadata.get("choices")
        if f.name == "stages":
            p.add_argument(flag, default=None, help=help_text)
        elif f.type in ("bool",):
            if f.default:
                p.add_argument("--no-" + f.name.replace("_", "-"), dest=f.name, action="store_false",
                               help=f"do not {help_text}")
            else:
                p.add_argument(flag, dest=f.name, action="store_true", help=help_text)
        else:
            p.add_argument(flag, dest=f.name, type=_config_value(str(f.type), f.name), default=f.default,
                           choices=choices, help=help_text if "default" in help_text else f"{help_text} (default: {f.default})")


def _config_from_args(args, config_cls):
    import dataclasses

    from .train import parse_stages

    values = {}
    for f in dataclasses.fields(config_cls):
        value = getattr(args, f.name)
        if f.name == "stages":
            if value is not None:
                if not value.strip():
                    raise ValueError("--stages is empty; give group:steps[:lr],... or leave it out")
                value = parse_stages(value)
        values[f.name] = value
    return config_cls(**values)


def _add_train_args(p: argparse.ArgumentParser) -> None:
    from .train import TrainConfig

    p.add_argument("--model", required=True, help="model name (see `nmrnn list`)")
    p.add_argument("--task", required=True, help="task name (see `nmrnn list`)")
    p.add_argument("--out", required=True, type=_path, help="run directory to create (or resume)")
    p.add_argument("--hidden", type=int, default=None, help="hidden size N (default: 100, or matched with --match-params)")
    p.add_argument("--match-params", type=int, default=None, metavar="P", help="pick N as the smallest size with >= P parameters")
    p.add_argument("--model-opt", type=_kv, action="append", default=[], metavar="KEY=VALUE", help="model option, e.g. rank=3 or tau_z=100 (repeatable; values parsed as JSON)")
    p.add_argument("--task-opt", type=_kv, action="append", default=[], metavar="KEY=VALUE", help="task option (repeatable)")
    p.add_argument("--objective", default=None, metavar="NAME",
                   help="training objective of an environment task: a2c or ppo (e.g. --task bandit --objective a2c); "
                        "default: the task's supervised loss. Its regularisers and noise are the training options "
                        "(--activity-l2 ...), its rollout length the task's n_steps")
    p.add_argument("--objective-opt", type=_kv, action="append", default=[], metavar="KEY=VALUE",
                   help="objective option, e.g. entropy_coef=0.3 or gamma=0.95 (repeatable; see `nmrnn list`)")
    _add_config_args(p, TrainConfig)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--init-from", type=_path, default=None, metavar="RUN_DIR",
                   help="start from the final model of this finished run (same model, size and options) instead of a fresh one, "
                        "e.g. to retrain one group (--stages nm:5000) on a new task")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (or progress lines in logs)")
    p.add_argument("--ignore-memory-limit", action="store_true",
                   help="train even when the run's estimated memory exceeds what is available")


def cmd_train(args) -> int:
    from .models import match_size
    from .tasks import make_task
    from .train import TrainConfig
    from .train.run import RunSpec, train_run

    model_opts = dict(args.model_opt)
    task_opts = dict(args.task_opt)
    cfg = _config_from_args(args, TrainConfig)
    if args.hidden is not None and args.match_params is not None:
        raise ValueError("give either --hidden or --match-params, not both")
    n_hidden = args.hidden if args.hidden is not None else 100
    if args.match_params is not None:
        task = make_task(args.task, **task_opts)
        n_hidden = match_size(args.model, args.match_params, n_in=task.n_in, n_out=task.n_out, **model_opts)
    init_from = None if args.init_from is None else os.path.relpath(args.init_from, args.out)
    spec = RunSpec(args.model, n_hidden, args.task, cfg, args.seed, model_opts, task_opts, init_from,
                   objective=args.objective, objective_options=dict(args.objective_opt))
    result = train_run(args.out, spec, resume=args.resume, progress=not args.no_progress,
                       check_memory=not args.ignore_memory_limit)
    metrics = json.loads((Path(args.out) / "metrics.json").read_text())
    with_objective = f" with {args.objective}" if args.objective is not None else ""
    print(f"trained {args.model} (N={n_hidden}) on {args.task}{with_objective} for {len(result.losses)} steps "
          f"in {result.seconds:.1f} s")
    print(f"final training loss {result.losses[-1]:.4e}")
    _print_metrics(metrics)
    print(f"run directory: {args.out}")
    return 0


def _print_metrics(metrics: dict) -> None:
    for name, vals in metrics.items():
        if isinstance(vals, dict):
            shown = ", ".join(f"{k}={v:.4g}" for k, v in vals.items())
            print(f"  {name}: {shown}")


def cmd_evaluate(args) -> int:
    from .train.run import evaluate_run

    metrics = evaluate_run(args.run_dir)
    if args.json:
        print(json.dumps(metrics, indent=2))
    else:
        print(f"evaluation of {args.run_dir}:")
        _print_metrics(metrics)
    return 0


def cmd_compare(args) -> int:
    from .experiments.compare import parse_model_entry, run_compare

    suffix = "" if args.protocol == "standard" else f"-{args.protocol}"
    out = args.out or Path("results") / f"compare-{args.task}-{args.profile}{suffix}"
    entries = [parse_model_entry(m) for m in args.models] if args.models else None
    summary = run_compare(
        args.task,
        out_dir=out,
        models=entries,
        seeds=args.seeds,
        profile=args.profile,
        protocol=args.protocol,
        steps=args.steps,
        task_options=dict(args.task_opt),
        progress=not args.no_progress,
        figures=not args.no_figures,
        vmap_seeds=args.vmap_seeds,
        workers=args.workers,
        storage=args.storage,
        study_name=args.study,
        force=args.force,
        processes=False if args.in_process else None,
        train=dict(args.train_opt),
    )
    print()
    print(f"{args.task} ({args.profile} profile): {summary['seeds']} seeds per model; steps per model in the table")
    print(summary["table"])
    print()
    print(f"wrote {out / 'summary.json'}, {out / 'table.csv'}")
    for f in summary.get("figures", []):
        print(f"wrote {out / f}")
    return 0


def cmd_reproduce(args) -> int:
    from .experiments.registry import REPRODUCTIONS, run_reproduction

    if args.list or args.name is None:
        for name, rep in REPRODUCTIONS.items():
            times = "; ".join(f"{k}: {v}" for k, v in rep.runtime.items())
            print(f"{name:8s} {rep.result_id:4s} {rep.description}" + (f"  [{times}]" if times else ""))
            for key, choice in rep.options.items():
                print(f"{'':13s} --opt {key}=" + "|".join(choice.values) + f" (default {choice.default}): {choice.help}")
                for value, meaning in choice.values.items():
                    print(f"{'':17s} {value}: {meaning}")
        return 0
    from .experiments.grid import GridOptions
    from .experiments.registry import resolve_options, run_search, trains_grid

    grid = GridOptions(args.workers, args.storage, args.study, args.force,
                       processes=False if args.in_process else None)
    if args.trials is not None and not args.search:
        raise ValueError("--trials applies to --search only (trials per model of the stored search)")
    if args.search:
        if args.opt:
            raise ValueError("--opt applies to a reproduction, not to --search")
        out = args.out or Path("results") / f"search-{args.name}-{args.profile}"
        found = run_search(args.name, out, profile=args.profile, seed=args.seed, grid=grid, trials=args.trials,
                           log=print)
        stored = {k: v for k, v in found.items() if k not in ("trials",)}
        print(json.dumps(stored, indent=1, default=str))
        print(f"stored the {args.profile} profile's search of {args.name} (its studies are in {out})")
        return 0
    options, chosen = dict(args.opt), ""
    if options and args.name in REPRODUCTIONS:  # refused before the folder is named
        rep = REPRODUCTIONS[args.name]
        chosen = "".join(f"-{k}-{v}" for k, v in resolve_options(rep, options).items() if v != rep.options[k].default)
    out = args.out or Path("results") / f"reproduce-{args.name}{chosen}"
    if args.name in REPRODUCTIONS and grid != GridOptions() and not trains_grid(REPRODUCTIONS[args.name]):
        print(f"note: {args.name} trains its runs one after the other; --workers/--storage/--study do not apply")
    summary = run_reproduction(args.name, out, profile=args.profile, seed=args.seed, grid=grid, options=options)
    report = Path(out) / "report.md"
    if report.exists():
        print(report.read_text())
    verdict = summary.get("verdict", "reproduced" if summary.get("reproduced") else "not reproduced")
    print(f"reproduced: {summary.get('reproduced')} ({verdict})  ({out / 'summary.json'})")
    if args.strict and not summary.get("reproduced"):
        return 3
    return 0


def _quiet_optuna() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)


def cmd_sweep(args) -> int:
    from .experiments.sweep import load_spec, run_sweep

    spec = load_spec(args.spec)
    out = args.out or Path("results") / f"sweep-{args.spec.stem}"
    _quiet_optuna()
    print(f"sweep of {spec.model} on {spec.task}: {spec.direction} {spec.metric} -> {out}")
    summary = run_sweep(spec, out, workers=args.workers, n_trials=args.n_trials, storage=args.storage,
                        study_name=args.study, force=args.force, progress=not args.no_progress,
                        figures=not args.no_figures)
    print()
    print("trials by state: " + ", ".join(f"{k} {v}" for k, v in sorted(summary["counts"].items())))
    print(summary["table"])
    print()
    print(f"wrote {out / 'trials.csv'}, {out / 'best.md'}, {out / 'summary.json'}")
    for f in summary.get("figures", []):
        print(f"wrote {out / f}")
    for note in summary.get("figure_notes", []):
        print(f"note: {note}")
    return 0


def cmd_worker(args) -> int:
    from .experiments.grid import is_grid_study, work_grid
    from .experiments.sweep import load_spec, work

    if args.spec is None:
        if args.storage is None or args.study is None:
            raise ValueError("nmrnn worker needs --spec (a sweep), or --storage and --study (a sweep or a grid of runs)")
        _quiet_optuna()
        if is_grid_study(args.storage, args.study):
            out = args.out if args.out is not None else (None if "://" in args.storage else Path(args.storage).parent)
            if out is None:
                raise ValueError("a grid on a database storage needs --out DIR: the grid's folder (shared by every machine)")
            done = work_grid(args.storage, args.study, out, ensemble=args.ensemble, progress=not args.no_progress)
            print(f"worker {os.getpid()}: finished {done} run(s)")
            return 0
        raise ValueError(f"study {args.study!r} is a sweep: give its --spec (the sweep folder or spec file)")
    spec = load_spec(args.spec)
    out = args.out if args.out is not None else (args.spec if args.spec.is_dir() else None)
    if out is None:
        raise ValueError(f"--spec {args.spec} is a file; give --out DIR for the trials' run directories")
    _quiet_optuna()
    done = work(spec, out, storage=args.storage, study_name=args.study, n_trials=args.n_trials,
                worker_index=args.worker_index if args.worker_index is not None else os.getpid(),
                progress=not args.no_progress)
    print(f"worker {os.getpid()}: finished {done} trial(s)")
    return 0


def _grid_arguments(p) -> None:
    p.add_argument("--workers", type=int, default=1, help="one-CPU worker processes training the runs on this machine (default: 1); the result is the same for any number")
    p.add_argument("--storage", default=None,
                   help="Optuna storage of the grid of runs, for workers on other machines (nmrnn worker): a database URL or a journal file (default: OUT/grid.journal)")
    p.add_argument("--study", default=None, help="study name of the grid (default: the output folder's name)")
    p.add_argument("--force", action="store_true", help="allow more workers than CPUs")
    p.add_argument("--in-process", action="store_true",
                   help="with 1 worker: train the runs in this process, whose runtime uses every CPU (faster for large "
                        "models; the last bits of the numbers then differ from a worker's)")


def cmd_list(args) -> int:
    from .models import MODELS, model_options
    from .tasks import TASKS, task_options

    print("models:")
    for name, cls in MODELS.items():
        opts = ", ".join(f"{k}={v!r}" for k, v in model_options(name).items())
        print(f"  {name:18s} {cls.__name__}: {opts}")
    print("tasks:")
    for name, cls in TASKS.items():
        opts = ", ".join(f"{k}={v!r}" for k, v in task_options(name).items())
        print(f"  {name:18s} {cls.__name__}: {opts}")
    from .rl import OBJECTIVES, objective_options

    print("objectives (--objective; default: the task's supervised loss):")
    for name, cls in OBJECTIVES.items():
        tasks = ", ".join(t for t, c in TASKS.items() if name in c.objectives)
        opts = ", ".join(f"{k}={v!r}" for k, v in objective_options(name, for_task=True).items())
        print(f"  {name:18s} {cls.__name__} (tasks: {tasks}): {opts}")
    return 0


class _Parser(argparse.ArgumentParser):
    """An argument parser whose refusals are one line: the error and where the usage is."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (usage: {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from .experiments.profiles import PROFILE_NAMES

    parser = _Parser(
        prog="nmrnn",
        description="Neuromodulated RNNs: train, evaluate, compare and reverse-engineer models.",
    )
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks of errors")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show Python tracebacks of errors")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_parser = sub.add_parser

    def add_parser(name, **kwargs):
        return _add_parser(name, parents=[common], **kwargs)

    sub.add_parser = add_parser

    p = sub.add_parser("train", help="train one model on one task into a run directory",
                       description="Train one model on one task into a run directory (config.json, checkpoint.npz, curve.csv, metrics.json).")
    _add_train_args(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="evaluate a run directory", description="Evaluate a run directory's latest checkpoint on the task's evaluation sets and rewrite metrics.json.")
    p.add_argument("run_dir", type=_path)
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("compare", help="compare parameter-matched models across seeds on one task",
                       description="Train parameter-matched models across seeds on one task; print a table and write summary.json, table.csv and figures/ to the output folder. Interrupted comparisons resume.")
    p.add_argument("--task", default="mwg", help="task name (default: mwg)")
    p.add_argument("--models", nargs="+", default=None, metavar="NAME[:N[:k=v,...]]",
                   help="models to compare; the first is the reference whose parameter count the others match when N is omitted (default: the paper's set for the task)")
    p.add_argument("--profile", default="quick", choices=list(PROFILE_NAMES), help="smoke (seconds; checks the pipeline only), quick (default; minutes) or paper (published iteration counts and 10 seeds)")
    p.add_argument("--protocol", default="standard", choices=["standard", "reference"],
                   help="standard (default): the library's parametrisation; reference: the NM-RNN authors' code (parametrisation, clipping, best-block selection, per-model learning rates; mwg only)")
    p.add_argument("--seeds", type=int, default=None, help="seeds per model (default: the profile's)")
    p.add_argument("--steps", type=int, default=None, help="optimiser steps per run (default: the profile's)")
    p.add_argument("--task-opt", type=_kv, action="append", default=[], metavar="KEY=VALUE", help="task option, e.g. delay_range=[10,19] (repeatable)")
    p.add_argument("--train-opt", type=_kv, action="append", default=[], metavar="KEY=VALUE",
                   help="training option for every model, over the protocol's, e.g. restart_each_block=true with "
                        "--protocol reference (repeatable; the fields of `nmrnn train`)")
    p.add_argument("--out", type=_path, default=None, help="output folder (default: results/compare-TASK-PROFILE)")
    p.add_argument("--no-figures", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--vmap-seeds", dest="vmap_seeds", action="store_true", default=None,
                   help="train each model's seeds as one vmapped ensemble (default: on accelerators only; on CPU sequential measured as fast)")
    p.add_argument("--no-vmap-seeds", dest="vmap_seeds", action="store_false", help="train the seeds one after the other")
    _grid_arguments(p)
    p.set_defaults(func=cmd_compare)

    from .experiments.profiles import PROFILE_NAMES

    p = sub.add_parser("reproduce", help="reproduce a published result (summary.json, report.md, figures)",
                       description="Reproduce a published result in one command. Without NAME, list the reproductions. "
                                   "Exit status: 0 when the reproduction ran (its verdict is printed and in summary.json, "
                                   "whether or not the result reproduced); 3 with --strict when it did not reproduce "
                                   "(not reproduced or undecided); 2 for bad arguments; 1 when it failed to run.")
    p.add_argument("name", nargs="?", default=None, help="reproduction name (omit to list them)")
    p.add_argument("--list", action="store_true", help="list the reproductions")
    p.add_argument("--out", type=_path, default=None, help="output folder (default: results/reproduce-NAME)")
    p.add_argument("--profile", default="quick", choices=list(PROFILE_NAMES),
                   help="smoke (seconds; exercises every output), quick (default; minutes) or paper (the published scale)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--strict", action="store_true", help="exit with status 3 when the result is not reproduced")
    p.add_argument("--opt", type=_text_kv, action="append", default=[], metavar="KEY=VALUE",
                   help="an option of the reproduction, e.g. reading=supplement for multitask (repeatable; "
                        "`nmrnn reproduce --list` shows each reproduction's options; the default output folder "
                        "then names the options that differ from their defaults)")
    p.add_argument("--search", action="store_true",
                   help="run the reproduction's hyperparameter search at the profile's settings and store its result, "
                        "where that profile reads it (sine-meta, composition), instead of the reproduction")
    p.add_argument("--trials", type=int, default=None, help="with --search: trials per model (default: the profile's)")
    _grid_arguments(p)
    p.set_defaults(func=cmd_reproduce)

    p = sub.add_parser("sweep", help="hyperparameter sweep on Optuna (trials.csv, best.md, summary.json, figures)",
                       description="Search hyperparameters with Optuna: every trial trains ordinary run directories under OUT/trials/; the study is stored in OUT/study.journal (or --storage). An interrupted sweep resumes.")
    p.add_argument("spec", type=_path, help="sweep spec (TOML or JSON file)")
    p.add_argument("--out", type=_path, default=None, help="sweep folder (default: results/sweep-SPEC)")
    p.add_argument("--workers", type=int, default=1, help="local worker processes sharing the study (default: 1, this process; more: one-CPU workers, one per core)")
    p.add_argument("--n-trials", dest="n_trials", type=int, default=None, help="trials in the study (default: the spec's)")
    p.add_argument("--storage", default=None, help="Optuna storage: a database URL (sqlite:///f.db, postgresql+psycopg2://...) or a journal file (default: OUT/study.journal)")
    p.add_argument("--study", default=None, help="study name (default: the folder's name)")
    p.add_argument("--force", action="store_true", help="allow more workers than CPUs")
    p.add_argument("--no-figures", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("worker", help="join a sweep's or a grid's study and run trials",
                       description="Join an Optuna study (from any machine that reaches its storage) and run its trials: a sweep's until the study has its count, or a grid's runs (of compare or reproduce) until none is left.")
    p.add_argument("--spec", default=None, type=_path, help="the sweep spec: a TOML/JSON file or a sweep folder (its sweep.json); not needed for a grid")
    p.add_argument("--storage", default=None, help="Optuna storage URL or journal file (default: SPEC_FOLDER/study.journal)")
    p.add_argument("--study", default=None, help="study name (default: the sweep folder's name)")
    p.add_argument("--out", type=_path, default=None, help="folder of the trials' run directories (default: the spec's folder)")
    p.add_argument("--n-trials", dest="n_trials", type=int, default=None, help="trials in the study (default: the spec's)")
    p.add_argument("--worker-index", dest="worker_index", type=int, default=None, help="seeds this worker's sampler (default: the pid)")
    p.add_argument("--ensemble", dest="ensemble", action="store_true", default=None,
                   help="grids: train the waiting seeds of one model as one vmapped ensemble (default: on accelerators only)")
    p.add_argument("--no-ensemble", dest="ensemble", action="store_false", help="grids: one run at a time")
    p.add_argument("--cpu", type=int, default=None, help="keep this worker on this CPU (local workers get one each); a worker always trains in a one-CPU runtime, so its numbers are those of every other worker")
    p.set_defaults(one_cpu_runtime=True)
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("list", help="list models and tasks with their options")
    p.set_defaults(func=cmd_list)
    return parser


def _path(text: str) -> Path:
    """A path argument; an empty string is refused (``Path("")`` would mean the current folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a path, got an empty string")
    return Path(text)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        return f"{exc.strerror}: {exc.filename}"
    text = str(exc) or type(exc).__name__
    return " ".join(text.split("\n")[0:1]) if isinstance(exc, OSError) else text


def main(argv: list[str] | None = None, *, compilation_cache: bool = False) -> int:
    """Run the command line; returns the exit code: 0 done, 2 bad input (refused before anything
    is written), 1 a failure at run time, 3 ``reproduce --strict`` of a result that did not
    reproduce, 130/143 stopped by SIGINT/SIGTERM (checkpoint intact).
    No traceback reaches the user unless ``--debug`` is given. ``compilation_cache``: keep the
    compiled programs in the on-disk cache of :mod:`nmrnn.runtime` (the ``nmrnn`` command does;
    a Python caller keeps its own JAX settings by default)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (exits 0) or a usage error (2), already printed
        if exc.code == 0:
            raise
        return 2
    from .train.guard import FolderLockedError, Interrupted, stop_on_signals
    from .train.loop import NonFiniteLossError

    bad_input = (ValueError, FileExistsError, FileNotFoundError, NotADirectoryError,
                 IsADirectoryError, PermissionError, FolderLockedError)
    # The first SIGINT/SIGTERM stops the command (training first writes its checkpoint); later
    # ones are ignored while it cleans up. Under the console script (`entry`) they are ignored
    # from the end of the command until `entry` puts its own handlers in place.
    with stop_on_signals(restore=lambda h: signal.SIG_IGN if h is _stop_before_start else h):
        try:
            _start_runtime(args, compilation_cache)
            return args.func(args)
        except Interrupted as exc:
            print(f"nmrnn {args.command}: {exc}; run again with the same arguments (--resume for "
                  "train) to continue", file=sys.stderr)
            return exc.exit_code
        except KeyboardInterrupt:
            print(f"nmrnn {args.command}: interrupted; run again with the same arguments (--resume "
                  "for train) to continue", file=sys.stderr)
            return 130
        except bad_input as exc:
            if args.debug:
                traceback.print_exc()
            print(f"nmrnn {args.command}: error: {_describe(exc)}", file=sys.stderr)
            return 2
        except NonFiniteLossError as exc:
            if args.debug:
                traceback.print_exc()
            print(f"nmrnn {args.command}: error: {exc}", file=sys.stderr)
            return 1
        except Exception as exc:  # a failure at run time: one line, the traceback with --debug
            if args.debug:
                traceback.print_exc()
            print(f"nmrnn {args.command}: error: {type(exc).__name__}: {_describe(exc)} "
                  "(run with --debug for the traceback)", file=sys.stderr)
            return 1


def _start_runtime(args, compilation_cache: bool) -> None:
    """Before the command's first JAX computation: a one-CPU runtime for the commands that train
    in one (``nmrnn worker``: :func:`nmrnn.runtime.start_one_cpu_runtime`), then the on-disk
    cache of compiled programs (its folder depends on the runtime's CPU count)."""
    from .runtime import enable_compilation_cache, start_one_cpu_runtime

    if getattr(args, "one_cpu_runtime", False):
        start_one_cpu_runtime(args.cpu)
    if compilation_cache:
        enable_compilation_cache()  # compiled programs shared by this command's runs and the next


def _stop_before_start(signum, frame):
    """SIGINT/SIGTERM while the command is still importing and parsing: nothing has been written
    yet, so leave at once with the signal's exit code (instead of dying by the signal)."""
    sys.stderr.write(f"nmrnn: stopped by signal {signum} before starting; nothing was written\n")
    sys.stderr.flush()
    os._exit(130 if signum == signal.SIGINT else 143)


def entry() -> None:
    """The ``nmrnn`` console script: :func:`main`, then exit. A signal that arrives before
    :func:`main` takes over signal handling ends the process cleanly with 130 / 143; one that
    arrives after the command is done ends it at once with the command's own code. Once the exit
    handlers have run (temporary folders removed, logs flushed) the process leaves without the
    rest of the interpreter's teardown, which frees compiled programs and native libraries one by
    one (about a quarter of a second per process, for every worker of a grid too) and where
    Python's signal handlers no longer run. After a stop it leaves at once (compiled-code threads
    may still be running). The command keeps its compiled programs in the on-disk cache of
    :mod:`nmrnn.runtime`. Output is line-buffered, so that a log file (a long run, its worker
    processes) shows each line when it is printed rather than when a buffer fills."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(line_buffering=True)
    main_thread = threading.current_thread() is threading.main_thread()
    if main_thread:
        signal.signal(signal.SIGINT, _stop_before_start)
        signal.signal(signal.SIGTERM, _stop_before_start)
    atexit.register(_leave_after_exit_handlers)  # registered first, so it runs after the others
    code = main(compilation_cache=True)
    if code in (130, 143):
        _leave_now(code)
    _EXIT_CODE.append(code)
    if main_thread:
        signal.signal(signal.SIGINT, lambda signum, frame: _leave_now(code))
        signal.signal(signal.SIGTERM, lambda signum, frame: _leave_now(code))
    sys.exit(code)


_EXIT_CODE: list[int] = []  # the finished command's exit code, for the last exit handler


def _leave_after_exit_handlers() -> None:
    if _EXIT_CODE:  # else main did not return (``--help``): the interpreter's usual exit
        _leave_now(_EXIT_CODE[-1])


def _leave_now(code: int) -> None:
    """Flush what was printed and end the process with ``code``, without the interpreter's
    teardown."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a stream already closed in teardown
            pass
    os._exit(code)


if __name__ == "__main__":
    entry()
