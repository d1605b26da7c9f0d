"""One process or many: the world torchrun describes in the environment (RANK, WORLD_SIZE,
LOCAL_RANK), with the few collectives the analyses need. In one process every collective is
the identity, so library code calls them unconditionally.

    world = World.from_env(device)         # initialises the process group once (gloo / nccl)
    world, device = World.with_device(device)   # the same, and on CUDA this process's GPU (its local rank)
    world.sum(correct, total)              # exact for integers below 2**53 (float64)
    world.sum_(tensors)                    # in place, each tensor summed over the processes
    world.gather(obj)                      # [obj of rank 0, obj of rank 1, ...] on every rank
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
import torch.distributed as dist

from .errors import launch_environment, not_a_command, ranks_may_diverge

__all__ = ["World"]


class World:
    """World size and rank from torchrun's environment; owns the process group if it made it."""

    def __init__(self, size: int = 1, rank: int = 0, local_rank: int = 0, device: torch.device | str = "cpu"):
        self.size, self.rank, self.local_rank = size, rank, local_rank
        self.device = torch.device(device)
        self.owns_group = False
        if size > 1:
            ranks_may_diverge()  # a user error from here on may be one rank's alone: each reports its own
        if size > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo", rank=rank, world_size=size)
            self.owns_group = True

    @classmethod
    def from_env(cls, device: torch.device | str = "cpu") -> "World":
        """The world torchrun's variables describe, checked first (`core.errors.launch_environment`)."""
        return cls(*launch_environment(), device)

    @classmethod
    def with_device(cls, device: torch.device | str = "cpu") -> tuple["World", torch.device]:
        """(`from_env`'s world, this process's device): on CUDA each process takes the GPU of its local rank."""
        device = torch.device(device)
        world = cls.from_env(device)
        if device.type == "cuda":
            device = torch.device("cuda", world.local_rank)
            torch.cuda.set_device(device)
        return world, device

    @property
    def main(self) -> bool:
        return self.rank == 0

    def _collective_device(self) -> torch.device:
        return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" \
            else torch.device("cpu")

    def sum(self, *values: float) -> list:
        """The sums over the processes of `values` (as float64)."""
        t = torch.tensor(values, dtype=torch.float64)
        if self.size > 1:
            t = t.to(self._collective_device())
            dist.all_reduce(t)
        return t.cpu().tolist()

    def sum_(self, tensors: Sequence[torch.Tensor]) -> None:
        """Replace each tensor by its sum over the processes (one flat float64 all-reduce)."""
        if self.size == 1 or not tensors:
            return
        flat = torch.cat([t.detach().reshape(-1).to(torch.float64).cpu() for t in tensors])
        flat = flat.to(self._collective_device())
        dist.all_reduce(flat)
        flat = flat.cpu()
        offset = 0
        for t in tensors:
            n = t.numel()
            t.copy_(flat[offset:offset + n].view_as(t).to(t.dtype))
            offset += n

    def gather(self, obj: Any) -> list:
        """Every process's `obj`, in rank order, on every process."""
        if self.size == 1:
            return [obj]
        out: list = [None] * self.size
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()

    def close(self) -> None:
        if self.owns_group:
            dist.destroy_process_group()
            self.owns_group = False


if __name__ == "__main__":  # a library module, not a command
    raise SystemExit(not_a_command(__spec__.name))
