"""The training engine shared by every task (see :mod:`cvflow.engine.trainer`)."""

from cvflow.engine.checkpoint import fingerprint, load_checkpoint, save_checkpoint
from cvflow.engine.optim import build_optimizer, build_scheduler, head_and_body
from cvflow.engine.runtime import (
    DistInfo,
    Precision,
    init_distributed,
    resolve_device,
    seed_everything,
    shutdown_distributed,
    use_channels_last,
    use_pin_memory,
)
from cvflow.engine.trainer import ClassificationTask, Task, Trainer, make_loader, move_to

__all__ = [
    "ClassificationTask", "DistInfo", "Precision", "Task", "Trainer", "build_optimizer", "build_scheduler",
    "fingerprint", "head_and_body", "init_distributed", "load_checkpoint", "make_loader", "move_to",
    "resolve_device", "save_checkpoint", "seed_everything", "shutdown_distributed", "use_channels_last",
    "use_pin_memory",
]
