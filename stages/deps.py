"""Which project files a stage's command runs: static import analysis, the source of dvc.yaml's code deps.

No module is imported: the analysis reads source with :mod:`ast` (fast, no torch). A stage runs

* the command layer (:mod:`cvflow.stages`) and the package of task declarations (:mod:`cvflow.pipelines`,
  which imports every task module to validate the params file);
* its stage function, in its task module;
* in every module reached: the module-level statements (imports, constants, class bodies, decorators)
  and what they name, and of its functions and classes only those reached by name (``from m import f``
  in reached code, or a call of ``f`` from reached code of the same module), transitively, lazy imports
  inside them included (they run when called). A module imported whole (``import m``) counts whole; a
  class counts whole (its methods are called through attributes, which no static analysis resolves).

Every reached library module is a dependency (DVC's deps are files, and the module's own loading runs
it); a module of ``cvflow.pipelines`` is one only when the stage's code uses code of it (every stage imports
every declaration, and through them every stage module, without running them). Modules that cannot change any
DVC output are exempt (:data:`EXEMPT`).

Python has no tool that answers "which files can this call run" statically and without importing
(``modulefinder`` imports nothing but follows whole modules and knows no functions), hence this module.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = "cvflow"
PIPELINES = "cvflow.pipelines"
COMMANDS = "cvflow.stages.cli"

# Reached by every stage, yet unable to change a stage's outputs. Keep this list short: a module missing
# from a stage's deps makes DVC call stale outputs up to date.
EXEMPT = {
    "cvflow": "the package __init__: a docstring and __version__, which no output holds",
    "cvflow.console": "log lines and progress bars on stderr; writes no output file",
    "cvflow.errors": "exception classes: exit codes and messages, no output file",
    "cvflow.tracking": "MLflow only: the store is deliberately no DVC dependency, and no DVC output holds "
                       "anything it writes (run ids and timings stay out of them)",
    "cvflow.params": "the params schema: values reach outputs through params.yaml keys, tracked per stage "
                     "as `params:` (a default used for a key missing from params.yaml is the one blind spot)",
    "cvflow.pipelines": "the list of tasks and the assembled schema (as cvflow.params)",
    "cvflow.pipelines.task": "the declaration types: dvc.yaml itself holds what they declare",
}
EXEMPT_PACKAGES = {
    "cvflow.stages": "the command layer: options -> params overrides -> one stage function; dvc.yaml cmds "
                     "pass no overrides, and the stage function's code IS required",
}


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


@functools.lru_cache(maxsize=None)  # asked for each name every piece of followed code imports, per stage
def module_file(name: str) -> Path | None:
    """The source file of module ``name`` (a package's ``__init__.py``), None when no such module."""
    spec = find_spec(name)
    if spec is None or not spec.origin or spec.origin in ("built-in", "frozen"):
        return None
    return Path(spec.origin).resolve()


@functools.lru_cache(maxsize=None)
def is_package(name: str) -> bool:
    spec = find_spec(name)
    return spec is not None and spec.submodule_search_locations is not None


def has_code(tree: ast.Module) -> bool:
    """False for a module that is empty or holds only a docstring: it cannot change anything."""
    body = list(tree.body)
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        body = body[1:]
    return any(not (isinstance(node, ast.ImportFrom) and node.module == "__future__") for node in body)


def is_exempt(name: str) -> bool:
    return name in EXEMPT or any(name == p or name.startswith(p + ".") for p in EXEMPT_PACKAGES)


def is_task_module(name: str) -> bool:
    return name.startswith(PIPELINES + ".") and name not in EXEMPT


# ----------------------------------------------------------------------------- imports of a piece of code


def _is_type_checking(test: ast.AST) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
           (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _is_dynamic_import(call: ast.Call) -> bool:
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    return name in ("import_module", "__import__") and bool(call.args)


@dataclass
class Imports:
    """What a piece of code imports: ``(module, names)`` pairs (``names`` None for ``import module``)."""

    pairs: list[tuple[str, frozenset[str] | None]] = field(default_factory=list)
    dynamic: list[str] = field(default_factory=list)  # import_module(...) calls: where, for the report


def imports_of(node: ast.AST, package: str, skip_defs: bool = False, where: str = "") -> Imports:
    """Every import in ``node`` at any depth (``if TYPE_CHECKING:`` blocks excluded; with ``skip_defs``,
    functions and classes too). ``package`` resolves relative imports."""
    found = Imports()

    def visit(n: ast.AST, top: bool) -> None:
        if skip_defs and not top and isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            return
        if isinstance(n, ast.If) and _is_type_checking(n.test):
            for child in n.orelse:
                visit(child, False)
            return
        if isinstance(n, ast.Import):
            found.pairs += [(alias.name, None) for alias in n.names]
        elif isinstance(n, ast.ImportFrom):
            base = importlib.util.resolve_name("." * n.level + (n.module or ""), package) if n.level else n.module
            found.pairs.append((base, frozenset(a.name for a in n.names if a.name != "*")))
        elif isinstance(n, ast.Call) and _is_dynamic_import(n):
            found.dynamic.append(f"{where}:{n.lineno}: {ast.unparse(n)}")
        for child in ast.iter_child_nodes(n):
            visit(child, False)

    visit(node, True)
    return found


def _top_level(tree: ast.Module) -> ast.Module:
    return ast.Module(body=[n for n in tree.body if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                                       ast.ClassDef))], type_ignores=[])


def _definitions(tree: ast.Module) -> dict[str, ast.AST]:
    """Module-level functions, classes and assigned names."""
    found: dict[str, ast.AST] = {}
    for n in tree.body:
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            found[n.name] = n
        elif isinstance(n, (ast.Assign, ast.AnnAssign)):
            targets = n.targets if isinstance(n, ast.Assign) else [n.target]
            for target in targets:
                for name in ast.walk(target):
                    if isinstance(name, ast.Name):
                        found[name.id] = n
    return found


# ----------------------------------------------------------------------------- the analysis


@dataclass
class Reached:
    files: dict[str, Path]                 # module -> file, for every reached cvflow module
    used: dict[str, set[str]]              # module -> its names reached from other code (not by its own loading)
    dynamic: list[str]                     # import_module calls met in followed code (never in the stage path)

    def required(self) -> dict[str, Path]:
        """The modules a stage must depend on: reached library code that can change outputs, and the task
        modules whose functions or values it uses."""
        found = {}
        for name, path in self.files.items():
            if is_exempt(name):
                continue
            if is_task_module(name) and not self.used.get(name):
                continue
            if has_code(_parse(path)):
                found[name] = path
        return found


_TREES: dict[Path, ast.Module] = {}


def _parse(path: Path) -> ast.Module:
    if path not in _TREES:
        _TREES[path] = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return _TREES[path]


@dataclass(frozen=True)
class _Module:
    """What the analysis reads of a module, whichever stage reaches it: computed once per process (`dvc.yaml`
    analyses each of its stages from the same trees; each tree and each of its nodes is kept in `_TREES`)."""

    defs: dict[str, ast.AST]
    imported: dict[str, tuple[str, str]]
    top_imports: Imports
    run: frozenset[str]
    runs: frozenset[str]


@functools.lru_cache(maxsize=None)
def _module(path: Path, package: str) -> _Module:
    tree = _parse(path)
    top, defs = _top_level(tree), _definitions(tree)
    run, runs = _load_time(top, defs)
    return _Module(defs, _imported_names(tree, package), imports_of(top, package, where=str(path)), frozenset(run),
                   frozenset(runs))


@functools.lru_cache(maxsize=None)  # keyed by the node itself: it lives as long as its tree in _TREES
def _definition(node: ast.AST, package: str, where: str) -> tuple[Imports, frozenset[str]]:
    """What one definition imports, and the names it reads."""
    return imports_of(node, package, where=where), frozenset(_refs(node))


@functools.lru_cache(maxsize=None)
def _task_modules(folder: Path) -> tuple[str, ...]:
    """The task modules `cvflow.pipelines` discovers in ``folder`` (each source read once per process)."""
    from cvflow.pipelines.task import task_modules

    return tuple(task_modules(folder, PIPELINES))


WHOLE = None  # a request for a whole module: `import m`, or `from pkg import m` of a submodule


def _refs(node: ast.AST) -> set[str]:
    """Names a piece of code reads (its own local assignments left out)."""
    names = [n for n in ast.walk(node) if isinstance(n, ast.Name)]
    stored = {n.id for n in names if isinstance(n.ctx, ast.Store)}
    return {n.id for n in names if isinstance(n.ctx, ast.Load) and n.id not in stored}


def _imported_names(tree: ast.Module, package: str) -> dict[str, tuple[str, str]]:
    """The names a module's top level imports from modules (``from m import a as b``: ``b -> (m, a)``)."""
    found: dict[str, tuple[str, str]] = {}
    for node in _top_level(tree).body:
        if isinstance(node, ast.ImportFrom) and node.module != "__future__":
            base = importlib.util.resolve_name("." * node.level + (node.module or ""), package) if node.level \
                else node.module
            found.update({alias.asname or alias.name: (base, alias.name) for alias in node.names if alias.name != "*"})
    return found


def _called(node: ast.AST) -> set[str]:
    """Names a piece of code calls directly (``f(...)``)."""
    return {n.func.id for n in ast.walk(node) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}


def _load_time(top: ast.Module, defs: dict[str, ast.AST]) -> tuple[set[str], set[str]]:
    """What loading a module runs besides its top-level statements: the module's own definitions those statements
    call or read a value from (transitively: every name a called function's code reads), and the names all that code
    runs (called at the top level, or read inside a called function). A function only named at the top level
    (``Stage("train", train)``) is not run by loading, nor is an imported one passed on as a value."""
    assigned = {n for n, node in defs.items() if isinstance(node, (ast.Assign, ast.AnnAssign))}
    runs = _called(top)
    run: set[str] = set()
    work = [n for n in (runs | (_refs(top) & assigned)) if n in defs]
    while work:
        item = work.pop()
        if item in run:
            continue
        run.add(item)
        node = defs[item]
        if isinstance(node, (ast.Assign, ast.AnnAssign)):  # a value: what it calls, and the values it reads
            runs |= _called(node)
            found = (_refs(node) & assigned) | (_called(node) & set(defs))
        else:  # a called function (or a class): everything its code reads may run
            runs |= _refs(node)
            found = {n for n in _refs(node) if n in defs}
        work += sorted(found - run)
    return run, runs


def reached(entries: dict[str, set[str]]) -> Reached:
    """Every cvflow module a command runs when it calls the named functions of task modules (``entries``:
    module -> function names), with the command layer and the declarations around it.

    Per module: its module-level statements always run (imports, constants, class bodies, decorators), and
    the functions and classes they name; of the rest, only the definitions the stage reaches by name (from
    another module's ``from m import name``, or from reached code of the same module), transitively. A
    module imported whole (``import m``) or used through a name that is not a definition counts whole.

    What the command layer and the task declarations import is loaded, not run as the stage's code: a task
    declaration names every stage function of its task, and a stage module it imports that way (with what that
    module's top level imports from its task) is a dependency only of the stages whose code reaches it. Library
    modules count whenever they are loaded.
    """
    files: dict[str, Path] = {}
    used: dict[str, set[str]] = {}
    done: dict[tuple[str, bool], set[str]] = {}  # (module, as code) -> its definitions followed that way
    top_done: dict[str, bool] = {}               # module -> whether its top level was followed as code
    dynamic: list[str] = []
    pending: list[tuple[str, frozenset[str] | None, bool]] = [(COMMANDS, WHOLE, False), (PIPELINES, WHOLE, False)]
    pending += [(module, frozenset(names), True) for module, names in entries.items()]

    def package_of(name: str) -> str:
        return name if is_package(name) else name.rpartition(".")[0]

    discovery = f"{module_file(PIPELINES)}:"  # the task modules' import by name, followed above

    def follow(found: Imports, code: bool, only: frozenset[str] | None = None) -> None:
        """Queue what ``found`` imports; ``only``: of the names imported, those the importer runs (the others
        are loaded with their module, not run)."""
        dynamic.extend(d for d in found.dynamic if not d.startswith(discovery))
        for module, names in found.pairs:
            if module != PACKAGE and not module.startswith(PACKAGE + "."):
                continue
            submodules = {n for n in names or () if module_file(f"{module}.{n}") is not None}
            kept = None if names is None else set(names) - submodules
            if kept is not None and only is not None:
                kept &= only
            pending.append((module, None if kept is None else frozenset(kept), code))
            pending.extend((f"{module}.{n}", WHOLE, code) for n in submodules)

    while pending:
        name, names, from_code = pending.pop()
        parts = name.split(".")
        pending.extend((".".join(parts[:i]), frozenset(), False) for i in range(1, len(parts))
                       if ".".join(parts[:i]) not in files)  # importing a.b.c runs a and a.b first
        path = module_file(name)
        if path is None:
            continue  # an attribute, not a module
        info = _module(path, package_of(name))
        defs, imported = info.defs, info.imported
        todo: list[str] = []
        if name not in files:
            files[name] = path
            if name == PIPELINES:  # its task modules are found, then imported by name: follow the same discovery
                pending.extend((module, WHOLE, False) for module in _task_modules(path.parent))
        if top_done.get(name) is None or (from_code and not top_done[name]):
            top_done[name] = from_code
            # loading runs the top level and the functions it calls: of what it imports, the names they run; a
            # name the stage's code uses is followed where that code is (below)
            follow(info.top_imports, from_code, info.runs)
            todo += sorted(info.run)
        if names is WHOLE and is_task_module(name):
            names = frozenset()  # a task module imported as a module: its declaration (stages call it by name)
        wanted = set(defs) if names is WHOLE else set(names)
        if names is not WHOLE and not wanted <= set(defs):
            wanted = set(defs)  # a name no definition binds (e.g. re-exported): the module counts whole
        if from_code:
            used.setdefault(name, set()).update(wanted)
        todo += sorted(wanted)
        seen = done.setdefault((name, from_code), set())
        while todo:
            item = todo.pop()
            if item in seen:
                continue
            seen.add(item)
            found, refs = _definition(defs[item], package_of(name), str(path))
            follow(found, from_code)
            todo += [n for n in refs if n in defs and n not in seen]
            for local in sorted(refs & set(imported)):  # a name the module imported at its top, used here
                module, original = imported[local]
                follow(Imports([(module, frozenset({original}))]), from_code)
    return Reached(files, used, dynamic)
