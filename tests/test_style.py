"""Neural style transfer (13.12): the book's losses, the targets computed once, resume, `cvflow stylize`."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml
from PIL import Image

from cvflow import style as S
from cvflow.errors import UserError
from cvflow.models import vgg
from conftest import REPO


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny tensors: one thread (two threads on a shared 2-core machine spend their time waiting on each other)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ----------------------------------------------------------------------------- the book's code, verbatim
# d2l-en chapter_computer-vision/neural-style.md, PyTorch tab: the reference the library must equal.

def book_content_loss(Y_hat, Y):
    return torch.square(Y_hat - Y.detach()).mean()


def book_gram(X):
    num_channels, n = X.shape[1], X.numel() // X.shape[1]
    X = X.reshape((num_channels, n))
    return torch.matmul(X, X.T) / (num_channels * n)


def book_style_loss(Y_hat, gram_Y):
    return torch.square(book_gram(Y_hat) - gram_Y.detach()).mean()


def book_tv_loss(Y_hat):
    return 0.5 * (torch.abs(Y_hat[:, :, 1:, :] - Y_hat[:, :, :-1, :]).mean() +
                  torch.abs(Y_hat[:, :, :, 1:] - Y_hat[:, :, :, :-1]).mean())


content_weight, style_weight, tv_weight = 1, 1e3, 10


def book_compute_loss(X, contents_Y_hat, styles_Y_hat, contents_Y, styles_Y_gram):
    contents_l = [book_content_loss(Y_hat, Y) * content_weight for Y_hat, Y in zip(
        contents_Y_hat, contents_Y)]
    styles_l = [book_style_loss(Y_hat, Y) * style_weight for Y_hat, Y in zip(
        styles_Y_hat, styles_Y_gram)]
    tv_l = book_tv_loss(X) * tv_weight
    l = sum(10 * styles_l + contents_l + [tv_l])
    return contents_l, styles_l, tv_l, l


# ----------------------------------------------------------------------------- the losses


def test_gram_on_a_known_tensor():
    X = torch.tensor([[[[1.0, 2.0]], [[3.0, 4.0]]]])  # 1 x 2 channels x 1 x 2 positions
    expected = torch.tensor([[1 + 4, 3 + 8], [3 + 8, 9 + 16]]) / (2 * 2)
    torch.testing.assert_close(S.gram(X), expected)
    Y = torch.randn(1, 7, 5, 6, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(S.gram(Y), book_gram(Y), rtol=0, atol=0)


def test_losses_equal_the_books_formulas():
    g = torch.Generator().manual_seed(0)
    Y_hat, Y = torch.randn(1, 8, 6, 9, generator=g), torch.randn(1, 8, 6, 9, generator=g)
    X = torch.randn(1, 3, 11, 13, generator=g)
    assert S.content_loss(Y_hat, Y) == book_content_loss(Y_hat, Y)
    assert S.style_loss(Y_hat, book_gram(Y)) == book_style_loss(Y_hat, book_gram(Y))
    assert S.tv_loss(X) == book_tv_loss(X)
    # known values: a horizontal ramp has TV 0.5 * (0 + 1); constant features have content loss 0
    ramp = torch.arange(4.0).expand(1, 1, 3, 4)
    assert S.tv_loss(ramp).item() == 0.5
    assert S.content_loss(Y, Y).item() == 0.0


def test_total_loss_at_the_books_weights_is_the_books_sum_with_its_tenfold_style_list():
    g = torch.Generator().manual_seed(2)
    X = torch.randn(1, 3, 12, 16, generator=g)
    contents_Y_hat, contents_Y = [torch.randn(1, 4, 3, 4, generator=g)], [torch.randn(1, 4, 3, 4, generator=g)]
    styles_Y_hat = [torch.randn(1, c, 6, 8, generator=g) for c in (2, 4, 8)]
    styles_Y_gram = [book_gram(torch.randn(1, c, 6, 8, generator=g)) for c in (2, 4, 8)]
    book = book_compute_loss(X, contents_Y_hat, styles_Y_hat, contents_Y, styles_Y_gram)
    ours = S.compute_loss(X, contents_Y_hat, styles_Y_hat, contents_Y, styles_Y_gram, *S.BOOK_WEIGHTS)
    torch.testing.assert_close(ours[3], book[3], rtol=1e-6, atol=0)
    # each weight scales its own term, as the formula l = cw * sum(content) + sw * sum(style) + tw * tv says
    content = sum(book_content_loss(a, b) for a, b in zip(contents_Y_hat, contents_Y))
    style = sum(book_style_loss(a, b) for a, b in zip(styles_Y_hat, styles_Y_gram))
    tv = book_tv_loss(X)
    for cw, sw, tw in [(1, 0, 0), (0, 1, 0), (0, 0, 1), (2.5, 300.0, 7.0), (1, 2e4, 10), (1, 1e4, 10)]:
        c, st, t, total = S.compute_loss(X, contents_Y_hat, styles_Y_hat, contents_Y, styles_Y_gram, cw, sw, tw)
        torch.testing.assert_close(sum(c), cw * content, rtol=1e-6, atol=1e-12)
        torch.testing.assert_close(sum(st), sw * style, rtol=1e-6, atol=1e-12)
        torch.testing.assert_close(t, tw * tv, rtol=1e-6, atol=1e-12)
        torch.testing.assert_close(total, cw * content + sw * style + tw * tv, rtol=1e-6, atol=1e-12)
    torch.testing.assert_close(sum(ours[1]), 10 * sum(book[1]), rtol=1e-6, atol=0)  # the reported style term
    # the written 1e3 without the ten-fold list is another loss: the test tells them apart
    written = S.compute_loss(X, contents_Y_hat, styles_Y_hat, contents_Y, styles_Y_gram, 1, 1e3, 10)
    assert not torch.isclose(written[3], book[3], rtol=1e-3)


# ----------------------------------------------------------------------------- the network


def test_vgg19_layout_keeps_the_books_layer_indices():
    net = vgg.vgg19_features("random", width=8, upto=28)
    assert len(net) == 29 and not any(p.requires_grad for p in net.parameters())
    for index in S.STYLE_LAYERS + S.CONTENT_LAYERS:
        assert isinstance(net[index], torch.nn.Conv2d)
    assert [net[i].out_channels for i in S.STYLE_LAYERS] == [8, 16, 32, 64, 64]  # 64, 128, 256, 512, 512 / 8
    assert isinstance(net[4], torch.nn.MaxPool2d) and isinstance(net[27], torch.nn.MaxPool2d)


def test_imagenet_vgg_offline_gives_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(vgg.IMAGENET_WEIGHTS.value, "url", "http://127.0.0.1:9/vgg19-dcbb9e9d.pth")
    with pytest.raises(UserError) as info:
        vgg.vgg19_features("imagenet", setting="style.real.net.weights")
    message = str(info.value)
    assert "vgg19-dcbb9e9d.pth" in message and str(tmp_path / "torch") in message
    assert "style.real.net.weights to random or a PATH.pth" in message and "\n" not in message


def test_vgg_weights_from_a_file(tmp_path):
    torch.manual_seed(3)
    source = vgg.vgg19_features("random", width=4)
    torch.save({f"features.{k}": v for k, v in source.state_dict().items()}, tmp_path / "mine.pth")
    loaded = vgg.vgg19_features(str(tmp_path / "mine.pth"), width=4, upto=28)
    torch.testing.assert_close(loaded[28].weight, source[28].weight)
    with pytest.raises(UserError, match="not a VGG-19 state dict of this width"):
        vgg.vgg19_features(str(tmp_path / "mine.pth"), width=8)


# ----------------------------------------------------------------------------- the optimisation


def _photos():
    g = torch.Generator().manual_seed(5)
    content = (torch.rand(3, 40, 60, generator=g) * 255).byte().permute(1, 2, 0).numpy()
    style = (torch.rand(3, 50, 40, generator=g) * 255).byte().permute(1, 2, 0).numpy()
    return Image.fromarray(content), Image.fromarray(style)


def _transfer(name="adam", checkpoint=None, steps=(3, 4), every=2, fingerprint="f"):
    torch.manual_seed(0)
    net = vgg.vgg19_features("random", width=4, upto=28)
    optim = SimpleNamespace(name=name, lr=0.1 if name == "adam" else 1.0, step_size=2, gamma=0.8, history_size=10,
                            line_search=None)
    return S.StyleTransfer(net, (1.0, 1e4, 0.1), optim, [(32, 48), (48, 64)][:len(steps)], list(steps),
                           checkpoint_path=checkpoint, fingerprint=fingerprint, checkpoint_every=every)


def test_targets_are_computed_once_per_scale_not_in_the_loop():
    content, style = _photos()
    transfer = _transfer(steps=(3, 4))
    calls = []
    transfer.net[0].register_forward_hook(lambda module, inputs, output: calls.append(inputs[0].requires_grad))
    transfer.run(content, style)
    # per scale: the content and the style image once (no gradient); per step: the synthesized image
    assert calls.count(False) == 2 * 2
    assert calls.count(True) == 3 + 4
    assert len(transfer.history) == 7 and [r["scale"] for r in transfer.history] == [1, 1, 1, 2, 2, 2, 2]
    first = transfer.history[0]
    assert first["content_loss"] == 0.0 and first["style_loss"] > 0  # it starts as the content image (the book)


class _Stop:
    def __init__(self, at: int):
        self.at = at

    def on_rows(self, rows):
        if rows[-1]["step"] == self.at:
            raise KeyboardInterrupt


@pytest.mark.parametrize("name", ["adam", "lbfgs"])
@pytest.mark.parametrize("stop_at", [3, 5])  # 3: the end of the first scale; 5: inside the second
def test_an_interrupted_optimisation_resumes_to_the_same_image(tmp_path, name, stop_at):
    content, style = _photos()
    whole = _transfer(name)
    expected = whole.run(content, style)

    checkpoint = tmp_path / "style.pt"
    first = _transfer(name, checkpoint)
    with pytest.raises(KeyboardInterrupt):
        first.run(content, style, callbacks=[_Stop(stop_at)])
    assert checkpoint.exists()

    second = _transfer(name, checkpoint)
    assert second.resume() == {}
    assert len(second.history) == stop_at
    result = second.run(content, style)
    torch.testing.assert_close(result, expected, rtol=0, atol=0)
    assert [r["total_loss"] for r in second.history] == [r["total_loss"] for r in whole.history]

    other = _transfer(name, checkpoint, fingerprint="other settings")
    assert other.resume() is None  # a checkpoint of another run is not resumed


# ----------------------------------------------------------------------------- measures


def test_colour_histogram_distance_and_ssim():
    red = torch.zeros(3, 32, 32)
    red[0] = 1.0
    blue = torch.zeros(3, 32, 32)
    blue[2] = 1.0
    assert S.histogram_distance(red, red) == 0.0 and S.histogram_distance(red, blue) == 1.0
    half = red.clone()
    half[:, :16] = blue[:, :16]
    assert S.histogram_distance(half, blue) == pytest.approx(0.5)
    assert S.ssim(half, half) == pytest.approx(1.0)


# ----------------------------------------------------------------------------- the command


def _project(tmp_path: Path, **demo) -> Path:
    data = yaml.safe_load((REPO / "params.yaml").read_text())
    data["style"]["demo"].update(net={"weights": "random", "width": 4}, scales=[[32, 48]], steps=4,
                                 checkpoint_every=2, snapshot_every=2, **demo)
    root = tmp_path / "project"
    root.mkdir()
    (root / "params.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return root


def _cvflow(root: Path, *args: str, capsys) -> tuple[int, str]:
    from cvflow.stages.cli import main

    try:
        code = main(["stylize", "--params", str(root / "params.yaml"), *args])
    except SystemExit as done:
        code = done.code
    return code, capsys.readouterr().err


def test_stylize_refuses_bad_images_in_one_line(tmp_path, capsys):
    root = _project(tmp_path)
    good = tmp_path / "good.png"
    Image.new("RGB", (64, 48), "orange").save(good)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    tiny = tmp_path / "tiny.png"
    Image.new("RGB", (20, 64), "blue").save(tiny)
    cases = [
        (["--content", str(tmp_path / "missing.jpg"), "--style", str(good)], "missing.jpg: no such file"),
        (["--content", str(good), "--style", str(broken)], "broken.jpg: not a readable image"),
        (["--content", str(tiny), "--style", str(good)], "tiny.png: 20x64 pixels is too small"),
        (["--content", str(good)], "--content and --style go together"),
        ([], "run `cvflow fetch photos`"),  # the stage's photos not fetched in this project
        (["--size", "300by450"], "--size '300by450': give HEIGHTxWIDTH"),
        (["--size", "16x24"], "every side must be 32 to 8192 pixels"),
    ]
    for args, expected in cases:
        code, err = _cvflow(root, *args, capsys=capsys)
        assert code == 2, (args, err)
        lines = err.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0] and lines[0].startswith("cvflow: error: "), err


def test_stylize_own_photos_tracks_every_step_and_the_pictures(tmp_path, capsys, mlflow_uri, monkeypatch):
    from mlflow.tracking import MlflowClient

    root = _project(tmp_path)
    content, style = _photos()
    content.save(tmp_path / "mine.png")
    style.save(tmp_path / "paint.png")
    monkeypatch.chdir(tmp_path)
    code, err = _cvflow(root, "--content", "mine.png", "--style", "paint.png", capsys=capsys)
    assert code == 0, err
    out = tmp_path / "mine-in-the-style-of-paint.png"
    assert Image.open(out).size == (48, 32)
    assert not (root / "metrics" / "style.json").exists()  # your photos: the DVC stage's files stay untouched
    client = MlflowClient(mlflow_uri)
    run = client.search_runs([client.get_experiment_by_name("style").experiment_id])[0]
    assert run.info.status == "FINISHED" and run.info.run_name == "mine-paint"
    for key in ("content_loss", "style_loss", "tv_loss", "total_loss"):
        assert [m.step for m in client.get_metric_history(run.info.run_id, key)] == [1, 2, 3, 4]
    progress = [a.path for a in client.list_artifacts(run.info.run_id, "progress")]
    assert progress == ["progress/step_00002.png", "progress/step_00004.png"]
    assert not (root / "data" / "checkpoints" / "style" / "mine-paint.pt").exists()  # finished: deleted


def test_the_demo_network_carries_the_style_of_the_real_photos():
    """The demo's random-weight VGG-19 (1/4 width) on the book's real photos: the colours move to the style
    image's (histogram distance falls) while the scene stays (SSIM to the content far above the style
    image's own): measures the loss does not optimise."""
    from conftest import shared

    from cvflow.pipelines import load_params
    from cvflow.pipelines.style.stylizing import read_photo

    content = read_photo(shared("d2l-img", "rainier.jpg"), "")
    style = read_photo(shared("d2l-img", "autumn-oak.jpg"), "")
    cfg = load_params(REPO / "params.yaml").style.demo
    torch.manual_seed(0)
    net = vgg.vgg19_features(cfg.net.weights, cfg.net.width, upto=28)
    shape = (64, 96)
    transfer = S.StyleTransfer(net, (cfg.loss.content_weight, cfg.loss.style_weight, cfg.loss.tv_weight), cfg.optim,
                               [shape], [60], checkpoint_every=60)
    result = S.to_unit(transfer.run(content, style))
    content_u, style_u = S.to_unit(S.preprocess(content, shape)), S.to_unit(S.preprocess(style, shape))
    before, after = S.histogram_distance(content_u, style_u), S.histogram_distance(result, style_u)
    assert after < before - 0.15, (before, after)
    assert S.ssim(result, content_u) > S.ssim(style_u, content_u) + 0.15
