"""``cvflow train hotdog --variant V``: one variant's tracked run (book 13.2).

What a variant does is in its params: ``start`` (the source model's body and a new head, or random weights), its
recipe, and for a ``FrozenRecipe`` the modules it keeps as they start (the linear probe). Nothing here lists the
variants, so adding one stales no other variant's run.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from cvflow.console import info
from cvflow.errors import UserError
from cvflow.pipelines.hotdog.common import DATA, EXPERIMENT, SOURCE, cfg as hotdog_cfg, images, run_paths

if TYPE_CHECKING:
    from cvflow.params import ParamsBase as Params


def train(params: Params, root: Path, variant: str) -> dict:
    """Fine-tune the source model, train from scratch (book 13.2), or train only a new head on the source's frozen
    body (the linear probe), as one tracked run."""
    from torch import nn

    from cvflow.data.readers.hotdog import CLASSES
    from cvflow.data.readers.images import classification_test_spec, classification_transforms
    from cvflow.engine.optim import head_and_body
    from cvflow.engine.run import train_variant
    from cvflow.engine.trainer import ClassificationTask
    from cvflow.fileio import sha1sum
    from cvflow.models.files import load_model
    from cvflow.models.resnet import build_resnet18, load_backbone, replace_head
    from cvflow.params import FrozenRecipe, Recipe
    from cvflow.pipelines.lineage import dvc_digests
    from cvflow.serving import Servable

    cfg = hotdog_cfg(params)
    recipe = getattr(cfg, variant, None)
    if not isinstance(recipe, Recipe):
        raise UserError(f"--variant {variant!r}: hotdog.{params.profile} has no run of that name")
    source_file = run_paths(root, SOURCE).model
    config = {"transforms": cfg.transforms.model_dump(mode="json"), "data": cfg.data.model_dump(mode="json"),
              "demo": cfg.demo.model_dump(mode="json")}
    if recipe.start == "source":
        if not source_file.exists():
            raise UserError(f"{source_file}: missing; run `cvflow pretrain hotdog` first")
        config.update(source_sha1=sha1sum(source_file), weights=cfg.weights)

        def build() -> nn.Module:  # the source's body, a new head (the book's finetune_net)
            model = build_resnet18(len(CLASSES))
            load_backbone(model, load_model(source_file)[0].state_dict(), str(source_file))
            replace_head(model, len(CLASSES))
            return model

        def groups(model: nn.Module) -> list[dict]:  # the book's params_1x, and the head at head_lr_mult x
            head, body = head_and_body(model, model.fc)  # the probe's body is frozen: the engine leaves it out
            return [{"params": body}, {"params": head, "lr_mult": recipe.optim.head_lr_mult}]
    else:
        def build() -> nn.Module:
            return build_resnet18(len(CLASSES))

        groups = None
    train_tf, test_tf = classification_transforms(cfg.transforms)
    train_set, test_set = images(params, root / DATA / "train", train_tf), images(params, root / DATA / "test", test_tf)
    result = train_variant(
        params, root, EXPERIMENT, variant, recipe=recipe, data={"hotdog": root / DATA},
        digests={"hotdog": dvc_digests(root, DATA).get(DATA, "")}, config=config, build=build, groups=groups,
        task=ClassificationTask(), train_set=train_set, eval_set=test_set, classes=CLASSES, title=f"hot dog: {variant}",
        freeze=recipe.freeze if isinstance(recipe, FrozenRecipe) else (),
        freeze_key=f"hotdog.{params.profile}.{variant}.freeze",
        serve=Servable(f"{EXPERIMENT}-{variant}", "classify", classification_test_spec(cfg.transforms),
                       [test_set.image(0)]))
    if result.dist.is_main:
        info(f"{variant}: test accuracy {result.final.get('test_acc', float('nan')):.3f} after "
             f"{len(result.history)} epochs")
    return result.final
