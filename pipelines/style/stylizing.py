"""``cvflow stylize``: neural style transfer (book 13.12), ``rainier.jpg`` in the style of ``autumn-oak.jpg``, or
your photos::

    cvflow stylize -> data/reports/style/rainier-autumn-oak.png (the image), ..._panel.png (content, style,
                      result side by side), metrics/style.json, metrics/style/rainier-autumn-oak_history.csv

``cvflow stylize --content FILE --style FILE [--out FILE]`` runs the same code on your photos and
writes only the image (the metrics go to the console and MLflow).

One MLflow run per pair (experiment ``style``): the params, the content, style, TV and total losses
of every step, the image every ``snapshot_every`` steps (artifacts ``progress/``), the final image
and the measures the loss does not optimise: the colour-histogram distance to the style image
(falling: the colours move to the style's) and the SSIM to the content image (staying well above
the style image's own SSIM to it: the scene is kept).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cvflow.console import info
from cvflow.errors import UserError

if TYPE_CHECKING:
    from cvflow.params import ParamsBase as Params

EXPERIMENT = "style"
PHOTOS = "data/photos"
MIN_SIDE = 32  # pixels: VGG-19 halves an image four times before its last style layer


def run_paths(root: Path, name: str):
    """Files of the pair ``name``: see :class:`cvflow.engine.run.RunPaths`."""
    from cvflow.engine.paths import RunPaths

    return RunPaths(root, EXPERIMENT, name)


def metrics_file(root: Path) -> Path:
    return root / "metrics" / "style.json"


def image_file(root: Path, name: str) -> Path:
    return run_paths(root, name).reports / f"{name}.png"


def panel_file(root: Path, name: str) -> Path:
    return run_paths(root, name).reports / f"{name}_panel.png"


def read_photo(path: Path, fix: str):
    """``path`` decoded as an RGB PIL image, or one line saying what is wrong and ``fix``."""
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file; {fix}")
    try:
        with Image.open(path) as image:
            image.load()
            rgb = image.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise UserError(f"{path}: not a readable image ({type(exc).__name__}); {fix}") from None
    if min(rgb.size) < MIN_SIDE:
        raise UserError(f"{path}: {rgb.size[0]}x{rgb.size[1]} pixels is too small for style transfer (at least "
                        f"{MIN_SIDE} on each side); {fix}")
    return rgb


class _StepLogger:
    """Engine callbacks: every step's losses into MLflow (the steps MLflow lacks after a resume too),
    the image every ``snapshot_every`` steps as an artifact."""

    def __init__(self, tracker, history: list[dict], folder: Path):
        self.tracker, self.folder = tracker, folder
        self.logged = tracker.logged_epochs("total_loss")  # steps MLflow has (a resumed run's)
        self.on_rows(history)

    def on_rows(self, rows: list[dict]) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        new = [row for row in rows if row["step"] not in self.logged]
        batch = [Metric(key, float(value), now, int(row["step"])) for row in new for key, value in row.items()
                 if key != "step"]
        for start in range(0, len(batch), 1000):  # MLflow takes 1,000 metrics per request
            self.tracker.client.log_batch(self.tracker.run_id, metrics=batch[start:start + 1000])
        self.logged |= {row["step"] for row in new}

    def on_snapshot(self, step: int, image) -> None:
        path = self.folder / f"step_{step:05d}.png"
        image.save(path, format="PNG")
        self.tracker.log_artifact(path, "progress")


def _panel(images, path: Path) -> Path:
    """Images of one size side by side (content, style, result), written atomically."""
    from PIL import Image

    from cvflow.fileio import atomic_path

    width, height = images[0].size
    panel = Image.new("RGB", (width * len(images), height), "white")
    for index, image in enumerate(images):
        panel.paste(image.resize((width, height)), (index * width, 0))
    with atomic_path(path) as tmp:
        panel.save(tmp, format="PNG")
    return path



def stylize(params: Params, root: Path, content: Path | None = None, style: Path | None = None,
            out: Path | None = None) -> dict:
    """Synthesize the image (book 13.12) as one tracked, resumable run; see the module docstring.

    Without ``content``/``style``: the pair in ``style.<profile>`` from ``data/photos/`` (the DVC
    stage). With both: your photos, the image written to ``out``."""
    import tempfile

    import torch

    from cvflow.engine.checkpoint import fingerprint
    from cvflow.engine.run import code_digest, tracked
    from cvflow.engine.runtime import resolve_device, seed_everything
    from cvflow.fileio import atomic_path, sha1sum, write_csv, write_json
    from cvflow.models.vgg import vgg19_features
    from cvflow.style import LOSS_KEYS, StyleTransfer, histogram_distance, postprocess, preprocess, ssim, to_unit, \
        without_timings
    from cvflow.tracking import Tracker

    cfg = params.task("style")
    key = f"style.{params.profile}"
    own = content is not None or style is not None
    if own:
        if content is None or style is None:
            raise UserError("--content and --style go together: give both image files (or neither, for the "
                            f"pair in {key})")
        content_img = read_photo(content, "give --content a JPEG or PNG photo")
        style_img = read_photo(style, "give --style a JPEG or PNG photo")
        name = f"{Path(content).stem}-{Path(style).stem}"
        out = Path(out) if out is not None else Path(f"{Path(content).stem}-in-the-style-of-{Path(style).stem}.png")
    else:
        content, style = root / PHOTOS / cfg.content, root / PHOTOS / cfg.style
        fix = "run `cvflow fetch photos` (or `dvc repro fetch-photos`)"
        content_img = read_photo(content, f"{fix}, or set {key}.content")
        style_img = read_photo(style, f"{fix}, or set {key}.style")
        name = f"{Path(cfg.content).stem}-{Path(cfg.style).stem}"
        out = Path(out) if out is not None else image_file(root, name)

    common = params.common
    device = resolve_device(common.device)
    seed_everything(common.seed)  # the random demo network's weights
    layers = list(cfg.net.content_layers) + list(cfg.net.style_layers)
    net = vgg19_features(cfg.net.weights, cfg.net.width, upto=max(layers), setting=f"{key}.net.weights")
    config = {"net": cfg.net.model_dump(mode="json"), "loss": cfg.loss.model_dump(mode="json"),
              "optim": cfg.optim.model_dump(mode="json"), "scales": [list(s) for s in cfg.scales],
              "steps": cfg.steps_per_scale(), "seed": common.seed, "content": Path(content).name,
              "style": Path(style).name}
    digests = {"content": sha1sum(content), "style": sha1sum(style)}
    paths = run_paths(root, name)
    loss = cfg.loss
    transfer = StyleTransfer(
        net, (loss.content_weight, loss.style_weight, loss.tv_weight), cfg.optim, cfg.scales, cfg.steps_per_scale(),
        device, content_layers=cfg.net.content_layers, style_layers=cfg.net.style_layers,
        checkpoint_path=paths.checkpoint,
        fingerprint={"settings": fingerprint(config), "code": code_digest(), "data": fingerprint(digests)},
        checkpoint_every=cfg.checkpoint_every, snapshot_every=cfg.snapshot_every, description=name)
    extra = transfer.resume() or {}
    tracker = Tracker(root, EXPERIMENT, name)
    with tracked(tracker), tempfile.TemporaryDirectory(prefix="cvflow-style-") as scratch:
        run_id = tracker.start(extra.get("mlflow_run_id"), tags={
            "profile": params.profile, "device": str(device), "own_photos": str(own).lower()},
            system_metrics=common.system_metrics_every)
        tracker.log_params({"profile": params.profile, "common": common.model_dump(mode="json"), "run": config})
        tracker.log_inputs({"content": (Path(content), digests["content"][:32]),
                            "style": (Path(style), digests["style"][:32])})
        logger = _StepLogger(tracker, transfer.history, Path(scratch))
        X = transfer.run(content_img, style_img, callbacks=[logger], extra={"mlflow_run_id": run_id})

        # the losses at the final image, and what the loss does not optimise
        shape = tuple(cfg.scales[-1])
        with torch.no_grad():
            content_X, contents_Y, styles_Y_gram = transfer.targets(content_img, style_img, shape)
            final = [float(v) for v in (lambda c, s, t, l: (sum(c), sum(s), t, l))(
                *transfer.losses(X, contents_Y, styles_Y_gram))]
        result, content_u = to_unit(X), to_unit(content_X)
        style_u = to_unit(preprocess(style_img, shape))
        start_row = transfer.history[0]
        start = {k: start_row[k] for k in LOSS_KEYS}
        final = dict(zip(LOSS_KEYS, final))
        results = {
            "content": Path(content).name, "style": Path(style).name, "image_shape": list(shape),
            "steps": transfer.total_steps,
            "start": start, "final": final,
            # the content loss starts at 0 (the image starts as the content image): no ratio then
            "final_over_start": {k: (final[k] / start[k] if start[k] else None) for k in LOSS_KEYS},
            "colour_hist_distance_to_style": {"start": histogram_distance(content_u, style_u),
                                              "final": histogram_distance(result, style_u)},
            "ssim_to_content": {"final": ssim(result, content_u), "style_image": ssim(style_u, content_u)},
        }
        image = postprocess(X)
        with atomic_path(out) as tmp:
            image.save(tmp, format="PNG")
        tracker.log_artifact(out, "images")
        if not own:
            write_json(metrics_file(root), results)
            write_csv(paths.history, [without_timings(row) for row in transfer.history])
            panel = _panel([postprocess(content_X), postprocess(preprocess(style_img, shape).to(X.device)), image],
                           panel_file(root, name))
            tracker.log_artifact(panel, "images")
            tracker.log_artifact(metrics_file(root), "metrics")
        flat = {"final_" + k: v for k, v in final.items()}
        flat.update(colour_hist_distance_start=results["colour_hist_distance_to_style"]["start"],
                    colour_hist_distance_final=results["colour_hist_distance_to_style"]["final"],
                    ssim_to_content_final=results["ssim_to_content"]["final"],
                    ssim_style_image_to_content=results["ssim_to_content"]["style_image"])
        tracker.log_metrics(flat, step=transfer.total_steps)
        transfer.discard_checkpoint()
    info(f"{name}: {out} ({shape[0]}x{shape[1]}, {transfer.total_steps} steps); total loss "
         f"{start['total_loss']:.4g} -> {final['total_loss']:.4g}; colour-histogram distance to the style "
         f"{results['colour_hist_distance_to_style']['start']:.3f} -> {results['colour_hist_distance_to_style']['final']:.3f}; "
         f"SSIM to the content {results['ssim_to_content']['final']:.3f} (the style image's: "
         f"{results['ssim_to_content']['style_image']:.3f})")
    return results
