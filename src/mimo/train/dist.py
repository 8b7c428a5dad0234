"""Distributed set-up for ``torchrun``: gloo on CPU, nccl on GPU; DDP (FSDP at scale, see ``wrap_model``).

Pretraining and SFT: each rank takes an equal slice of every global batch; since every micro-batch carries the same
number of loss tokens, DDP's gradient average equals the single-process gradient of the same global batch (tested).
RL: the ranks' shards carry unequal token counts, so :func:`mimo.rl.actor.update_policy` normalises by the global
count and scales by the world size instead (tests/test_rl_dist.py).

FSDP2 (``torch.distributed.fsdp.fully_shard``) on gloo/CPU, measured with torch 2.13 on a tiny MiMo model (2
decoder layers + 1 MTP layer, 2 ranks): ``fully_shard`` per decoder layer, per MTP layer and on the root runs
forward and backward; the gradients (``DTensor.full_tensor()``) equal the single-process ones to 1.5e-8; AdamW
steps the sharded parameters; ``get_model_state_dict(full_state_dict=True, cpu_offload=True)`` gathers the whole
model; the MTP layer, never run by a plain forward, is left with no gradient as in one process.  So FSDP2 is usable
on CPU for tests and for models that do not fit one process.  ``mimo rl`` stays on DDP: its rollout workers on
rank 0 read the full weights after every step, which under FSDP2 would be a gather over all ranks each step, and
its checkpoints write rank 0's full model (``mimo pretrain --parallel fsdp`` reaches ``fully_shard``).
"""

from __future__ import annotations

import inspect
import os
import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as tdist

from mimo.model.io import resolve_device


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str = "auto") -> DistInfo:
    """Initialise the process group when launched by torchrun (WORLD_SIZE > 1); a no-op otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    dev = resolve_device(device)
    if world <= 1:
        return DistInfo(device=dev)
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if "TORCHELASTIC_RUN_ID" in os.environ:
        _die_with_launcher()
    if dev.type == "cuda":
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    if not tdist.is_initialized():
        tdist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return DistInfo(rank, world, local, dev)


def _die_with_launcher() -> None:
    """Ask Linux to SIGKILL this rank when torchrun dies.  torchrun starts every rank in a session of its own, so a
    ``kill -9`` of torchrun alone would leave the ranks training on -- and a ``--resume true`` started next would
    share the run directory with them."""
    import ctypes
    import signal

    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:  # not Linux
        pass


def wrap_model(model: torch.nn.Module, info: DistInfo, strategy: str = "ddp",
               find_unused_parameters: bool = False, forward_sync_buffers: bool = True) -> torch.nn.Module:
    """DDP on every backend; FSDP2 (``fully_shard`` per decoder layer) for models that do not fit one GPU.

    ``find_unused_parameters``: DDP's flag, for a forward that leaves parameters out (RL's policy forward never
    runs the MTP layers; DDP then skips them instead of waiting for their gradients forever).
    ``forward_sync_buffers=False`` for callers whose ranks run different numbers of forwards (RL's uneven shards):
    DDP would otherwise broadcast buffers (here only RoPE's constant frequencies) at every forward, a collective
    the ranks must match one for one (buffers are still synced once, when DDP is built).
    FSDP2: see the module docstring for what runs on gloo/CPU; pretraining reaches it with ``--parallel fsdp``."""
    if not info.enabled:
        return model
    if strategy == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        ids = [info.local_rank] if info.device.type == "cuda" else None
        kw: dict[str, Any] = {"find_unused_parameters": find_unused_parameters}
        if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters:
            kw["forward_sync_buffers"] = forward_sync_buffers
        else:  # torch before the rename: the old flag (it also skipped the sync at init, harmless here)
            kw["broadcast_buffers"] = forward_sync_buffers
        return DistributedDataParallel(model, device_ids=ids, **kw)
    if strategy == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for layer in list(model.model.layers) + list(model.model.mtp_layers):
            fully_shard(layer)
        fully_shard(model)
        return model
    raise ValueError(f"unknown parallel strategy {strategy!r} (ddp, fsdp)")


def all_reduce_mean(value: float, info: DistInfo) -> float:
    if not info.enabled:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=info.device)
    tdist.all_reduce(t)
    return float(t.item()) / info.world_size


def all_reduce_sum(values: dict[str, float], info: DistInfo, op: str = "sum") -> dict[str, float]:
    """``values`` summed (or ``op="max"``: maximised) over the ranks, one collective for the whole dict.  Every rank
    must pass the same keys."""
    if not info.enabled or not values:
        return dict(values)
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64, device=info.device)
    tdist.all_reduce(t, op=tdist.ReduceOp.MAX if op == "max" else tdist.ReduceOp.SUM)
    return dict(zip(keys, t.tolist()))


def broadcast_object(obj: Any, info: DistInfo, src: int = 0) -> Any:
    """``obj`` (picklable) of rank ``src`` on every rank; the other ranks pass anything (None)."""
    if not info.enabled:
        return obj
    box = [obj if info.rank == src else None]
    tdist.broadcast_object_list(box, src=src)  # sync point: every rank blocks until src sends
    return box[0]


def barrier(info: DistInfo) -> None:
    if info.enabled:
        tdist.barrier()


def cleanup(info: DistInfo) -> None:
    if info.enabled and tdist.is_initialized():
        # gloo's worker threads free finished collectives' tensors, which takes the GIL; the group's destructor
        # joins those threads while holding the GIL (seen to deadlock a rank at exit with torch 2.13): let them
        # finish first (sleep releases the GIL)
        time.sleep(0.05)
        tdist.destroy_process_group()
