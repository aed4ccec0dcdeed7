"""Hot dog data and weights: every source gives the same layout; weights from every origin."""

from __future__ import annotations

import hashlib
import io
import zipfile

import pytest
import torch
import yaml
from PIL import Image

from cvflow.data.readers.images import DecodedImageFolder, classification_transforms
from cvflow.data.sources import hub
from cvflow.data.sources.hotdog import CLASSES, check_layout, fetch_hotdog
from cvflow.errors import DataError, UserError
from cvflow.models import resnet
from cvflow.params import ImageTransforms
from cvflow.pipelines.hotdog import HotdogDemo
from conftest import run_cvflow, shared, tiny_params
from httpd import FileServer


def _tiny_demo():
    return HotdogDemo(train_per_class=4, test_per_class=3, min_side=40, max_side=90, seed=1)


def test_demo_twin_has_the_real_layout_and_varied_sizes(tmp_path):
    counts = fetch_hotdog(tmp_path / "hotdog", "demo", demo=_tiny_demo())
    assert counts == {"train": {"hotdog": 4, "not-hotdog": 4}, "test": {"hotdog": 3, "not-hotdog": 3}}
    files = sorted((tmp_path / "hotdog").rglob("*.jpg"))
    assert len(files) == 14
    sizes = {Image.open(f).size for f in files}
    assert len(sizes) > 5 and all(40 <= min(s) and max(s) <= 90 for s in sizes)
    assert {Image.open(f).format for f in files} == {"JPEG"}


def test_demo_twin_is_repeatable(tmp_path):
    fetch_hotdog(tmp_path / "a", "demo", demo=_tiny_demo())
    fetch_hotdog(tmp_path / "b", "demo", demo=_tiny_demo())
    digest = lambda root: [hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*.jpg"))]
    assert digest(tmp_path / "a") == digest(tmp_path / "b")


def _hotdog_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for split in ("train", "test"):
            for index, name in enumerate(CLASSES):
                image = io.BytesIO()
                Image.new("RGB", (30 + index, 20), (200, 40 * index, 0)).save(image, "JPEG")
                for i in range(2):
                    archive.writestr(f"hotdog/{split}/{name}/{i}.jpg", image.getvalue())
    return buffer.getvalue()


def test_d2l_source_downloads_verifies_and_unpacks(tmp_path, monkeypatch):
    body = _hotdog_zip()
    monkeypatch.setitem(hub.DATA_HUB, "hotdog", hub.HubFile("hotdog.zip", hashlib.sha1(body).hexdigest()))
    with FileServer() as server:
        server.add("/hotdog.zip", body)
        monkeypatch.setenv("CVFLOW_HUB_URL", server.base_url)
        counts = fetch_hotdog(tmp_path / "hotdog", "d2l", downloads=tmp_path / "downloads")
        assert counts["train"] == {"hotdog": 2, "not-hotdog": 2}
        fetch_hotdog(tmp_path / "hotdog", "d2l", downloads=tmp_path / "downloads")
        assert len(server.requests_for("/hotdog.zip")) == 1  # verified archive never fetched twice


def test_d2l_source_with_a_wrong_file_keeps_nothing(tmp_path, monkeypatch):
    with FileServer() as server:
        server.add("/hotdog.zip", _hotdog_zip())  # not the book's bytes: SHA-1 differs
        monkeypatch.setenv("CVFLOW_HUB_URL", server.base_url)
        with pytest.raises(DataError, match="fba480ffa8aa7e0febbb511d181409f899b9baa5"):
            fetch_hotdog(tmp_path / "hotdog", "d2l", downloads=tmp_path / "downloads")
    assert not (tmp_path / "hotdog").exists() and not list((tmp_path / "downloads").glob("hotdog.zip*"))


def test_local_archive_and_bad_local_folder(tmp_path):
    archive = tmp_path / "mine.zip"
    archive.write_bytes(_hotdog_zip())
    fetch_hotdog(tmp_path / "hotdog", "local", path=archive)
    assert check_layout(tmp_path / "hotdog")["test"] == {"hotdog": 2, "not-hotdog": 2}
    (tmp_path / "empty" / "train").mkdir(parents=True)
    with pytest.raises(DataError, match="does not hold train/ and test/"):
        fetch_hotdog(tmp_path / "hotdog2", "local", path=tmp_path / "empty")


def test_real_photos_through_local_source_hard_links(tmp_path):
    real = shared("hotdog")
    counts = fetch_hotdog(tmp_path / "hotdog", "local", path=real)
    assert counts == {"train": {"hotdog": 100, "not-hotdog": 100}, "test": {"hotdog": 25, "not-hotdog": 25}}
    sample = next((tmp_path / "hotdog" / "train" / "hotdog").iterdir())
    original = real / "train" / "hotdog" / sample.name
    assert sample.read_bytes() == original.read_bytes()


def test_reader_decodes_once_and_reports_corrupt_files(tmp_path):
    fetch_hotdog(tmp_path / "hotdog", "demo", demo=_tiny_demo())
    bad = tmp_path / "hotdog" / "train" / "hotdog" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    cfg = ImageTransforms(train_crop=32, test_resize=40, test_crop=32)
    train_tf, _ = classification_transforms(cfg)
    ds = DecodedImageFolder(tmp_path / "hotdog" / "train", CLASSES, train_tf, on_corrupt="skip")
    assert len(ds) == 8 and bad not in ds.paths
    image, label = ds[0]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32 and label.item() == 0
    assert all(img.dtype == torch.uint8 for img in ds.images)  # decoded once, kept as uint8
    with pytest.raises(DataError, match=r"1 unreadable image\(s\).*broken\.jpg"):
        DecodedImageFolder(tmp_path / "hotdog" / "train", CLASSES, train_tf, on_corrupt="error")


def test_imagenet_weights_offline_give_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(resnet.IMAGENET_WEIGHTS.value, "url", "http://127.0.0.1:9/resnet18-f37072fd.pth")
    with pytest.raises(UserError) as info:
        resnet.imagenet_state_dict("hotdog.real.weights")
    message = str(info.value)
    assert "resnet18-f37072fd.pth" in message and str(tmp_path / "torch") in message
    assert "source, none or a PATH.pth" in message and "\n" not in message


def test_imagenet_weights_from_the_torch_home_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    cached = resnet.imagenet_cache_file()
    assert cached.name == "resnet18-f37072fd.pth" and str(tmp_path) in str(cached)
    cached.parent.mkdir(parents=True)
    reference = resnet.build_resnet18(1000).state_dict()
    torch.save(reference, cached)
    state = resnet.imagenet_state_dict()
    torch.testing.assert_close(state["conv1.weight"], reference["conv1.weight"])


def test_weights_file_and_backbone_checks(tmp_path):
    source = resnet.build_resnet18(7)
    torch.save(source.state_dict(), tmp_path / "mine.pth")
    model = resnet.build_resnet18(2)
    resnet.load_backbone(model, resnet.read_state_dict(tmp_path / "mine.pth"), "mine.pth")
    torch.testing.assert_close(model.layer4[1].conv2.weight, source.layer4[1].conv2.weight)
    head = resnet.replace_head(model, 2)
    assert head.weight.shape == (2, 512) and torch.all(head.bias == 0)
    with pytest.raises(UserError, match="does not exist"):
        resnet.read_state_dict(tmp_path / "missing.pth")
    torch.save({"conv1.weight": torch.zeros(1)}, tmp_path / "other.pth")
    with pytest.raises(UserError, match="not a ResNet-18 state dict"):
        resnet.load_backbone(model, resnet.read_state_dict(tmp_path / "other.pth"), "other.pth")


@pytest.mark.slow
def test_cli_local_real_photos_one_short_epoch(project):
    real = shared("hotdog")
    data = tiny_params()
    data["hotdog"]["demo"]["weights"] = "none"
    (project / "params.yaml").write_text(yaml.safe_dump(data))
    for args in (["fetch", "hotdog", "--source", "local", "--path", str(real)],
                 ["pretrain", "hotdog"],
                 ["train", "hotdog", "--variant", "finetune", "--epochs", "1", "--batch-size", "32"]):
        result = run_cvflow(*args, cwd=project)
        assert result.returncode == 0, result.stderr[-2000:]
    assert "finetune epoch 1/1" in result.stderr
    metrics = yaml.safe_load((project / "metrics" / "hotdog" / "finetune.json").read_text())
    assert metrics["epoch"] == 1
    # the reported accuracy is the saved model's on the 50 test photos, recounted here image by image
    correct, total = _test_accuracy_by_hand(project, data["hotdog"]["demo"]["transforms"])
    assert total == 50 and metrics["test_acc"] == pytest.approx(correct / total, abs=1e-6), (metrics, correct)


def _test_accuracy_by_hand(project, transforms: dict) -> tuple[int, int]:
    """(correct, images) of ``data/models/hotdog/finetune.pt`` on ``data/hotdog/test``: every photo read with PIL,
    put through the book's test transforms (resize, center crop, normalise) and classified one at a time."""
    import numpy as np
    from torchvision.transforms import v2

    import cvflow.models.resnet  # noqa: F401  (registers the architecture the file names)
    from cvflow.models.files import load_model

    model, data = load_model(project / "data" / "models" / "hotdog" / "finetune.pt")
    model.eval()
    tf = v2.Compose([v2.Resize([transforms["test_resize"]] * 2, antialias=True), v2.CenterCrop(transforms["test_crop"]),
                     v2.ToDtype(torch.float32, scale=True), v2.Normalize(transforms["mean"], transforms["std"])])
    correct = total = 0
    with torch.inference_mode():
        for label, name in enumerate(data["classes"]):
            for path in sorted((project / "data" / "hotdog" / "test" / name).glob("*.jpg")):
                pixels = np.array(Image.open(path).convert("RGB"))
                x = tf(torch.from_numpy(pixels).permute(2, 0, 1).contiguous())
                correct += int(model(x[None]).argmax(dim=1).item() == label)
                total += 1
    return correct, total


def test_cli_local_source_without_path_is_a_user_error(project):
    result = run_cvflow("fetch", "hotdog", "--source", "local", cwd=project)
    assert result.returncode == 2 and "--path" in result.stderr and "Traceback" not in result.stderr
