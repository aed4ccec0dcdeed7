"""The chapter in one page: ``cvflow report`` writes ``data/reports/index.html`` (the DAG's last stage).

Each task declares its book sections (:class:`cvflow.pipelines.task.Section`: what the book shows, the
metrics beside the book's printed numbers, the effects to check, pictures, charts, MLflow runs); this
module gathers them in the book's order and renders them with :mod:`cvflow.report`. The page embeds
every picture and chart, loads nothing, and holds no date, path or run id: it is byte-reproducible.

The book's numbers are those its PyTorch notebooks print (d2l 1.0.3, as executed in d2l-ai's
``d2l-pytorch-colab`` repository, "Version 1.0.3"), on the book's data and hardware (GPUs).
"""

from __future__ import annotations

import csv
import json
import operator
import re
from dataclasses import replace
from pathlib import Path
from typing import Any, Mapping

from cvflow.pipelines.task import Effect, Section, Stage, Task

OUT = "data/reports/index.html"
BOOK = "the book (PyTorch, d2l 1.0.3)"
OPS = {">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le}


def _key(number: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", number))


def sections(tasks: tuple[Task, ...]) -> list[tuple[Section, tuple[Task, ...]]]:
    """The tasks' sections in the book's order, each with the tasks that declare it.

    A book section two tasks show (13.1: the CIFAR-10 runs and the augmentation gallery) is declared once by
    its head task and continued by the others (``Section(..., continues=HEAD)``): the page shows the head's
    title and text, then each continuation's text, numbers, effects, pictures, charts and runs, in task order.
    Two sections with one number that do not say so are an error (a typo in a number would otherwise merge two
    book sections silently), as is a continuation of a section its head task does not declare.
    """
    heads: dict[str, tuple[Section, Task]] = {}
    for task in tasks:
        for section in task.report:
            if section.continues is None:
                if section.number in heads:
                    other = heads[section.number][1].name
                    raise ValueError(f"report section {section.number} is declared by tasks {other} and {task.name}: "
                                     f"give the second Section(..., continues={other!r}) to show it as part of "
                                     f"{other}'s, or fix the number")
                heads[section.number] = (section, task)
    merged = {number: (section, (task,)) for number, (section, task) in heads.items()}
    for task in tasks:
        for section in task.report:
            if section.continues is None:
                continue
            head = heads.get(section.number)
            if head is None or head[1].name != section.continues:
                raise ValueError(f"task {task.name}: report section {section.number} continues task "
                                 f"{section.continues!r}, which declares no section {section.number}: name the task "
                                 "that does, or drop continues=")
            if section.title != head[0].title:
                raise ValueError(f"task {task.name}: report section {section.number} continues {section.continues}'s "
                                 f"{head[0].title!r} but is titled {section.title!r}, which the page would not show: "
                                 "use the same title")
            first, owners = merged[section.number]
            merged[section.number] = (replace(
                first, text=" ".join(t for t in (first.text, section.text) if t),
                numbers=first.numbers + section.numbers, effects=first.effects + section.effects,
                pictures=first.pictures + section.pictures, charts=first.charts + section.charts,
                runs=first.runs + section.runs), owners + (task,))
    return [merged[number] for number in sorted(merged, key=_key)]


def _chart(owners: tuple[Task, ...], title: str) -> Mapping[str, Any]:
    """The chart ``title`` of the tasks that declare a section; a KeyError naming it when none has it."""
    for task in owners:
        if title in task.charts:
            return task.charts[title]
    raise KeyError(f"task {', '.join(t.name for t in owners)}: report chart {title!r} is not one of its charts")


def files_read(tasks: tuple[Task, ...]) -> list[str]:
    """Every file the report reads: metrics, pictures and the charts' CSVs (the report stage's data deps)."""
    found: set[str] = set()
    for section, owners in sections(tasks):
        refs = [n.ref for n in section.numbers] + [e.left for e in section.effects]
        refs += [e.right for e in section.effects if isinstance(e.right, str)]
        found.update(ref.split(":", 1)[0] for ref in refs)
        found.update(section.pictures)
        for title in section.charts:
            chart = _chart(owners, title)
            found.update(chart["y"])
    return sorted(found)


def declare(tasks: tuple[Task, ...], declared_in: Mapping[str, str]) -> Task[None]:
    """The report task over ``tasks``; ``declared_in`` maps a task to its declaration's file, whose section
    texts and book numbers the page holds (so they are the stage's deps too)."""
    owners = sorted({declared_in[t.name] for t in tasks if t.report})
    return Task(name="report", title="the chapter in one page", stages=(
        Stage("report", report, f"{OUT}: the chapter's sections (13.1-13.14), this run's numbers beside the "
              "book's, whether each effect holds, the pictures and charts; one self-contained page.",
              top_level=True, deps=tuple(files_read(tasks)) + tuple(owners),
              params=("profile", "common.smoke"), outs=(OUT,)),))


# ----------------------------------------------------------------------------- the stage


class _Values:
    """Values of ``FILE:KEY`` refs, each JSON file read once."""

    def __init__(self, root: Path):
        self.root = root
        self.files: dict[str, Any] = {}

    def get(self, ref: str | float) -> float | None:
        if not isinstance(ref, str):
            return float(ref)
        name, _, key = ref.partition(":")
        if name not in self.files:
            path = self.root / name
            self.files[name] = json.loads(path.read_text(encoding="utf-8")) if path.exists() else None
        value = self.files[name]
        for part in key.split("."):
            if not isinstance(value, dict) or part not in value:
                return None
            value = value[part]
        return float(value) if isinstance(value, (int, float)) else None


def _fmt(value: float | None, fmt: str) -> str:
    return "—" if value is None else format(value, fmt)


def _check(effect: Effect, values: _Values, fmt: str) -> "Any":
    from cvflow.report import Check

    left, right = values.get(effect.left), values.get(effect.right)
    if left is None or right is None:
        return Check(effect.text, None)
    bound = right * effect.factor
    factor = f"{effect.factor:g} x " if effect.factor != 1 else ""
    return Check(effect.text, bool(OPS[effect.op](left, bound)),
                 f"{_fmt(left, fmt)} {effect.op} {factor}{_fmt(right, fmt)}")


def _series(root: Path, chart: Mapping[str, Any]) -> dict[str, tuple[list[float], list[float]]]:
    x = chart.get("x", "step")
    series: dict[str, tuple[list[float], list[float]]] = {}
    for name, columns in chart["y"].items():
        path = root / name
        if not path.exists():
            continue
        with path.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.DictReader(handle))
        stem = Path(name).stem.removesuffix("_history")
        for column in [columns] if isinstance(columns, str) else columns:
            points = [(float(r[x]), float(r[column])) for r in rows if r.get(column) not in (None, "")]
            series[f"{stem} {column}"] = ([p[0] for p in points], [p[1] for p in points])
    return series


def report(params: Any, root: Path) -> Path:
    """Write ``data/reports/index.html`` from the metrics, pictures and charts the pipeline wrote."""
    from cvflow.console import info
    from cvflow.pipelines import TASKS
    from cvflow.plots import line_chart
    from cvflow.report import Part, Picture, Row, write

    values = _Values(root)
    parts = []
    for section, owners in sections(TASKS):
        rows = [Row(n.label, _fmt(values.get(n.ref), n.fmt), _fmt(n.book, n.fmt), n.book_note)
                for n in section.numbers]
        checks = [_check(e, values, next((n.fmt for n in section.numbers if n.ref == e.left), ".3f"))
                  for e in section.effects]
        pictures = [Picture(name, (root / name).read_bytes()) for name in section.pictures
                    if (root / name).exists()]
        for title in section.charts:
            chart = _chart(owners, title)
            series = _series(root, chart)
            if series:
                pictures.append(Picture(f"chart: {title}", line_chart(series, title, chart.get("x", "step"))))
        links = []
        if section.runs:
            runs = ", ".join(section.runs)
            links.append(f"MLflow runs (experiment/run): {runs}. Open them with `mlflow ui --backend-store-uri "
                         "sqlite:///mlflow.db` in the project folder, then the experiment's runs table.")
        missing = [n for n in section.pictures if not (root / n).exists()]
        notes = [f"not drawn in this run: {', '.join(missing)}"] if missing else []
        parts.append(Part(anchor=f"s{section.number.replace('.', '-')}", heading=f"{section.number} {section.title}",
                          text=[section.text], rows=rows, checks=checks, pictures=pictures, links=links, notes=notes))
    smoke = params.common.smoke
    comparable = params.profile == "real" and not smoke
    if smoke:
        banner = ("Smoke switch on (common.smoke): every stage ran for seconds on tiny data. Neither the numbers "
                  "nor the checks mean anything; run `dvc repro` without it.")
    elif params.profile == "real":
        banner = ("Profile real: the book's data sets and recipes. The numbers are comparable to the book's, up to "
                  "randomness, hardware and where a row's note says the measurement differs.")
    else:
        banner = ("Profile demo: generated offline twins of the data sets and small recipes that run in minutes on "
                  "a CPU. These numbers are NOT comparable to the book's (shown for reference); what should hold "
                  "is each section's effect, the checks below. Set `profile: real` for the book's data and recipes.")
    intro = ["What each section of Dive into Deep Learning's computer vision chapter (13.1-13.14) demonstrates, "
             "this run's numbers beside the ones the book prints, whether the book's effect holds in this run, "
             "and the pictures and charts the pipeline drew. `dvc repro` rebuilds it; `dvc plots show` draws the "
             "charts interactively."]
    out = write(root / OUT, "cvflow: the computer vision chapter, reproduced", parts, banner, comparable,
                intro=intro, reference_label=BOOK)
    info(f"report: {len(parts)} sections into {out.relative_to(root)}")
    return out
