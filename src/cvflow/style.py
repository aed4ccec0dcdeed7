"""Neural style transfer (book 13.12): the book's functions, and the optimisation as a resumable run.

The book's functions keep the book's names and formulas (PyTorch edition): :func:`preprocess`,
:func:`postprocess`, :func:`extract_features`, :func:`content_loss`, :func:`gram`,
:func:`style_loss`, :func:`tv_loss`, :func:`compute_loss`, :class:`SynthesizedImage`. The feature
network is an argument instead of the book's global ``net``.

The weights. The book sets ``content_weight, style_weight, tv_weight = 1, 1e3, 10`` and then adds
``sum(10 * styles_l + contents_l + [tv_l])``: ``10 * styles_l`` repeats the Python *list* ten times,
so every style term is counted ten times and the effective style weight is 1e4.
:func:`compute_loss` takes the effective weight (``style_weight=1e4`` is the book's total loss);
:data:`BOOK_STYLE_WEIGHT` says where it comes from. The style loss this module reports is the
weighted term as it enters the total: ten times the curve the book draws (``sum(styles_l)``).

:class:`StyleTransfer` runs the optimisation: the content and style targets are computed once per
scale, before the loop, as the book's ``get_contents``/``get_styles`` do; Adam with the book's
``StepLR`` or L-BFGS (Gatys et al.); coarse to fine over a list of scales (the MXNet edition's
second step: upscale the result and go on at a larger size); a checkpoint every few steps and a
resume that ends where an uninterrupted run would; callbacks for tracking (the losses of every step,
the image every few steps).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from cvflow.console import info
from cvflow.errors import raise_if_interrupted
from cvflow.engine.checkpoint import load_checkpoint, save_checkpoint
from cvflow.engine.trainer import _what_differs  # the training runs' wording: which fingerprint part differs
from cvflow.errors import TrainingError

# The book's layers of VGG-19's ``features``: the first conv of each block for style, the last conv
# of the fourth block for content.
STYLE_LAYERS, CONTENT_LAYERS = [0, 5, 10, 19, 28], [25]
#: The book's weights as it writes them; its sum repeats the style list ten times (see the module doc).
BOOK_CONTENT_WEIGHT, BOOK_STYLE_WEIGHT, BOOK_TV_WEIGHT = 1, 1e3, 10
BOOK_STYLE_REPEAT = 10
#: The weights of the book's total loss, as :func:`compute_loss` takes them.
BOOK_WEIGHTS = (BOOK_CONTENT_WEIGHT, BOOK_STYLE_WEIGHT * BOOK_STYLE_REPEAT, BOOK_TV_WEIGHT)

rgb_mean = torch.tensor([0.485, 0.456, 0.406])
rgb_std = torch.tensor([0.229, 0.224, 0.225])

#: Per-step figures that depend on the machine: MLflow only, never in DVC outputs.
TIMING_KEYS = ("steps_per_sec",)
LOSS_KEYS = ("content_loss", "style_loss", "tv_loss", "total_loss")
CHECKPOINT_FORMAT = 1


# ----------------------------------------------------------------------------- the book's functions


def preprocess(img, image_shape) -> torch.Tensor:
    """A PIL image as the network's input: resized to ``image_shape`` (height, width), ImageNet-normalised,
    with a batch axis (the book's ``Resize``, ``ToTensor``, ``Normalize``; transforms.v2 on a PIL
    image resizes with PIL as the book's does)."""
    from torchvision.transforms import v2

    transforms = v2.Compose([
        v2.Resize(list(image_shape)), v2.ToImage(), v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(mean=rgb_mean.tolist(), std=rgb_std.tolist())])
    return transforms(img).unsqueeze(0)


def to_unit(img: torch.Tensor) -> torch.Tensor:
    """The network's input back to an RGB image in [0, 1], ``3 x H x W`` on the CPU (the book's
    ``postprocess`` before ``ToPILImage``)."""
    img = img[0].detach().to(rgb_std.device)
    return torch.clamp(img.permute(1, 2, 0) * rgb_std + rgb_mean, 0, 1).permute(2, 0, 1)


def postprocess(img: torch.Tensor):
    """The network's input as a PIL image (the book's ``postprocess``)."""
    from torchvision.transforms.v2.functional import to_pil_image

    return to_pil_image(to_unit(img))


def extract_features(X: torch.Tensor, net: nn.Sequential, content_layers: Sequence[int],
                     style_layers: Sequence[int]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The outputs of the content and style layers, layer by layer (one pass up to the last needed)."""
    contents = []
    styles = []
    for i in range(len(net)):
        X = net[i](X)
        if i in style_layers:
            styles.append(X)
        if i in content_layers:
            contents.append(X)
    return contents, styles


def get_contents(net, content_img, image_shape, device, content_layers=CONTENT_LAYERS, style_layers=STYLE_LAYERS):
    """The content image as input, and its content features (the book's ``get_contents``)."""
    content_X = preprocess(content_img, image_shape).to(device)
    with torch.no_grad():
        contents_Y, _ = extract_features(content_X, net, content_layers, style_layers)
    return content_X, contents_Y


def get_styles(net, style_img, image_shape, device, content_layers=CONTENT_LAYERS, style_layers=STYLE_LAYERS):
    """The style image as input, and its style features (the book's ``get_styles``)."""
    style_X = preprocess(style_img, image_shape).to(device)
    with torch.no_grad():
        _, styles_Y = extract_features(style_X, net, content_layers, style_layers)
    return style_X, styles_Y


def content_loss(Y_hat: torch.Tensor, Y: torch.Tensor) -> torch.Tensor:
    return torch.square(Y_hat - Y.detach()).mean()


def gram(X: torch.Tensor) -> torch.Tensor:
    """Channel correlations over all positions, divided by channels x positions."""
    num_channels, n = X.shape[1], X.numel() // X.shape[1]
    X = X.reshape((num_channels, n))
    return torch.matmul(X, X.T) / (num_channels * n)


def style_loss(Y_hat: torch.Tensor, gram_Y: torch.Tensor) -> torch.Tensor:
    return torch.square(gram(Y_hat) - gram_Y.detach()).mean()


def tv_loss(Y_hat: torch.Tensor) -> torch.Tensor:
    return 0.5 * (torch.abs(Y_hat[:, :, 1:, :] - Y_hat[:, :, :-1, :]).mean() +
                  torch.abs(Y_hat[:, :, :, 1:] - Y_hat[:, :, :, :-1]).mean())


def compute_loss(X, contents_Y_hat, styles_Y_hat, contents_Y, styles_Y_gram,
                 content_weight: float = BOOK_WEIGHTS[0], style_weight: float = BOOK_WEIGHTS[1],
                 tv_weight: float = BOOK_WEIGHTS[2]):
    """The book's weighted losses and their total. ``style_weight`` is the effective one: the book's
    ``1e3`` with its ten-fold list is ``1e4`` here (the default); the total equals the book's."""
    contents_l = [content_loss(Y_hat, Y) * content_weight for Y_hat, Y in zip(contents_Y_hat, contents_Y)]
    styles_l = [style_loss(Y_hat, Y) * style_weight for Y_hat, Y in zip(styles_Y_hat, styles_Y_gram)]
    tv_l = tv_loss(X) * tv_weight
    l = sum(styles_l + contents_l + [tv_l])
    return contents_l, styles_l, tv_l, l


class SynthesizedImage(nn.Module):
    """The synthesized image as the only parameter (the book's model)."""

    def __init__(self, img_shape, **kwargs):
        super().__init__(**kwargs)
        self.weight = nn.Parameter(torch.rand(*img_shape))

    def forward(self):
        return self.weight


# ----------------------------------------------------------------------------- measures the loss does not optimise


def colour_histogram(img: torch.Tensor, bins: int = 8) -> torch.Tensor:
    """The joint RGB histogram of a ``3 x H x W`` image in [0, 1], ``bins`` per channel, as frequencies.
    (torchmetrics has no colour-histogram distance; one bincount over the quantised colours.)"""
    q = (img.clamp(0, 1) * bins).long().clamp_(max=bins - 1)
    index = (q[0] * bins + q[1]) * bins + q[2]
    counts = torch.bincount(index.flatten(), minlength=bins ** 3).double()
    return counts / counts.sum()


def histogram_distance(a: torch.Tensor, b: torch.Tensor, bins: int = 8) -> float:
    """Total-variation distance of two images' colour histograms: 0 same colours, 1 none shared."""
    return 0.5 * float((colour_histogram(a, bins) - colour_histogram(b, bins)).abs().sum())


def ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    """Structural similarity of two ``3 x H x W`` images in [0, 1] (torchmetrics)."""
    from torchmetrics.image import StructuralSimilarityIndexMeasure

    return float(StructuralSimilarityIndexMeasure(data_range=1.0)(a[None].float(), b[None].float()))


# ----------------------------------------------------------------------------- the optimisation


def make_optimizer(params, optim) -> tuple[torch.optim.Optimizer, Any]:
    """``optim.name`` adam: the book's Adam with ``StepLR(step_size, gamma)`` stepped every step;
    lbfgs: ``torch.optim.LBFGS`` (one iteration per step, ``history_size``, ``line_search``), no schedule."""
    if optim.name == "adam":
        optimizer = torch.optim.Adam(params, lr=optim.lr)
        return optimizer, torch.optim.lr_scheduler.StepLR(optimizer, optim.step_size, optim.gamma)
    if optim.name == "lbfgs":
        # no early stop on LBFGS's absolute tolerances (1e-7 on the gradient): an image's gradients are that
        # small with weak features, and the steps are counted here
        return torch.optim.LBFGS(params, lr=optim.lr, max_iter=1, history_size=optim.history_size,
                                 line_search_fn=optim.line_search, tolerance_grad=0.0, tolerance_change=0.0), None
    raise ValueError(f"unknown optimizer {optim.name!r}")


@dataclass
class StyleTransfer:
    """Synthesize one image: ``content_img`` with the style of ``style_img`` (PIL images).

    ``scales``: (height, width) per scale, coarse to fine; ``steps``: optimisation steps per scale.
    The first scale starts from the content image (the book); each next one from the previous
    result, upscaled. ``weights``: (content, effective style, TV), see :func:`compute_loss`.
    ``optim``: anything with ``name``, ``lr``, ``step_size``, ``gamma``, ``history_size``,
    ``line_search`` (:func:`make_optimizer`). With a ``checkpoint_path`` the state is saved every
    ``checkpoint_every`` steps and at the end of each scale; :meth:`resume` picks it up when its
    ``fingerprint`` is this run's.

    Callbacks (any object; each method optional): ``on_rows(rows)`` with the per-step rows since
    the last call (after each checkpoint), ``on_snapshot(step, image)`` every ``snapshot_every`` steps
    with the image so far (PIL).
    """

    net: nn.Sequential
    weights: tuple[float, float, float]
    optim: Any
    scales: Sequence[tuple[int, int]]
    steps: Sequence[int]
    device: torch.device = torch.device("cpu")
    content_layers: Sequence[int] = tuple(CONTENT_LAYERS)
    style_layers: Sequence[int] = tuple(STYLE_LAYERS)
    checkpoint_path: Path | None = None
    fingerprint: Any = None
    checkpoint_every: int = 50
    snapshot_every: int = 0
    description: str = "style"
    history: list[dict] = field(default_factory=list, init=False)
    extra: dict = field(default_factory=dict, init=False)
    _state: dict | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if len(self.steps) != len(self.scales):
            raise ValueError(f"{len(self.steps)} step counts for {len(self.scales)} scales")
        self.net = self.net.to(self.device)
        self.total_steps = sum(self.steps)

    # ------------------------------------------------------------------ checkpoints

    def resume(self) -> dict | None:
        """Load the checkpoint if it belongs to this run; return its ``extra`` dict (or None)."""
        if self.checkpoint_path is None:
            return None
        state = load_checkpoint(self.checkpoint_path)
        if state is None:
            return None
        if state.get("format") != CHECKPOINT_FORMAT or state.get("fingerprint") != self.fingerprint:
            info(f"{self.checkpoint_path}: discarded, it was made by "
                 f"{_what_differs(state.get('fingerprint'), self.fingerprint)}; starting afresh")
            return None
        self._state = state
        self.history = list(state["history"])
        self.extra = dict(state.get("extra", {}))
        info(f"resuming {self.description} from {self.checkpoint_path}: {len(self.history)}/{self.total_steps} steps done")
        return self.extra

    def _save(self, scale: int, done: int, gen: SynthesizedImage, optimizer, scheduler) -> None:
        if self.checkpoint_path is None:
            return
        save_checkpoint(self.checkpoint_path, {
            "format": CHECKPOINT_FORMAT, "fingerprint": self.fingerprint, "scale": scale, "done": done,
            "image": gen.weight.detach().cpu(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "history": self.history, "extra": self.extra})

    def discard_checkpoint(self) -> None:
        if self.checkpoint_path is not None:
            Path(self.checkpoint_path).unlink(missing_ok=True)

    # ------------------------------------------------------------------ the loop

    def targets(self, content_img, style_img, shape) -> tuple[torch.Tensor, list, list]:
        """The content image as input, its content features and the style image's Gram matrices at
        ``shape``: computed once, before the scale's loop."""
        content_X, contents_Y = get_contents(self.net, content_img, shape, self.device, self.content_layers,
                                             self.style_layers)
        _, styles_Y = get_styles(self.net, style_img, shape, self.device, self.content_layers, self.style_layers)
        with torch.no_grad():
            styles_Y_gram = [gram(Y) for Y in styles_Y]
        return content_X, contents_Y, styles_Y_gram

    def losses(self, X, contents_Y, styles_Y_gram):
        contents_Y_hat, styles_Y_hat = extract_features(X, self.net, self.content_layers, self.style_layers)
        return compute_loss(X, contents_Y_hat, styles_Y_hat, contents_Y, styles_Y_gram, *self.weights)

    def run(self, content_img, style_img, callbacks: Sequence[Any] = (), extra: dict | None = None) -> torch.Tensor:
        """Optimise (the remaining steps after a resume); return the final image (network input form)."""
        if extra:
            self.extra.update(extra)
        state, self._state = self._state, None
        first_scale = state["scale"] if state else 0
        X_prev: torch.Tensor | None = None
        offset = sum(self.steps[:first_scale])
        for s in range(first_scale, len(self.scales)):
            shape, n = tuple(self.scales[s]), self.steps[s]
            resumed = state is not None and s == state["scale"]
            if resumed and state["done"] >= n:  # the checkpoint ends this scale
                X_prev = state["image"].to(self.device)
                offset += n
                continue
            content_X, contents_Y, styles_Y_gram = self.targets(content_img, style_img, shape)
            init = content_X if X_prev is None else preprocess(postprocess(X_prev), shape).to(self.device)
            gen = SynthesizedImage(init.shape).to(self.device)
            gen.weight.data.copy_(state["image"] if resumed else init)
            optimizer, scheduler = make_optimizer(gen.parameters(), self.optim)
            start = 0
            if resumed:
                optimizer.load_state_dict(state["optimizer"])
                if scheduler is not None and state.get("scheduler") is not None:
                    scheduler.load_state_dict(state["scheduler"])
                start = state["done"]
            self._scale_loop(s, n, start, offset, gen, optimizer, scheduler, contents_Y, styles_Y_gram, callbacks)
            X_prev = gen.weight.detach()
            offset += n
        return X_prev

    def _scale_loop(self, s, n, start, offset, gen, optimizer, scheduler, contents_Y, styles_Y_gram, callbacks):
        pending: list[tuple[int, float, torch.Tensor]] = []
        started = time.perf_counter()
        for k in range(start, n):
            raise_if_interrupted()
            lr = optimizer.param_groups[0]["lr"]
            if scheduler is None:  # L-BFGS re-evaluates the loss: the closure, the first value is this step's
                record: list[torch.Tensor] = []

                def closure():
                    optimizer.zero_grad()
                    X = gen()
                    contents_l, styles_l, tv_l, l = self.losses(X, contents_Y, styles_Y_gram)
                    l.backward()
                    if not record:
                        record.append(torch.stack([sum(contents_l), sum(styles_l), tv_l, l]).detach())
                    return l

                optimizer.step(closure)
                values = record[0]
            else:  # the book's train loop
                optimizer.zero_grad()
                X = gen()
                contents_l, styles_l, tv_l, l = self.losses(X, contents_Y, styles_Y_gram)
                l.backward()
                optimizer.step()
                scheduler.step()
                values = torch.stack([sum(contents_l), sum(styles_l), tv_l, l]).detach()
            step = offset + k + 1
            pending.append((step, lr, values))
            if (k + 1) % self.checkpoint_every == 0 or k + 1 == n:
                rate = len(pending) / max(time.perf_counter() - started, 1e-9)
                rows = self._rows(s, pending, rate)  # the one host sync of the chunk
                self.history += rows
                self._save(s, k + 1, gen, optimizer, scheduler)
                for callback in callbacks:
                    if hasattr(callback, "on_rows"):
                        callback.on_rows(rows)
                last = rows[-1]
                info(f"{self.description} step {step}/{self.total_steps} (scale {s + 1}, {tuple(gen.weight.shape[2:])}): "
                     + ", ".join(f"{key} {last[key]:.4g}" for key in LOSS_KEYS) + f", {rate:.2f} steps/s")
                pending, started = [], time.perf_counter()
            if self.snapshot_every and step % self.snapshot_every == 0:
                image = postprocess(gen.weight.detach())
                for callback in callbacks:
                    if hasattr(callback, "on_snapshot"):
                        callback.on_snapshot(step, image)

    def _rows(self, s: int, pending, rate: float) -> list[dict]:
        values = torch.stack([v for _, _, v in pending]).double().cpu()
        bad = ~torch.isfinite(values).all(dim=1)
        if bool(bad.any()):
            step = pending[int(bad.nonzero()[0])][0]
            raise TrainingError(f"non-finite loss (NaN or inf) at step {step}: lower the learning rate; the last "
                                f"good checkpoint ({self.checkpoint_path}) is kept")
        return [{"step": step, "scale": s + 1, **dict(zip(LOSS_KEYS, row)), "lr": lr, "steps_per_sec": rate}
                for (step, lr, _), row in zip(pending, values.tolist())]


def without_timings(row: dict) -> dict:
    return {k: v for k, v in row.items() if k not in TIMING_KEYS}
