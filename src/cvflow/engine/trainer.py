"""The training engine: the book's ``train_ch13``, production grade.

One :class:`Trainer` serves every task of the chapter. A task (classification, detection,
segmentation) supplies a :class:`Task` that turns a batch into a loss and per-batch sums
(loss sum, correct count, example count, ...); the engine does the rest:

* device placement, bf16 autocast and channels_last on CUDA, DDP under ``torchrun``;
* statistics accumulated on the device and read once per epoch (no per-batch host syncs);
  a NaN/inf loss stops the run with one line naming epoch and step;
* a checkpoint every epoch (model, optimizer, scheduler, epoch, RNG states of every rank),
  written atomically; a rerun resumes after the last completed epoch and replays the same
  data order, so an interrupted run ends where an uninterrupted one would;
* callbacks (``on_epoch_end(metrics)``, main process only) for tracking.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Subset

from cvflow.console import info, progress
from cvflow.engine.checkpoint import check_world_size, load_checkpoint, save_checkpoint
from cvflow.engine.freeze import keep_frozen
from cvflow.engine.optim import steps_per_batch
from cvflow.engine.runtime import DistInfo, Precision, all_reduce_sum, barrier, rng_state, set_rng_state
from cvflow.errors import TrainingError, raise_if_interrupted
from cvflow.losses import reduce_loss

CHECKPOINT_FORMAT = 1


def _what_differs(old: Any, new: Any) -> str:
    """'other code and other data'... for a fingerprint dict ({part: digest}); 'other settings' otherwise."""
    if isinstance(old, dict) and isinstance(new, dict):
        parts = [f"other {key}" for key in new if old.get(key) != new[key]]
        if parts:
            return " and ".join(parts)
    return "a run with other settings"


class Task(Protocol):
    """What a pipeline tells the engine about its problem."""

    def train_step(self, model: nn.Module, batch: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Return the loss to back-propagate and a dict of per-batch SUMS (device tensors)."""

    def eval_step(self, model: nn.Module, batch: Any) -> dict[str, torch.Tensor]:
        """Per-batch SUMS on held-out data (device tensors)."""

    def summarize(self, sums: dict[str, float], split: str) -> dict[str, float]:
        """Turn epoch sums into metrics, e.g. ``{'train_loss': ..., 'train_acc': ...}``."""


@dataclass
class ClassificationTask:
    """Cross-entropy classification: loss, accuracy (the book's ``train_batch_ch13``).

    ``reduction``: how the per-example losses of a batch become the loss to back-propagate
    (:func:`reduce_loss`); a run sets it from its recipe's ``loss_reduction``.
    """

    reduction: str = "mean"

    def train_step(self, model, batch):
        images, labels = batch
        logits = model(images)
        losses = nn.functional.cross_entropy(logits.float(), labels, reduction="none")
        return reduce_loss(losses, self.reduction), self._sums(logits, labels, losses)

    def eval_step(self, model, batch):
        images, labels = batch
        logits = model(images)
        losses = nn.functional.cross_entropy(logits.float(), labels, reduction="none")
        return self._sums(logits, labels, losses)

    @staticmethod
    def _sums(logits, labels, losses):
        return {
            "loss": losses.detach().sum(),
            "correct": (logits.detach().argmax(dim=1) == labels).sum(),
            # torch.full passes the count as a kernel argument: no host-to-device copy, no sync
            "count": torch.full((), float(labels.numel()), device=labels.device),
        }

    def summarize(self, sums, split):
        count = max(sums["count"], 1.0)
        return {f"{split}_loss": sums["loss"] / count, f"{split}_acc": sums["correct"] / count}


def make_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    train: bool,
    dist_info: DistInfo = DistInfo(),
    seed: int = 0,
    num_workers: int = 0,
    pin_memory: bool = False,
    collate_fn: Callable | None = None,
    drop_last: bool = False,
) -> DataLoader:
    """A loader whose order depends only on (seed, epoch): resumable and DDP-ready.

    ``batch_size`` is the GLOBAL batch: each of N processes takes ``ceil(batch_size / N)``.
    Training shuffles with :class:`DistributedSampler` (``set_epoch`` per epoch, also with
    one process); evaluation gives each process every N-th example with no padding, so
    summed statistics count each example exactly once.
    """
    per_rank = -(-batch_size // dist_info.world_size)
    common = dict(
        batch_size=per_rank,
        num_workers=num_workers,
        pin_memory=pin_memory,
        collate_fn=collate_fn,
        persistent_workers=num_workers > 0,
    )
    if train:
        sampler = DistributedSampler(
            dataset, num_replicas=dist_info.world_size, rank=dist_info.rank, shuffle=True, seed=seed,
            drop_last=drop_last,
        )
        return DataLoader(dataset, sampler=sampler, drop_last=drop_last, **common)
    shard = Subset(dataset, range(dist_info.rank, len(dataset), dist_info.world_size))
    return DataLoader(shard, shuffle=False, **common)


def move_to(batch: Any, device: torch.device, channels_last: bool = False) -> Any:
    """Move a (nested) batch to ``device``; 4-D float tensors go channels_last when asked."""
    if isinstance(batch, torch.Tensor):
        non_blocking = device.type == "cuda"
        if channels_last and batch.dim() == 4 and batch.is_floating_point():
            return batch.to(device, non_blocking=non_blocking, memory_format=torch.channels_last)
        return batch.to(device, non_blocking=non_blocking)
    if isinstance(batch, (list, tuple)):
        return type(batch)(move_to(b, device, channels_last) for b in batch)
    if isinstance(batch, dict):
        return {k: move_to(v, device, channels_last) for k, v in batch.items()}
    return batch


@dataclass
class Trainer:
    """Train ``model`` for ``epochs`` with checkpoint/resume; see the module docstring."""

    model: nn.Module
    task: Task
    optimizer: torch.optim.Optimizer
    epochs: int
    device: torch.device
    checkpoint_path: Path
    fingerprint: Any  # a digest, or {part: digest} (recipe, code, data): a resume needs the same
    scheduler: Any = None
    precision: Precision | None = None
    channels_last: bool = False
    dist_info: DistInfo = field(default_factory=DistInfo)
    check_every: int | None = None  # steps between NaN checks; default 1 on CPU, 50 on GPUs
    description: str = "train"
    frozen: Sequence[nn.Module] = ()  # modules kept as they start (cvflow.engine.freeze): in eval mode every epoch
    history: list[dict] = field(default_factory=list, init=False)
    start_epoch: int = field(default=0, init=False)
    extra: dict = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        self.checkpoint_path = Path(self.checkpoint_path)
        self.precision = self.precision or Precision.resolve(self.device)
        self.model.to(self.device)
        if self.channels_last:
            self.model.to(memory_format=torch.channels_last)
        if self.check_every is None:
            self.check_every = 1 if self.device.type == "cpu" else 50
        self._per_step = steps_per_batch(self.scheduler)
        self._net = self.model
        if self.dist_info.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self._net = DistributedDataParallel(self.model, device_ids=ids)

    # ------------------------------------------------------------------ checkpoints

    def _checkpoint(self) -> dict | None:
        """The checkpoint as rank 0 reads it, on every rank: rank 0 alone writes it, so only its node holds the file
        (two machines need no shared file system), and every rank resumes from the same state. An unreadable file
        is an error on every rank (none waits for the others)."""
        if not self.dist_info.distributed:
            return load_checkpoint(self.checkpoint_path)
        box: list[Any] = [None]
        if self.dist_info.is_main:
            try:
                box = [load_checkpoint(self.checkpoint_path)]
            except TrainingError as error:
                box = [error]
        dist.broadcast_object_list(box, src=0)
        if isinstance(box[0], TrainingError):
            raise box[0]
        return box[0]

    def resume(self) -> dict | None:
        """Load the checkpoint if it belongs to this run; return its ``extra`` dict (or None)."""
        state = self._checkpoint()
        if state is None:
            return None
        if state.get("format") != CHECKPOINT_FORMAT or state.get("fingerprint") != self.fingerprint:
            if self.dist_info.is_main:
                info(f"{self.checkpoint_path}: discarded, it was made by {_what_differs(state.get('fingerprint'), self.fingerprint)}; "
                     "starting afresh")
            return None
        check_world_size(self.checkpoint_path, state, self.dist_info.world_size)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        rngs = state.get("rng") or []
        if len(rngs) == self.dist_info.world_size:
            set_rng_state(rngs[self.dist_info.rank])
        self.start_epoch = int(state["epoch"])
        self.history = list(state.get("history", []))
        self.extra = dict(state.get("extra", {}))
        if self.dist_info.is_main:
            info(f"resuming {self.description} from {self.checkpoint_path}: {self.start_epoch}/{self.epochs} epochs done")
        return self.extra

    def _save(self, epoch: int) -> None:
        rngs = [rng_state()]
        if self.dist_info.distributed:
            rngs = [None] * self.dist_info.world_size
            dist.all_gather_object(rngs, rng_state())
        if self.dist_info.is_main:
            save_checkpoint(self.checkpoint_path, {
                "format": CHECKPOINT_FORMAT,
                "fingerprint": self.fingerprint,
                "epoch": epoch,
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
                "rng": rngs,
                "history": self.history,
                "extra": self.extra,
            })
        barrier(self.dist_info)

    def discard_checkpoint(self) -> None:
        """Remove the checkpoint once the run's outputs are safely written."""
        if self.dist_info.is_main:
            self.checkpoint_path.unlink(missing_ok=True)

    # ------------------------------------------------------------------ loops

    def _reduce(self, sums: dict[str, torch.Tensor]) -> dict[str, float]:
        if not sums:
            return {}
        keys = sorted(sums)
        packed = torch.stack([sums[k].to(torch.float64) for k in keys])
        all_reduce_sum(packed, self.dist_info)
        return dict(zip(keys, packed.tolist()))  # the one host sync of the epoch

    def _check_finite(self, first_bad: torch.Tensor, epoch: int) -> None:
        flag = first_bad.clone()
        if self.dist_info.distributed:  # every rank must agree to stop
            flag = torch.where(flag < 0, torch.full_like(flag, 2**62), flag)
            dist.all_reduce(flag, op=dist.ReduceOp.MIN)
            flag = torch.where(flag == 2**62, torch.full_like(flag, -1), flag)
        step = int(flag)
        if step >= 0:
            raise TrainingError(
                f"non-finite loss (NaN or inf) at epoch {epoch + 1}, step {step + 1}: lower the learning rate "
                f"or check the data; the last good checkpoint ({self.checkpoint_path}) is kept"
            )

    def train_epoch(self, loader: DataLoader, epoch: int) -> dict[str, float]:
        self._net.train()
        keep_frozen(self.frozen)  # train() just put them in training mode: their BatchNorm statistics would move
        sums: dict[str, torch.Tensor] = {}
        counter = torch.zeros((), dtype=torch.long, device=self.device)
        first_bad = torch.full((), -1, dtype=torch.long, device=self.device)
        with progress(f"{self.description} epoch {epoch + 1}/{self.epochs}", total=len(loader), unit="batches") as bar:
            for step, batch in enumerate(loader):
                raise_if_interrupted()
                batch = move_to(batch, self.device, self.channels_last)
                with self.precision.autocast():
                    loss, stats = self.task.train_step(self._net, batch)
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.optimizer.step()
                if self._per_step:
                    self.scheduler.step()
                bad = ~torch.isfinite(loss.detach())
                first_bad = torch.where(bad & (first_bad < 0), counter, first_bad)
                counter += 1
                for key, value in stats.items():
                    value = value.detach().to(torch.float64)
                    sums[key] = sums[key] + value if key in sums else value
                if (step + 1) % self.check_every == 0:
                    self._check_finite(first_bad, epoch)
                bar.advance()
        self._check_finite(first_bad, epoch)
        return self._reduce(sums)

    @torch.inference_mode()
    def evaluate(self, loader: DataLoader) -> dict[str, float]:
        """Sums over ``loader`` (each process its shard), reduced over processes."""
        self.model.eval()
        if self.dist_info.distributed:
            # DDP syncs buffers at the start of each training forward, so the last one leaves every rank
            # with its own BatchNorm statistics: evaluate rank 0's, the ones the saved model holds
            for buffer in self.model.buffers():
                dist.broadcast(buffer, src=0)
        sums: dict[str, torch.Tensor] = {}
        for batch in loader:
            raise_if_interrupted()
            batch = move_to(batch, self.device, self.channels_last)
            with self.precision.autocast():
                stats = self.task.eval_step(self.model, batch)
            for key, value in stats.items():
                value = value.detach().to(torch.float64)
                sums[key] = sums[key] + value if key in sums else value
        return self._reduce(sums)

    def fit(
        self,
        train_loader: DataLoader,
        eval_loader: DataLoader | None = None,
        callbacks: Sequence[Any] = (),
        extra: dict | None = None,
    ) -> list[dict]:
        """Run the remaining epochs; return the full per-epoch history (resumed epochs included)."""
        if extra:
            self.extra.update(extra)
        for epoch in range(self.start_epoch, self.epochs):
            sampler = getattr(train_loader, "sampler", None)
            if hasattr(sampler, "set_epoch"):
                sampler.set_epoch(epoch)
            started = time.perf_counter()
            train_sums = self.train_epoch(train_loader, epoch)
            train_seconds = time.perf_counter() - started
            lr = self.optimizer.param_groups[0]["lr"]
            if self.scheduler is not None and not self._per_step:
                self.scheduler.step()
            metrics: dict[str, float] = {"epoch": epoch + 1}
            metrics.update(self.task.summarize(train_sums, "train"))
            if eval_loader is not None:
                metrics.update(self.task.summarize(self.evaluate(eval_loader), "test"))
            metrics["examples_per_sec"] = train_sums.get("count", 0.0) / max(train_seconds, 1e-9)
            metrics["lr"] = lr
            metrics["epoch_seconds"] = time.perf_counter() - started
            self.history.append(metrics)
            self._save(epoch + 1)
            if self.dist_info.is_main:
                shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items() if k != "epoch")
                info(f"{self.description} epoch {epoch + 1}/{self.epochs}: {shown}")
                for callback in callbacks:
                    callback.on_epoch_end(metrics)
        self.start_epoch = self.epochs
        return self.history
