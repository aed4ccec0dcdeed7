"""Kaggle CIFAR-10 (book 13.13), end to end to a submission file.

Stages (see ``dvc.yaml``)::

    fetch kaggle-cifar10    -> data/kaggle-cifar10/{train,test}/<id>.png, trainLabels.csv
    prepare kaggle-cifar10  -> data/kaggle-cifar10-prepared/{train,valid,train_valid}/<label>/, test/unknown/
    train kaggle-cifar10 --variant train        (on train; valid for model selection)
    train kaggle-cifar10 --variant train_valid  (the same recipe on train + valid, as the book retrains)
    predict kaggle-cifar10  -> data/submissions/kaggle-cifar10.csv (the train_valid model on every test image)
    evaluate kaggle-cifar10 -> metrics/kaggle-cifar10.json (valid accuracy, per class; --labels FILE: the
                               submission's test accuracy)
    submit kaggle-cifar10   -> the Kaggle API (by hand, never from dvc repro)
"""

from __future__ import annotations

from pathlib import Path

from cvflow.console import info
from cvflow.params import Params

COMPETITION = "cifar-10"
LABELS = "trainLabels.csv"


def data_dir(root: Path) -> Path:
    return root / "data" / "kaggle-cifar10"


def prepared_dir(root: Path) -> Path:
    return root / "data" / "kaggle-cifar10-prepared"


def fetch(params: Params, root: Path, source: str | None = None, path: Path | None = None) -> dict:
    from cvflow.data.sources.kaggle import fetch_competition
    from cvflow.data.twins.cifar import generate_kaggle_cifar10

    cfg = params.task("kaggle_cifar10")
    source = source or cfg.data.source
    counts = fetch_competition(
        data_dir(root), source, competition=COMPETITION, hub_key="kaggle_cifar10_tiny", labels_csv=LABELS,
        generate=lambda folder: generate_kaggle_cifar10(folder, cfg.demo.train, cfg.demo.test, cfg.demo.seed),
        path=path or cfg.data.path, hub_url=params.common.hub_url, downloads=root / "data" / "downloads",
    )
    info(f"Kaggle CIFAR-10 ({source}) at {data_dir(root)}: {counts}")
    return counts


def prepare(params: Params, root: Path) -> dict:
    from cvflow.data.sources.kaggle_reorg import reorg_kaggle

    cfg = params.task("kaggle_cifar10")
    source = data_dir(root)
    counts = reorg_kaggle(source / "train", source / LABELS, prepared_dir(root), cfg.valid_ratio,
                          params.common.seed, test_dir=source / "test", mode=cfg.reorg)
    info(f"Kaggle CIFAR-10 reorganised ({cfg.reorg}) at {prepared_dir(root)}")
    return counts


# ----------------------------------------------------------------------------- training, prediction

EXPERIMENT = "kaggle-cifar10"
VARIANTS = ("train", "train_valid")


def run_paths(root: Path, variant: str):
    """Files of the run ``variant``: see :class:`cvflow.engine.run.RunPaths`."""
    from cvflow.engine.run import RunPaths

    return RunPaths(root, EXPERIMENT, variant)


def submission_file(root: Path) -> Path:
    return root / "data" / "submissions" / "kaggle-cifar10.csv"


def metrics_file(root: Path) -> Path:
    return root / "metrics" / "kaggle-cifar10.json"


def _transforms(cfg):
    """The book's 13.13 transform_train and transform_test, on uint8 tensors."""
    import torch
    from torchvision.transforms import v2

    t = cfg.transforms
    finish = [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(t.mean), list(t.std))]
    train = [v2.Resize(t.resize, antialias=True),
             v2.RandomResizedCrop(t.crop, scale=tuple(t.crop_scale), ratio=(1.0, 1.0), antialias=True)]
    if t.hflip:
        train.append(v2.RandomHorizontalFlip())
    return v2.Compose(train + finish), v2.Compose(finish)


def _folder(params: Params, root: Path, split: str, transform, classes=None):
    """A prepared split (``train``, ``valid``, ``train_valid``) as an image folder."""
    from cvflow.data.readers.images import DecodedImageFolder
    from cvflow.errors import UserError

    cfg = params.task("kaggle_cifar10")
    if cfg.reorg != "link":
        raise UserError(f"kaggle_cifar10.{params.profile}.reorg = {cfg.reorg}: training reads the book's folders; "
                        "set it to link and rerun `cvflow prepare kaggle-cifar10`")
    folder = prepared_dir(root) / split
    if not folder.is_dir():
        raise UserError(f"{folder}: missing; run `cvflow prepare kaggle-cifar10` first")
    common = params.common
    return DecodedImageFolder(folder, classes, transform, "error", cache=common.image_cache,
                              cache_max_bytes=common.image_cache_mb * 2**20)


def train(params: Params, root: Path, variant: str) -> dict:
    """The book's 13.13 training: ``train`` (valid for model selection) or ``train_valid`` (the final model)."""
    from cvflow.engine import ClassificationTask
    from cvflow.engine.run import RunSpec, train_run
    from cvflow.errors import UserError
    from cvflow.models.cifar import build_resnet18_cifar
    from cvflow.pipelines.lineage import dvc_digests

    if variant not in VARIANTS:
        raise UserError(f"--variant {variant!r}: use one of {', '.join(VARIANTS)}")
    cfg = params.task("kaggle_cifar10")
    train_tf, test_tf = _transforms(cfg)
    train_set = _folder(params, root, variant, train_tf)
    valid_set = _folder(params, root, "valid", test_tf, train_set.classes) if variant == "train" else None
    arch_kwargs = {"num_classes": len(train_set.classes), "width": cfg.net.width}
    config = {"variant": variant, "recipe": cfg.recipe.model_dump(mode="json"), "seed": params.common.seed,
              "net": cfg.net.model_dump(mode="json"), "transforms": cfg.transforms.model_dump(mode="json"),
              "valid_ratio": cfg.valid_ratio, "data": cfg.data.model_dump(mode="json"),
              "demo": cfg.demo.model_dump(mode="json")}
    prepared = "data/kaggle-cifar10-prepared"
    result = train_run(RunSpec(
        experiment=EXPERIMENT, name=variant, paths=run_paths(root, variant), arch="resnet18_cifar",
        arch_kwargs=arch_kwargs, build=lambda: build_resnet18_cifar(len(train_set.classes), cfg.net.width, cfg.net.init),
        task=ClassificationTask(), train_set=train_set, eval_set=valid_set, recipe=cfg.recipe, config=config,
        inputs={"kaggle-cifar10-prepared": prepared_dir(root)},
        input_digests={"kaggle-cifar10-prepared": dvc_digests(root, prepared).get(prepared, "")},
        classes=train_set.classes, tags={"stage": f"train-kaggle-cifar10-{variant}", "variant": variant},
        meta={"variant": variant}, title=f"Kaggle CIFAR-10: {variant}"), params)
    if result.dist.is_main and "test_acc" in result.final:
        info(f"{variant}: valid accuracy {result.final['test_acc']:.3f} after {len(result.history)} epochs")
    return result.final


def predict(params: Params, root: Path) -> Path:
    """Every test image through the ``train_valid`` model: the checked submission file, logged to its run."""
    from cvflow.data.readers.images import ImageIdFolder
    from cvflow.data.submissions import write_cifar10_submission
    from cvflow.engine import Precision, resolve_device
    from cvflow.engine.predict import predict_labels
    from cvflow.engine.run import resolve_workers
    from cvflow.fileio import sha1sum
    from cvflow.models.files import load_model
    from cvflow.tracking import find_run

    cfg = params.task("kaggle_cifar10")
    model_file = run_paths(root, "train_valid").model
    model, data = load_model(model_file)
    classes = list(data["classes"])
    device = resolve_device(params.common.device)
    test = ImageIdFolder(prepared_dir(root) / "test" / "unknown", _transforms(cfg)[1],
                         cache=params.common.image_cache, cache_max_bytes=params.common.image_cache_mb * 2**20)
    ids, predicted = predict_labels(model, test, batch_size=cfg.recipe.batch_size, device=device,
                                    precision=Precision.resolve(device, params.common.precision),
                                    num_workers=resolve_workers(params.common.num_workers, device))
    sample = data_dir(root) / "sampleSubmission.csv"
    path = write_cifar10_submission(ids, [classes[int(i)] for i in predicted], submission_file(root),
                                    classes=classes, expected_ids=test.ids,
                                    sample_submission=sample if sample.exists() else None)
    tracker = find_run(root, EXPERIMENT, sha1sum(model_file))
    if tracker is not None:
        tracker.log_artifact(path, "submission")
    info(f"submission: {len(ids)} test images -> {path}")
    return path


def evaluate(params: Params, root: Path, labels: Path | None = None) -> dict:
    """Valid accuracy (and per class) of the ``train`` model; with ``labels`` (``id,label`` for the
    test images) also the submission's test accuracy."""
    import torch

    from cvflow.data.submissions import score_submission
    from cvflow.engine import Precision, make_loader, resolve_device
    from cvflow.fileio import sha1sum, write_json
    from cvflow.models.files import load_model
    from cvflow.tracking import find_run

    cfg = params.task("kaggle_cifar10")
    model_file = run_paths(root, "train").model
    model, data = load_model(model_file)
    classes = list(data["classes"])
    device = resolve_device(params.common.device)
    precision = Precision.resolve(device, params.common.precision)
    valid = _folder(params, root, "valid", _transforms(cfg)[1], classes)
    model.to(device).eval()
    predictions = []
    with torch.inference_mode():
        for images, _ in make_loader(valid, 512, train=False):
            with precision.autocast():
                predictions.append(model(images.to(device, non_blocking=True)).argmax(dim=1))
    predicted = torch.cat(predictions).cpu()
    correct = predicted == valid.targets
    results: dict = {"valid_acc": correct.float().mean().item(), "valid_images": len(valid),
                     "valid_acc_per_class": {c: correct[valid.targets == i].float().mean().item()
                                             for i, c in enumerate(classes) if (valid.targets == i).any()}}
    submission = submission_file(root)
    results["submission_rows"] = sum(1 for _ in submission.open(encoding="utf-8")) - 1 if submission.exists() else 0
    if labels is not None:
        scored = score_submission(submission, labels, classes=classes)
        results.update(test_acc=scored["accuracy"], test_scored=scored["scored"],
                       test_acc_per_class=scored["per_class"])
    write_json(metrics_file(root), results)
    tracker = find_run(root, EXPERIMENT, sha1sum(model_file))
    if tracker is not None:
        tracker.log_evaluation({k: v for k, v in results.items() if isinstance(v, float)},
                               step=int(data["meta"].get("epochs", 0)))
    info(f"Kaggle CIFAR-10: valid accuracy {results['valid_acc']:.3f} on {len(valid)} images"
         + (f"; submission test accuracy {results['test_acc']:.3f} on {results['test_scored']} labelled images"
            if labels is not None else ""))
    return results


def submit(params: Params, root: Path, file: Path | None = None, message: str | None = None) -> dict:
    """Send the submission (default ``data/submissions/kaggle-cifar10.csv``) to Kaggle's ``cifar-10``;
    the default message names the git commit and the MLflow run of the model that made the file."""
    from cvflow.data.sources.kaggle import check_submission_file
    from cvflow.fileio import sha1sum
    from cvflow.pipelines.kaggle_submit import submit as send
    from cvflow.tracking import find_run

    check_submission_file(file if file is not None else submission_file(root))  # before any MLflow look-up
    model_file = run_paths(root, "train_valid").model
    run = find_run(root, EXPERIMENT, sha1sum(model_file)) if model_file.exists() else None
    return send(params, root, COMPETITION, submission_file(root).relative_to(root), EXPERIMENT, file=file,
                message=message, run_id=run.run_id if run else None)
