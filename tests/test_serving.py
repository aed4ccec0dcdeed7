"""19.4: the demo's registered models served by a real `mlflow models serve`, asked by real HTTP requests.

Each test starts `mlflow models serve -m models:/NAME/VERSION --env-manager local` (the version holding the
project's model file) on a free loopback port, on
the MLflow store of the demo's `dvc repro` (`demo_repo`, after tests/test_e2e_dvc.py's checks), and sends
JSON requests of decoded images, uint8 ``N x H x W x 3`` as a user has them (PIL), as
``{"inputs": [...]}``. The hot dog model must give every test image the label `cvflow evaluate` gave it
(``metrics/hotdog/finetune_test_predictions.csv``), so its accuracy is the one in ``metrics/hotdog.json``;
TinySSD answers boxes in the image's pixels on a banana; the FCN a class mask at the input's size.
A small classifier logged here (tests/test_served_model.py's ``log_classifier``, no `dvc repro`) shows what a
server refuses (issue 25, item 4): HTTP 400 with a one-line reason, never a 500 nor a traceback.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import free_port
from test_served_model import log_classifier

pytestmark = pytest.mark.slow


@contextmanager
def served(root: Path, env: dict, model_uri: str, timeout: float = 300):
    """`mlflow models serve` of ``model_uri`` (the demo's store) on a free loopback port: its base URL."""
    port = free_port()
    log_path = root.parent / f"serve-{port}.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "models", "serve", "-m", model_uri, "--env-manager", "local",
             "--host", "127.0.0.1", "--port", str(port)],
            cwd=root, env={**env, "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}",
                           # MLflow starts `uvicorn` by name: the one beside this interpreter
                           "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])},
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{url}/ping", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow models serve did not start: {log_path.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)


def registered(root: Path, name: str, model_file: str) -> str:
    """``models:/NAME/V``: the registered version of ``name`` holding the project's model file now (its SHA-1 tag).
    Other e2e checks retrain models in this copy (a new file, a new version), so version 1 may be an older one."""
    from mlflow.tracking import MlflowClient

    from cvflow.fileio import sha1sum

    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    sha1 = sha1sum(root / "data" / "models" / model_file)
    (version,) = client.search_model_versions(f"name = '{name}' and tags.model_sha1 = '{sha1}'")
    return f"models:/{name}/{version.version}"


def ask(url: str, images: np.ndarray, params: dict | None = None):
    """POST /invocations with ``images`` (uint8 N x H x W x 3) as MLflow's tensor input; the predictions."""
    body = {"inputs": images.tolist(), **({"params": params} if params else {})}
    request = urllib.request.Request(f"{url}/invocations", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as answer:
        return json.loads(answer.read())["predictions"]


def refused(url: str, inputs) -> tuple[int, dict]:
    """POST /invocations with ``{"inputs": inputs}`` that the server must refuse: the status and the JSON answer."""
    request = urllib.request.Request(f"{url}/invocations", data=json.dumps({"inputs": inputs}).encode(),
                                     headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=120)
    return caught.value.code, json.loads(caught.value.read())


def decoded(path: Path) -> np.ndarray:
    """One image file as a user decodes it: PIL, RGB, uint8 H x W x 3, as a batch of one."""
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.uint8)[None]


def test_the_served_hotdog_model_labels_every_test_image_as_evaluate_does(demo_repo):
    root, env, _, _ = demo_repo
    with (root / "metrics" / "hotdog" / "finetune_test_predictions.csv").open() as handle:
        evaluated = list(csv.DictReader(handle))
    test = root / "data" / "hotdog" / "test"
    assert len(evaluated) == sum(1 for _ in test.rglob("*.jpg"))  # every test image, once
    with served(root, env, registered(root, "hotdog-finetune", "hotdog/finetune.pt")) as url:
        answers = [ask(url, decoded(test / row["file"]))[0] for row in evaluated]
    assert set(answers[0]) == {"label", "hotdog", "not-hotdog"}
    assert all(abs(a["hotdog"] + a["not-hotdog"] - 1) < 1e-6 for a in answers)
    assert [a["label"] for a in answers] == [row["prediction"] for row in evaluated]
    accuracy = sum(a["label"] == row["label"] for a, row in zip(answers, evaluated)) / len(evaluated)
    metrics = json.loads((root / "metrics" / "hotdog.json").read_text())
    print(f"served hotdog-finetune: accuracy {accuracy:.4f} on {len(evaluated)} test images "
          f"(metrics/hotdog.json: {metrics['finetune']['test_acc']:.4f})")
    assert accuracy == pytest.approx(metrics["finetune"]["test_acc"], abs=1e-6)  # stored as a float32


def _iou(a, b) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def test_the_served_tinyssd_finds_the_banana_in_pixels(demo_repo):
    root, env, _, _ = demo_repo
    val = root / "data" / "banana-detection" / "bananas_val"
    with (val / "label.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    with served(root, env, registered(root, "bananas-tinyssd", "bananas/tinyssd.pt")) as url:
        found = []
        for row in rows[:4]:
            image = decoded(val / "images" / row["img_name"])
            boxes = ask(url, image)
            everything = ask(url, image, {"conf_threshold": 0.0})  # a parameter of the call
            assert len(everything) >= len(boxes)
            height, width = image.shape[1:3]
            for box in boxes:
                assert box["label"] == "banana" and box["image"] == 0 and box["score"] >= 0.5
                assert 0 <= box["xmin"] < box["xmax"] <= width and 0 <= box["ymin"] < box["ymax"] <= height
            truth = [float(row[k]) for k in ("xmin", "ymin", "xmax", "ymax")]
            found.append(max((_iou([b[k] for k in ("xmin", "ymin", "xmax", "ymax")], truth) for b in boxes),
                             default=0.0))
    assert sum(iou >= 0.5 for iou in found) >= 3, found  # the demo's mAP@0.5 is about 0.85


def test_the_served_fcn_answers_evaluates_mask_at_the_input_size(demo_repo):
    import torch

    from cvflow.data.readers.voc import VOCSegDataset
    from cvflow.models.files import load_model
    import cvflow.models.fcn  # noqa: F401  (registers the architecture)

    root, env, _, _ = demo_repo
    val = VOCSegDataset(root / "data" / "voc", "val", crop_size=None)  # as `cvflow evaluate voc` reads it
    image = val.images[0].permute(1, 2, 0).numpy()[None]  # the decoded JPEG, uint8 1 x H x W x 3
    with served(root, env, registered(root, "voc-fcn", "voc/fcn.pt")) as url:
        mask = np.asarray(ask(url, image))
        two = ask(url, np.concatenate([image, image[:, :, ::-1]]))  # a batch of two, the second mirrored
    assert mask.shape == image.shape[:3] and mask.min() >= 0 and mask.max() < 21
    assert np.asarray(two).shape == (2, *image.shape[1:3])
    model, _ = load_model(root / "data" / "models" / "voc" / "fcn.pt")
    with torch.inference_mode():  # the evaluation's prediction of the same image
        expected = model.eval()(val[0][0][None]).argmax(dim=1).numpy()
    assert (mask == expected).mean() > 0.999


def test_a_server_refuses_a_bad_request_with_400_and_one_line(tmp_path):
    """A zero-sized image, a bare H x W x 3 image, an empty batch and a request over the pixel cap (set small in the
    server's environment) each get HTTP 400 and INVALID_PARAMETER_VALUE; a request at the cap is answered. MLflow's
    server puts the parsed data's repr before the model's reason (``Failed to predict data '...'. Error: <reason>``):
    the reason is the message's last line."""
    root = tmp_path / "project"
    model_uri, _ = log_classifier(root)
    rng = np.random.default_rng(0)
    with served(root, {**os.environ, "CVFLOW_SERVE_MAX_PIXELS": "100"}, model_uri) as url:
        (answer,) = ask(url, rng.integers(0, 256, (1, 10, 10, 3), dtype=np.uint8))  # 100 pixels: at the cap
        assert answer["label"] in ("cat", "dog")
        status, body = refused(url, rng.integers(0, 256, (1, 11, 10, 3), dtype=np.uint8).tolist())
        assert status == 400 and body["error_code"] == "INVALID_PARAMETER_VALUE", body
        assert body["message"].splitlines()[-1] == (
            "Error: an image of 11 x 10 = 110 pixels is over the served model's cap of 100 pixels per request: send a "
            "smaller image, or raise the cap with CVFLOW_SERVE_MAX_PIXELS=<pixels> in the environment that loads "
            "the model")
        status, body = refused(url, rng.integers(0, 256, (2, 8, 8, 3), dtype=np.uint8).tolist())
        assert status == 400 and "a batch of 2 images of 8 x 8 = 128 pixels in all" in body["message"], body
        # JSON cannot carry a zero-sized image's channels ([[[], ...]] is 1 x 5 x 0), an empty batch's image size
        # ([] stays a list), nor a single image's batch axis: MLflow's signature refuses each before the model runs
        shape = "Shape of input {} does not match expected shape (-1, -1, -1, 3)."
        for inputs, says in (([[[] for _ in range(5)]], shape.format("(1, 5, 0)")),
                             (rng.integers(0, 256, (6, 7, 3), dtype=np.uint8).tolist(), shape.format("(6, 7, 3)")),
                             ([], "but an input of type <class 'list'> was found.")):
            status, body = refused(url, inputs)
            assert status == 400 and body["error_class"] == "SCHEMA_ENFORCEMENT_FAILED", body
            assert body["message"].splitlines()[-1].endswith(says), body
