"""Several processes (torchrun, `accelerate launch`): set-up, and gathering arrays across ranks."""
from __future__ import annotations

import os

import numpy as np
import torch
import torch.distributed as dist


def setup_distributed() -> tuple[int, int, torch.device]:
    """torchrun and accelerate both set WORLD_SIZE/RANK/LOCAL_RANK; gloo on CPU, nccl on GPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return rank, world, torch.device("cuda", local)
    return rank, world, torch.device("cpu")


def gather(array: np.ndarray) -> np.ndarray:
    if not dist.is_initialized():
        return array
    parts = [None] * dist.get_world_size()
    dist.all_gather_object(parts, array)
    return np.concatenate(parts)


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def finish() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
