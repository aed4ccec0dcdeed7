"""A body can be frozen (cvflow.engine.freeze): its weights and BatchNorm statistics stay the source's through a
tracked run, only the head trains, the optimizer holds only what trains, and the saved file is the source's
architecture; bad freeze settings are one-line errors."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import Dataset

from cvflow.engine.freeze import freeze
from cvflow.engine.optim import build_optimizer
from cvflow.engine.paths import RunPaths
from cvflow.engine.run import RunSpec, train_run
from cvflow.engine.trainer import ClassificationTask
from cvflow.errors import ParamsError, UserError
from cvflow.models.files import load_model
from cvflow.models.resnet import build_resnet18, load_backbone, replace_head
from cvflow.params import FrozenRecipe, Optim
from cvflow.pipelines import load_params
from conftest import REPO

BODY = ("conv1", "bn1", "layer1", "layer2", "layer3", "layer4")  # a ResNet-18 but its head, as params.yaml's probe


class _Images(Dataset):
    """Random 3x16x16 images with two classes, shifted per class so the head has something to learn."""

    def __init__(self, n: int = 16, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.y = torch.randint(0, 2, (n,), generator=g)
        self.x = torch.randn(n, 3, 16, 16, generator=g) + 3 * self.y.view(-1, 1, 1, 1)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


def _source() -> dict[str, torch.Tensor]:
    """A 'pretrained' ResNet-18's state: random weights and BatchNorm statistics far from their initial 0 and 1,
    so a single training-mode forward (momentum 0.1) would move them visibly."""
    torch.manual_seed(5)
    model = build_resnet18(10)
    for name, buffer in model.named_buffers():
        if name.endswith(("running_mean", "running_var")):
            buffer.copy_(torch.rand_like(buffer) + 2.0)
    return {k: v.clone() for k, v in model.state_dict().items()}


def _build(source: dict[str, torch.Tensor]):
    def build():  # the fine-tune's start, as hot dog's: the source's body, a new 2-class head
        model = build_resnet18(2)
        load_backbone(model, source, "source")
        replace_head(model, 2)
        return model
    return build


def _recipe(freeze=BODY) -> FrozenRecipe:
    return FrozenRecipe.model_validate({"freeze": list(freeze), "epochs": 2, "batch_size": 8,
                                        "optim": {"name": "sgd", "lr": 0.1, "momentum": 0.9, "weight_decay": 0.01}})


def _probe(root, source, recipe, started: dict) -> RunSpec:
    """A tracked run of the linear probe on ``source``; ``started`` gets the head it starts from."""
    def build():
        model = _build(source)()
        started.update({k: v.clone() for k, v in model.fc.state_dict().items()})
        return model

    return RunSpec(paths=RunPaths(root, "unit", "probe"), build=build, task=ClassificationTask(),
                   train_set=_Images(), eval_set=_Images(8, seed=1), recipe=recipe, config={"k": 1}, inputs={},
                   classes=["a", "b"], freeze=recipe.freeze, freeze_key="unit.probe.freeze")


def _params():
    return load_params(REPO / "params.yaml", ["common.device=cpu"])


def test_a_frozen_body_keeps_weights_and_batchnorm_statistics_and_only_the_head_learns(tmp_path, mlflow_uri):
    source, started = _source(), {}
    train_run(_probe(tmp_path, source, _recipe(), started), _params())
    model, data = load_model(RunPaths(tmp_path, "unit", "probe").model)  # the file loads with the common loader
    assert data["arch"] == "resnet18" and data["arch_kwargs"] == {"num_classes": 2}
    saved = model.state_dict()
    assert set(saved) == set(source)  # the source's architecture (a new head), nothing added or renamed
    body = [k for k in source if not k.startswith("fc.")]
    assert any(k.endswith("running_var") for k in body) and any(k.endswith("num_batches_tracked") for k in body)
    moved = [k for k in body if not torch.equal(saved[k], source[k])]
    assert moved == [], f"frozen tensors changed: {moved[:5]}"  # weights, BatchNorm statistics and counters alike
    assert not torch.equal(saved["fc.weight"], started["weight"]) and not torch.equal(saved["fc.bias"], started["bias"])


def test_without_eval_mode_the_statistics_of_a_no_grad_body_move(tmp_path, mlflow_uri, monkeypatch):
    """What keeps them: requires_grad alone stops the weights, not the BatchNorm statistics (model.train() every
    epoch refreshes them from each batch). With the trainer's re-freeze disabled, the first test's check fails."""
    import cvflow.engine.trainer as trainer

    monkeypatch.setattr(trainer, "keep_frozen", lambda modules: None)
    source = _source()
    train_run(_probe(tmp_path, source, _recipe(), {}), _params())
    saved = load_model(RunPaths(tmp_path, "unit", "probe").model)[0].state_dict()
    assert not torch.equal(saved["bn1.running_mean"], source["bn1.running_mean"])
    assert torch.equal(saved["conv1.weight"], source["conv1.weight"])  # no gradient: the weights did stay


def test_the_optimizer_holds_only_what_trains():
    model = _build(_source())()
    frozen = freeze(model, BODY)
    assert all(not m.training for m in frozen) and model.fc.training
    groups = [{"params": [p for n, p in model.named_parameters() if not n.startswith("fc.")]},
              {"params": model.fc.parameters(), "lr_mult": 10}]
    optimizer = build_optimizer(groups, Optim(name="sgd", lr=0.01))
    (group,) = optimizer.param_groups  # the body's group, left empty, is gone
    assert [id(p) for p in group["params"]] == [id(p) for p in model.fc.parameters()]
    assert group["lr"] == pytest.approx(0.1)  # the head's own rate kept


@pytest.mark.parametrize("names, message", [
    (("layer9",), r"unit\.probe\.freeze: 'layer9' names no module of the ResNet; use names of its "
                  r"modules \(at the top: conv1, bn1, relu, maxpool, layer1, layer2, layer3, layer4, avgpool, fc\)"),
    ((*BODY, "fc"), r"unit\.probe\.freeze: conv1, .*, fc freezes every parameter of the ResNet; leave at "
                    r"least its head out"),
])
def test_a_freeze_that_names_no_module_or_everything_is_a_one_line_error(tmp_path, mlflow_uri, names, message):
    with pytest.raises(UserError, match=message):
        train_run(_probe(tmp_path, _source(), _recipe(names), {}), _params())


@pytest.mark.parametrize("value, message", [
    ([], r"hotdog\.demo\.probe\.freeze = \[\]: Tuple should have at least 1 item"),
    (["layer4", "layer 3"], r"hotdog\.demo\.probe\.freeze = .*'layer 3' is no module name"),
])
def test_a_bad_freeze_in_params_names_the_key(value, message):
    with pytest.raises(ParamsError, match=message):
        load_params(REPO / "params.yaml", [f"hotdog.demo.probe.freeze={value}"])


def test_the_real_probe_is_the_books_fine_tune_as_its_head_has_it():
    """The book discusses the frozen body but runs no probe: the real profile's probe trains the head as the book's
    train_fine_tuning(finetune_net, 5e-5) trains it (lr x 10, same optimizer, batch, epochs and loss), nothing else."""
    real = load_params(REPO / "params.yaml").hotdog.real
    probe, finetune = real.probe.model_dump(), real.finetune.model_dump()
    assert probe.pop("freeze") == BODY
    assert probe["optim"].pop("lr") == pytest.approx(finetune["optim"].pop("lr") * finetune["optim"]["head_lr_mult"])
    probe["optim"].pop("head_lr_mult"), finetune["optim"].pop("head_lr_mult")
    assert probe == finetune
