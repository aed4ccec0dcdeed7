"""dvc.yaml `deps` are complete by construction: every stage depends on the code its command runs.

For each stage the test finds the Typer command its ``cmd`` names, then follows imports
statically (AST, no module is imported): the callback's own body (closure values resolve
``importlib.import_module(f"cvflow.pipelines.{module}")``), the module-level code of every
reached module, and every ``import`` inside its functions too (lazily imported code still
runs) - except the bodies of the OTHER stage commands, which this stage never runs. A pipeline
module (``cvflow.pipelines.*``) holds every stage of its task, so there only the functions the
command calls (``pipeline.train(...)``), what they reach by name, and module-level code count. Each
reached cvflow module must be covered by a dep: its file, or a folder above it. Nothing here
names a module of the library, so the test keeps working when modules move.
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import os
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

import click
import typer
import yaml

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "cvflow"
PIPELINES = "cvflow.pipelines"

# Reached by every stage, yet unable to change a stage's outputs. Keep this list short: a
# module missing from a stage's deps makes DVC call stale outputs up to date.
EXEMPT = {
    "cvflow": "the package __init__: a docstring and __version__, which no output holds",
    "cvflow.console": "log lines and progress bars on stderr; writes no output file",
    "cvflow.errors": "exception classes: exit codes and messages, no output file",
    "cvflow.tracking": "MLflow only: the store is deliberately no DVC dependency, and no DVC output holds "
                       "anything it writes (run ids and timings stay out of them)",
    "cvflow.params": "the params schema: values reach outputs through params.yaml keys, tracked per stage "
                     "as `params:` (a default used for a key missing from params.yaml is the one blind spot)",
}
EXEMPT_PACKAGES = {
    "cvflow.stages": "the command layer: options -> params overrides -> one pipeline call; dvc.yaml cmds "
                     "pass no overrides, and the pipeline modules a command calls ARE required",
}
# Where the project's own source lives (a dep there must exist); other deps are data.
SOURCE_ROOTS = ("src", "pipelines", "stages")


# ----------------------------------------------------------------------------- module files


def find_spec(name: str):
    """The spec of module ``name`` WITHOUT importing it or its parents (fast: no torch)."""
    if name in sys.modules and getattr(sys.modules[name], "__spec__", None) is not None:
        return sys.modules[name].__spec__
    parent, _, _ = name.rpartition(".")
    if not parent:
        return importlib.util.find_spec(name)  # a top-level find_spec imports nothing
    parent_spec = find_spec(parent)
    if parent_spec is None or parent_spec.submodule_search_locations is None:
        return None  # the parent is a module: `name` is an attribute of it
    for finder in sys.meta_path:
        finder_find_spec = getattr(finder, "find_spec", None)
        if finder_find_spec is None:
            continue
        spec = finder_find_spec(name, list(parent_spec.submodule_search_locations))
        if spec is not None:
            return spec
    return None


def module_file(name: str) -> Path | None:
    """The source file of module ``name`` (a package's ``__init__.py``), None when no such module."""
    spec = find_spec(name)
    if spec is None or not spec.origin or spec.origin in ("built-in", "frozen"):
        return None
    return Path(spec.origin).resolve()


def is_package(name: str) -> bool:
    spec = find_spec(name)
    return spec is not None and spec.submodule_search_locations is not None


def relpath(path: Path) -> str:
    try:
        return path.relative_to(REPO).as_posix()
    except ValueError:
        raise AssertionError(f"{path} lies outside {REPO}: the installed cvflow is another checkout; "
                             "run `pip install -e .` here") from None


def has_code(tree: ast.Module) -> bool:
    """False for a module that is empty or holds only a docstring: it cannot change anything."""
    body = list(tree.body)
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        body = body[1:]
    return any(not (isinstance(node, ast.ImportFrom) and node.module == "__future__") for node in body)


def is_exempt(name: str) -> bool:
    return name in EXEMPT or any(name == p or name.startswith(p + ".") for p in EXEMPT_PACKAGES)


# ----------------------------------------------------------------------------- imports of a piece of code


class Unresolved(Exception):
    pass


def _string_value(node: ast.AST, namespace: dict) -> str:
    """A constant, a name bound in ``namespace``, or an f-string of those; else Unresolved."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name) and isinstance(namespace.get(node.id), str):
        return namespace[node.id]
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            if isinstance(value, ast.Constant):
                parts.append(str(value.value))
            elif isinstance(value, ast.FormattedValue) and value.format_spec is None and value.conversion in (-1, 115):
                parts.append(_string_value(value.value, namespace))
            else:
                raise Unresolved(ast.unparse(node))
        return "".join(parts)
    raise Unresolved(ast.unparse(node))


def _is_type_checking(test: ast.AST) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
           (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _is_dynamic_import(call: ast.Call) -> bool:
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    return name in ("import_module", "__import__") and bool(call.args)


@dataclass
class Imports:
    modules: set[str] = field(default_factory=set)  # absolute dotted names, possibly `pkg.attribute`
    unresolved: list[str] = field(default_factory=list)  # dynamic imports whose name is unknown


def imports_of(node: ast.AST, package: str, namespace: dict | None = None, skip=lambda fn: False,
               where: str = "") -> Imports:
    """Every module ``node`` can import: ``import``/``from`` statements at any depth (functions
    included, ``if TYPE_CHECKING:`` blocks and functions for which ``skip(fn)`` is true excluded),
    and ``import_module(...)``/``__import__(...)`` calls whose name resolves with ``namespace``.
    ``package`` resolves relative imports (the module's ``__package__``)."""
    found = Imports()
    namespace = namespace or {}

    def visit(n: ast.AST) -> None:
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and skip(n):
            return
        if isinstance(n, ast.If) and _is_type_checking(n.test):
            for child in n.orelse:
                visit(child)
            return
        if isinstance(n, ast.Import):
            found.modules.update(alias.name for alias in n.names)
        elif isinstance(n, ast.ImportFrom):
            base = importlib.util.resolve_name("." * n.level + (n.module or ""), package) if n.level else n.module
            found.modules.add(base)
            # `from pkg import name`: name may be a submodule; module_file() tells later
            found.modules.update(f"{base}.{alias.name}" for alias in n.names if alias.name != "*")
        elif isinstance(n, ast.Call) and _is_dynamic_import(n):
            try:
                found.modules.add(_string_value(n.args[0], namespace))
            except Unresolved as exc:
                found.unresolved.append(f"{where}:{n.lineno}: {ast.unparse(n)} (cannot resolve {exc})")
        for child in ast.iter_child_nodes(n):
            visit(child)

    visit(node)
    return found


def pipeline_imports(tree: ast.Module, package: str, entries: set[str], where: str = "") -> Imports:
    """What a pipeline module imports when a command calls its functions named in ``entries``: its
    module-level statements (functions and classes left out), then the functions and classes those
    entries reach by name within the module, transitively. Pipeline modules import what only one
    stage needs inside that stage's function, so `fetch hotdog` does not depend on the training code."""
    defs = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    top = ast.Module(body=[n for n in tree.body if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                                      ast.ClassDef))], type_ignores=[])
    found = imports_of(top, package, where=where)
    todo = [name for name in entries if name in defs]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        part = imports_of(defs[name], package, where=where)
        found.modules |= part.modules
        found.unresolved += part.unresolved
        names = [n for n in ast.walk(defs[name]) if isinstance(n, ast.Name)]
        local = {n.id for n in names if isinstance(n.ctx, ast.Store)}  # a local `train = ...` is no call
        todo += [n.id for n in names if n.id in defs and n.id not in local]
    return found


# ----------------------------------------------------------------------------- commands


def _commands(group: click.Command, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], click.Command]:
    found = {prefix: group}
    for name, command in getattr(group, "commands", {}).items():
        found.update(_commands(command, prefix + (name,)))
    return found


def cli_commands() -> dict[tuple[str, ...], click.Command]:
    """Every command of the `cvflow` CLI by its words, e.g. ``("train", "hotdog")``."""
    from cvflow.stages.cli import app

    return _commands(typer.main.get_command(app))


def callback_of(command: click.Command):
    """The project's own function behind a (typer-wrapped) click command."""
    function = inspect.unwrap(command.callback)
    assert function.__module__.startswith(PACKAGE + "."), f"{command.name}: callback {function} is not cvflow code"
    return function


def resolve_cmd(cmd: str, commands: dict) -> tuple[tuple[str, ...], click.Command]:
    """``cvflow train hotdog --variant finetune`` -> (("train", "hotdog"), its click command)."""
    words = shlex.split(cmd)
    if not words or words[0] != "cvflow":
        raise AssertionError(f"cmd {cmd!r}: not a `cvflow ...` command; extend tests/test_dvc_deps.py to analyse it")
    path: tuple[str, ...] = ()
    for word in words[1:]:
        if path + (word,) not in commands:
            break
        path += (word,)
    command = commands[path]
    if isinstance(command, click.Group) or command.callback is None:
        raise AssertionError(f"cmd {cmd!r}: names no command (stops at the group `cvflow {' '.join(path)}`)")
    return path, command


def _def_line(node: ast.FunctionDef) -> int:
    """The line a function's code object starts on (its first decorator, if any)."""
    return min([d.lineno for d in node.decorator_list] + [node.lineno])


def _function_node(tree: ast.Module, function) -> ast.FunctionDef:
    line = function.__code__.co_firstlineno
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == function.__code__.co_name \
                and _def_line(node) == line:
            return node
    raise AssertionError(f"{function.__module__}:{line}: the source of {function.__qualname__} is not found")


# ----------------------------------------------------------------------------- the analysis


@dataclass
class Reached:
    files: dict[str, str]  # module name -> file relative to the repo, for every reached cvflow module
    unresolved: list[str]


def reached_modules(callback, all_callbacks) -> Reached:
    """Every cvflow module the command ``callback`` can import, with its file."""
    trees: dict[Path, ast.Module] = {}

    def tree_of(path: Path) -> ast.Module:
        if path not in trees:
            trees[path] = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        return trees[path]

    # Command bodies are skipped in module scans: the other commands never run in this stage, and
    # this command's body is scanned on its own, where its closure values resolve dynamic imports.
    commands = {(Path(inspect.getsourcefile(f)).resolve(), f.__code__.co_firstlineno)
                for f in [*all_callbacks, callback]}

    files: dict[str, str] = {}
    unresolved: list[str] = []
    pending: list[str] = []

    def add(names) -> None:
        for name in names:
            if name == PACKAGE or name.startswith(PACKAGE + "."):
                # importing a.b.c runs a, a.b and a.b.c
                parts = name.split(".")
                pending.extend(".".join(parts[:i]) for i in range(1, len(parts) + 1))

    own_file = Path(inspect.getsourcefile(callback)).resolve()
    closure = inspect.getclosurevars(callback)
    namespace = {**closure.globals, **closure.nonlocals}
    own_module = callback.__module__
    package = own_module if is_package(own_module) else own_module.rpartition(".")[0]
    body = imports_of(_function_node(tree_of(own_file), callback), package, namespace, where=relpath(own_file))
    add(body.modules)
    unresolved += body.unresolved
    add([own_module])

    # what the command calls on the pipeline module it imports (``pipeline.train(...)``): the entries
    entries = {n.attr for n in ast.walk(_function_node(tree_of(own_file), callback))
               if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)}

    while pending:
        name = pending.pop()
        if name in files:
            continue
        path = module_file(name)
        if path is None:
            continue  # `from pkg import attribute`: not a module
        files[name] = relpath(path)
        package = name if is_package(name) else name.rpartition(".")[0]
        if name.startswith(PIPELINES + ".") and name != PIPELINES:
            # a pipeline module holds every stage of its task: only the entry this command calls runs
            found = pipeline_imports(tree_of(path), package, entries, where=relpath(path))
        else:
            found = imports_of(tree_of(path), package, skip=lambda fn, p=path: (p, _def_line(fn)) in commands,
                               where=relpath(path))
        add(found.modules)
        unresolved += found.unresolved
    return Reached(files, unresolved)


def required_files(reached: Reached) -> dict[str, str]:
    """The reached modules a stage must depend on: all but the exempt ones and docstring-only files."""
    return {name: path for name, path in reached.files.items()
            if not is_exempt(name) and has_code(ast.parse((REPO / path).read_text(encoding="utf-8")))}


def covered(path: str, deps: list[str]) -> bool:
    return any(path == dep or path.startswith(dep + "/") for dep in deps)


def _normalize(dep: str) -> str:
    return Path(os.path.normpath(dep)).as_posix()


@dataclass
class Report:
    missing: dict[str, list[str]]  # stage -> module files its deps do not cover
    dead: dict[str, list[str]]  # stage -> source deps that do not exist
    problems: list[str]  # stages the analysis cannot follow

    def message(self) -> str:
        lines = []
        for stage, files in self.missing.items():
            lines.append(f"{stage}: add to deps " + ", ".join(files))
        for stage, deps in self.dead.items():
            lines.append(f"{stage}: deps that do not exist (a moved module?) " + ", ".join(deps))
        return "\n".join(lines + self.problems)


def check_dvc_yaml(dvc_yaml: Path, root: Path = REPO) -> Report:
    """Compare each stage's deps with the modules its command reaches."""
    stages = (yaml.safe_load(dvc_yaml.read_text(encoding="utf-8")) or {}).get("stages", {})
    commands = cli_commands()
    callbacks = [inspect.unwrap(c.callback) for c in commands.values() if c.callback is not None]
    callbacks = [f for f in callbacks if f.__module__.startswith(PACKAGE + ".")]
    report = Report({}, {}, [])
    for stage, spec in stages.items():
        if "foreach" in spec or "matrix" in spec:
            report.problems.append(f"{stage}: foreach/matrix stages are not analysed; extend tests/test_dvc_deps.py")
            continue
        deps = [_normalize(str(d)) for d in spec.get("deps", [])]
        dead = [d for d in deps if d.split("/")[0] in SOURCE_ROOTS and not (root / d).exists()]
        if dead:
            report.dead[stage] = dead
        cmds = spec.get("cmd", [])
        for cmd in [cmds] if isinstance(cmds, str) else cmds:
            try:
                _, command = resolve_cmd(cmd, commands)
            except AssertionError as exc:
                report.problems.append(f"{stage}: {exc}")
                continue
            reached = reached_modules(callback_of(command), callbacks)
            report.problems += [f"{stage}: dynamic import {u}" for u in reached.unresolved]
            missing = sorted(p for p in required_files(reached).values() if not covered(p, deps))
            if missing:
                report.missing.setdefault(stage, [])
                report.missing[stage] += [p for p in missing if p not in report.missing[stage]]
    return report


# ----------------------------------------------------------------------------- tests


def test_every_stage_depends_on_the_code_its_command_imports():
    report = check_dvc_yaml(REPO / "dvc.yaml")
    assert not (report.missing or report.dead or report.problems), \
        "dvc.yaml deps do not cover the code the stages run (DVC would call stale outputs up to date):\n" \
        + report.message()


def _write_dvc_yaml(tmp_path: Path, stages: dict) -> Path:
    path = tmp_path / "dvc.yaml"
    path.write_text(yaml.safe_dump({"stages": stages}), encoding="utf-8")
    return path


def test_analysis_follows_the_fetch_closure_and_lazy_imports(tmp_path):
    # `fetch cifar10` binds the pipeline module through a closure variable (cifar10_augmentation)
    commands = cli_commands()
    callbacks = [inspect.unwrap(c.callback) for c in commands.values() if c.callback is not None]
    _, command = resolve_cmd("cvflow fetch cifar10 --source demo", commands)
    reached = reached_modules(callback_of(command), callbacks)
    assert not reached.unresolved
    files = set(reached.files.values())
    pipeline = relpath(module_file("cvflow.pipelines.cifar10_augmentation"))
    assert pipeline in files
    # the other fetch commands share the same function body but not its closure
    assert relpath(module_file("cvflow.pipelines.hotdog")) not in files
    assert relpath(module_file("cvflow.pipelines.photos")) not in files
    # the library module the pipeline imports, and (transitively) what that module imports lazily
    assert relpath(module_file("cvflow.data.sources.cifar")) in files
    assert relpath(module_file("cvflow.data.twins.cifar")) in files  # imported inside fetch_cifar10
    # the command layer and exempt infrastructure are reached but not required
    required = set(required_files(reached).values())
    assert relpath(module_file("cvflow.stages.fetch")) in files
    assert relpath(module_file("cvflow.stages.fetch")) not in required
    assert relpath(module_file("cvflow.console")) not in required
    assert pipeline in required


def test_incomplete_deps_are_reported_by_file(tmp_path):
    photos = relpath(module_file("cvflow.pipelines.photos"))
    library = relpath(module_file("cvflow.data.sources.photos"))
    dvc_yaml = _write_dvc_yaml(tmp_path, {"fetch-photos": {"cmd": "cvflow fetch photos", "deps": [photos]}})
    report = check_dvc_yaml(dvc_yaml)
    assert not report.dead and not report.problems
    assert library in report.missing["fetch-photos"]
    assert photos not in report.missing["fetch-photos"]
    assert "fetch-photos: add to deps " in report.message() and library in report.message()

    # adding exactly what was reported makes the stage complete; a folder covers what lies under it
    complete = _write_dvc_yaml(tmp_path, {"fetch-photos": {
        "cmd": "cvflow fetch photos", "deps": [photos, *report.missing["fetch-photos"]]}})
    assert check_dvc_yaml(complete).missing == {}
    folder = str(Path(library).parent)
    by_folder = _write_dvc_yaml(tmp_path, {"fetch-photos": {
        "cmd": "cvflow fetch photos",
        "deps": [photos, folder + "/", *[p for p in report.missing["fetch-photos"] if not p.startswith(folder + "/")]]}})
    assert check_dvc_yaml(by_folder).missing == {}


def test_dead_source_deps_and_unknown_commands_are_reported(tmp_path):
    dvc_yaml = _write_dvc_yaml(tmp_path, {
        "moved": {"cmd": "cvflow evaluate hotdog", "deps": ["src/cvflow/no_such_module.py", "data/not-fetched-yet"]},
        "group-only": {"cmd": "cvflow train"},
        "not-cvflow": {"cmd": "python -m something"},
    })
    report = check_dvc_yaml(dvc_yaml)
    assert report.dead == {"moved": ["src/cvflow/no_such_module.py"]}  # data deps may be absent
    assert any(p.startswith("group-only:") for p in report.problems)
    assert any(p.startswith("not-cvflow:") for p in report.problems)
    # only evaluate hotdog's code is required, not train's or bananas'
    required = report.missing["moved"]
    assert relpath(module_file("cvflow.pipelines.hotdog")) in required
    assert relpath(module_file("cvflow.pipelines.bananas")) not in required


def test_import_extraction():
    source = '''
from __future__ import annotations
import importlib
from typing import TYPE_CHECKING
import cvflow.a.b
from . import sibling
from .pkg import name
if TYPE_CHECKING:
    from cvflow.typing_only import T

def lazy():
    from cvflow.lazy import thing
    return importlib.import_module(f"cvflow.pipelines.{module}")

def other_command():
    from cvflow.never import run

def unknown(x):
    return importlib.import_module(x)
'''
    tree = ast.parse(source)
    found = imports_of(tree, "cvflow.here", namespace={"module": "hotdog"},
                       skip=lambda fn: fn.name == "other_command", where="m.py")
    assert {"cvflow.a.b", "cvflow.here", "cvflow.here.sibling", "cvflow.here.pkg", "cvflow.here.pkg.name",
            "cvflow.lazy", "cvflow.lazy.thing", "cvflow.pipelines.hotdog"} <= found.modules
    assert not any(m.startswith(("cvflow.typing_only", "cvflow.never")) for m in found.modules)
    assert found.unresolved == ["m.py:19: importlib.import_module(x) (cannot resolve x)"]
    assert not has_code(ast.parse('"""doc only."""\n'))
    assert has_code(ast.parse('"""doc."""\nfrom cvflow.x import y\n'))
