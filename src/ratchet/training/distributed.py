"""Data-parallel training on torch's own engine: torchrun launches the workers, torch.distributed
(NCCL on GPUs, gloo on CPU) connects them, DistributedDataParallel keeps their gradients equal.

The train stage relaunches itself under torchrun when `train.processes` > 1 on one machine; for
several machines, start `torchrun --nnodes N --nproc-per-node G --rdzv-endpoint HOST:PORT -m
ratchet.stages.train` on each (docs/deploy.md): the stage sees WORLD_SIZE and joins the group.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from dataclasses import dataclass

import torch

log = logging.getLogger("ratchet")


@dataclass(frozen=True)
class Worker:
    rank: int
    world_size: int
    local_rank: int

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def this_worker() -> Worker:
    """This process's place in the group, from torchrun's environment (a single worker without it)."""
    return Worker(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                  int(os.environ.get("LOCAL_RANK", 0)))


def under_launcher() -> bool:
    return this_worker().world_size > 1


def relaunch(processes: int, module: str) -> int:
    """Run `python -m module` as `processes` workers under torchrun on this machine; their exit code."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
               "-m", module]
    log.info("%s: %d data-parallel workers under torchrun", module.rsplit(".", 1)[-1], processes)
    return subprocess.run(command, env={**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
                          ).returncode


def join_group() -> torch.device:
    """Initialise the process group (NCCL with one GPU per worker, else gloo); the worker's device."""
    worker = this_worker()
    if torch.cuda.is_available():
        device = torch.device("cuda", worker.local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
        backend = "nccl"
    else:
        device, backend = torch.device("cpu"), "gloo"
    torch.distributed.init_process_group(backend=backend)
    return device


def leave_group() -> None:
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def in_group() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized() \
        and torch.distributed.get_world_size() > 1


def shard(global_batch: list[int]) -> tuple[list[int], float]:
    """This worker's share of a global batch, and the factor that makes DDP's gradient average equal
    the single-process gradient of the whole batch: world_size x (share / batch size).

    A worker left without examples (a last batch smaller than the group) still takes one, at factor
    0: every worker must run the backward pass for the gradient all-reduce.
    """
    rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
    mine = global_batch[rank::world]
    if not mine:
        return global_batch[:1], 0.0
    return mine, world * len(mine) / len(global_batch)
