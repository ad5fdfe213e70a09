"""Data-parallel training with ``torchrun``: the process group, this process's place in it, collectives.

``torchrun --nproc_per_node=N -m snlu.cli.train RECIPE`` (or ``snlu-train --nproc N RECIPE``) starts N
processes with ``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` set; :func:`init` joins them (NCCL on GPUs, gloo on
CPU). Rank 0 writes the run directory, logs and checkpoints; every rank trains on its shard of each global
batch (``BucketBatchSampler``) and DistributedDataParallel averages the gradients. Every helper here is a
no-op in a single process, so the trainer has one code path.
"""

from __future__ import annotations

import dataclasses
import datetime
import os
from typing import Any

import torch
import torch.distributed as dist


@dataclasses.dataclass(frozen=True)
class Place:
    """This process's rank, the number of processes, and its rank on its machine."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        """Rank 0: the process that writes files and logs."""
        return self.rank == 0


def launched() -> bool:
    """Whether torchrun (or an equivalent launcher) started this process as one of several."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init(device: str = "auto", timeout_minutes: float = 30.0) -> Place:
    """Join the process group torchrun set up (once); a single process gets ``Place()``."""
    if not launched():
        return Place()
    use_cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        if use_cuda:
            torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl" if use_cuda else "gloo",
                                timeout=datetime.timedelta(minutes=timeout_minutes))
    return place()


def place() -> Place:
    """Where this process stands (``Place()`` outside a process group)."""
    if not (dist.is_available() and dist.is_initialized()):
        return Place()
    return Place(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def barrier() -> None:
    if place().enabled:
        dist.barrier()


def sum_floats(values: list[float]) -> list[float]:
    """Element-wise sum over ranks (float64)."""
    if not place().enabled:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=_device())
    dist.all_reduce(t)
    return t.tolist()


def all_true(flag: bool) -> bool:
    """True only if ``flag`` is true on every rank (so all ranks take the same branch)."""
    if not place().enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], dtype=torch.float64, device=_device())
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())


def any_true(flag: bool) -> bool:
    return not all_true(not flag)


def broadcast(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank."""
    if not place().enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order, on every rank."""
    if not place().enabled:
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _device() -> torch.device:
    """Where collectives' tensors must live: the GPU for NCCL, the CPU for gloo."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
