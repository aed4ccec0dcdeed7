"""Packaging: every library, stage and pipeline package installs; the CLI is wired."""

from __future__ import annotations

import tomllib

from conftest import REPO, run_cvflow


def _declared() -> set[str]:
    return set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])


def test_every_package_folder_is_declared():
    found = {"cvflow." + ".".join(p.parent.relative_to(REPO / "src" / "cvflow").parts) if p.parent != REPO / "src" / "cvflow"
             else "cvflow" for p in (REPO / "src" / "cvflow").rglob("__init__.py")}
    found = {name.rstrip(".") for name in found}
    found |= {"cvflow.stages", "cvflow.pipelines"}
    assert found <= _declared(), f"add to pyproject.toml packages: {sorted(found - _declared())}"


def test_cli_lists_the_stage_commands(tmp_path):
    result = run_cvflow("--help", cwd=tmp_path)
    assert result.returncode == 0
    for verb in ("fetch", "pretrain", "train", "evaluate"):
        assert verb in result.stdout
    for verb in ("fetch", "pretrain", "train", "evaluate"):
        sub = run_cvflow(verb, "--help", cwd=tmp_path)
        assert sub.returncode == 0 and "hotdog" in sub.stdout
    assert run_cvflow("--version", cwd=tmp_path).stdout.startswith("cvflow ")


def test_unknown_command_is_a_usage_error(tmp_path):
    result = run_cvflow("train", "hotdgo", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr
