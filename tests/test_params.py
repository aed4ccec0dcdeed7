"""params.yaml: the whole file is validated; mistakes give one line naming key, value and what is allowed."""

from __future__ import annotations

import copy

import pytest
import yaml

from cvflow.errors import ParamsError
from cvflow.params import PROFILES
from cvflow.pipelines import Params, load_params, validate
from conftest import REPO, run_cvflow, tiny_params


def _repo_params() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


def test_repository_params_are_valid_for_both_profiles():
    params = load_params(REPO / "params.yaml")
    assert params.profile == "demo"
    for profile in PROFILES:
        section = getattr(params.hotdog, profile)
        assert section.finetune.optim.head_lr_mult == 10


#: The book's numbers (d2l 1.0.3, PyTorch edition), side by side with the params key that must hold them.
#: train_batch_ch13 back-propagates l.sum() (13.1, 13.2, 13.11, 13.13), so does 13.14's own train(); TinySSD
#: (13.7) l.mean().
BOOK = [
    # 13.2 fine-tuning: train_fine_tuning(finetune_net, 5e-5) / (scratch_net, 5e-4, param_group=False)
    ("hotdog.real.data.source", "d2l", "13.2 d2l.download_extract('hotdog')"),
    ("hotdog.real.weights", "imagenet", "13.2 torchvision.models.resnet18(weights=IMAGENET1K_V1)"),
    ("hotdog.real.finetune.optim.name", "sgd", "13.2 torch.optim.SGD"),
    ("hotdog.real.finetune.optim.lr", 5e-5, "13.2 train_fine_tuning(finetune_net, 5e-5)"),
    ("hotdog.real.finetune.optim.weight_decay", 1e-3, "13.2 weight_decay=0.001"),
    ("hotdog.real.finetune.optim.momentum", 0.0, "13.2 SGD without momentum"),
    ("hotdog.real.finetune.optim.head_lr_mult", 10, "13.2 {'params': net.fc.parameters(), 'lr': lr * 10}"),
    ("hotdog.real.finetune.optim.scheduler", "none", "13.2 no schedule"),
    ("hotdog.real.finetune.batch_size", 128, "13.2 batch_size=128"),
    ("hotdog.real.finetune.epochs", 5, "13.2 num_epochs=5"),
    ("hotdog.real.finetune.loss_reduction", "sum", "13.2 train_ch13 -> train_batch_ch13: l.sum().backward()"),
    ("hotdog.real.scratch.optim.lr", 5e-4, "13.2 train_fine_tuning(scratch_net, 5e-4, param_group=False)"),
    ("hotdog.real.scratch.optim.weight_decay", 1e-3, "13.2 weight_decay=0.001"),
    ("hotdog.real.scratch.optim.head_lr_mult", 1, "13.2 param_group=False: one lr"),
    ("hotdog.real.scratch.optim.momentum", 0.0, "13.2 SGD(net.parameters(), lr, weight_decay=0.001): no momentum"),
    ("hotdog.real.scratch.optim.scheduler", "none", "13.2 no schedule"),
    ("hotdog.real.scratch.batch_size", 128, "13.2 batch_size=128"),
    ("hotdog.real.scratch.epochs", 5, "13.2 num_epochs=5"),
    ("hotdog.real.scratch.loss_reduction", "sum", "13.2 train_batch_ch13: l.sum().backward()"),
    ("hotdog.real.transforms.train_crop", 224, "13.2 RandomResizedCrop(224)"),
    ("hotdog.real.transforms.train_scale", (0.08, 1.0), "13.2 RandomResizedCrop's default scale"),
    ("hotdog.real.transforms.test_resize", 256, "13.2 Resize([256, 256])"),
    ("hotdog.real.transforms.test_crop", 224, "13.2 CenterCrop(224)"),
    ("hotdog.real.transforms.mean", (0.485, 0.456, 0.406), "13.2 normalize"),
    ("hotdog.real.transforms.std", (0.229, 0.224, 0.225), "13.2 normalize"),
    # 13.6-13.7 TinySSD on bananas
    ("bananas.real.data.source", "d2l", "13.6 d2l.download_extract('banana-detection')"),
    ("bananas.real.image_size", 256, "13.6 the 256x256 images, no resize"),
    ("bananas.real.input_max", 255, "13.6 BananasDataset.__getitem__: features[idx].float() (0-255)"),
    ("bananas.real.augment", False, "13.6 no augmentation"),
    ("bananas.real.prior_prob", None, "13.7 PyTorch's default init"),
    ("bananas.real.recipe.optim.name", "sgd", "13.7 torch.optim.SGD"),
    ("bananas.real.recipe.optim.lr", 0.2, "13.7 lr=0.2"),
    ("bananas.real.recipe.optim.weight_decay", 5e-4, "13.7 weight_decay=5e-4"),
    ("bananas.real.recipe.optim.momentum", 0.0, "13.7 SGD without momentum"),
    ("bananas.real.recipe.optim.scheduler", "none", "13.7 no schedule"),
    ("bananas.real.recipe.optim.head_lr_mult", 1, "13.7 one lr for every layer"),
    ("bananas.real.recipe.epochs", 20, "13.7 num_epochs = 20"),
    ("bananas.real.recipe.batch_size", 32, "13.6 load_data_bananas(batch_size=32)"),
    ("bananas.real.recipe.loss_reduction", "mean", "13.7 l.mean().backward()"),
    ("bananas.real.conf_threshold", 0.9, "13.7 display(img, output.cpu(), threshold=0.9)"),
    # 13.1 image augmentation: train_with_data_aug(train_augs, test_augs, net, lr=0.001), batch_size=256, 10 epochs
    ("cifar10.real.data.source", "torchvision", "13.1 torchvision.datasets.CIFAR10(download=True)"),
    ("cifar10.real.train_images", None, "13.1 all 50,000 training images"),
    ("cifar10.real.net.width", 64, "13.1 d2l.resnet18(10, 3)"),
    ("cifar10.real.net.init", "xavier", "13.1 net.apply(init_weights): nn.init.xavier_uniform_ on Conv2d and Linear"),
    ("cifar10.real.augment.hflip", True, "13.1 train_augs: RandomHorizontalFlip()"),
    ("cifar10.real.augment.crop_padding", 0, "13.1 train_augs has no crop"),
    ("cifar10.real.recipe.optim.name", "adam", "13.1 torch.optim.Adam(net.parameters(), lr=lr)"),
    ("cifar10.real.recipe.optim.lr", 1e-3, "13.1 lr=0.001"),
    ("cifar10.real.recipe.optim.weight_decay", 0.0, "13.1 Adam without weight decay"),
    ("cifar10.real.recipe.optim.scheduler", "none", "13.1 no schedule"),
    ("cifar10.real.recipe.batch_size", 256, "13.1 batch_size=256"),
    ("cifar10.real.recipe.epochs", 10, "13.1 train_ch13(..., 10, devices)"),
    ("cifar10.real.recipe.loss_reduction", "sum", "13.1 train_batch_ch13: l.sum().backward()"),
    # 13.13 Kaggle CIFAR-10 (PyTorch edition)
    ("kaggle_cifar10.real.data.source", "kaggle", "13.13 the competition's files"),
    ("kaggle_cifar10.real.valid_ratio", 0.1, "13.13 valid_ratio = 0.1"),
    ("kaggle_cifar10.real.net.width", 64, "13.13 get_net(): d2l.resnet18(10, 3)"),
    ("kaggle_cifar10.real.net.init", "default", "13.13 get_net() applies no init"),
    ("kaggle_cifar10.real.transforms.resize", 40, "13.13 Resize(40)"),
    ("kaggle_cifar10.real.transforms.crop", 32, "13.13 RandomResizedCrop(32, scale=(0.64, 1.0), ratio=(1.0, 1.0))"),
    ("kaggle_cifar10.real.transforms.crop_scale", (0.64, 1.0), "13.13 RandomResizedCrop scale"),
    ("kaggle_cifar10.real.transforms.hflip", True, "13.13 RandomHorizontalFlip()"),
    ("kaggle_cifar10.real.transforms.mean", (0.4914, 0.4822, 0.4465), "13.13 Normalize"),
    ("kaggle_cifar10.real.transforms.std", (0.2023, 0.1994, 0.2010), "13.13 Normalize"),
    ("kaggle_cifar10.real.recipe.optim.name", "sgd", "13.13 torch.optim.SGD(momentum=0.9)"),
    ("kaggle_cifar10.real.recipe.optim.lr", 2e-4, "13.13 lr = 2e-4"),
    ("kaggle_cifar10.real.recipe.optim.momentum", 0.9, "13.13 momentum=0.9"),
    ("kaggle_cifar10.real.recipe.optim.weight_decay", 5e-4, "13.13 wd = 5e-4"),
    ("kaggle_cifar10.real.recipe.optim.scheduler", "step", "13.13 lr_scheduler.StepLR(trainer, lr_period, lr_decay)"),
    ("kaggle_cifar10.real.recipe.optim.step_size", 4, "13.13 lr_period = 4"),
    ("kaggle_cifar10.real.recipe.optim.gamma", 0.9, "13.13 lr_decay = 0.9"),
    ("kaggle_cifar10.real.recipe.optim.head_lr_mult", 1, "13.13 SGD(net.parameters(), ...): one lr"),
    ("kaggle_cifar10.real.recipe.epochs", 20, "13.13 num_epochs = 20"),
    ("kaggle_cifar10.real.recipe.batch_size", 128, "13.13 batch_size = 128"),
    ("kaggle_cifar10.real.recipe.loss_reduction", "sum", "13.13 train_batch_ch13: l.sum().backward()"),
    # 13.12 neural style transfer (PyTorch edition)
    ("style.real.content", "rainier.jpg", "13.12 content_img = d2l.Image.open('../img/rainier.jpg')"),
    ("style.real.style", "autumn-oak.jpg", "13.12 style_img = d2l.Image.open('../img/autumn-oak.jpg')"),
    ("style.real.net.weights", "imagenet", "13.12 torchvision.models.vgg19(pretrained=True)"),
    ("style.real.net.width", 64, "13.12 VGG-19 itself"),
    ("style.real.net.style_layers", [0, 5, 10, 19, 28], "13.12 style_layers, content_layers = [0, 5, 10, 19, 28], [25]"),
    ("style.real.net.content_layers", [25], "13.12 style_layers, content_layers = [0, 5, 10, 19, 28], [25]"),
    ("style.real.loss.content_weight", 1, "13.12 content_weight, style_weight, tv_weight = 1, 1e3, 10"),
    ("style.real.loss.style_weight", 1e4, "13.12 style_weight = 1e3 in sum(10 * styles_l + contents_l + [tv_l]): "
                                          "the list ten times, 1e4"),
    ("style.real.loss.tv_weight", 10, "13.12 content_weight, style_weight, tv_weight = 1, 1e3, 10"),
    ("style.real.optim.name", "adam", "13.12 get_inits: torch.optim.Adam(gen_img.parameters(), lr=lr)"),
    ("style.real.optim.lr", 0.3, "13.12 train(content_X, contents_Y, styles_Y, device, 0.3, 500, 50)"),
    ("style.real.optim.step_size", 50, "13.12 StepLR(trainer, lr_decay_epoch=50, 0.8)"),
    ("style.real.optim.gamma", 0.8, "13.12 StepLR(trainer, lr_decay_epoch, 0.8)"),
    ("style.real.steps", 500, "13.12 num_epochs = 500"),
    ("style.real.scales", [(300, 450)], "13.12 image_shape = (300, 450)"),
    # 13.14 Kaggle dog breeds (PyTorch edition)
    ("kaggle_dogs.real.data.source", "kaggle", "13.14 the competition's files (dog-breed-identification)"),
    ("kaggle_dogs.real.valid_ratio", 0.1, "13.14 valid_ratio = 0.1"),
    ("kaggle_dogs.real.backbone.weights", "imagenet", "13.14 get_net(): torchvision.models.resnet34(pretrained=True)"),
    ("kaggle_dogs.real.backbone.layer", "output", "13.14 finetune_net.features = the whole resnet34: its 1000 outputs"),
    ("kaggle_dogs.real.hidden", 256, "13.14 output_new: Linear(1000, 256), ReLU, Linear(256, 120)"),
    ("kaggle_dogs.real.views", 0, "13.14 train(): net(features) runs the frozen ResNet-34 on every batch"),
    ("kaggle_dogs.real.tta_flip", False, "13.14 predicts the test transform's view alone"),
    ("kaggle_dogs.real.transforms.train_crop", 224, "13.14 RandomResizedCrop(224, ...)"),
    ("kaggle_dogs.real.transforms.train_scale", (0.08, 1.0), "13.14 RandomResizedCrop scale=(0.08, 1.0)"),
    ("kaggle_dogs.real.transforms.train_ratio", (3 / 4, 4 / 3), "13.14 RandomResizedCrop ratio=(3.0/4.0, 4.0/3.0)"),
    ("kaggle_dogs.real.transforms.hflip", True, "13.14 RandomHorizontalFlip()"),
    ("kaggle_dogs.real.transforms.jitter", 0.4, "13.14 ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4)"),
    ("kaggle_dogs.real.transforms.test_resize", 256, "13.14 transform_test: Resize(256)"),
    ("kaggle_dogs.real.transforms.test_crop", 224, "13.14 transform_test: CenterCrop(224)"),
    ("kaggle_dogs.real.transforms.mean", (0.485, 0.456, 0.406), "13.14 Normalize"),
    ("kaggle_dogs.real.transforms.std", (0.229, 0.224, 0.225), "13.14 Normalize"),
    ("kaggle_dogs.real.recipe.optim.name", "sgd", "13.14 torch.optim.SGD(..., momentum=0.9, weight_decay=wd)"),
    ("kaggle_dogs.real.recipe.optim.lr", 1e-4, "13.14 lr = 1e-4"),
    ("kaggle_dogs.real.recipe.optim.momentum", 0.9, "13.14 momentum=0.9"),
    ("kaggle_dogs.real.recipe.optim.weight_decay", 1e-4, "13.14 wd = 1e-4"),
    ("kaggle_dogs.real.recipe.optim.scheduler", "step", "13.14 lr_scheduler.StepLR(trainer, lr_period, lr_decay)"),
    ("kaggle_dogs.real.recipe.optim.step_size", 2, "13.14 lr_period = 2"),
    ("kaggle_dogs.real.recipe.optim.gamma", 0.9, "13.14 lr_decay = 0.9"),
    ("kaggle_dogs.real.recipe.optim.head_lr_mult", 1, "13.14 SGD over the head's parameters: one lr"),
    ("kaggle_dogs.real.recipe.epochs", 10, "13.14 num_epochs = 10"),
    ("kaggle_dogs.real.recipe.batch_size", 128, "13.14 batch_size = 128 (demo = False)"),
    ("kaggle_dogs.real.recipe.loss_reduction", "sum", "13.14 train(): l = loss(output, labels).sum(); l.backward() "
                                                      "(loss = nn.CrossEntropyLoss(reduction='none'))"),
    # 13.9-13.11 the FCN on VOC2012 (PyTorch edition)
    ("voc.real.data.source", "d2l", "13.9 d2l.download_extract('voc2012', 'VOCdevkit/VOC2012')"),
    ("voc.real.crop_size", (320, 480), "13.11 batch_size, crop_size = 32, (320, 480)"),
    ("voc.real.boundary", "background", "13.9 voc_label_indices: (224, 224, 192) is no VOC_COLORMAP entry -> 0"),
    ("voc.real.weights", "imagenet", "13.11 torchvision.models.resnet18(pretrained=True)"),
    ("voc.real.recipe.optim.name", "sgd", "13.11 torch.optim.SGD(net.parameters(), lr=lr, weight_decay=wd)"),
    ("voc.real.recipe.optim.lr", 1e-3, "13.11 lr = 0.001"),
    ("voc.real.recipe.optim.weight_decay", 1e-3, "13.11 wd = 1e-3"),
    ("voc.real.recipe.optim.momentum", 0.0, "13.11 SGD without momentum"),
    ("voc.real.recipe.optim.head_lr_mult", 1, "13.11 one lr for every layer"),
    ("voc.real.recipe.optim.scheduler", "none", "13.11 no schedule"),
    ("voc.real.recipe.epochs", 5, "13.11 num_epochs = 5"),
    ("voc.real.recipe.batch_size", 32, "13.11 batch_size = 32"),
    ("voc.real.recipe.loss_reduction", "sum", "13.11 train_ch13 -> train_batch_ch13: l.sum().backward()"),
]


@pytest.mark.parametrize("key, book, where", BOOK, ids=[row[0] for row in BOOK])
def test_real_profile_is_the_books_recipe(key, book, where):
    value = load_params(REPO / "params.yaml")
    for part in key.split("."):
        value = getattr(value, part)
    assert value == book, f"{key} = {value!r}, the book has {book!r} ({where})"


def test_task_picks_the_active_profile():
    data = _repo_params()
    data["profile"] = "real"
    assert validate(data).task("hotdog").weights == "imagenet"
    data["profile"] = "demo"
    assert validate(data).task("hotdog").weights == "source"


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda d: d["hotdog"]["demo"]["finetune"]["optim"].__setitem__("lr", -1),
         "hotdog.demo.finetune.optim.lr = -1: Input should be greater than 0"),
        (lambda d: d["hotdog"]["real"]["scratch"].__setitem__("epochs", "five"),
         "hotdog.real.scratch.epochs = 'five'"),
        (lambda d: d["hotdog"]["demo"]["data"].__setitem__("source", "kaggel"),
         "hotdog.demo.data.source = 'kaggel': Input should be 'demo', 'd2l' or 'local'"),
        (lambda d: d["common"].__setitem__("device", "gpu"),
         "common.device = 'gpu': must be auto, cpu, cuda, cuda:N or mps"),
        (lambda d: d.__setitem__("profile", "full"), "profile = 'full'"),
        (lambda d: d["hotdog"]["demo"].__setitem__("weights", "resnet"),
         "hotdog.demo.weights = 'resnet': must be imagenet, source, none or a path"),
        (lambda d: d["hotdog"]["demo"]["transforms"].__setitem__("test_crop", 999),
         "test_crop (999) must not exceed test_resize"),
        (lambda d: d["hotdog"]["demo"]["data"].update(source="local", path=None),
         "source: local needs a path"),
    ],
)
def test_bad_values_name_key_value_and_rule(mutate, expected):
    data = _repo_params()
    mutate(data)
    with pytest.raises(ParamsError) as info:
        validate(data, "params.yaml")
    message = str(info.value)
    assert expected in message
    assert message.startswith("params.yaml: ") and "\n" not in message


def test_unknown_key_lists_the_allowed_keys():
    data = _repo_params()
    data["hotdog"]["demo"]["finetune"]["learning_rate"] = 0.1
    with pytest.raises(ParamsError, match=r"hotdog\.demo\.finetune\.learning_rate: unknown key "
                                          r"\(allowed keys: start, epochs, batch_size, optim, loss_reduction\)"):
        validate(data)


def test_missing_section_is_named():
    data = _repo_params()
    del data["hotdog"]["real"]["scratch"]
    with pytest.raises(ParamsError, match=r"hotdog\.real\.scratch: missing"):
        validate(data)


def test_overrides_are_validated_like_the_file(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(tiny_params()))
    params = load_params(path, ["hotdog.demo.finetune.epochs=7", "common.seed=3"])
    assert params.hotdog.demo.finetune.epochs == 7 and params.common.seed == 3
    with pytest.raises(ParamsError, match=r"hotdog\.demo\.finetune\.epochs = 0"):
        load_params(path, ["hotdog.demo.finetune.epochs=0"])
    with pytest.raises(ParamsError, match="expected KEY=VALUE"):
        load_params(path, ["hotdog.demo.finetune.epochs"])


def test_yaml_syntax_error_names_line(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("profile: demo\ncommon: [unclosed\n")
    with pytest.raises(ParamsError, match=r"params\.yaml:.*line \d+.*not valid YAML"):
        load_params(path)


def test_cli_bad_param_is_one_line_exit_2_without_traceback(tmp_path):
    data = tiny_params()
    data["hotdog"]["demo"]["scratch"]["optim"]["lr"] = "fast"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(data))
    result = run_cvflow("train", "hotdog", "--variant", "scratch", cwd=tmp_path)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "hotdog.demo.scratch.optim.lr = 'fast'" in lines[0]
    assert "Traceback" not in result.stderr


def test_cli_option_overrides_reach_the_active_profile(tmp_path):
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(tiny_params()))
    result = run_cvflow("train", "hotdog", "--variant", "finetune", "--epochs", "0", cwd=tmp_path)
    assert result.returncode == 2
    assert "hotdog.demo.finetune.epochs = 0" in result.stderr


def test_missing_params_file_is_a_user_error(tmp_path):
    result = run_cvflow("fetch", "hotdog", cwd=tmp_path)
    assert result.returncode == 2 and "no such file" in result.stderr and "Traceback" not in result.stderr


def test_params_model_rejects_extra_top_level_keys():
    data = copy.deepcopy(_repo_params())
    data["hotdgo"] = {}
    with pytest.raises(ParamsError, match="hotdgo: unknown key"):
        validate(data)
    assert isinstance(validate(_repo_params()), Params)


@pytest.mark.parametrize("profile", PROFILES)
def test_every_param_dvc_tracks_exists_in_params_yaml(profile):
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    data = _repo_params()
    missing = []
    for name, stage in stages.items():
        for key in stage.get("params", []):
            node = data
            for part in key.replace("${profile}", profile).split("."):
                if not isinstance(node, dict) or part not in node:
                    missing.append(f"{name}: {key}")
                    break
                node = node[part]
    assert not missing, f"dvc.yaml tracks params that params.yaml lacks ({profile}): {missing}"


def test_dvc_accepts_the_pipeline_file():
    """DVC's own schema check of dvc.yaml (e.g. a stage plot's ``y`` must be one column)."""
    import subprocess
    import sys

    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    result = subprocess.run([sys.executable, "-m", "dvc", "dag", "--dot"], cwd=REPO, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert all(f'"{name}"' in result.stdout for name in stages), result.stdout


# --------------------------------------------------------------------------- the smoke switch


def test_smoke_switch_lays_the_smoke_section_over_the_active_profile_and_set_wins(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text((REPO / "params.yaml").read_text())
    smoke = _repo_params()["smoke"]
    off = load_params(path)
    assert not off.common.smoke and off.task("hotdog").finetune.epochs != smoke["hotdog"]["finetune"]["epochs"]
    on = load_params(path, ["common.smoke=true"])
    assert on.task("hotdog").finetune.epochs == smoke["hotdog"]["finetune"]["epochs"]
    assert on.task("hotdog").demo.train_per_class == smoke["hotdog"]["demo"]["train_per_class"]
    assert on.task("hotdog").finetune.optim.lr == off.task("hotdog").finetune.optim.lr  # untouched keys stay
    assert on.hotdog.real == off.hotdog.real  # only the active profile
    assert load_params(path, ["common.smoke=true", "hotdog.demo.finetune.epochs=3"]).task("hotdog").finetune.epochs == 3
    for task in smoke:  # a stage whose values the switch changes tracks the switch and the smoke keys laid over them
        stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"].values()
        for key in smoke[task]:
            readers = [s for s in stages if any(str(k) in (f"{task}.${{profile}}", f"{task}.${{profile}}.{key}")
                                                or str(k).startswith(f"{task}.${{profile}}.{key}.")
                                                for k in s.get("params", []))]
            assert readers and all({"common.smoke", f"smoke.{task}.{key}"} <= set(s["params"]) for s in readers), \
                (task, key)


def test_a_typo_in_the_smoke_section_is_one_line_even_with_the_switch_off(tmp_path):
    data = _repo_params()
    data["smoke"]["hotdog"]["finetune"]["epochz"] = 1
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ParamsError, match=r"smoke\.hotdog\.finetune\.epochz: no such key"):
        load_params(path)
    data = _repo_params()
    data["smoke"]["hotdogs"] = {"grid_images": 1}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ParamsError, match=r"smoke\.hotdogs: no task"):
        load_params(path)


# --------------------------------------------------------------------------- every param stated, every read recorded


def test_params_yaml_states_every_field_no_schema_default_is_used():
    """A default the file omits is read by stages and tracked by none (dvc.yaml tracks the file's values)."""
    from cvflow.params import defaults_used

    assert defaults_used(load_params(REPO / "params.yaml")) == []


def test_defaults_used_names_an_omitted_field_down_the_tree():
    from cvflow.params import defaults_used

    data = _repo_params()
    del data["hotdog"]["real"]["finetune"]["optim"]["momentum"]
    del data["common"]["pin_memory"]
    assert defaults_used(validate(data)) == ["common.pin_memory", "hotdog.real.finetune.optim.momentum"]


#: run in a process of its own: the trace patches the params classes and writes at exit
_TRACE_SCRIPT = """
import sys
from cvflow.params import trace_reads
from cvflow.pipelines import load_params

params = load_params(sys.argv[1])
trace_reads(params, "train-bananas")
cfg = params.task("bananas")
cfg.recipe.optim.lr                         # a leaf, three models down
cfg.demo.model_dump(mode="json")            # a whole model dumped: all its leaves
cfg.recipe.model_copy(update={"epochs": 1}).epochs   # a copy reads its source whole; reads of the copy add nothing
"""


def test_trace_records_leaves_read_through_nested_models_at_exit(tmp_path):
    import json
    import subprocess
    import sys

    from cvflow.params import TRACE_ENV

    env = {**__import__("os").environ, TRACE_ENV: str(tmp_path / "trace")}
    done = subprocess.run([sys.executable, "-c", _TRACE_SCRIPT, str(REPO / "params.yaml")], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    trace = json.loads((tmp_path / "trace" / "train-bananas.json").read_text())
    recipe = {f"bananas.demo.recipe.{key}" for key in ("epochs", "batch_size", "loss_reduction")} | {
        f"bananas.demo.recipe.optim.{key}" for key in
        ("name", "lr", "momentum", "weight_decay", "head_lr_mult", "scheduler", "step_size", "gamma")}
    assert trace == {"stage": "train-bananas", "profile": "demo", "read": sorted(
        {"profile", "bananas.demo.demo.train", "bananas.demo.demo.test", "bananas.demo.demo.seed"} | recipe)}


def test_trace_is_off_without_the_variable(monkeypatch):
    """Unset, nothing is installed: reading params costs what it always did."""
    from cvflow import params as module

    monkeypatch.delenv(module.TRACE_ENV, raising=False)
    params = load_params(REPO / "params.yaml")
    module.trace_reads(params, "train-bananas")
    assert module._TRACE is None
    assert all("__getattribute__" not in vars(type(model)) for _, model, _, _ in module.fields(params))


def test_trace_folder_that_cannot_be_written_is_a_user_error(tmp_path, monkeypatch):
    from cvflow.errors import UserError
    from cvflow.params import TRACE_ENV, trace_reads

    (tmp_path / "file").write_text("")
    monkeypatch.setenv(TRACE_ENV, str(tmp_path / "file" / "trace"))
    with pytest.raises(UserError, match=f"{TRACE_ENV}=.*cannot write .*train-bananas.json"):
        trace_reads(load_params(REPO / "params.yaml"), "train-bananas")


def test_coverage_flags_a_read_key_no_declared_section_tracks():
    from cvflow.params import unread_declared, untracked_reads

    read = {"profile", "bananas.demo.recipe.optim.lr", "bananas.demo.nms_threshold", "common.seed", "common.hub_url"}
    declared = ["profile", "common.seed", "bananas.${profile}.recipe", "bananas.${profile}.prior_prob"]
    assert untracked_reads(read, declared, "demo") == ["bananas.demo.nms_threshold"]  # hub_url: UNTRACKED
    assert untracked_reads(read, declared, "real") == ["bananas.demo.nms_threshold", "bananas.demo.recipe.optim.lr"]
    assert unread_declared(read, declared, "demo") == ["bananas.demo.prior_prob"]
    # a section covers its own keys, not a key that merely starts with its name
    assert untracked_reads({"bananas.demo.recipe_x"}, ["bananas.${profile}.recipe"], "demo") == ["bananas.demo.recipe_x"]
