"""The pictures for people: training curves with any metric, and a baseline drawn when given."""

from __future__ import annotations

import warnings

from PIL import Image

from cvflow.plots import training_curves


def _history(metric: str, epochs: int = 3, baseline: bool = False) -> list[dict]:
    rows = []
    for epoch in range(1, epochs + 1):
        row = {"epoch": epoch, "train_loss": 1.0 / epoch, "test_loss": 1.2 / epoch,
               f"train_{metric}": 0.1 * epoch, f"test_{metric}": 0.09 * epoch}
        if baseline:
            row[f"test_{metric}_baseline"] = 0.5
        rows.append(row)
    return rows


def _width(path) -> int:
    return Image.open(path).size[0]


def test_curves_of_a_detection_metric_with_its_baseline(tmp_path, monkeypatch):
    import matplotlib.axes

    plotted: list[str] = []
    original = matplotlib.axes.Axes.plot

    def spy(self, *args, **kwargs):
        plotted.append(kwargs.get("label", ""))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "plot", spy)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. matplotlib's "no artists with labels" for an empty panel
        path = training_curves({"tinyssd": _history("class_err", baseline=True)}, tmp_path / "c.png",
                               "TinySSD", metric="class_err", metric_label="anchor class error")
    assert _width(path) > 300
    assert plotted == ["tinyssd train_loss", "tinyssd test_loss", "tinyssd train_class_err",
                       "tinyssd test_class_err", "tinyssd test_class_err_baseline"]


def test_curves_default_to_accuracy_one_colour_per_run(tmp_path, monkeypatch):
    import matplotlib.axes

    colours: dict[str, str] = {}
    original = matplotlib.axes.Axes.plot

    def spy(self, *args, **kwargs):
        colours[kwargs["label"]] = kwargs["color"]
        return original(self, *args, **kwargs)

    monkeypatch.setattr(matplotlib.axes.Axes, "plot", spy)
    training_curves({"a": _history("acc"), "b": _history("acc")}, tmp_path / "c.png")
    assert set(colours) == {f"{run} {split}_{key}" for run in "ab" for split in ("train", "test")
                            for key in ("loss", "acc")}
    assert colours["a train_acc"] == colours["a test_loss"] != colours["b test_acc"]
