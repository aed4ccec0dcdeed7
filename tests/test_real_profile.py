"""The smoke pass: the real profile end to end (issue 17) under the smoke switch, `dvc exp run -S common.smoke=true`
over every stage (the README's install check), in the suite's fresh copy before the demo's repro (`smoke_pass` in
conftest.py; its checks read what the pass left, kept beside the copy).

The paths a GPU user runs (the book's recipes, ImageNet weights, real file layouts) with no network:

* every data set comes from a local copy (`data.source: local`): the real slices in ../shared/data
  where they exist (hot dogs, the book's photos, VOC2012, Kaggle CIFAR-10), the project's own demo
  twins (written by its generators into a temporary folder) for the rest (bananas, torchvision's
  CIFAR-10, Kaggle dog breeds);
* ImageNet weights (ResNet-18, ResNet-34, VGG-19) are stood in by randomly initialised torchvision
  models saved under the file names torchvision downloads them as, in `$TORCH_HOME/hub/checkpoints/`
  (conftest.py's `stand_in_weights`).

Every stage of dvc.yaml must run, the smoke values must reach what the stages wrote, turning the switch off again
must make every stage it touched stale, and both Kaggle submissions must pass the project's own checks with one
row per local test image.
"""

from __future__ import annotations

import csv
import json

import pytest
import yaml

from conftest import KAGGLE_CIFAR10_TEST, imagenet_weights, ran_stages, stage_outputs

pytestmark = pytest.mark.slow


def _rows(path) -> int:
    """The data rows of a CSV file (its header aside)."""
    return len(path.read_text().splitlines()) - 1


def _submission_ids(path) -> list[str]:
    with open(path, newline="") as handle:
        return [row[0] for row in list(csv.reader(handle))[1:]]


def test_the_real_profile_runs_every_stage_on_local_data(smoke_pass, tmp_path):
    run, root, kept, paths, params = smoke_pass.smoke, smoke_pass.root, smoke_pass.kept, smoke_pass.local, \
        smoke_pass.real_params
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    print(f"smoke pass (the real profile) over every stage: {smoke_pass.smoke_seconds:.0f} s")

    # every stage ran, none skipped or cached, and wrote every output: dvc.lock records each, with the real
    # profile's params
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    ran = ran_stages(run.stdout)
    assert ran == set(stages), sorted(set(stages) - ran)
    assert [out for out, written in smoke_pass.written.items() if not written] == [], "outputs missing or empty"
    lock = yaml.safe_load((kept / "dvc.lock").read_text())["stages"]
    assert set(lock) == set(stages), sorted(set(stages) - set(lock))
    assert lock["fetch-hotdog"]["params"]["params.yaml"]["profile"] == "real"
    assert lock["fetch-hotdog"]["params"]["params.yaml"]["hotdog.real.data"]["source"] == "local"

    # what the stages read: the real profile, shrunk by the smoke overlay, with the book's on-the-fly backbone
    from cvflow.pipelines import load_params

    active = load_params(kept / "params.yaml")
    assert active.profile == "real" and active.common.smoke
    assert active.task("kaggle_dogs").views == 0 and active.task("kaggle_dogs").backbone.layer == "output"

    # the ImageNet paths ran (no source model, no random VGG), offline: torchvision downloads only a file its cache
    # lacks, so they loaded the stand-ins that $TORCH_HOME held
    assert sorted(smoke_pass.stand_ins) == sorted(w.url.rsplit("/", 1)[1] for w, _ in imagenet_weights())
    assert params["hotdog"]["real"]["weights"] == "imagenet" and params["voc"]["real"]["weights"] == "imagenet"
    assert params["kaggle_dogs"]["real"]["backbone"]["weights"] == "imagenet"
    assert params["style"]["real"]["net"]["weights"] == "imagenet"

    # the local data was what ran: the real slices' sizes
    hotdog = kept / "data" / "hotdog"
    assert sum(1 for _ in hotdog.rglob("*.jpg")) == sum(1 for _ in paths["hotdog"].rglob("*.jpg"))

    from cvflow.data.submissions import check_dog_submission, score_submission, write_cifar10_submission

    # Kaggle CIFAR-10: one row per local test image, ids in numeric order, every label a class; the
    # project's own writer checks (classes, every test id once) pass on the file as it stands
    cifar_csv = kept / "data" / "submissions" / "kaggle-cifar10.csv"
    test_ids = sorted(int(p.stem) for p in (paths["kaggle_cifar10"] / "test").glob("*.png"))
    with open(cifar_csv, newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["id", "label"]
    assert len(rows) - 1 == len(test_ids) == KAGGLE_CIFAR10_TEST
    assert [int(r[0]) for r in rows[1:]] == test_ids
    classes = sorted({r[1] for r in csv.reader(open(paths["kaggle_cifar10"] / "trainLabels.csv"))} - {"label"})
    write_cifar10_submission([r[0] for r in rows[1:]], [r[1] for r in rows[1:]], tmp_path / "check.csv",
                             classes=classes, expected_ids=test_ids)
    assert (tmp_path / "check.csv").read_bytes() == cifar_csv.read_bytes()
    score = score_submission(cifar_csv, paths["kaggle_cifar10"] / "testLabels.csv", classes=classes)
    assert score["scored"] == KAGGLE_CIFAR10_TEST and 0 <= score["accuracy"] <= 1

    # Kaggle dog breeds: the sample submission's columns and ids, probabilities summing to 1
    dogs_csv = kept / "data" / "submissions" / "kaggle-dogs.csv"
    dog_test_ids = sorted(p.stem for p in (paths["kaggle_dogs"] / "test").glob("*.jpg"))
    checked = check_dog_submission(dogs_csv, sample_submission=paths["kaggle_dogs"] / "sample_submission.csv",
                                   expected_ids=dog_test_ids)
    assert checked == {"rows": len(dog_test_ids), "breeds": 10}
    assert sorted(_submission_ids(dogs_csv)) == dog_test_ids


def test_the_smoke_values_reach_what_the_stages_write(smoke_pass):
    """Epochs and steps are the smoke section's, not the real profile's (each differs from the real value, so each
    check tells them apart), and so is the style transfer's picture size."""
    from PIL import Image

    kept = smoke_pass.kept
    assert smoke_pass.smoke.returncode == 0, smoke_pass.smoke.stderr[-3000:]
    params = smoke_pass.real_params
    smoke, real = params["smoke"], {task: params[task]["real"] for task in params["smoke"]}
    style = json.loads((kept / "metrics" / "style.json").read_text())
    height, width = smoke["style"]["scales"][-1]
    produced_and_smoke_and_real = {
        "hot dog fine-tune epochs": (_rows(kept / "metrics" / "hotdog" / "finetune_history.csv"),
                                     smoke["hotdog"]["finetune"]["epochs"], real["hotdog"]["finetune"]["epochs"]),
        "bananas epochs": (_rows(kept / "metrics" / "bananas" / "tinyssd_history.csv"),
                           smoke["bananas"]["recipe"]["epochs"], real["bananas"]["recipe"]["epochs"]),
        "CIFAR-10 epochs": (_rows(kept / "metrics" / "cifar10-augmentation" / "augment_history.csv"),
                            smoke["cifar10"]["recipe"]["epochs"], real["cifar10"]["recipe"]["epochs"]),
        "Kaggle CIFAR-10 epochs": (_rows(kept / "metrics" / "kaggle-cifar10" / "train_history.csv"),
                                   smoke["kaggle_cifar10"]["recipe"]["epochs"],
                                   real["kaggle_cifar10"]["recipe"]["epochs"]),
        "FCN epochs": (_rows(kept / "metrics" / "voc" / "fcn_history.csv"), smoke["voc"]["recipe"]["epochs"],
                       real["voc"]["recipe"]["epochs"]),
        "Kaggle dogs epochs": (_rows(kept / "metrics" / "kaggle-dogs" / "train_history.csv"),
                               smoke["kaggle_dogs"]["recipe"]["epochs"], real["kaggle_dogs"]["recipe"]["epochs"]),
        "style steps": (style["steps"], smoke["style"]["steps"], real["style"]["steps"]),
        "style history rows": (_rows(kept / "metrics" / "style" / "rainier-autumn-oak_history.csv"),
                               smoke["style"]["steps"], real["style"]["steps"]),
        "style picture size": (Image.open(kept / "data" / "reports" / "style" / "rainier-autumn-oak.png").size,
                               (width, height), tuple(reversed(real["style"]["scales"][-1]))),
    }
    for what, (produced, smoke_value, real_value) in produced_and_smoke_and_real.items():
        assert smoke_value != real_value, f"{what}: the smoke and real values agree, the check tells nothing"
        assert produced == smoke_value, f"{what}: {produced}, not the smoke's {smoke_value}"


def _untouched_by_smoke(smoke: dict) -> set[str]:
    """The stages of the tasks the ``smoke`` section does not name (the book's photos, the figures drawn from
    them), from the declarations: the report reads every task's results, so the smoke switch is its param too."""
    from cvflow.pipelines import TASKS

    return {task.stage_name(stage, variant) for task in TASKS if task.name != "report" and task.key not in smoke
            for stage in task.stages if stage.dvc for variant in (stage.variants or (None,))}


def test_turning_the_smoke_switch_off_makes_every_stage_it_touched_stale(smoke_pass):
    """The smoke switch is a param of every stage whose values it changes (of the smoke section, the keys laid over
    what the stage reads), and the others read what those write: after the smoke pass, `dvc status` with the switch
    off calls exactly the stages that track it changed, and through their outputs every stage of a task the smoke
    section names follows them (a plain `dvc repro` reruns it; none keeps a smoke result). The stages it does not
    touch (the book's photos and the figures drawn from them) track neither the switch nor a smoked output."""
    assert smoke_pass.smoke.returncode == 0, smoke_pass.smoke.stderr[-3000:]
    stages = yaml.safe_load((smoke_pass.root / "dvc.yaml").read_text())["stages"]
    smoked = {name for name, spec in stages.items() if "common.smoke" in spec.get("params", [])}
    assert isinstance(smoke_pass.stale_without_smoke, set), smoke_pass.stale_without_smoke  # else dvc's stderr
    assert smoke_pass.stale_without_smoke == smoked
    followed, grew = set(smoked), True
    while grew:  # the stages reading an output of a stage that reruns rerun too
        outs = [out for name in followed for out in stage_outputs(stages[name])]
        after = followed | {name for name, spec in stages.items()
                            if any(dep == out or dep.startswith(out + "/") for dep in spec.get("deps", []) for out in outs)}
        followed, grew = after, after != followed
    untouched = _untouched_by_smoke(smoke_pass.real_params["smoke"])
    assert untouched and followed == set(stages) - untouched, sorted(set(stages) ^ untouched ^ followed)
