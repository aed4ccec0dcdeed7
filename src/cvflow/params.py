"""``params.yaml``: what every params file shares, the schema's assembly, loading and validation.

The schema of each task's section lives beside that task's declaration (``pipelines/<task>.py``);
:mod:`cvflow.pipelines` assembles the whole file's schema from them with :func:`assemble`. This
module holds ``common``, the building blocks several tasks share (a recipe, the book's image
transforms, a data set's source, a twin's size, a Kaggle competition) and the loading.

Layout::

    profile: demo            # the one switch: demo (offline, generated data) | real (downloads, the book's recipe)
    common: {...}            # seed, device, loaders, data hub URL
    hotdog:
      demo: {...}            # a full task profile
      real: {...}            # same schema, the book's values

Every section is strict: an unknown key, a wrong type or an out-of-range value raises
:class:`~cvflow.errors.ParamsError` with one line naming the key path, the bad value and
what is allowed. ``dvc.yaml`` tracks ``<task>.${profile}`` so editing one profile never
reruns the other's stages.
"""

from __future__ import annotations

import copy
import os
import sys
from pathlib import Path
from typing import Any, Iterable, Iterator, Literal, Mapping, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cvflow.errors import ParamsError, UserError

PROFILES = ("demo", "real")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Strict(BaseModel):
    """Base for every params section: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


# --------------------------------------------------------------------------- common


def _auto_or_processes(value: Union[str, int], low: int, high: int) -> Union[str, int]:
    """``auto``, or a number of processes from ``low`` to ``high``."""
    if value != "auto" and not low <= int(value) <= high:
        raise ValueError(f"must be auto or a number of processes from {low} to {high}")
    return value


class Common(Strict):
    seed: int = Field(0, ge=0, description="seed for Python, NumPy and torch")
    device: str = Field("auto", description="auto (cuda, then mps, then cpu) | cpu | cuda | cuda:N | mps")
    precision: Literal["auto", "bf16", "fp32"] = Field(
        "auto", description="auto: bf16 autocast on CUDA, fp32 elsewhere"
    )
    channels_last: Literal["auto", "on", "off"] = Field("auto", description="auto: on for CUDA")
    num_workers: Union[Literal["auto"], int] = Field(
        "auto", description="DataLoader worker processes; auto: several on CUDA, none on CPU (they would "
        "compete with training for the same cores)"
    )
    pin_memory: Literal["auto", "on", "off"] = Field("auto", description="auto: on for CUDA")
    devices: Union[Literal["auto"], int] = Field(
        "auto", description="processes per machine that train a training stage together (DDP, started by PyTorch's "
        "elastic launcher): auto: one per visible CUDA device, else 1; N: N processes (on CPU too, gloo); the batch "
        "size stays the global one"
    )
    nodes: int = Field(
        1, ge=1, le=1024, description="machines that train a training stage together; above 1, every machine runs the "
        "same stage with CVFLOW_RDZV_ENDPOINT (node 0's host:port) and CVFLOW_NODE_RANK set (docs/gpus.md)"
    )
    image_cache: Literal["decoded", "none"] = Field(
        "decoded", description="image folders: decoded (full-size uint8 kept in memory, up to image_cache_mb; the "
        "rest decoded per sample) | none (every sample decoded in the loader, bounded memory: use num_workers >= 2)"
    )
    image_cache_mb: int = Field(1024, ge=0, le=1_048_576, description="the decoded cache's cap, MiB (0: no cache)")
    hub_url: str = Field(
        "http://d2l-data.s3-accelerate.amazonaws.com/",
        description="base URL of the d2l data hub; the environment variable CVFLOW_HUB_URL overrides it",
    )
    smoke: bool = Field(
        False, description="run every stage for seconds on tiny data: the top-level `smoke` section's values "
        "replace the active profile's (an install check; `dvc exp run -S common.smoke=true`)"
    )
    system_metrics: bool = Field(
        True, description="log the machine's use (CPU, memory, disk, network; NVIDIA GPU utilisation and memory) to "
        "every training run's MLflow run as system/* metrics (MLflow's system metrics; false: none)"
    )
    system_metrics_interval: float = Field(
        10.0, ge=0.1, le=3600, description="seconds between two samples of system_metrics (MLflow's default; "
        "benchmarks/bench_system_metrics.py measures the cost)"
    )

    @property
    def system_metrics_every(self) -> float | None:
        """The sampling interval :meth:`cvflow.tracking.Tracker.start` takes: None when system metrics are off
        (said once here for every tracked run: the engine's and style transfer's)."""
        return self.system_metrics_interval if self.system_metrics else None

    @field_validator("num_workers")
    @classmethod
    def _workers(cls, value: Union[str, int]) -> Union[str, int]:
        return _auto_or_processes(value, 0, 64)

    @field_validator("devices")
    @classmethod
    def _devices(cls, value: Union[str, int]) -> Union[str, int]:
        return _auto_or_processes(value, 1, 1024)

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        import re

        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", value):
            raise ValueError("must be auto, cpu, cuda, cuda:N or mps")
        return value

    @field_validator("hub_url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://", "file://")):
            raise ValueError("must start with http://, https:// or file://")
        return value if value.endswith("/") else value + "/"


# --------------------------------------------------------------------------- shared building blocks


class Optim(Strict):
    """Optimizer and learning-rate schedule of one training run."""

    name: Literal["sgd", "adam", "adamw"] = "sgd"
    lr: float = Field(gt=0, le=10)
    momentum: float = Field(0.0, ge=0, lt=1)
    weight_decay: float = Field(0.0, ge=0, le=1)
    head_lr_mult: float = Field(
        1.0, gt=0, le=1000, description="learning-rate multiplier of the new output layer (the book: 10)"
    )
    scheduler: Literal["none", "cosine", "step", "onecycle"] = Field(
        "none", description="per-epoch cosine or step decay, or a per-step one-cycle schedule peaking at lr"
    )
    step_size: int = Field(1, ge=1, description="epochs between decays (scheduler: step)")
    gamma: float = Field(0.1, gt=0, le=1, description="decay factor (scheduler: step)")


class Recipe(Strict):
    """One training run: epochs, batch size, optimizer, and how a batch's losses are reduced."""

    epochs: int = Field(ge=1, le=10_000)
    batch_size: int = Field(ge=1, le=65_536)
    optim: Optim
    loss_reduction: Literal["mean", "sum"] = Field(
        "mean", description="the loss a batch back-propagates: the mean of its per-example losses, or their sum "
        "(the book's train_batch_ch13 sums, so its learning rates for 13.1, 13.2, 13.11, 13.13 and 13.14 assume "
        "sum; TinySSD in 13.7 takes the mean)"
    )


class FrozenRecipe(Recipe):
    """A recipe that keeps part of the network as it starts (a linear probe: a pretrained body, only the new head
    trains; :mod:`cvflow.engine.freeze`)."""

    freeze: tuple[str, ...] = Field(
        min_length=1, description="modules kept as they start, by their names in the network (named_modules(): "
        "layer4 is layer4 and everything in it): no gradients, and their BatchNorm statistics stay the source's"
    )

    @field_validator("freeze")
    @classmethod
    def _names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        import re

        bad = [name for name in value if not re.fullmatch(r"\w+(\.\w+)*", name)]
        if bad:
            raise ValueError(f"{bad[0]!r} is no module name: use dotted names such as layer4 or layer4.1.bn2")
        return value


class ImageTransforms(Strict):
    """The book's classification transforms (13.2): RandomResizedCrop + flip; Resize + CenterCrop."""

    train_crop: int = Field(ge=8, le=4096, description="RandomResizedCrop size (the book: 224)")
    train_scale: tuple[float, float] = Field(
        (0.08, 1.0), description="RandomResizedCrop area range (torchvision's and the book's default: 0.08-1)"
    )
    test_resize: int = Field(ge=8, le=4096, description="Resize([r, r]) before the centre crop (the book: 256)")
    test_crop: int = Field(ge=8, le=4096, description="CenterCrop size (the book: 224)")
    hflip: bool = True
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    @model_validator(mode="after")
    def _crop_fits(self) -> "ImageTransforms":
        if self.test_crop > self.test_resize:
            raise ValueError(f"test_crop ({self.test_crop}) must not exceed test_resize ({self.test_resize})")
        return self

    @field_validator("train_scale")
    @classmethod
    def _scale(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not 0 < value[0] <= value[1] <= 1:
            raise ValueError("must be two numbers with 0 < low <= high <= 1")
        return value

    @field_validator("std")
    @classmethod
    def _std_positive(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        if min(value) <= 0:
            raise ValueError("every std must be > 0")
        return value


# --------------------------------------------------------------------------- data sets, shared by several tasks


class HubData(Strict):
    """A data set on the book's data hub: generated (demo), downloaded (d2l) or your own copy (local)."""

    source: Literal["demo", "d2l", "local"]
    path: Union[Path, None] = Field(None, description="folder or archive for source: local")

    @model_validator(mode="after")
    def _path_for_local(self) -> "HubData":
        if self.source == "local" and self.path is None:
            raise ValueError("source: local needs a path (data.path here, or --path): a folder or archive of the data set")
        return self


class KaggleData(HubData):
    source: Literal["demo", "d2l", "kaggle", "local"] = Field(  # type: ignore[assignment]
        description="demo: generated; d2l: the book's tiny sample; kaggle: the full competition (Kaggle API); "
        "local: a folder or archive you have"
    )


class TwinSize(Strict):
    """Size of a generated twin."""

    train: int = Field(ge=1, le=1_000_000)
    test: int = Field(ge=1, le=1_000_000, description="images in the test (or validation) split")
    seed: int = Field(0, ge=0)


class CifarNet(Strict):
    """The book's CIFAR ResNet-18 (``d2l.resnet18(10, 3)``)."""

    width: int = Field(64, ge=4, le=512, description="channels of the first stage, doubled per stage (the book: 64)")
    init: Literal["default", "xavier"] = Field(
        "default", description="default: PyTorch's; xavier: Xavier-uniform conv and linear weights (13.1's init_weights)"
    )


class KaggleProfile(Strict):
    data: KaggleData
    demo: TwinSize
    valid_ratio: float = Field(gt=0, lt=1, description="the book's valid_ratio (13.13: 0.1)")
    reorg: Literal["link", "manifest"] = Field(
        "link", description="link: the book's folders as hard links; manifest: CSV lists, no per-file work"
    )


def check_weights(value: str, names: tuple[str, ...], suffixes: tuple[str, ...] = (".pth", ".pt")) -> str:
    """A ``weights`` setting: one of ``names`` or a path ending in one of ``suffixes`` (a pydantic validator's body)."""
    if value in names or value.endswith(suffixes):
        return value
    raise ValueError(f"must be {', '.join(names)} or a path ending in {'/'.join(suffixes)}")


# --------------------------------------------------------------------------- the whole file


class ParamsBase(Strict):
    """What every params file has; :func:`assemble` adds one section per task."""

    profile: Literal["demo", "real"] = Field(
        "demo", description="the one switch: demo (offline, generated data) | real (real data, the book's recipe)"
    )
    common: Common = Common()
    smoke: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="per task, values that replace the active profile's when common.smoke "
        "is true (same keys as the profile's section)"
    )

    def task(self, name: str) -> Any:
        """The active profile's section of a task, e.g. ``params.task('hotdog')``."""
        return getattr(getattr(self, name), self.profile)


def assemble(sections: dict[str, type[BaseModel]]) -> type[ParamsBase]:
    """The schema of the whole file: :class:`ParamsBase` and, per task section, ``{demo: schema, real: schema}``."""
    from pydantic import create_model

    fields = {name: (create_model(f"{model.__name__}s", __base__=Strict, demo=(model, ...), real=(model, ...)), ...)
              for name, model in sections.items()}
    return create_model("Params", __base__=ParamsBase, **fields)


# --------------------------------------------------------------------------- loading


def _describe_allowed(model: type[BaseModel], loc: tuple) -> str:
    """For an unknown key at ``loc``, list the keys its parent section allows."""
    current: Any = model
    for part in loc[:-1]:
        if isinstance(part, int) or not (isinstance(current, type) and issubclass(current, BaseModel)):
            return ""
        field = current.model_fields.get(part)
        if field is None:
            return ""
        annotation = field.annotation
        current = annotation if isinstance(annotation, type) else None
        if current is None:
            return ""
    if isinstance(current, type) and issubclass(current, BaseModel):
        return "allowed keys: " + ", ".join(current.model_fields)
    return ""


def format_validation_error(error: ValidationError, source: str, model: type[BaseModel]) -> str:
    """One line: ``params.yaml: hotdog.demo.finetune.optim.lr = -1: must be greater than 0 (...)``."""
    parts = []
    for item in error.errors():
        loc = tuple(item["loc"])
        key = ".".join(str(p) for p in loc) or "(top level)"
        if item["type"] == "extra_forbidden":
            allowed = _describe_allowed(model, loc)
            parts.append(f"{key}: unknown key" + (f" ({allowed})" if allowed else ""))
            continue
        if item["type"] == "missing":
            parts.append(f"{key}: missing (required)")
            continue
        msg = item["msg"].removeprefix("Value error, ")
        value = item.get("input")
        shown = repr(value) if not isinstance(value, dict) else "{...}"
        if len(shown) > 60:
            shown = shown[:57] + "..."
        parts.append(f"{key} = {shown}: {msg}")
    more = f" (and {len(parts) - 3} more)" if len(parts) > 3 else ""
    return f"{source}: " + "; ".join(parts[:3]) + more


def set_dotted(data: dict, dotted_key: str, value: Any) -> None:
    """Set ``a.b.c`` in nested dicts, creating sections as needed."""
    parts = dotted_key.split(".")
    node = data
    for part in parts[:-1]:
        if not isinstance(node, dict):
            raise ParamsError(f"--set {dotted_key}: {part!r} is not a section")
        node = node.setdefault(part, {})
    if not isinstance(node, dict):
        raise ParamsError(f"--set {dotted_key}: cannot set a key inside a value")
    node[parts[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """``key.path=value`` with the value parsed as YAML (so ``1e-3``, ``true``, ``[1, 2]`` work)."""
    if "=" not in text:
        raise ParamsError(f"--set {text!r}: expected KEY=VALUE, e.g. --set common.seed=1")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ParamsError(f"--set {text!r}: empty key")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    return key, value


# PyYAML's libyaml parser (in PyYAML's wheels) reads the same documents about 6x faster than its pure-Python
# one (params.yaml 20 -> 3 ms, dvc.lock 128 -> 19 ms on a 2-core CPU): every stage reads params.yaml, and
# every training stage dvc.lock
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(text: str) -> Any:
    """``yaml.safe_load`` with PyYAML's C parser when it has one."""
    return yaml.load(text, Loader=_SAFE_LOADER)


def read_yaml(path: Path) -> dict:
    if not path.exists():
        raise ParamsError(f"{path}: no such file; run cvflow from the project folder or pass --params PATH")
    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ParamsError(f"{path}:{where}: not valid YAML ({problem})") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: the top level must be a mapping of keys, got {type(data).__name__}")
    return data


def validate(data: dict, model: type[ParamsBase], source: str = "params.yaml") -> ParamsBase:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ParamsError(format_validation_error(exc, source, model)) from None


def _overlay(target: dict, values: dict, where: str, source: str) -> None:
    """Replace values of ``target`` by ``values``'s, key by key; a key the target lacks is an error
    (a typo in the smoke section must not silently leave a stage at full size)."""
    for key, value in values.items():
        if not isinstance(target, dict) or key not in target:
            raise ParamsError(f"{source}: smoke.{where}.{key}: no such key in {where.split('.')[0]}'s profile; "
                              "use the keys of the profile's section")
        if isinstance(value, dict) and isinstance(target[key], dict):
            _overlay(target[key], value, f"{where}.{key}", source)
        else:
            target[key] = copy.deepcopy(value)


def apply_smoke(data: dict, source: str = "params.yaml") -> dict:
    """``data`` with the ``smoke`` section laid over each task's active profile (a copy; checked even
    when ``common.smoke`` is false, so a typo shows before the switch is used)."""
    smoke = data.get("smoke") or {}
    if not isinstance(smoke, dict):
        raise ParamsError(f"{source}: smoke: must be a mapping of task names to values")
    merged = copy.deepcopy(data)
    profile = data.get("profile", "demo")
    for task, values in smoke.items():
        section = merged.get(task)
        if not isinstance(section, dict) or not isinstance(section.get(profile), dict):
            raise ParamsError(f"{source}: smoke.{task}: no task {task!r} with a {profile} profile")
        if not isinstance(values, dict):
            raise ParamsError(f"{source}: smoke.{task}: must be a mapping of the profile's keys to values")
        _overlay(section[profile], values, task, source)
    return merged


def load_params(model: type[ParamsBase], path: str | Path = "params.yaml", overrides: list[str] | None = None,
                data: dict | None = None, values: Mapping[str, Any] | None = None) -> ParamsBase:
    """Read (unless ``data``, the file already read, is given), apply ``--set`` overrides (``KEY=VALUE`` text, the
    value read as YAML) and then ``values`` (absolute dotted keys to typed values, as a command's options give
    them: set as they are, never turned into text and read back), and validate the WHOLE file. With
    ``common.smoke: true``, the ``smoke`` section replaces values of each task's active profile first (``--set``
    and ``values`` still win)."""
    path = Path(path)
    data = read_yaml(path) if data is None else data
    source = str(path) + (" (with --set overrides)" if overrides or values else "")
    settings = [parse_override(text) for text in overrides or ()] + list((values or {}).items())

    def overridden(tree: dict) -> dict:
        if settings:
            tree = copy.deepcopy(tree)
            for key, value in settings:
                set_dotted(tree, key, value)
        return tree

    data = overridden(data)
    smoked = apply_smoke(data, source)
    if (data.get("common") or {}).get("smoke") is True:
        data = overridden(smoked)
    return validate(data, model, source)


# --------------------------------------------------------------------------- which params a stage reads


def fields(model: BaseModel, prefix: str = "") -> Iterator[tuple[str, BaseModel, str, Any]]:
    """Every field of ``model``'s tree, depth first: (absolute dotted key, the model holding it, its name, its
    value). Read through ``object.__getattribute__``, so walking a traced tree records nothing."""
    values = object.__getattribute__(model, "__dict__")
    for name in type(model).__pydantic_fields__:
        key = f"{prefix}.{name}" if prefix else name
        yield key, model, name, values[name]
        if isinstance(values[name], BaseModel):
            yield from fields(values[name], key)


def defaults_used(params: BaseModel) -> list[str]:
    """The keys whose value came from the schema's default, not from the file (pydantic's ``model_fields_set``)."""
    return [key for key, model, name, _ in fields(params)
            if name not in object.__getattribute__(model, "__pydantic_fields_set__")]


#: A folder: with it set, each `cvflow` stage command writes ``<folder>/<stage>.json``, the params keys it read
#: (``tests/test_params_read.py`` checks them against the stage's params in dvc.yaml).
TRACE_ENV = "CVFLOW_PARAMS_TRACE"

#: The keys a stage may read without dvc.yaml tracking them: no value of theirs changes an output, a metric or
#: a logged model, only where or how fast the same values are computed. Everything else a stage reads is
#: tracked, even what only the machine seems to decide (``device``, ``num_workers`` and ``channels_last``
#: change the kernels that sum, and the workers the random augmentations that are drawn).
UNTRACKED: dict[str, str] = {
    "common.pin_memory": "page-locked copies of the same batches (a transfer speed-up): the same values arrive",
    "common.image_cache": "where decoded images wait, in memory or decoded again per sample: the same pixels",
    "common.image_cache_mb": "the decoded cache's cap: the same pixels, only memory and time change",
    "common.hub_url": "where downloads come from: every hub file is checked against its SHA-1 (the same bytes or "
                      "an error)",
    "common.system_metrics": "whether MLflow also records the machine's use (system/* metrics) during a run: no "
                             "output file, metric or model of the stage changes",
    "common.system_metrics_interval": "how often the machine's use is sampled into MLflow: no output of the stage "
                                      "changes",
}


class _Trace:
    """The params keys one process reads from its validated params: each model of the tree, by identity, with
    its key; a field read on one of them records the field's key (a whole model read records its leaves)."""

    def __init__(self, params: BaseModel, stage: str, target: Path):
        self.stage, self.target, self.read = stage, target, set()
        self.profile = object.__getattribute__(params, "__dict__").get("profile")
        # the models themselves are held, so no id is reused by another object while the trace lives
        self.models: dict[int, tuple[BaseModel, str]] = {id(params): (params, "")}
        self.leaves: list[str] = []
        for key, _, _, value in fields(params):
            if isinstance(value, BaseModel):
                self.models[id(value)] = (value, key)
            else:
                self.leaves.append(key)

    def record(self, model: BaseModel, name: str, value: Any) -> None:
        entry = self.models.get(id(model))
        if entry is None or entry[0] is not model:
            return  # a model of its own (a copy, a default made later): its source's read is recorded already
        key = entry[1]
        if name == "__dict__":  # the whole model: dumped, copied, compared or printed (pydantic reads __dict__)
            self.read.update(leaf for leaf in self.leaves if not key or leaf.startswith(key + "."))
        elif name in type(model).__pydantic_fields__ and not isinstance(value, BaseModel):
            self.read.add(f"{key}.{name}" if key else name)

    def write(self) -> None:
        """Write the keys read (with those an earlier run of the same stage and profile recorded there); a
        trace that cannot be written is removed, so a check finds it missing rather than stale."""
        import json

        from cvflow.fileio import write_json

        read = set(self.read)
        try:
            earlier = json.loads(self.target.read_text(encoding="utf-8") or "{}")
            if earlier.get("profile") == self.profile:
                read.update(earlier.get("read", ()))
            write_json(self.target, {"stage": self.stage, "profile": self.profile, "read": sorted(read)})
        except (OSError, ValueError) as error:
            self.target.unlink(missing_ok=True)
            print(f"cvflow: error: {TRACE_ENV}: could not write {self.target} ({error})", file=sys.stderr)


_TRACE: _Trace | None = None


def _traced_getattribute(self: BaseModel, name: str) -> Any:
    value = object.__getattribute__(self, name)
    if _TRACE is not None:
        _TRACE.record(self, name, value)
    return value


def _write_trace() -> None:
    if _TRACE is not None:
        _TRACE.write()


def trace_reads(params: BaseModel, stage: str) -> None:
    """With ``CVFLOW_PARAMS_TRACE`` set to a folder, record which params keys this process reads from ``params``
    (attribute reads down to leaves, a dumped or copied model as all its leaves) and write them to
    ``<folder>/<stage>.json`` at exit. Unset, it does nothing: the recording hook is installed only here.

    No library records attribute reads of pydantic models, hence this hook on the tree's own classes."""
    global _TRACE
    folder = os.environ.get(TRACE_ENV)
    if not folder:
        return
    target = Path(folder) / f"{stage}.json"
    try:  # a trace that cannot be written stops the stage before its work, not after it
        target.parent.mkdir(parents=True, exist_ok=True)
        target.touch()
    except OSError as error:
        raise UserError(f"{TRACE_ENV}={folder}: cannot write {target} ({error.strerror}); point it at a writable "
                        "folder or unset it") from None
    if _TRACE is None:
        import atexit

        atexit.register(_write_trace)
    else:  # another stage in the same process (tests): the earlier one is done
        _TRACE.write()
    _TRACE = _Trace(params, stage, target)
    for model, _ in _TRACE.models.values():
        type(model).__getattribute__ = _traced_getattribute  # type: ignore[method-assign]


def untracked_reads(read: Iterable[str], declared: Iterable[str], profile: str) -> list[str]:
    """The keys of ``read`` that no key of ``declared`` (a dvc.yaml stage's params; ``${profile}`` resolved; a
    section covers its keys) tracks, less :data:`UNTRACKED`."""
    covers = [key.replace("${profile}", profile) for key in declared]
    return sorted(key for key in read if key not in UNTRACKED
                  and not any(key == cover or key.startswith(cover + ".") for cover in covers))


def unread_declared(read: Iterable[str], declared: Iterable[str], profile: str) -> list[str]:
    """The keys of ``declared`` (``${profile}`` resolved) of which nothing in ``read`` is read."""
    read = list(read)
    return sorted(cover for cover in (key.replace("${profile}", profile) for key in declared)
                  if not any(key == cover or key.startswith(cover + ".") or cover.startswith(key + ".")
                             for key in read))
