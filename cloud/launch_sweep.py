#!/usr/bin/env python3
"""Launch a sweep on rented GPUs: one SkyPilot managed job (`sky jobs launch`) of cloud/sweep.sky.yaml per point,
each one DVC experiment named PREFIX-N, all based on your pushed HEAD. Compare them afterwards with
`dvc exp pull origin --all-commits` and `dvc exp show`, or in the MLflow UI (tag dvc_exp_name): docs/cloud.md.

    python cloud/launch_sweep.py --targets evaluate-hotdog \\
        --grid hotdog.demo.finetune.optim.lr=1e-4,3e-4,1e-3 --grid hotdog.demo.finetune.optim.head_lr_mult=1,10
    python cloud/launch_sweep.py "-S hotdog.demo.finetune.optim.lr=1e-3 -S hotdog.demo.finetune.epochs=10" ...

It needs only SkyPilot (`pip install -e ".[cloud]"`, then `sky check`) and git, not cvflow: DVC's queue runs points on
this machine only, and SkyPilot has no notion of a sweep, so this loop is written by hand. Secrets are passed by name
(`--secret NAME`: SkyPilot copies the value from this shell), never on the command line; `--dry-run` prints the
commands instead of running them.
"""

from __future__ import annotations

import argparse
import itertools
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent


class UsageError(Exception):
    """A mistake of the caller: printed as one line, exit 2 (cvflow's rule; this script does not import cvflow)."""


def git(*args: str) -> str:
    result = subprocess.run(["git", *args], cwd=HERE.parent, capture_output=True, text=True)
    if result.returncode:
        raise UsageError(f"git {' '.join(args)}: {result.stderr.strip() or 'failed'}")
    return result.stdout.strip()


def points(explicit: list[str], grid: list[str]) -> list[str]:
    """Each point as dvc exp run's overrides ("-S key=value ..."): the explicit ones, then the grid's product."""
    axes = []
    for spec in grid:
        key, sep, values = spec.partition("=")
        if not sep or not key or not values:
            raise UsageError(f"--grid {spec!r}: expected KEY=VALUE1,VALUE2,... e.g. hotdog.demo.finetune.optim.lr=1e-4,1e-3")
        axes.append([f"-S {shlex.quote(f'{key}={value}')}" for value in values.split(",")])
    combos = [" ".join(combo) for combo in itertools.product(*axes)] if axes else []
    return [*explicit, *combos]


def commands(args: argparse.Namespace) -> list[list[str]]:
    task = yaml.safe_load(Path(args.task).read_text())
    sweep = points(args.points, args.grid)
    if not sweep:
        raise UsageError("no sweep point: give points (\"-S key=value ...\") or --grid KEY=V1,V2,...")
    url = args.git_url or git("remote", "get-url", "origin")
    ref = git("rev-parse", "HEAD")
    if not git("branch", "-r", "--contains", ref):  # the machines clone the remote: it must have the commit
        raise UsageError(f"commit {ref[:12]} is on no remote branch: `git push` it first (the machines clone {url})")
    if git("status", "--porcelain", "--untracked-files=no"):
        print(f"launch_sweep: note: uncommitted changes are not part of the sweep (it runs commit {ref[:12]})",
              file=sys.stderr)
    # secrets by name, for those set here; the task file's empty defaults stand for the others
    secrets = [f"--secret={name}" for name in (task.get("secrets") or {}) if os.environ.get(name)]
    if args.secret_file:
        secrets.append(f"--secret-file={args.secret_file}")
    out = []
    for number, point in enumerate(sweep, 1):
        name = f"{args.prefix}-{number}"
        envs = {"CVFLOW_GIT_URL": url, "CVFLOW_GIT_REF": ref, "CVFLOW_SET": point, "CVFLOW_EXP_NAME": name,
                "CVFLOW_TARGETS": " ".join(args.targets)}
        out.append(["sky", "jobs", "launch", "--yes", "--detach-run", f"--name={name}", *args.sky,
                    *(f"--env={key}={value}" for key, value in envs.items()), *secrets, args.task])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("points", nargs="*", help='a sweep point: dvc exp run\'s overrides, "-S key=value -S ..."')
    parser.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                        help="one axis of a grid (repeat it: every combination is a point)")
    parser.add_argument("--targets", nargs="*", default=[], help="the stages to run (default: the whole pipeline)")
    parser.add_argument("--prefix", default=time.strftime("sweep-%m%d-%H%M", time.gmtime()),
                        help="experiments and jobs are named PREFIX-1, PREFIX-2... (default: sweep-MMDD-HHMM, UTC)")
    parser.add_argument("--task", default=str(HERE / "sweep.sky.yaml"), help="the task file (default: %(default)s)")
    parser.add_argument("--git-url", help="the repository the machines clone and push to (default: your origin)")
    parser.add_argument("--secret-file", help="a dotenv file of secrets (keep it out of the repository)")
    parser.add_argument("--sky", action="append", default=[], metavar="ARG",
                        help="one more argument for `sky jobs launch`, e.g. --sky=--use-spot --sky=--gpus=H100:1")
    parser.add_argument("--dry-run", action="store_true", help="print the commands, launch nothing")
    args = parser.parse_args(argv)
    try:
        launches = commands(args)
    except (UsageError, OSError, yaml.YAMLError) as error:
        print(f"launch_sweep: error: {error}", file=sys.stderr)
        return 2
    for command in launches:
        print(shlex.join(command), flush=True)
        if not args.dry_run:
            # the task file's workdir (cloud) is relative to where sky runs: the repository's root
            done = subprocess.run(command, cwd=HERE.parent)
            if done.returncode:
                return done.returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
