"""Semantic segmentation library (book 13.9-13.11): transposed convolution, the bilinear kernel, the FCN,
the crop filter, the boundary (255) rules, and the metrics against torchmetrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F
from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex
from torchvision import tv_tensors

from cvflow.data.readers.voc import IGNORE_INDEX, VOCSegDataset, voc_transforms
from cvflow.twins.voc import generate_voc
from cvflow.errors import DataError, ParamsError
from cvflow.pipelines import load_params
from cvflow.segmentation import (
    FCN,
    SegmentationTask,
    bilinear_kernel,
    bilinear_upsampler,
    fcn_resnet18,
    kernel2matrix,
    label2image,
    score_images,
    trans_conv,
)
from conftest import REPO

# ----------------------------------------------------------------------------- 13.10 transposed convolution

BOOK_X = torch.tensor([[0.0, 1.0], [2.0, 3.0]])
BOOK_K = torch.tensor([[0.0, 1.0], [2.0, 3.0]])


def _tconv(K: torch.Tensor, **kwargs) -> nn.ConvTranspose2d:
    layer = nn.ConvTranspose2d(K.shape[0], K.shape[1], K.shape[2:], bias=False, **kwargs)
    layer.weight.data = K.clone()
    return layer


def test_basic_trans_conv_is_the_books_and_pytorchs():
    expected = torch.tensor([[0.0, 0.0, 1.0], [0.0, 4.0, 6.0], [4.0, 12.0, 9.0]])  # the book's printed output
    assert torch.equal(trans_conv(BOOK_X, BOOK_K), expected)
    assert torch.equal(_tconv(BOOK_K.reshape(1, 1, 2, 2))(BOOK_X.reshape(1, 1, 2, 2))[0, 0].detach(), expected)


def test_padding_removes_output_rows_and_stride_spreads_the_copies():
    K4 = BOOK_K.reshape(1, 1, 2, 2)
    X4 = BOOK_X.reshape(1, 1, 2, 2)
    assert torch.equal(trans_conv(BOOK_X, BOOK_K, padding=1), torch.tensor([[4.0]]))  # the book: tensor([[[[4.]]]])
    assert torch.equal(trans_conv(BOOK_X, BOOK_K, padding=1), _tconv(K4, padding=1)(X4)[0, 0].detach())
    stride2 = torch.tensor([[0.0, 0.0, 0.0, 1.0], [0.0, 0.0, 2.0, 3.0], [0.0, 2.0, 0.0, 3.0], [4.0, 6.0, 6.0, 9.0]])
    assert torch.equal(trans_conv(BOOK_X, BOOK_K, stride=2), stride2)
    assert torch.equal(_tconv(K4, stride=2)(X4)[0, 0].detach(), stride2)


@pytest.mark.parametrize("stride, padding, kernel", [(1, 0, 3), (2, 1, 4), (3, 2, 5), (32, 16, 64)])
def test_trans_conv_equals_conv_transpose2d_with_several_channels(stride, padding, kernel):
    g = torch.Generator().manual_seed(stride)
    X = torch.randn(3, 5, 4, generator=g, dtype=torch.float64)
    K = torch.randn(3, 2, kernel, kernel, generator=g, dtype=torch.float64)
    ours = trans_conv(X, K, stride=stride, padding=padding)
    theirs = _tconv(K.float(), stride=stride, padding=padding).double()
    theirs.weight.data = K
    assert torch.allclose(ours, theirs(X[None])[0].detach(), atol=1e-10)


def test_transposed_conv_restores_the_shape_a_conv_reduced():
    X = torch.rand(size=(1, 10, 16, 16))  # the book's example
    conv = nn.Conv2d(10, 20, kernel_size=5, padding=2, stride=3)
    tconv = nn.ConvTranspose2d(20, 10, kernel_size=5, padding=2, stride=3, bias=False)
    Y = conv(X).detach()
    assert tconv(Y).shape == X.shape
    assert torch.allclose(trans_conv(Y[0], tconv.weight.detach(), stride=3, padding=2), tconv(Y)[0].detach(),
                          atol=1e-5)


def test_the_matrix_multiplication_view():
    X = torch.arange(9.0).reshape(3, 3)
    K = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    book_W = torch.zeros((4, 9))  # the book's kernel2matrix, written out
    k = torch.tensor([1.0, 2.0, 0.0, 3.0, 4.0])
    book_W[0, :5], book_W[1, 1:6], book_W[2, 3:8], book_W[3, 4:] = k, k, k, k
    W = kernel2matrix(K, (3, 3))
    assert torch.equal(W, book_W)
    Y = F.conv2d(X[None, None], K[None, None])[0, 0]  # the book's corr2d(X, K)
    assert torch.equal(Y, (W @ X.reshape(-1)).reshape(2, 2))
    assert torch.equal(trans_conv(Y, K), (W.T @ Y.reshape(-1)).reshape(3, 3))
    # any size: the transposed matrix is the transposed convolution
    g = torch.Generator().manual_seed(0)
    K3, Y3 = torch.randn(3, 3, generator=g), torch.randn(4, 5, generator=g)
    W3 = kernel2matrix(K3, (6, 7))
    assert torch.allclose(trans_conv(Y3, K3), (W3.T @ Y3.reshape(-1)).reshape(6, 7), atol=1e-5)


# ----------------------------------------------------------------------------- 13.11 the bilinear kernel, the FCN


def test_bilinear_kernel_is_the_books():
    W = bilinear_kernel(3, 3, 4)
    filt = torch.tensor([0.25, 0.75, 0.75, 0.25])
    assert W.shape == (3, 3, 4, 4)
    for i in range(3):
        assert torch.allclose(W[i, i], filt[:, None] * filt[None, :])
        assert all(not W[i, j].any() for j in range(3) if j != i)
    odd = bilinear_kernel(1, 1, 3)[0, 0]  # the odd-size branch: centre factor - 1
    assert torch.allclose(odd, torch.tensor([0.5, 1.0, 0.5])[:, None] * torch.tensor([0.5, 1.0, 0.5])[None, :])


def test_bilinear_upsampler_doubles_and_interpolates():
    img = torch.rand(1, 3, 17, 23)
    up = bilinear_upsampler(3, 2)
    assert (up.kernel_size, up.padding, up.stride) == ((4, 4), (1, 1), (2, 2))
    out = up(img).detach()
    assert out.shape == (1, 3, 34, 46)
    # inside the border it is exactly bilinear interpolation (half-pixel centres); the border sees zeros
    ref = F.interpolate(img, scale_factor=2, mode="bilinear", align_corners=False)
    assert torch.allclose(out[..., 1:-1, 1:-1], ref[..., 1:-1, 1:-1], atol=1e-6)


def test_fcn_is_the_books_net():
    torch.manual_seed(0)
    net = fcn_resnet18(21)
    assert isinstance(net, FCN) and isinstance(net, nn.Sequential)
    names = [name for name, _ in net.named_children()]
    assert names == ["0", "1", "2", "3", "4", "5", "6", "7", "final_conv", "transpose_conv"]  # children()[:-2] + 2
    tc = net.transpose_conv
    assert (tc.in_channels, tc.out_channels, tc.kernel_size, tc.padding, tc.stride) == \
        (21, 21, (64, 64), (16, 16), (32, 32))
    assert torch.equal(tc.weight.detach(), bilinear_kernel(21, 21, 64))
    assert net.final_conv.kernel_size == (1, 1) and net.final_conv.in_channels == 512
    body = nn.Sequential(*list(net.children())[:-2])
    assert body(torch.rand(1, 3, 320, 480)).shape == (1, 512, 10, 15)  # the book: 1/32 of 320x480


@pytest.mark.parametrize("size", [(320, 480), (97, 131), (33, 65)])
def test_fcn_predicts_whole_images_of_any_size(size):
    torch.manual_seed(0)
    net = fcn_resnet18(21).eval()
    x = torch.rand(1, 3, *size)
    with torch.inference_mode():
        out = net(x)
        assert out.shape == (1, 21, *size)
        # the same as padding the image by hand (bottom and right) and cropping the logits: top-left aligned
        h, w = size
        padded = F.pad(x, (0, -w % 32, 0, -h % 32))
        plain = nn.Sequential.forward(net, padded)
        assert plain.shape[-2] % 32 == 0 and plain.shape[-1] % 32 == 0
        assert torch.allclose(out, plain[..., :h, :w], atol=1e-5)


def test_label2image_uses_the_voc_palette():
    pred = torch.tensor([[0, 1, 15], [20, 255, 8]])
    colours = label2image(pred)
    assert colours.dtype == torch.uint8 and colours.shape == (2, 3, 3)
    assert colours[0, 1].tolist() == [128, 0, 0] and colours[0, 2].tolist() == [192, 128, 128]
    assert colours[1, 0].tolist() == [0, 64, 128] and colours[1, 1].tolist() == [224, 224, 192]


# ----------------------------------------------------------------------------- 13.9 crops and the filter


def test_crop_filter_keeps_exactly_the_images_at_least_the_crop(tmp_path):
    voc = generate_voc(tmp_path, n_train=10, n_val=2, seed=3, size=((60, 140), (40, 110)))
    ids = (voc / "ImageSets" / "Segmentation" / "train.txt").read_text().split()
    sizes = {i: Image.open(voc / "JPEGImages" / f"{i}.jpg").size for i in ids}  # (w, h)
    crop = (64, 96)
    kept = [i for i in ids if sizes[i][1] >= crop[0] and sizes[i][0] >= crop[1]]  # the book's filter
    assert 0 < len(kept) < len(ids)
    data = VOCSegDataset(tmp_path, "train", crop)
    assert data.ids == kept
    image, label = data[0]
    assert image.shape == (3, *crop) and image.dtype == torch.float32 and label.shape == crop
    assert label.dtype == torch.long
    whole = VOCSegDataset(tmp_path, "train", None)  # no crop: every image, whole
    assert whole.ids == ids and whole[0][0].shape[1:] == whole[0][1].shape == (sizes[ids[0]][1], sizes[ids[0]][0])
    with pytest.raises(DataError, match="no readable image"):
        VOCSegDataset(tmp_path, "train", (512, 512))


def test_image_and_mask_are_cropped_at_the_same_place():
    h, w = 50, 70
    ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    image = tv_tensors.Image(torch.stack([xs, ys, xs * 0]).to(torch.uint8))
    mask = tv_tensors.Mask(((xs * 7 + ys * 3) % 21).to(torch.uint8))
    transforms = voc_transforms((16, 32), normalize=False)
    for seed in range(5):
        torch.manual_seed(seed)
        crop, crop_mask = transforms(image, mask)
        x = (crop[0] * 255).round().long()
        y = (crop[1] * 255).round().long()
        assert crop.shape == (3, 16, 32)
        assert torch.equal(crop_mask.long(), (x * 7 + y * 3) % 21)


# ----------------------------------------------------------------------------- the boundary and the metrics


def _batch(seed=0, b=3, h=9, w=11, classes=21):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(b, classes, h, w, generator=g)
    labels = torch.randint(0, 5, (b, h, w), generator=g)
    labels[torch.rand(b, h, w, generator=g) < 0.2] = IGNORE_INDEX
    return logits, labels


def test_background_boundary_is_the_books_loss():
    logits, labels = _batch()
    task = SegmentationTask(boundary="background")
    book = F.cross_entropy(logits, labels.masked_fill(labels == IGNORE_INDEX, 0), reduction="none").mean(1).mean(1)
    assert torch.allclose(task.losses(logits, labels), book)


def test_ignore_boundary_leaves_255_out_of_loss_and_accuracy():
    logits, labels = _batch()
    task = SegmentationTask(boundary="ignore")
    changed = logits.clone()
    changed.permute(0, 2, 3, 1)[labels == IGNORE_INDEX] = torch.randn(21) * 100  # anything at the boundary
    assert torch.allclose(task.losses(logits, labels), task.losses(changed, labels))
    valid = labels != IGNORE_INDEX
    expected = F.cross_entropy(logits.permute(0, 2, 3, 1)[valid], labels[valid], reduction="none")
    per_image = [expected[valid[:i].sum():valid[:i + 1].sum()].mean() for i in range(len(labels))]
    assert torch.allclose(task.losses(logits, labels), torch.stack(per_image))
    a = task.sums(logits, labels, task.losses(logits, labels))
    b = task.sums(changed, labels, task.losses(changed, labels))
    assert all(torch.equal(a[k], b[k]) for k in a)  # accuracy and IoU counts: 255 pixels play no part
    assert int(a["pixels"]) == int(valid.sum())
    background = SegmentationTask(boundary="background").sums(logits, labels, task.losses(logits, labels))
    assert int(background["pixels"]) == labels.numel()  # the book counts every pixel
    # the IoU counts ignore 255 under both rules
    assert all(torch.equal(a[k], background[k]) for k in a if k.startswith(("tp_", "true_", "pred_")))


@pytest.mark.parametrize("boundary", ["background", "ignore"])
def test_epoch_metrics_equal_torchmetrics(boundary):
    task = SegmentationTask(boundary=boundary)
    sums: dict = {}
    miou = MulticlassJaccardIndex(21, average="macro", ignore_index=IGNORE_INDEX)
    acc = MulticlassAccuracy(21, average="micro", ignore_index=IGNORE_INDEX)
    base_miou = MulticlassJaccardIndex(21, average="macro", ignore_index=IGNORE_INDEX)
    base_acc = MulticlassAccuracy(21, average="micro", ignore_index=IGNORE_INDEX)
    for seed in range(3):
        logits, labels = _batch(seed)
        for key, value in task.sums(logits, labels, task.losses(logits, labels)).items():
            sums[key] = sums.get(key, 0.0) + float(value)
        pred = logits.argmax(1)
        miou.update(pred, labels)
        acc.update(pred, task.targets(labels))
        base_miou.update(torch.zeros_like(pred), labels)
        base_acc.update(torch.zeros_like(pred), task.targets(labels))
    out = task.summarize(sums, "test")
    assert out["test_miou"] == pytest.approx(float(miou.compute()), abs=1e-6)
    assert out["test_pixel_acc"] == pytest.approx(float(acc.compute()), abs=1e-6)
    assert out["test_miou_baseline"] == pytest.approx(float(base_miou.compute()), abs=1e-6)
    assert out["test_pixel_acc_baseline"] == pytest.approx(float(base_acc.compute()), abs=1e-6)
    assert "train_miou_baseline" not in task.summarize(sums, "train")


class _Fixed(nn.Module):
    """A 'model' that returns the logits it is given for each image, in turn."""

    def __init__(self, outputs):
        super().__init__()
        self.outputs = list(outputs)

    def forward(self, x):
        out = self.outputs.pop(0)[None]
        assert out.shape[-2:] == x.shape[-2:]
        return out


def test_whole_image_scores(tmp_path):
    pairs, logits = [], []
    for seed, (h, w) in enumerate([(9, 11), (13, 7)]):  # images of different sizes
        lg, lb = _batch(seed, b=1, h=h, w=w)
        pairs.append((torch.rand(3, h, w), lb[0]))
        logits.append(lg[0])
    scores, kept = score_images(_Fixed(logits), pairs, boundary="ignore", keep=1)
    task = SegmentationTask(boundary="ignore")
    sums: dict = {}
    for lg, (_, lb) in zip(logits, pairs):
        for key, value in task.sums(lg[None], lb[None], task.losses(lg[None], lb[None])).items():
            sums[key] = sums.get(key, 0.0) + float(value)
    expected = task.summarize(sums, "val")
    for key in ("miou", "pixel_acc", "miou_baseline", "pixel_acc_baseline"):
        assert scores[key] == pytest.approx(expected[f"val_{key}"], abs=1e-6), key
    from cvflow.data.readers.voc import VOC_CLASSES

    occurs = task.iou(sums)  # every class in the truth or the predictions, by name
    assert scores["iou"] == pytest.approx({VOC_CLASSES[c]: value for c, value in occurs.items()}, abs=1e-6)
    assert np.mean(list(scores["iou"].values())) == pytest.approx(scores["miou"], abs=1e-6)
    assert len(kept) == 1 and torch.equal(kept[0].long(), logits[0].argmax(0))


# ----------------------------------------------------------------------------- params


def test_crop_size_must_be_a_multiple_of_32():
    with pytest.raises(ParamsError, match=r"voc\.demo\.crop_size.*multiples of 32"):
        load_params(REPO / "params.yaml", ["voc.demo.crop_size=[100, 224]"])
    with pytest.raises(ParamsError, match=r"voc\.demo\.boundary"):
        load_params(REPO / "params.yaml", ["voc.demo.boundary=void"])
