"""The `cvflow` command: every stage of every task, as `cvflow VERB TASK [OPTIONS]`, built from the
task declarations (:data:`cvflow.pipelines.TASKS`).

One generic command per verb: the options every command shares (``--device``, ``--params``, ``--set``,
and ``--epochs --lr --batch-size`` where the stage trains with a recipe) are written once, here; a
stage's variants (``--variant``) and its own options come from its declaration.

Exit codes: 0 done; 2 a user error (bad params, missing data, offline download...), printed as
one line with no traceback; 1 an internal error (a bug: the traceback is shown).
"""

from __future__ import annotations

import inspect
import sys
from contextvars import ContextVar
from enum import Enum
from pathlib import Path
from typing import Any, Callable, Optional

import click
import typer

from cvflow import __version__
from cvflow.errors import INTERRUPTED, UserError, catch_interrupts
from cvflow.pipelines.task import RECIPE_KEYS, Stage, Task

#: each verb's help, in the order `cvflow --help` lists them
VERBS = {
    "fetch": "Get a data set into data/: download (SHA-1 checked), a local copy, or the offline demo twin.",
    "prepare": "Reorganise a fetched data set (the book's train / valid / train_valid / test split), with hard "
               "links or manifests instead of copies.",
    "pretrain": "Make a fine-tune's starting weights: ImageNet weights, a model pretrained on generated data "
                "(demo), random, or your own file.",
    "train": "Train a model (checkpoint every epoch; rerun to resume; common.devices for several GPUs).",
    "evaluate": "Evaluate trained models on the test set: metrics JSON (dvc metrics) and labelled pictures.",
    "predict": "Draw predictions on held-out images, or write a submission file (logged to MLflow).",
    "figures": "Draw the book's explanatory figures as PNGs under data/reports/.",
    "submit": "Send a submission file to Kaggle (needs Kaggle credentials and the competition's rules accepted).",
    "features": "Compute a frozen backbone's features once (the head then trains on them).",
}
#: verbs whose commands run a network, so take --device
DEVICE_VERBS = {"pretrain", "train", "evaluate", "predict", "features", "stylize"}
DEVICE_HELP = "auto | cpu | cuda | cuda:N | mps"
RECIPE_HELP = {"epochs": "override the recipe's epochs", "lr": "override the recipe's learning rate",
               "batch_size": "override the recipe's (global) batch size"}
RECIPE_TYPES = {"epochs": int, "lr": float, "batch_size": int}
#: the command's arguments, as :func:`main` got them: a launched training stage starts its workers with them
ARGV: ContextVar[list[str] | None] = ContextVar("ARGV", default=None)


def load(params_file: Path, overrides: Optional[list[str]], task: Task | None = None,
         values: dict[str, Any] | None = None):
    """Validate the whole params file with ``--set`` overrides and the options' typed values (keys relative to
    ``task``'s active profile; None values ignored; set as they are, not as text read back); return it and the
    project folder."""
    from cvflow.params import read_yaml
    from cvflow.pipelines import load_params

    data = read_yaml(params_file)
    profile = data.get("profile", "demo")
    typed = {(task.override(profile, key) if task is not None else key): (str(value) if isinstance(value, Path)
                                                                           else value)
             for key, value in (values or {}).items() if value is not None}
    params = load_params(params_file, list(overrides or []), data=data, values=typed)
    return params, params_file.resolve().parent


def _choice(name: str, choices: tuple[str, ...]) -> type[Enum]:
    return Enum(name, {c: c for c in choices}, type=str)  # type: ignore[return-value]


def _parameters(task: Task, stage: Stage) -> list[inspect.Parameter]:
    """The command's options, in the order its help lists them."""
    found: list[tuple[str, Any, Any]] = []
    if stage.variants:
        found.append(("variant", _choice(f"{task.name}_{stage.verb}_variant", stage.variants),
                      typer.Option(..., help=stage.variant_help)))
    for option in stage.options:
        kind = _choice(f"{task.name}_{option.name}", option.choices) if option.choices else option.type
        found.append((option.name, Optional[kind], typer.Option(None, help=option.help)))
    if stage.recipe:
        found += [(name, Optional[RECIPE_TYPES[name]], typer.Option(None, help=RECIPE_HELP[name]))
                  for name in RECIPE_KEYS]
    if stage.verb in DEVICE_VERBS:
        found.append(("device", Optional[str], typer.Option(None, help=DEVICE_HELP)))
    found += [
        ("params_file", Path, typer.Option(Path("params.yaml"), "--params",
                                           help="params file; its folder is the project folder")),
        ("overrides", Optional[list[str]], typer.Option(
            None, "--set", metavar="KEY=VALUE",
            help="override one param for this run, e.g. --set common.seed=1 (repeatable)")),
    ]
    return [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=kind)
            for name, kind, default in found]


def run_stage(task: Task, stage: Stage, values: dict[str, Any]) -> Any:
    """Run ``stage`` of ``task`` with the command's option values: they become params overrides and the
    stage function's keyword arguments."""
    values = {k: (v.value if isinstance(v, Enum) else v) for k, v in values.items()}
    if stage.adjust is not None:
        values = stage.adjust(values)
    params_file, overrides = values.pop("params_file"), values.pop("overrides")
    variant = values.pop("variant", None)
    settings: dict[str, Any] = {}
    kwargs: dict[str, Any] = {"variant": variant} if stage.variants else {}
    if stage.recipe:
        base = stage.recipe.format(variant=variant)
        settings.update({f"{base}.{key}": values.pop(name) for name, key in RECIPE_KEYS.items()})
    if "device" in values:
        settings["common.device"] = values.pop("device")
    for option in stage.options:
        value = values.pop(option.name)
        if option.key is not None:
            settings[option.key] = option.convert(value) if option.convert and value is not None else value
        if option.kwarg:
            kwargs[option.name] = value
    params, root = load(params_file, overrides, task, settings)
    from cvflow.params import trace_reads
    from cvflow.tracking import STAGE, check_store, tracking_uri

    if stage.tracked:  # a store that cannot be used says so before any work, not after it
        check_store(tracking_uri(root))
    name = task.stage_name(stage, variant)
    STAGE.set(name)
    trace_reads(params, name)  # with CVFLOW_PARAMS_TRACE set: the params keys the stage reads, written at exit
    if stage.recipe or stage.verb == "pretrain":  # a training stage: on every device of the box (or boxes)?
        from cvflow.stages import launch

        plan = launch.plan(params.common)
        if plan is not None:
            return launch.launch(plan, ARGV.get() or sys.argv[1:], name)
    result = stage.function(params, root, **kwargs)
    if stage.echo_paths:
        for path in result.values():
            typer.echo(str(path))
    return result


def make_command(task: Task, stage: Stage) -> Callable[..., None]:
    """A Typer command for ``stage`` of ``task``: its signature is built from the declaration."""

    def command(**values: Any) -> None:
        run_stage(task, stage, values)

    parameters = _parameters(task, stage)
    command.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in parameters}
    command.__doc__ = stage.help
    command.__name__ = f"{stage.verb}_{(stage.word or task.name).replace('-', '_')}"
    return command


def build_app() -> typer.Typer:
    from cvflow.pipelines import TASKS

    root = typer.Typer(
        name="cvflow",
        help="Dive into Deep Learning's computer-vision chapter as a reproducible pipeline. "
             "Run `dvc repro` for everything, or one stage by hand.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
    )
    groups = {verb: typer.Typer(help=text, no_args_is_help=True) for verb, text in VERBS.items()}
    for task in TASKS:
        for stage in task.stages:
            if stage.top_level:
                root.command(stage.verb)(make_command(task, stage))
            else:
                groups[stage.verb].command(stage.word or task.name)(make_command(task, stage))
    for verb, group in groups.items():
        group.callback()(lambda: None).__doc__ = VERBS[verb]  # a group with one command stays a group
        root.add_typer(group, name=verb, help=VERBS[verb])

    @root.command("dag")
    def dag(check: bool = typer.Option(False, "--check", help="only say whether dvc.yaml is up to date "
                                                               "(exit 1 if not)"),
            out: Path = typer.Option(Path("dvc.yaml"), "--out", help="the file to write")) -> None:
        """Write dvc.yaml from the task declarations: every stage, its code deps found by import analysis."""
        from cvflow.stages.dag import render

        text = render()
        if check:
            same = out.exists() and out.read_text(encoding="utf-8") == text
            typer.echo(f"{out}: " + ("up to date" if same else "out of date; run `cvflow dag`"))
            raise typer.Exit(0 if same else 1)
        from cvflow.fileio import atomic_open

        with atomic_open(out, "w", encoding="utf-8") as handle:
            handle.write(text)
        typer.echo(f"{out}: written")

    def _version(value: bool) -> None:
        if value:
            typer.echo(f"cvflow {__version__}")
            raise typer.Exit()

    @root.callback()
    def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                           help="print the version and exit")) -> None:
        """cvflow stage commands."""

    return root


def _from_ctrl_c(error: BaseException) -> bool:
    """True when ``error`` was caused by a KeyboardInterrupt (Typer turns Ctrl-C into exit code 130)."""
    seen = error.__cause__ or error.__context__
    while seen is not None:
        if isinstance(seen, KeyboardInterrupt):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point."""
    from cvflow.stages.launch import report_in_worker

    catch_interrupts()
    ARGV.set(list(sys.argv[1:] if argv is None else argv))
    try:
        build_app()(args=argv, standalone_mode=True)
    except UserError as error:
        message = " ".join(str(error).split())  # one line, whatever the message held
        if not report_in_worker(UserError(message)):
            click.echo(f"cvflow: error: {message}", err=True)
        return error.exit_code
    except KeyboardInterrupt:
        if not report_in_worker(None):
            click.echo(INTERRUPTED, err=True)
        return 130
    except SystemExit as done:
        if done.code == 130 and _from_ctrl_c(done) and not report_in_worker(None):
            click.echo(INTERRUPTED, err=True)
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
