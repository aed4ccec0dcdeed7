"""`cvflow report`: one self-contained page with a section per book section (13.1-13.14), this run's numbers
beside the book's, whether each effect holds, and the pictures and charts, byte for byte the same for the same
inputs. The demo's page, with every effect holding, is checked in tests/test_e2e_dvc.py."""

from __future__ import annotations

import json
import re
import struct
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml

from cvflow.pipelines import CHAPTER, TASKS, load_params
from cvflow.pipelines.report import OUT, files_read, report, sections
from cvflow.pipelines.task import Effect, Number, Section, Task
from conftest import REPO, variants
from test_plots_offline import _Page

BOOK_SECTIONS = [f"13.{n}" for n in range(1, 15)]


def _png(width: int = 4, height: int = 3, shade: int = 0) -> bytes:
    """A real (tiny, grey) PNG: the report embeds whatever PNG bytes the stages wrote."""
    raw = b"".join(b"\x00" + bytes([shade]) * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def _set(data: dict, key: str, value: float) -> None:
    *parents, last = key.split(".")
    for part in parents:
        data = data.setdefault(part, {})
    data[last] = value


def _fake_outputs(root: Path, value) -> None:
    """Every file the report reads, as the stages would write them: JSON values from ``value(ref)``,
    PNG pictures, history CSVs with the charts' columns."""
    metrics: dict[str, dict] = {}
    for section, owners in sections(CHAPTER):
        for ref in [n.ref for n in section.numbers] + [e.left for e in section.effects] + \
                [e.right for e in section.effects if isinstance(e.right, str)]:
            name, _, key = ref.partition(":")
            _set(metrics.setdefault(name, {}), key, value(ref))
        for title in section.charts:
            chart = next(t.charts[title] for t in owners if title in t.charts)
            for name, columns in chart["y"].items():
                columns = [columns] if isinstance(columns, str) else columns
                x = chart.get("x", "step")
                rows = [",".join([x, *columns])] + [",".join([str(i), *(f"{0.1 * i + j:.2f}" for j, _ in
                                                                          enumerate(columns))]) for i in range(1, 4)]
                (root / name).parent.mkdir(parents=True, exist_ok=True)
                (root / name).write_text("\n".join(rows) + "\n")
        for picture in section.pictures:
            (root / picture).parent.mkdir(parents=True, exist_ok=True)
            (root / picture).write_bytes(_png())
    for name, data in metrics.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(json.dumps(data))


def _params(root: Path, **common):
    data = yaml.safe_load((REPO / "params.yaml").read_text())
    data["common"].update(common)
    (root / "params.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return load_params(root / "params.yaml")


def _holding(effect: Effect) -> dict[str, float]:
    """Values of an effect's refs that make it hold (the larger side larger, the smaller smaller)."""
    big, small = 0.9, 0.1
    if effect.op in (">", ">="):
        return {effect.left: big if not isinstance(effect.right, float) else effect.right + 0.2,
                **({effect.right: small / effect.factor} if isinstance(effect.right, str) else {})}
    return {effect.left: small if not isinstance(effect.right, float) else effect.right - 0.05,
            **({effect.right: big} if isinstance(effect.right, str) else {})}


def _values(flip: str | None = None):
    """A value for every ref: the effects hold, except the one whose text is ``flip``."""
    chosen: dict[str, float] = {}
    for section, _ in sections(CHAPTER):
        for effect in section.effects:
            values = _holding(effect)
            if effect.text == flip:
                values = {ref: -value if ref == effect.left else value for ref, value in values.items()}
                values[effect.left] = 10.0 if effect.op in ("<", "<=") else -10.0
            chosen.update(values)
    return lambda ref: chosen.get(ref, 0.5)


class _Sections(HTMLParser):
    """The page's sections: heading, table cells, check lines and image sources."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: dict[str, dict] = {}
        self.current: dict | None = None
        self._field: str | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self.current = {"heading": "", "cells": [], "checks": [], "images": []}
            self.found[attrs["id"]] = self.current
        elif self.current is not None:
            if tag == "h2":
                self._field = "heading"
            elif tag == "td":
                self.current["cells"].append("")
                self._field = "cell"
            elif tag == "li":
                self.current["checks"].append(attrs.get("class", "") + ":")
                self._field = "check"
            elif tag == "img":
                self.current["images"].append(attrs["src"])

    def handle_endtag(self, tag):
        if tag in ("h2", "td", "li"):
            self._field = None
        if tag == "section":
            self.current = None

    def handle_data(self, data):
        if self.current is None or self._field is None:
            return
        if self._field == "heading":
            self.current["heading"] += data
        elif self._field == "cell":
            self.current["cells"][-1] += data
        else:
            self.current["checks"][-1] += data


def _page(root: Path) -> _Sections:
    parser = _Sections()
    parser.feed((root / OUT).read_text(encoding="utf-8"))
    return parser


# ----------------------------------------------------------------------------- the declarations


def test_every_book_section_is_declared_once_in_the_books_order():
    assert [section.number for section, _ in sections(CHAPTER)] == BOOK_SECTIONS


def test_the_report_stage_is_the_dags_last_and_reads_only_what_stages_write():
    stage = TASKS[-1].stages[0]
    assert (TASKS[-1].name, stage.verb, stage.top_level) == ("report", "report", True)
    written = {path for task in CHAPTER for s in task.stages for path in (*s.outs, *s.metrics) if "{" not in path}
    written |= {path.format(variant=v) for task in CHAPTER for s in task.stages for v in s.variants
                for path in (*s.outs, *s.metrics) if "{" in path}
    for path in files_read(CHAPTER):
        assert path in written or any(path.startswith(out + "/") for out in written), \
            f"the report reads {path}, which no stage writes"
    dvc = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    assert list(dvc)[-1] == "report"
    assert set(files_read(CHAPTER)) <= set(dvc["report"]["deps"])
    # the declarations hold the page's texts and book numbers: an edit to one reruns the report
    assert {"pipelines/hotdog/__init__.py", "pipelines/voc/__init__.py", "pipelines/anchors/__init__.py"} <= set(dvc["report"]["deps"])


def test_a_report_chart_must_be_one_of_its_tasks_charts():
    task = Task(name="t", stages=(), report=(Section("13.1", "x", "y", charts=("no such chart",)),))
    with pytest.raises(KeyError, match="no such chart"):
        files_read((task,))


def _two(first: Section, second: Section) -> tuple[Task, Task]:
    return (Task(name="a", stages=(), report=(first,)),
            Task(name="b", stages=(), report=(second,)))


def test_two_tasks_sections_of_one_number_must_say_which_continues_which():
    """A typo in a book number must not merge two sections silently: the second says ``continues=``."""
    with pytest.raises(ValueError, match=r"13\.1 is declared by tasks a and b: give the second "
                                         r"Section\(\.\.\., continues='a'\)"):
        sections(_two(Section("13.1", "Image augmentation", "x"), Section("13.1", "Image augmentation", "y")))


def test_a_continuation_follows_its_head_whatever_the_task_order():
    head = Section("13.1", "Image augmentation", "runs.", numbers=(Number("acc", "m.json:acc"),), pictures=("a.png",))
    more = Section("13.1", "Image augmentation", "gallery.", pictures=("b.png",), continues="b")
    ((section, owners),) = sections(_two(more, head))  # the continuing task comes first in the task list
    assert (section.title, section.text, section.pictures) == ("Image augmentation", "runs. gallery.",
                                                               ("a.png", "b.png"))
    assert [t.name for t in owners] == ["b", "a"] and section.numbers == head.numbers


def test_a_continuation_must_name_the_task_of_that_section_and_keep_its_title():
    with pytest.raises(ValueError, match="task b: report section 13.1 continues task 'c', which declares no section"):
        sections(_two(Section("13.1", "Image augmentation", "x"), Section("13.1", "Image augmentation", "y",
                                                                           continues="c")))
    with pytest.raises(ValueError, match="use the same title"):
        sections(_two(Section("13.1", "Image augmentation", "x"), Section("13.1", "Gallery", "y", continues="a")))


# ----------------------------------------------------------------------------- the page


def test_the_page_has_every_section_numbers_and_books_and_loads_nothing(tmp_path):
    params = _params(tmp_path)
    _fake_outputs(tmp_path, _values())
    report(params, tmp_path)
    page = _page(tmp_path)
    assert [v["heading"].split()[0] for v in page.found.values()] == BOOK_SECTIONS
    hotdog = page.found["s13-2"]
    assert hotdog["cells"][:3] == ["fine-tune: test accuracy", "0.900", "0.940"]  # this run's, then the book's
    assert all(check.startswith("holds:") for v in page.found.values() for check in v["checks"])
    assert sum(len(v["checks"]) for v in page.found.values()) == sum(len(s.effects) for s, _ in sections(CHAPTER))
    # the linear probe beside them: this run's number, none from the book (which does not run it)
    row = hotdog["cells"].index("linear probe: test accuracy")
    assert hotdog["cells"][row + 1:row + 3] == ["0.500", "—"]
    # every picture and chart embedded: a prediction grid per hot dog variant + its 2 charts in 13.2
    (section,) = next(t for t in TASKS if t.name == "hotdog").report
    assert len(section.pictures) == len(variants("hotdog")) and len(section.charts) == 2
    assert len(hotdog["images"]) == len(variants("hotdog")) + 2
    assert all(src.startswith("data:image/png;base64,") for src in hotdog["images"])
    text = (tmp_path / OUT).read_text(encoding="utf-8")
    fetching = _Page()
    fetching.feed(text)
    loads = [(tag, attr, value) for tag, attr, value in fetching.fetching
             if not value.startswith(("data:", "#"))]
    assert loads == [], f"the report loads {loads}"
    assert "NOT comparable" in text and "Profile demo" in text
    assert str(tmp_path) not in text  # no absolute path


def test_an_effect_that_fails_in_this_run_is_shown_as_not_holding(tmp_path):
    params = _params(tmp_path)
    effect = "fine-tuning beats training from scratch on the test images"
    _fake_outputs(tmp_path, _values(flip=effect))
    report(params, tmp_path)
    checks = _page(tmp_path).found["s13-2"]["checks"]
    assert checks == [f"fails:✗ does not hold: {effect} (-10.000 > 0.100)"]


def test_a_missing_metric_is_not_measured_not_a_crash(tmp_path):
    params = _params(tmp_path)
    _fake_outputs(tmp_path, _values())
    (tmp_path / "metrics" / "voc.json").unlink()
    report(params, tmp_path)
    voc = _page(tmp_path).found["s13-11"]
    assert voc["cells"][1] == "—" and all(check.startswith("unknown:") for check in voc["checks"])


def test_the_page_is_byte_reproducible_and_says_when_numbers_mean_nothing(tmp_path):
    params = _params(tmp_path)
    _fake_outputs(tmp_path, _values())
    first = report(params, tmp_path).read_bytes()
    second = report(params, tmp_path).read_bytes()
    assert first == second
    smoke = report(_params(tmp_path, smoke=True), tmp_path).read_text(encoding="utf-8")
    assert "Smoke switch on" in smoke and "NOT comparable" not in smoke


def test_the_book_numbers_are_the_books_printed_ones():
    """The book's values as its PyTorch notebooks print them (d2l 1.0.3): a typo here would misreport."""
    book = {n.ref: n.book for s, _ in sections(CHAPTER) for n in s.numbers if n.book is not None}
    assert book["metrics/hotdog.json:finetune.test_acc"] == 0.940
    assert book["metrics/hotdog.json:scratch.test_acc"] == 0.850
    assert book["metrics/cifar10-augmentation.json:augment.test_acc"] == 0.810
    assert book["metrics/bananas/tinyssd.json:train_class_err"] == 3.27e-3
    assert book["metrics/bananas/tinyssd.json:train_bbox_mae"] == 3.08e-3
    assert book["metrics/voc.json:pixel_acc"] == 0.852
    assert book["metrics/kaggle-cifar10.json:valid_acc"] == 0.438
    assert book["metrics/kaggle-dogs.json:valid_log_loss"] == 1.545
    assert all(isinstance(n, Number) for s, _ in sections(CHAPTER) for n in s.numbers)
    assert all(re.fullmatch(r"[^:]+\.json:[\w.-]+", n.ref) for s, _ in sections(CHAPTER) for n in s.numbers)
