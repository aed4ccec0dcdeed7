"""params.yaml: the whole file is validated; mistakes give one line naming key, value and what is allowed."""

from __future__ import annotations

import copy

import pytest
import yaml

from cvflow.errors import ParamsError
from cvflow.params import PROFILES, Params, load_params, validate
from conftest import REPO, run_cvflow, tiny_params


def _repo_params() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


def test_repository_params_are_valid_for_both_profiles():
    params = load_params(REPO / "params.yaml")
    assert params.profile == "demo"
    for profile in PROFILES:
        section = getattr(params.hotdog, profile)
        assert section.finetune.optim.head_lr_mult == 10


def test_real_profile_is_the_books_recipe():
    real = load_params(REPO / "params.yaml").hotdog.real
    assert real.data.source == "d2l" and real.weights == "imagenet"
    assert (real.finetune.optim.lr, real.finetune.optim.weight_decay, real.finetune.batch_size,
            real.finetune.epochs) == (5e-5, 1e-3, 128, 5)
    assert real.scratch.optim.lr == 5e-4 and real.scratch.optim.head_lr_mult == 1
    assert (real.transforms.train_crop, real.transforms.test_resize, real.transforms.test_crop) == (224, 256, 224)
    assert real.transforms.mean == (0.485, 0.456, 0.406) and real.transforms.std == (0.229, 0.224, 0.225)
    bananas = load_params(REPO / "params.yaml").bananas.real  # 13.7: SGD lr 0.2, wd 5e-4, 20 epochs, batch 32
    assert (bananas.data.source, bananas.image_size, bananas.prior_prob, bananas.conf_threshold) == ("d2l", 256, None, 0.9)
    assert (bananas.recipe.optim.name, bananas.recipe.optim.lr, bananas.recipe.optim.weight_decay,
            bananas.recipe.optim.momentum, bananas.recipe.optim.scheduler) == ("sgd", 0.2, 5e-4, 0.0, "none")
    assert (bananas.recipe.epochs, bananas.recipe.batch_size) == (20, 32)


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
                                          r"\(allowed keys: epochs, batch_size, optim\)"):
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
