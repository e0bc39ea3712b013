"""Start-up time of a fresh process: JAX's import and an ``nmrnn`` worker's start, with the
installed ml_dtypes against another release of it, in the same run.

Every ``nmrnn`` command and every grid or sweep worker is a fresh Python process that imports JAX,
and JAX imports ml_dtypes, whose 0.7 release spends about half a second of that import registering
its numpy loops. The project therefore asks for ``ml_dtypes<0.7``. This script measures what that
saves: it installs the other release (``--other``, default 0.7.0) into a temporary folder with
``pip install --no-deps --target`` and times, interleaved, ``--repeats`` fresh processes of each
with the installed release and with the other one first on ``PYTHONPATH``:

- ``import jax`` and a first operation (``jax.numpy.zeros(1)``);
- the imports a grid worker makes before it trains (``nmrnn.cli``, ``nmrnn.experiments.grid``,
  JAX, Equinox, Optax, Optuna) and the same first operation.

Run: ``python benchmarks/bench_startup.py`` (``--no-write`` to print only); needs the package
index for the other release.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np
from results_file import publish

PROGRAMS = {
    "import jax, first operation": "import jax, jax.numpy as jnp; jnp.zeros(1).block_until_ready()",
    "a grid worker's imports": ("import nmrnn.cli, nmrnn.experiments.grid, jax, equinox, optax, optuna; "
                                "import jax.numpy as jnp; jnp.zeros(1).block_until_ready()"),
}


def ml_dtypes_version(env: dict) -> str:
    return subprocess.run([sys.executable, "-c", "import ml_dtypes; print(ml_dtypes.__version__)"], env=env,
                          check=True, capture_output=True, text=True).stdout.strip()


def timed(code: str, env: dict) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    return time.perf_counter() - t0


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--other", default="0.7.0", help="the ml_dtypes release to compare with (default 0.7.0)")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--no-write", action="store_true")
    args = p.parse_args(argv)
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="nmrnn-bench-startup-") as other_dir:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", other_dir,
                        f"ml_dtypes=={args.other}"], check=True)
        here = dict(os.environ)
        other = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [other_dir, os.environ.get("PYTHONPATH")]))}
        versions = {"installed": ml_dtypes_version(here), "other": ml_dtypes_version(other)}
        if versions["other"] != args.other:
            raise SystemExit(f"the other release did not take precedence: found {versions['other']}")
        times = {(name, which): [] for name in PROGRAMS for which in versions}
        for r in range(args.repeats):
            for name, code in PROGRAMS.items():
                for which in ("installed", "other") if r % 2 == 0 else ("other", "installed"):
                    times[(name, which)].append(timed(code, here if which == "installed" else other))
    load1 = os.getloadavg()[0]
    med = {k: float(np.median(v)) for k, v in times.items()}
    rows = "".join(
        f"| {name} | {med[(name, 'installed')]:.2f} | {med[(name, 'other')]:.2f} | "
        f"{med[(name, 'other')] - med[(name, 'installed')]:.2f} | {med[(name, 'other')] / med[(name, 'installed')]:.2f}x |\n"
        for name in PROGRAMS)
    stamp = dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    text = (
        f"## Process start: ml_dtypes {versions['installed']} against {versions['other']} ({stamp})\n\n"
        f"`benchmarks/bench_startup.py`: a fresh Python process each time, {args.repeats} of each, interleaved; "
        f"{os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), Python "
        f"{platform.python_version()}; load average {load0:.1f} at the start, {load1:.1f} at the end.\n\n"
        f"| program | ml_dtypes {versions['installed']} (s, median) | ml_dtypes {versions['other']} (s, median) | "
        "difference (s) | ratio |\n| --- | ---: | ---: | ---: | ---: |\n" + rows
    )
    publish(text, write=not args.no_write)


if __name__ == "__main__":
    main()
