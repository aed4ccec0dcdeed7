"""End to end: `dvc repro` of the demo in a temporary copy of the repository.

This is the README's main command on the real demo params (not shrunk): fine-tune must beat
scratch, TinySSD must beat the all-background class error and reach the stated mAP@0.5, the
committed dvc.lock must come out unchanged (every output reproduced to the byte, so `git status`
is clean), a second `dvc repro` must run nothing, and editing one learning rate or the demo twins'
raster module must invalidate exactly the stages that depend on it.

It runs in the fresh copy the smoke pass ran in just before (`demo_repo` in conftest.py, after `smoke_pass`,
tests/test_real_profile.py): the demo's `dvc repro` must rerun every stage, none restored from the smoke's.
"""

from __future__ import annotations

import json
import math
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from conftest import ran_stages, variants

#: hot dog's runs, as its declaration has them (fine-tune, scratch, the linear probe)
HOTDOG = variants("hotdog")

pytestmark = pytest.mark.slow


def _run(args, cwd, env, timeout=1800):
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def test_repro_runs_every_stage_after_the_smoke_pass(demo_repo):
    """After the smoke pass (the real profile, smoke-sized, in the same copy), the demo's repro reruns every stage:
    none is skipped or restored from the smoke pass's run cache (what the smoke switch makes stale on its own is
    tests/test_real_profile.py's)."""
    root, _, _, first = demo_repo
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    assert ran_stages(first.stdout) == set(stages), sorted(set(stages) - ran_stages(first.stdout))
    assert "skipping run" not in first.stdout, first.stdout[-3000:]


def machine() -> dict[str, str]:
    """What decides the bits of float training on a CPU: the vendor and the instruction set torch's kernels
    use (oneDNN and MKL dispatch on both; an AVX512 AMD machine and another x86 machine train the same
    seeded network to slightly different weights)."""
    import platform

    import torch

    vendor = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        vendor = next((line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                       if line.startswith("vendor_id")), "")
    return {"machine": platform.machine(), "cpu_vendor": vendor,
            "cpu_capability": torch.backends.cpu.get_cpu_capability(), "torch": torch.__version__.split("+")[0]}


LOCK_MACHINE = Path(__file__).with_name("lock_machine.json")  # the machine kind the committed dvc.lock came from


def test_repro_reproduces_the_committed_lock_to_the_byte(demo_repo):
    """Outputs hold results only (no timings, run ids or absolute paths): the fresh repro of the committed
    code gives the committed dvc.lock, and `git status` is clean, on the kind of machine that wrote it
    (tests/lock_machine.json). Float training is bit-exact only for the same CPU vendor and instruction
    set (PyTorch's own reproducibility notes say as much across platforms); elsewhere every command, code
    and params hash, every generated data set and every output's path must still match, and only outputs
    computed by float training (models, their metrics, pictures and what follows from them) may differ."""
    root, env, _, _ = demo_repo
    committed = json.loads(LOCK_MACHINE.read_text())
    if machine() == committed:
        status = _run(["git", "status", "--porcelain"], root, env)
        assert status.returncode == 0 and status.stdout == "", \
            status.stdout + _run(["git", "diff"], root, env).stdout[-3000:]
        return
    old = yaml.safe_load(_run(["git", "show", "HEAD:dvc.lock"], root, env).stdout)["stages"]
    new = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    assert set(old) == set(new)
    trained = {"pretrain", "train", "evaluate", "predict", "features", "stylize", "report"}
    for name in new:
        assert new[name]["cmd"] == old[name]["cmd"] and new[name].get("params") == old[name].get("params"), name
        produced = {o["path"] for stage in new.values() for o in stage.get("outs", [])}
        for dep_old, dep_new in zip(old[name].get("deps", []), new[name].get("deps", [])):
            assert dep_old["path"] == dep_new["path"], name
            if dep_old["path"] not in produced and not any(dep_old["path"].startswith(p + "/") for p in produced):
                assert dep_old["md5"] == dep_new["md5"], (name, dep_old["path"])  # code: the same bytes
        assert [o["path"] for o in old[name].get("outs", [])] == [o["path"] for o in new[name].get("outs", [])]
        if name.split("-")[0] not in trained:  # fetched, generated and drawn without training: bit-exact
            assert old[name].get("outs") == new[name].get("outs"), name


def _test_accuracy_independently(root: Path, variant: str) -> float:
    """The model's test accuracy, computed here from its model file on the test images decoded and
    transformed by torchvision here, not by cvflow's evaluation (the served model's agreement with the
    evaluation is tests/test_serving.py's)."""
    import torch
    from PIL import Image
    from torchvision.transforms import v2

    from cvflow.models.files import load_model
    import cvflow.models.resnet  # noqa: F401  (registers the architecture)

    model = load_model(root / "data" / "models" / "hotdog" / f"{variant}.pt")[0].eval()
    cfg = yaml.safe_load((root / "params.yaml").read_text())["hotdog"]["demo"]["transforms"]
    transform = v2.Compose([v2.PILToTensor(), v2.Resize([cfg["test_resize"]] * 2, antialias=True),
                            v2.CenterCrop(cfg["test_crop"]), v2.ToDtype(torch.float32, scale=True),
                            v2.Normalize(cfg["mean"], cfg["std"])])
    correct = total = 0
    for label, name in enumerate(("hotdog", "not-hotdog")):
        files = sorted((root / "data" / "hotdog" / "test" / name).glob("*.jpg"))
        images = torch.stack([transform(Image.open(f).convert("RGB")) for f in files])
        with torch.inference_mode():
            correct += int((model(images).argmax(dim=1) == label).sum())
        total += len(files)
    return correct / total


#: 19.3: the chapter's final models, registered under what they are (the others are logged with their runs only)
REGISTERED = {**{f"hotdog-{variant}": f"hotdog/{variant}" for variant in HOTDOG},
              "cifar10-augment": "cifar10-augmentation/augment", "cifar10-no-augment": "cifar10-augmentation/no-augment",
              "kaggle-cifar10-train_valid": "kaggle-cifar10/train_valid",
              "kaggle-dogs-train_valid": "kaggle-dogs/train_valid", "bananas-tinyssd": "bananas/tinyssd",
              "voc-fcn": "voc/fcn"}


def test_the_final_models_are_registered_once_each_by_their_files_sha1(demo_repo):
    from cvflow.fileio import sha1sum

    root, _, _, _ = demo_repo
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    assert {m.name for m in client.search_registered_models()} == set(REGISTERED)
    for name, model in REGISTERED.items():
        (version,) = client.search_model_versions(f"name = '{name}'")
        assert version.tags["model_sha1"] == sha1sum(root / "data" / "models" / f"{model}.pt"), name
        assert client.get_run(version.run_id).data.tags["model_sha1"] == version.tags["model_sha1"]


def test_repro_builds_hotdog_and_finetune_beats_scratch(demo_repo):
    root, _, _, _ = demo_repo
    metrics = json.loads((root / "metrics" / "hotdog.json").read_text())
    # the book's effect: pretrained features beat training the same net from scratch
    assert metrics["finetune"]["test_acc"] >= metrics["scratch"]["test_acc"] + 0.05, metrics
    assert metrics["finetune"]["test_acc"] >= 0.7, metrics
    for variant in HOTDOG:  # what evaluate reports is what the trained model scores
        assert metrics[variant]["test_acc"] == pytest.approx(_test_accuracy_independently(root, variant), abs=0.011)
    for name in ("curves.png", "finetune_curves.png", *(f"{variant}_predictions.png" for variant in HOTDOG)):
        assert (root / "data" / "reports" / "hotdog" / name).stat().st_size > 1000
    history = (root / "metrics" / "hotdog" / "finetune_history.csv").read_text().splitlines()
    assert history[0].startswith("epoch,") and len(history) == 1 + yaml.safe_load(
        (root / "params.yaml").read_text())["hotdog"]["demo"]["finetune"]["epochs"]
    # the linear probe kept the source's body as it was: every tensor but the head, BatchNorm statistics included
    import torch
    from cvflow.models.files import load_model

    models = root / "data" / "models" / "hotdog"
    source, probe = (load_model(models / f"{name}.pt")[0].state_dict() for name in ("source", "probe"))
    assert [k for k, v in source.items() if not k.startswith("fc.") and not torch.equal(probe[k], v)] == []


def test_mlflow_has_every_run_with_curves_model_and_data(demo_repo):
    root, _, _, _ = demo_repo
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("hotdog")
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert set(runs) == {*HOTDOG, "source"}
    lock = yaml.safe_load((root / "dvc.lock").read_text())["stages"]
    data_md5 = next(o["md5"] for o in lock["fetch-hotdog"]["outs"] if o["path"] == "data/hotdog")
    demo = yaml.safe_load((root / "params.yaml").read_text())["hotdog"]["demo"]
    for variant in (*HOTDOG, "source"):
        run = runs[variant]
        assert run.info.status == "FINISHED"
        artifacts = {a.path for folder in ("plots", "metrics") for a in client.list_artifacts(run.info.run_id, folder)}
        assert {f"plots/{variant}_curves.png", f"metrics/{variant}.json"} <= artifacts
        logged = client.search_logged_models([experiment.experiment_id],
                                             filter_string=f"source_run_id='{run.info.run_id}'")
        assert [m.name for m in logged] == [f"hotdog-{variant}"]  # named for what it is
        assert {"device", "precision", "world_size", "model_sha1"} <= set(run.data.tags)
        assert "mlflow.source.git.commit" in run.data.tags
    for variant in HOTDOG:
        run = runs[variant]
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "test_acc")]
        assert steps == list(range(1, demo[variant]["epochs"] + 1))
        assert f"plots/{variant}_predictions.png" in {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
        assert run.data.params["run.recipe.optim.lr"]
        # the data the run trained on, by its DVC hash: the Dataset column of the runs table
        assert [(d.dataset.name, d.dataset.digest) for d in run.inputs.dataset_inputs] == \
            [("hotdog", data_md5.removesuffix(".dir"))]


#: The demo TinySSD's stated detection quality on the generated bananas_val (measured 0.892).
DEMO_BANANAS_MAP_50 = 0.7


def test_repro_trains_tinyssd_past_the_all_background_bar(demo_repo):
    """The issue's bar: class error below predicting background everywhere, and a stated mAP@0.5."""
    root, _, _, _ = demo_repo
    metrics = json.loads((root / "metrics" / "bananas.json").read_text())
    assert metrics["val_class_err_baseline"] > 0, metrics
    assert metrics["val_class_err"] < 0.8 * metrics["val_class_err_baseline"], metrics
    assert metrics["map_50"] >= DEMO_BANANAS_MAP_50, metrics
    assert 0 < metrics["map"] < metrics["map_50"], metrics
    recipe = yaml.safe_load((root / "params.yaml").read_text())["bananas"]["demo"]
    assert metrics["val_images"] == recipe["demo"]["test"]
    history = (root / "metrics" / "bananas" / "tinyssd_history.csv").read_text().splitlines()
    assert "test_class_err_baseline" in history[0] and len(history) == 1 + recipe["recipe"]["epochs"]
    for name in ("tinyssd_curves.png", "predictions.png"):
        assert (root / "data" / "reports" / "bananas" / name).stat().st_size > 1000
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    run = client.search_runs([client.get_experiment_by_name("bananas").experiment_id])[0]
    assert run.info.status == "FINISHED"
    assert run.data.metrics["eval_map_50"] == pytest.approx(metrics["map_50"])
    assert run.data.params["run.prior_prob"] == str(recipe["prior_prob"])
    assert {a.path for a in client.list_artifacts(run.info.run_id, "plots")} >= {"plots/tinyssd_curves.png",
                                                                                  "plots/predictions.png"}


def test_repro_shows_that_augmentation_helps(demo_repo):
    """13.1's point on the demo: the same net, seed and schedule test better with the book's flip."""
    root, _, _, _ = demo_repo
    metrics = json.loads((root / "metrics" / "cifar10-augmentation.json").read_text())
    assert metrics["augment"]["test_acc"] >= metrics["no_augment"]["test_acc"] + 0.02, metrics
    assert metrics["augment"]["test_acc"] >= 0.5, metrics  # far above the 0.1 of guessing
    params = yaml.safe_load((root / "params.yaml").read_text())["cifar10"]["demo"]
    assert metrics["test_images"] == params["demo"]["test"]
    for name in ("overview.png", "flip_left_right.png", "combination.png"):
        assert (root / "data" / "reports" / "augmentation" / name).stat().st_size > 1000


def test_repro_writes_the_kaggle_cifar10_submission(demo_repo):
    root, _, _, _ = demo_repo
    rows = (root / "data" / "submissions" / "kaggle-cifar10.csv").read_text().splitlines()
    test_ids = sorted(int(p.stem) for p in (root / "data" / "kaggle-cifar10" / "test").glob("*.png"))
    assert rows[0] == "id,label" and [int(r.split(",")[0]) for r in rows[1:]] == test_ids
    metrics = json.loads((root / "metrics" / "kaggle-cifar10.json").read_text())
    assert metrics["submission_rows"] == len(test_ids) == yaml.safe_load(
        (root / "params.yaml").read_text())["kaggle_cifar10"]["demo"]["demo"]["test"]
    assert metrics["valid_acc"] >= 0.4, metrics  # ten classes: guessing scores 0.1


def test_repro_writes_the_kaggle_dogs_submission_and_beats_guessing(demo_repo):
    """13.14 on the demo: the head on the stand-in backbone's cached features scores a valid log loss well
    under ln(breeds) (measured 1.28 against 2.30), and the submission holds a softmax row per test image."""
    root, _, _, _ = demo_repo
    params = yaml.safe_load((root / "params.yaml").read_text())["kaggle_dogs"]["demo"]
    metrics = json.loads((root / "metrics" / "kaggle-dogs.json").read_text())
    assert metrics["uniform_log_loss"] == pytest.approx(math.log(params["demo"]["breeds"]))
    assert metrics["valid_log_loss"] <= 0.75 * metrics["uniform_log_loss"], metrics
    assert metrics["valid_acc"] >= 0.3, metrics  # ten breeds: guessing scores 0.1
    rows = [r.split(",") for r in (root / "data" / "submissions" / "kaggle-dogs.csv").read_text().splitlines()]
    sample = (root / "data" / "kaggle-dogs" / "sample_submission.csv").read_text().splitlines()
    assert ",".join(rows[0]) == sample[0] and len(rows) - 1 == params["demo"]["test"] == metrics["submission_rows"]
    assert sorted(r[0] for r in rows[1:]) == sorted(p.stem for p in (root / "data" / "kaggle-dogs" / "test").glob("*.jpg"))
    assert all(abs(sum(map(float, r[1:])) - 1) < 1e-6 for r in rows[1:])
    history = (root / "metrics" / "kaggle-dogs" / "train_history.csv").read_text().splitlines()
    assert "test_loss" in history[0] and len(history) == 1 + params["recipe"]["epochs"]


def test_repro_writes_the_report_with_every_section_and_every_effect_holding(demo_repo):
    """18.3: data/reports/index.html has the 14 book sections with this run's numbers beside the book's,
    and in the demo every effect the book demonstrates holds (item 4: nothing lost to a faster run)."""
    from test_report import BOOK_SECTIONS, _Sections

    root, _, _, _ = demo_repo
    page = _Sections()
    page.feed((root / "data" / "reports" / "index.html").read_text(encoding="utf-8"))
    assert [v["heading"].split()[0] for v in page.found.values()] == BOOK_SECTIONS
    from cvflow.pipelines import CHAPTER
    from cvflow.pipelines.report import sections

    checks = [check for v in page.found.values() for check in v["checks"]]
    assert len(checks) == sum(len(s.effects) for s, _ in sections(CHAPTER)) == 11
    assert all(check.startswith("holds:") for check in checks), checks
    hotdog = page.found["s13-2"]["cells"]
    metrics = json.loads((root / "metrics" / "hotdog.json").read_text())
    assert hotdog[:3] == ["fine-tune: test accuracy", f"{metrics['finetune']['test_acc']:.3f}", "0.940"]


def test_second_repro_runs_nothing(demo_repo):
    root, env, dvc, _ = demo_repo
    second = _run([*dvc, "repro"], root, env)
    assert second.returncode == 0, second.stderr
    assert "Running stage" not in second.stdout, second.stdout
    status = _run([*dvc, "status", "--json"], root, env)
    assert json.loads(status.stdout) == {}


def test_metrics_and_plots_are_readable_by_dvc(demo_repo):
    root, env, dvc, _ = demo_repo
    shown = _run([*dvc, "metrics", "show", "--json"], root, env)
    assert shown.returncode == 0 and "finetune_minus_scratch" in shown.stdout
    plots = _run([*dvc, "plots", "show", "--json"], root, env)
    assert plots.returncode == 0 and "map_50" in shown.stdout
    # the book's comparisons, one chart each, and nothing else (no per-file duplicates)
    charts = json.loads(plots.stdout)["data"]
    defined = [next(iter(p)) for p in yaml.safe_load((root / "dvc.yaml").read_text())["plots"]]
    assert list(charts) == defined
    overlaid = {title: {v.get("filename") for v in chart[0]["content"]["data"]["values"]}  # one file: no filename
                for title, chart in charts.items()}
    assert overlaid["hotdog test accuracy per epoch"] == {f"{variant}_history.csv" for variant in HOTDOG}
    assert overlaid["CIFAR-10 test accuracy per epoch, with and without augmentation (13.1)"] == \
        {"augment_history.csv", "no-augment_history.csv"}


@contextmanager
def _params_edited(root: Path, change):
    """params.yaml with ``change(data)`` applied, put back as it was afterwards."""
    params_file = root / "params.yaml"
    original = params_file.read_text()
    data = yaml.safe_load(original)
    change(data)
    params_file.write_text(yaml.safe_dump(data, sort_keys=False))
    try:
        yield
    finally:
        params_file.write_text(original)


def _stale(root, env, dvc) -> set[str]:
    status = _run([*dvc, "status", "--json"], root, env)
    assert status.returncode == 0, status.stderr
    return set(json.loads(status.stdout))


def test_changing_the_bananas_threshold_reruns_predict_and_the_served_model(demo_repo):
    """The confidence threshold redraws the picture and is the served model's default (25.3: train-bananas logs
    it with the model it registers, so it is a param of that stage too); it re-fetches nothing."""
    root, env, dvc, _ = demo_repo
    before = _stale(root, env, dvc)
    with _params_edited(root, lambda data: data["bananas"]["demo"].update(conf_threshold=0.75)):
        assert _stale(root, env, dvc) - before == {"predict-bananas", "train-bananas"}


def test_changing_finetune_lr_reruns_only_finetune_and_evaluate(demo_repo):
    root, env, dvc, _ = demo_repo

    def change(data):
        data["hotdog"]["demo"]["finetune"]["optim"]["lr"] *= 2
        data["hotdog"]["real"]["scratch"]["optim"]["lr"] *= 2  # the inactive profile: no effect

    with _params_edited(root, change):
        assert _stale(root, env, dvc) == {"train-hotdog-finetune"}  # the only stage whose inputs changed
        rerun = _run([*dvc, "repro"], root, env)
        assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
        ran = {line.split("'")[1] for line in rerun.stdout.splitlines() if line.startswith("Running stage")}
        # and the report, whose page shows the new numbers
        assert ran == {"train-hotdog-finetune", "evaluate-hotdog", "report"}, rerun.stdout


@pytest.mark.parametrize("module, expected", [
    # the demo twins share one raster module: the stages that generate data with it (and the source
    # pretraining, which renders its set with it), and nothing else
    ("twins/raster.py", {"fetch-hotdog", "pretrain-hotdog", "fetch-photos", "fetch-bananas", "fetch-voc",
                         "fetch-cifar10", "fetch-kaggle-cifar10", "fetch-kaggle-dogs"}),
    ("detection/boxes.py", {"figures-anchors", "train-bananas", "evaluate-bananas", "predict-bananas"}),
    ("models/fcn.py", {"train-voc", "evaluate-voc", "figures-upsampling"}),
    ("style.py", {"stylize"}),
])
def test_editing_a_library_file_makes_exactly_the_stages_that_run_it_stale(demo_repo, module, expected):
    """DVC itself, after the demo repro: a comment appended to a library file makes stale the stages whose
    commands run it (those dvc.yaml lists it for), and no other."""
    root, env, dvc, _ = demo_repo
    path = root / "src" / "cvflow" / module
    original = path.read_text()
    before = _stale(root, env, dvc)
    path.write_text(original + "\n# an edit\n")
    try:
        stale = _stale(root, env, dvc) - before
    finally:
        path.write_text(original)
    listed = {name for name, spec in yaml.safe_load((root / "dvc.yaml").read_text())["stages"].items()
              if f"src/cvflow/{module}" in spec.get("deps", [])}
    assert stale == expected == listed, (stale, listed)


def test_repro_stylizes_the_photos_and_tracks_every_step(demo_repo):
    """13.12: the demo's image carries the style by measures its loss does not optimise (the colour
    histogram moves to the style image's, the scene keeps far more structure than the style image
    has in common with it), and MLflow holds every step's losses and the progress pictures."""
    root, _, _, _ = demo_repo
    metrics = json.loads((root / "metrics" / "style.json").read_text())
    colour, ssim = metrics["colour_hist_distance_to_style"], metrics["ssim_to_content"]
    assert colour["final"] < colour["start"] - 0.1, metrics
    assert ssim["final"] > ssim["style_image"] + 0.2, metrics
    assert metrics["final"]["total_loss"] < 0.05 * metrics["start"]["total_loss"], metrics
    cfg = yaml.safe_load((root / "params.yaml").read_text())["style"]["demo"]
    assert metrics["steps"] == cfg["steps"] and metrics["image_shape"] == cfg["scales"][-1]
    for name in ("rainier-autumn-oak.png", "rainier-autumn-oak_panel.png"):
        assert (root / "data" / "reports" / "style" / name).stat().st_size > 1000
    history = (root / "metrics" / "style" / "rainier-autumn-oak_history.csv").read_text().splitlines()
    assert history[0].startswith("step,") and len(history) == 1 + cfg["steps"]
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("style").experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name == "rainier-autumn-oak"
    steps = [m.step for m in client.get_metric_history(run.info.run_id, "style_loss")]
    assert steps == list(range(1, cfg["steps"] + 1))
    progress = [a.path for a in client.list_artifacts(run.info.run_id, "progress")]
    assert len(progress) == cfg["steps"] // cfg["snapshot_every"]
    assert {"images/rainier-autumn-oak.png", "images/rainier-autumn-oak_panel.png"} <= \
        {a.path for a in client.list_artifacts(run.info.run_id, "images")}
