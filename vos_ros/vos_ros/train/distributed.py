"""torch.distributed set-up for ``torchrun --nproc_per_node N vos-ros-train ...``."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import NoReturn

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistributedContext:
    """Rank, world size and the device of this process (world size 1 without torchrun)."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def launched_by_torchrun() -> bool:
    """True when torchrun's environment variables are set."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def init_distributed(device: torch.device) -> DistributedContext:
    """Join the process group when launched by torchrun: nccl on CUDA (one GPU per local rank), gloo on CPU."""
    if not launched_by_torchrun() or int(os.environ["WORLD_SIZE"]) == 1:
        return DistributedContext(0, 1, device)
    if device.type == "cuda":
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        backend = "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistributedContext(dist.get_rank(), dist.get_world_size(), device)


def average_across_ranks(values: dict[str, float], context: DistributedContext) -> dict[str, float]:
    """Mean of each value over all ranks (identity on one process)."""
    if not context.enabled:
        return values
    names = sorted(values)
    tensor = torch.tensor([values[name] for name in names], dtype=torch.float64, device=context.device)
    dist.all_reduce(tensor)
    return {name: float(v) / context.world_size for name, v in zip(names, tensor.tolist())}


def shutdown_distributed(context: DistributedContext, *, wait_for_all: bool) -> None:
    """Leave the process group (no-op on one process).

    ``wait_for_all`` first waits until every rank is done, so no rank tears down gloo
    while another still uses it (which can abort with SIGABRT); pass ``False`` on an
    error path, where the other ranks may never arrive.
    """
    if context.enabled and dist.is_initialized():
        if wait_for_all:
            dist.barrier()
        dist.destroy_process_group()


def exit_worker(code: int) -> NoReturn:
    """End a torchrun worker now, skipping interpreter finalisation.

    Call it after ``shutdown_distributed``. Gloo's C++ teardown during finalisation sometimes
    aborts (SIGABRT) a worker that has already finished and left the process group, and
    torchrun then reports the whole run as failed.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
