"""The `cvflow` command: every stage of every task, as `cvflow VERB TASK [OPTIONS]`.

Exit codes: 0 done; 2 a user error (bad params, missing data, offline download...), printed as
one line with no traceback; 1 an internal error (a bug: the traceback is shown).
"""

from __future__ import annotations

import sys

import click
import typer

from cvflow import __version__
from cvflow.errors import UserError, catch_interrupts
from cvflow.stages import evaluate, fetch, figures, predict, prepare, pretrain, submit, train
from cvflow.stages import stylize as stylize_stage
from cvflow.stages import features  # 13.14

app = typer.Typer(
    name="cvflow",
    help="Dive into Deep Learning's computer-vision chapter as a reproducible pipeline. "
         "Run `dvc repro` for everything, or one stage by hand.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(fetch.app, name="fetch")
app.add_typer(prepare.app, name="prepare")
app.add_typer(pretrain.app, name="pretrain")
app.add_typer(train.app, name="train")
app.add_typer(evaluate.app, name="evaluate")
app.add_typer(predict.app, name="predict")
app.add_typer(figures.app, name="figures")
app.add_typer(submit.app, name="submit")
app.command("stylize")(stylize_stage.stylize)
app.add_typer(features.app, name="features")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"cvflow {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="print the version and exit")) -> None:
    """cvflow stage commands."""


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
    catch_interrupts()
    try:
        app(args=argv, standalone_mode=True)
    except UserError as error:
        message = " ".join(str(error).split())  # one line, whatever the message held
        click.echo(f"cvflow: error: {message}", err=True)
        return error.exit_code
    except KeyboardInterrupt:
        click.echo("cvflow: interrupted; rerun the same command to resume from the last checkpoint", err=True)
        return 130
    except SystemExit as done:
        if done.code == 130 and _from_ctrl_c(done):
            click.echo("cvflow: interrupted; rerun the same command to resume from the last checkpoint", err=True)
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
