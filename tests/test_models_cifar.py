"""The book's CIFAR ResNet-18 (``d2l.resnet18``) as ``cvflow.models.cifar.resnet18_cifar``.

The reference is the book's code itself (d2l 1.0.3's ``Residual`` from the ResNet section and
``resnet18`` from the concise multi-GPU section, which 13.1 trains), copied below verbatim except
that ``d2l.Residual`` is the local ``Residual``. At width 64 the two have the same parameter count (11,176,970 for 10
classes), the same per-stage output shapes, the same state-dict keys and shapes, and, with the
book's weights loaded, the same outputs.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from cvflow.models.cifar import resnet18_cifar, stage_channels
from cvflow.errors import UserError
from cvflow.models.files import build_model, list_models, load_model, read_model_file, save_model

BOOK_PARAMS_10_CLASSES = 11_176_970  # sum(p.numel()) of d2l.resnet18(10, 3), measured below too


# ------------------------------------------------------------------ the book's code, verbatim
class Residual(nn.Module):
    """The Residual block of ResNet models.

    Defined in :numref:`sec_resnet`"""
    def __init__(self, num_channels, use_1x1conv=False, strides=1):
        super().__init__()
        self.conv1 = nn.LazyConv2d(num_channels, kernel_size=3, padding=1,
                                   stride=strides)
        self.conv2 = nn.LazyConv2d(num_channels, kernel_size=3, padding=1)
        if use_1x1conv:
            self.conv3 = nn.LazyConv2d(num_channels, kernel_size=1,
                                       stride=strides)
        else:
            self.conv3 = None
        self.bn1 = nn.LazyBatchNorm2d()
        self.bn2 = nn.LazyBatchNorm2d()

    def forward(self, X):
        Y = F.relu(self.bn1(self.conv1(X)))
        Y = self.bn2(self.conv2(Y))
        if self.conv3:
            X = self.conv3(X)
        Y += X
        return F.relu(Y)


def resnet18(num_classes, in_channels=1):
    """A slightly modified ResNet-18 model.

    Defined in :numref:`sec_multi_gpu_concise`"""
    def resnet_block(in_channels, out_channels, num_residuals,
                     first_block=False):
        blk = []
        for i in range(num_residuals):
            if i == 0 and not first_block:
                blk.append(Residual(out_channels, use_1x1conv=True,
                                    strides=2))
            else:
                blk.append(Residual(out_channels))
        return nn.Sequential(*blk)

    # This model uses a smaller convolution kernel, stride, and padding and
    # removes the max-pooling layer
    net = nn.Sequential(
        nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1),
        nn.BatchNorm2d(64),
        nn.ReLU())
    net.add_module("resnet_block1", resnet_block(64, 64, 2, first_block=True))
    net.add_module("resnet_block2", resnet_block(64, 128, 2))
    net.add_module("resnet_block3", resnet_block(128, 256, 2))
    net.add_module("resnet_block4", resnet_block(256, 512, 2))
    net.add_module("global_avg_pool", nn.AdaptiveAvgPool2d((1,1)))
    net.add_module("fc", nn.Sequential(nn.Flatten(),
                                       nn.Linear(512, num_classes)))
    return net
# ------------------------------------------------------------------ end of the book's code


def _count(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def _shapes(net: nn.Sequential, x: torch.Tensor) -> list[tuple[str, tuple[int, ...]]]:
    """Each top-level layer's name and output shape (the book's ``for layer in net: print(...)``)."""
    out = []
    for name, layer in net.named_children():
        x = layer(x)
        out.append((name, tuple(x.shape)))
    return out


@pytest.fixture(scope="module")
def book() -> nn.Module:
    torch.manual_seed(0)
    net = resnet18(10, 3)
    net(torch.zeros(2, 3, 32, 32))  # materialise the lazy layers, as the book's first forward does
    return net


def test_same_parameters_and_shapes_as_the_book(book):
    ours = resnet18_cifar(10, 3, width=64)
    assert _count(book) == _count(ours) == BOOK_PARAMS_10_CLASSES
    x = torch.randn(2, 3, 32, 32)
    expected = [("0", (2, 64, 32, 32)), ("1", (2, 64, 32, 32)), ("2", (2, 64, 32, 32)),
                ("resnet_block1", (2, 64, 32, 32)), ("resnet_block2", (2, 128, 16, 16)),
                ("resnet_block3", (2, 256, 8, 8)), ("resnet_block4", (2, 512, 4, 4)),
                ("global_avg_pool", (2, 512, 1, 1)), ("fc", (2, 10))]
    book.eval(), ours.eval()
    with torch.no_grad():
        assert _shapes(book, x) == _shapes(ours, x) == expected
    assert {k: v.shape for k, v in book.state_dict().items()} == {k: v.shape for k, v in ours.state_dict().items()}


def test_same_function_as_the_book(book):
    """The book's weights loaded into ours give the book's outputs, in training and eval mode."""
    ours = resnet18_cifar(10, 3)
    ours.load_state_dict(book.state_dict())
    x = torch.randn(4, 3, 32, 32)
    for train in (False, True):
        book.train(train), ours.train(train)
        with torch.no_grad():
            torch.testing.assert_close(ours(x), book(x))
    book.eval()


def test_shortcuts_are_the_books():
    """The downsampling shortcut is a 1x1 conv with bias and no batch norm; every conv has a bias."""
    net = resnet18_cifar()
    for stage in ("resnet_block2", "resnet_block3", "resnet_block4"):
        first, second = getattr(net, stage)
        assert isinstance(first.conv3, nn.Conv2d) and first.conv3.kernel_size == (1, 1)
        assert first.conv3.stride == (2, 2) and first.conv3.bias is not None
        assert second.conv3 is None
    assert net.resnet_block1[0].conv3 is None and net.resnet_block1[1].conv3 is None
    assert all(m.bias is not None for m in net.modules() if isinstance(m, nn.Conv2d))
    assert not any(isinstance(m, nn.MaxPool2d) for m in net.modules())


@pytest.mark.parametrize("width", [8, 16, 32])
def test_width_scales_every_stage(width):
    net = resnet18_cifar(7, 1, width=width)
    assert stage_channels(width) == (width, 2 * width, 4 * width, 8 * width)
    x = torch.randn(2, 1, 32, 32)
    net.eval()
    with torch.no_grad():
        shapes = dict(_shapes(net, x))
    assert shapes["resnet_block1"] == (2, width, 32, 32)
    assert shapes["resnet_block2"] == (2, 2 * width, 16, 16)
    assert shapes["resnet_block3"] == (2, 4 * width, 8, 8)
    assert shapes["resnet_block4"] == (2, 8 * width, 4, 4)
    assert shapes["fc"] == (2, 7)
    # The count in closed form: convs (weights + biases), batch norms (weight + bias), the head.
    c = stage_channels(width)
    conv = lambda cin, cout, k: cin * cout * k * k + cout  # noqa: E731
    total = conv(1, c[0], 3) + 2 * c[0]
    cin = c[0]
    for stage, cout in enumerate(c):
        for block in range(2):
            first_in = cin if block == 0 else cout
            total += conv(first_in, cout, 3) + conv(cout, cout, 3) + 4 * cout
            if block == 0 and stage > 0:
                total += conv(cin, cout, 1)
        cin = cout
    total += c[3] * 7 + 7
    assert _count(net) == total


def test_width_64_is_the_book_for_other_inputs():
    torch.manual_seed(0)
    book = resnet18(5, 1)
    book(torch.zeros(1, 1, 32, 32))
    assert _count(book) == _count(resnet18_cifar(5, 1))


def test_bad_sizes_raise():
    with pytest.raises(ValueError, match="width"):
        resnet18_cifar(width=0)


def test_model_file_round_trip(tmp_path):
    assert "resnet18_cifar" in list_models()
    torch.manual_seed(1)
    net = build_model("resnet18_cifar", num_classes=10, in_channels=3, width=8)
    x = torch.randn(3, 3, 32, 32)
    net.train()
    net(x)  # move the batch-norm running statistics away from their initial values
    net.eval()
    path = save_model(tmp_path / "m.pt", net, [str(i) for i in range(10)], meta={"epochs": 0})
    loaded, data = load_model(path)
    assert data["arch"] == "resnet18_cifar" and data["arch_kwargs"]["width"] == 8
    assert _count(loaded) == _count(net)
    loaded.eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), net(x), rtol=0, atol=0)
    again = save_model(tmp_path / "again.pt", loaded, data["classes"],
                       meta=data["meta"])
    assert again.read_bytes() == path.read_bytes()
    assert read_model_file(again)["classes"] == [str(i) for i in range(10)]


def test_the_books_13_1_init_is_xavier_on_convs_and_linears_only():
    from cvflow.models.cifar import build_resnet18_cifar

    torch.manual_seed(0)
    default = build_resnet18_cifar(10, 8, "default")
    torch.manual_seed(0)
    xavier = build_resnet18_cifar(10, 8, "xavier")
    for (name, a), (_, b) in zip(default.named_modules(), xavier.named_modules()):
        if type(a) in (torch.nn.Conv2d, torch.nn.Linear):
            fan_in, fan_out = torch.nn.init._calculate_fan_in_and_fan_out(b.weight)
            bound = (6 / (fan_in + fan_out)) ** 0.5  # xavier_uniform_'s
            assert b.weight.abs().max() <= bound and not torch.equal(a.weight, b.weight), name
        elif isinstance(a, torch.nn.BatchNorm2d):
            assert torch.equal(a.weight, b.weight) and torch.equal(a.bias, b.bias), name


def test_a_built_network_records_its_architecture_without_init_only_arguments(tmp_path):
    from cvflow.models.fcn import fcn_resnet18
    from cvflow.models.files import architecture_of

    body = build_model("resnet18_cifar", num_classes=4, width=8)
    assert architecture_of(body) == ("resnet18_cifar", {"num_classes": 4, "width": 8})
    fcn = fcn_resnet18(3, backbone=None)
    assert architecture_of(fcn) == ("fcn_resnet18", {"num_classes": 3})  # the backbone only sets weights
    loaded, data = load_model(save_model(tmp_path / "fcn.pt", fcn, ["a", "b", "c"]))
    assert data["arch_kwargs"] == {"num_classes": 3} and _count(loaded) == _count(fcn)
    with pytest.raises(ValueError, match="register_model"):
        save_model(tmp_path / "plain.pt", nn.Linear(2, 2), ["a", "b"])
    with pytest.raises(UserError, match="unknown architecture 'nope'"):
        build_model("nope")
