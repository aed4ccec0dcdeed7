"""Packaging: a built wheel holds every library, stage and pipeline file, and every task and stage imports from it
in a clean environment; the CLI is wired.

The editable install the tests run in reads the checkout itself, so it hides a package the wheel leaves out:
here a real wheel is built (``pip wheel``, no build isolation: offline) from a copy of the working tree and
installed into a fresh venv that borrows the heavy dependencies from this one (a ``.pth`` naming its
site-packages: a plain path line, so this venv's own ``.pth`` files, the editable finder among them, never run
there) and runs with the checkout out of reach (cwd elsewhere, no PYTHONPATH).
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from conftest import REPO, run_cvflow


def _roots() -> dict[str, str]:
    """setup.py's package name -> folder (read, not imported: importing it would run setup())."""
    tree = ast.parse((REPO / "setup.py").read_text(encoding="utf-8"))
    assign = next(n for n in tree.body if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "ROOTS")
    return ast.literal_eval(assign.value)


def _copy_tree(dest: Path) -> Path:
    """The working tree as the next commit would hold it (tracked and new files git does not ignore)."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, text=True, check=True).stdout
    for name in filter(None, listed.split("\0")):
        if (REPO / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    return dest


def _wheel(tree: Path, out: Path) -> Path:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--disable-pip-version-check", "--no-deps",
                    "--no-build-isolation", "--no-index", str(tree), "-w", str(out)], check=True,
                   capture_output=True, text=True)
    (wheel,) = out.glob("cvflow-*.whl")
    return wheel


def _left_out(tree: Path, wheel: Path) -> list[str]:
    """The files of the three package folders (``.py`` and any data beside them) the wheel does not hold."""
    with zipfile.ZipFile(wheel) as archive:
        held = set(archive.namelist())
    missing = []
    for name, folder in _roots().items():
        for path in sorted((tree / folder).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                inside = "/".join((*name.split("."), *path.relative_to(tree / folder).parts))
                if inside not in held:
                    missing.append(path.relative_to(tree).as_posix())
    return missing


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path]:
    """The copied tree and the wheel built from it."""
    work = tmp_path_factory.mktemp("wheel")
    tree = _copy_tree(work / "tree")
    return tree, _wheel(tree, work / "dist")


def test_the_wheel_holds_every_file_of_the_three_package_folders(built):
    tree, wheel = built
    assert _left_out(tree, wheel) == []


def test_a_package_the_build_misses_is_caught(tmp_path):
    """The check above can fail: a subpackage setup.py does not find (no ``__init__.py`` here) is left out of
    the wheel, and its files are named."""
    tree = _copy_tree(tmp_path / "tree")
    (tree / "pipelines" / "anchors" / "__init__.py").unlink()
    assert _left_out(tree, _wheel(tree, tmp_path / "dist")) == ["pipelines/anchors/draw.py"]


def test_every_task_and_stage_imports_from_the_installed_wheel(built, tmp_path):
    _, wheel = built
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--disable-pip-version-check",
                    "--no-deps", "--no-index", str(wheel)], check=True, capture_output=True, text=True)
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    # installed first, borrowed after: pip never saw this venv's editable cvflow there, to keep or uninstall
    borrowed = dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib"))
    (site / "_borrowed_from_test_venv.pth").write_text("".join(f"{path}\n" for path in borrowed))
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "PYTHONHOME")}
    env["CVFLOW_WARM"] = "0"  # a warm server of the checkout must not answer for the wheel's command
    smoke = f"""
import importlib, sys
from pathlib import Path
site = Path({str(site)!r})
assert not any("editable" in repr(finder) for finder in sys.meta_path), sys.meta_path
import pkgutil
import cvflow
from cvflow.pipelines import TASKS
for task in TASKS:
    for stage in task.stages:
        assert callable(stage.function), (task.name, stage.verb)
for module in pkgutil.walk_packages(cvflow.__path__, "cvflow."):  # every module, the stages' lazy imports' too
    importlib.import_module(module.name)
outside = sorted(name for name, module in sys.modules.items() if name.split(".")[0] == "cvflow"
                 and getattr(module, "__file__", None) and not Path(module.__file__).is_relative_to(site))
assert not outside, f"imported from outside the wheel: {{outside}}"
print(len(TASKS))
"""
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    result = subprocess.run([str(python), "-c", smoke], cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    from cvflow.pipelines import TASKS

    assert result.stdout.split() == [str(len(TASKS))]
    command = subprocess.run([str(venv / "bin" / "cvflow"), "--help"], cwd=cwd, env=env, capture_output=True,
                             text=True)
    assert command.returncode == 0, command.stderr[-3000:]


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
