"""The ``nmrnn`` command line: train, evaluate, compare, reproduce, list.

Every subcommand has ``--help``. Bad arguments are refused with a one-line message naming the bad
value and what is allowed, before any model is compiled.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def _kv(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _add_train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="model name (see `nmrnn list`)")
    p.add_argument("--task", required=True, help="task name (see `nmrnn list`)")
    p.add_argument("--out", required=True, type=Path, help="run directory to create (or resume)")
    p.add_argument("--hidden", type=int, default=None, help="hidden size N (default: 100, or matched with --match-params)")
    p.add_argument("--match-params", type=int, default=None, metavar="P", help="pick N as the smallest size with >= P parameters")
    p.add_argument("--model-opt", type=_kv, action="append", default=[], metavar="KEY=VALUE", help="model option, e.g. rank=3 or tau_z=100 (repeatable; values parsed as JSON)")
    p.add_argument("--task-opt", type=_kv, action="append", default=[], metavar="KEY=VALUE", help="task option (repeatable)")
    p.add_argument("--steps", type=int, default=1000, help="optimiser steps (ignored with --stages)")
    p.add_argument("--stages", default=None, help="staged training, e.g. lowrank:10000,nm:10000,all:50000 (group:steps[:lr])")
    p.add_argument("--lr", type=float, default=1e-2, help="learning rate (default 1e-2)")
    p.add_argument("--optimizer", default="adamw", help="adamw (default) or adam")
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--clip", type=float, default=1.0, help="global-norm gradient clip; 0 disables")
    p.add_argument("--batch-size", type=int, default=None, help="trials per step (default: the task's)")
    p.add_argument("--fixed-batch", action="store_true", help="train on the task's fixed full batch instead of fresh trials")
    p.add_argument("--checkpoint-every", type=int, default=1000)
    p.add_argument("--steps-per-call", type=int, default=200, help="optimiser steps compiled into one call")
    p.add_argument("--weight-l2", type=float, default=0.0)
    p.add_argument("--activity-l2", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def cmd_train(args) -> int:
    from .models import match_size
    from .tasks import make_task
    from .train import TrainConfig, parse_stages
    from .train.run import RunSpec, train_run

    model_opts = dict(args.model_opt)
    task_opts = dict(args.task_opt)
    cfg = TrainConfig(
        steps=args.steps,
        lr=args.lr,
        optimizer=args.optimizer,
        weight_decay=args.weight_decay,
        clip=args.clip if args.clip > 0 else None,
        batch_size=args.batch_size,
        fixed_batch=args.fixed_batch,
        stages=parse_stages(args.stages) if args.stages else None,
        steps_per_call=args.steps_per_call,
        checkpoint_every=args.checkpoint_every,
        weight_l2=args.weight_l2,
        activity_l2=args.activity_l2,
    )
    if args.hidden is not None and args.match_params is not None:
        raise ValueError("give either --hidden or --match-params, not both")
    n_hidden = args.hidden if args.hidden is not None else 100
    if args.match_params is not None:
        task = make_task(args.task, **task_opts)
        n_hidden = match_size(args.model, args.match_params, n_in=task.n_in, n_out=task.n_out, **model_opts)
    spec = RunSpec(args.model, n_hidden, args.task, cfg, args.seed, model_opts, task_opts)
    result = train_run(args.out, spec, resume=args.resume, progress=not args.no_progress)
    metrics = json.loads((Path(args.out) / "metrics.json").read_text())
    print(f"trained {args.model} (N={n_hidden}) on {args.task} for {len(result.losses)} steps in {result.seconds:.1f} s")
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

    out = args.out or Path("results") / f"compare-{args.task}-{args.profile}"
    entries = [parse_model_entry(m) for m in args.models] if args.models else None
    print(f"comparing on {args.task} ({args.profile} profile) -> {out}")
    summary = run_compare(
        args.task,
        out_dir=out,
        models=entries,
        seeds=args.seeds,
        profile=args.profile,
        steps=args.steps,
        task_options=dict(args.task_opt),
        progress=not args.no_progress,
        figures=not args.no_figures,
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
        return 0
    out = args.out or Path("results") / f"reproduce-{args.name}"
    summary = run_reproduction(args.name, out, profile=args.profile, seed=args.seed)
    report = Path(out) / "report.md"
    if report.exists():
        print(report.read_text())
    print(f"reproduced: {summary.get('reproduced')}  ({out / 'summary.json'})")
    return 0


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
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nmrnn",
        description="Neuromodulated RNNs: train, evaluate, compare and reverse-engineer models.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train one model on one task into a run directory",
                       description="Train one model on one task into a run directory (config.json, checkpoint.npz, curve.csv, metrics.json).")
    _add_train_args(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="evaluate a run directory", description="Evaluate a run directory's latest checkpoint on the task's evaluation sets and rewrite metrics.json.")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--json", action="store_true", help="print the metrics as JSON")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("compare", help="compare parameter-matched models across seeds on one task",
                       description="Train parameter-matched models across seeds on one task; print a table and write summary.json, table.csv and figures/ to the output folder. Interrupted comparisons resume.")
    p.add_argument("--task", default="mwg", help="task name (default: mwg)")
    p.add_argument("--models", nargs="+", default=None, metavar="NAME[:N[:k=v,...]]",
                   help="models to compare; the first is the reference whose parameter count the others match when N is omitted (default: the paper's set for the task)")
    p.add_argument("--profile", default="quick", choices=["quick", "paper"], help="quick (default; minutes) or paper (published iteration counts and 10 seeds)")
    p.add_argument("--seeds", type=int, default=None, help="seeds per model (default: the profile's)")
    p.add_argument("--steps", type=int, default=None, help="optimiser steps per run (default: the profile's)")
    p.add_argument("--task-opt", type=_kv, action="append", default=[], metavar="KEY=VALUE", help="task option, e.g. delay_range=[10,19] (repeatable)")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: results/compare-TASK-PROFILE)")
    p.add_argument("--no-figures", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("reproduce", help="reproduce a published result (summary.json, report.md, figures)",
                       description="Reproduce a published result in one command. Without NAME, list the reproductions.")
    p.add_argument("name", nargs="?", default=None, help="reproduction name (omit to list them)")
    p.add_argument("--list", action="store_true", help="list the reproductions")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: results/reproduce-NAME)")
    p.add_argument("--profile", default="quick", choices=["quick", "paper"])
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_reproduce)

    p = sub.add_parser("list", help="list models and tasks with their options")
    p.set_defaults(func=cmd_list)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from .train.loop import NonFiniteLossError

    try:
        return args.func(args)
    except (ValueError, FileExistsError, FileNotFoundError, NonFiniteLossError) as exc:
        print(f"nmrnn {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"nmrnn {args.command}: interrupted; run again with the same arguments (--resume for train) to continue", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
