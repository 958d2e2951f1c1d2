"""Several processes on one fit, on PyTorch's own engine (``torch.distributed``).

Launch with ``torchrun --nproc-per-node N -m deeppot_galpy fit ...`` or, on one machine,
``deeppot fit --nproc N ...`` (:func:`launch` spawns the workers the way torchrun would). The
backend is gloo on CPU and nccl on CUDA, where rank r uses ``cuda:LOCAL_RANK``.

What each stage splits, and why the result is the one-process result:

* flows: member k is initialised and shuffled from its own seed alone (the flows stream's
  seed + k, :mod:`deeppot_galpy.seeds`), so members are independent;
  rank r trains members r, r + N, ... and each owner broadcasts its members' weights. Every
  rank then holds the ensemble a single process would have trained, bit for bit.
* CBE points: rank 0 draws them (cheap) and shares them, so every rank has the same points
  whatever its device's RNG; the grad ln f evaluation, the costly part, is split into
  contiguous shards and all-gathered.
* potential: DistributedDataParallel. Each step's batch is drawn identically on every rank
  and each rank takes a disjoint share of it, so the averaged gradient is the single-process
  gradient up to floating-point summation order (the total batch is the configured one).

Rank 0 alone writes the run directory, with one exception: a flow member's checkpoint is
written by the rank that trains it (one writer per file; the directory must be shared, as it
is on one machine). Collectives move tensors only; structured data (training histories,
metrics) travels as JSON bytes in uint8 tensors, never as pickles.
"""

from __future__ import annotations

import atexit
import json
import os
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

__all__ = [
    "Dist",
    "all_gather_rows",
    "broadcast_json",
    "broadcast_state",
    "current",
    "is_main_process",
    "join",
    "launch",
    "share_members",
]


@dataclass(frozen=True)
class Dist:
    """This process's place in the job: ``rank`` of ``world`` processes (0 of 1 when alone)."""

    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def owner(self, k: int) -> int:
        """The rank that trains item k (flow member k)."""
        return k % self.world

    def shard(self, n: int) -> list[int]:
        """The items of ``range(n)`` this rank owns."""
        return list(range(self.rank, n, self.world))

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()


def current() -> Dist:
    """The job this process belongs to (a one-process job without a process group)."""
    if dist.is_available() and dist.is_initialized():
        return Dist(dist.get_rank(), dist.get_world_size())
    return Dist()


def is_main_process() -> bool:
    """Rank 0 of the job, also outside its process group (from torchrun's ``RANK``)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return int(os.environ.get("RANK", "0")) == 0


def _env_world() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def join(device: str) -> str:
    """Join the job described by the environment (torchrun's variables); this rank's device.

    A no-op returning ``device`` for a single process. The process group is created once per
    process and destroyed at exit, so several fits in one process share it: creating a new
    group on the same port right after destroying one races with the old group's store.
    """
    if _env_world() <= 1:
        return device
    dev = torch.device(device)
    if dev.type == "cuda":
        if dev.index is not None:
            raise ValueError(
                f"with several processes use device 'cuda', not {device!r}: "
                "rank r runs on cuda:LOCAL_RANK"
            )
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
        atexit.register(_leave)
    return str(dev)


def _leave() -> None:
    """Destroy this process's group, if any, while the interpreter is whole.

    gloo's worker threads still hold work objects; left to interpreter finalisation they
    abort the process (SIGABRT, "terminate called without an active exception").
    """
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _comm_device() -> torch.device:
    """Where collective buffers must live: the rank's GPU for nccl, else the CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def broadcast_state(module: nn.Module, src: int) -> None:
    """Overwrite ``module``'s parameters and buffers on every rank with those of rank ``src``."""
    if current().world == 1:
        return
    comm = _comm_device()
    for t in module.state_dict().values():
        # gloo has no bool collectives; state_dict tensors share storage with the module
        buf = t.to(comm, torch.uint8 if t.dtype == torch.bool else t.dtype)
        dist.broadcast(buf, src)
        if buf is not t:
            t.copy_(buf)


def broadcast_json(obj, src: int = 0):
    """``obj`` (JSON-able) of rank ``src``, on every rank."""
    if current().world == 1:
        return obj
    comm = _comm_device()
    payload = json.dumps(obj).encode() if current().rank == src else b""
    size = torch.tensor([len(payload)], dtype=torch.int64, device=comm)
    dist.broadcast(size, src)
    if current().rank == src:
        buf = torch.frombuffer(bytearray(payload), dtype=torch.uint8).to(comm)
    else:
        buf = torch.empty(int(size.item()), dtype=torch.uint8, device=comm)
    dist.broadcast(buf, src)
    return json.loads(bytes(buf.cpu().numpy()))


def share_members(members: nn.ModuleList, own: list) -> list:
    """Every member's weights, and the JSON record its trainer returned, on every rank.

    Rank r trained the members ``current().shard(len(members))`` and holds their records in
    ``own``, in that order; each owner broadcasts its members. Returns all the records.
    """
    job = current()
    mine = dict(zip(job.shard(len(members)), own, strict=True))
    records = []
    for k, member in enumerate(members):
        broadcast_state(member, job.owner(k))
        records.append(broadcast_json(mine.get(k), job.owner(k)))
    return records


def all_gather_rows(local: np.ndarray) -> np.ndarray:
    """Every rank's ``local`` rows (any lengths), concatenated in rank order, on every rank."""
    d = current()
    if d.world == 1:
        return local
    comm = _comm_device()
    sizes = [torch.zeros(1, dtype=torch.int64, device=comm) for _ in range(d.world)]
    dist.all_gather(sizes, torch.tensor([len(local)], dtype=torch.int64, device=comm))
    counts = [int(s.item()) for s in sizes]
    # all_gather needs equal shapes: pad to the longest shard, trim afterwards
    buf = torch.zeros((max(counts), *local.shape[1:]), dtype=torch.from_numpy(local).dtype)
    buf[: len(local)] = torch.from_numpy(np.ascontiguousarray(local))
    buf = buf.to(comm)
    out = [torch.empty_like(buf) for _ in range(d.world)]
    dist.all_gather(out, buf)
    return np.concatenate([o[:n].cpu().numpy() for o, n in zip(out, counts, strict=True)])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# errors a worker reports by message, so the launcher can re-raise them as the CLI expects
_USER_ERRORS: dict[str, type[Exception]] = {
    "ValueError": ValueError,
    "FileNotFoundError": FileNotFoundError,
    "FileExistsError": FileExistsError,
}


def _worker(rank: int, world: int, port: int, errors, fn: Callable, args: tuple) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
        LOCAL_WORLD_SIZE=str(world),
    )
    try:
        fn(*args)
        # no rank tears its connections down while another still talks to it
        current().barrier()
        _leave()
    except tuple(_USER_ERRORS.values()) as exc:
        base = next(n for n, t in _USER_ERRORS.items() if isinstance(exc, t))
        errors.put((base, str(exc)))
        sys.exit(2)


def launch(nproc: int, fn: Callable, *args) -> None:
    """Run ``fn(*args)`` in ``nproc`` new processes that form one job on this machine.

    The workers get torchrun's environment variables, so code inside ``fn`` joins the group
    with :func:`join` exactly as under torchrun. ``fn`` and ``args`` must be
    importable/picklable (processes are spawned, not forked: forking a process that has
    started torch's thread pools can deadlock). A ValueError or FileNotFoundError in a
    worker is raised here with its message; any other failure stops all workers and raises
    torch's ProcessRaisedException with the worker's traceback. ``nproc = 1`` calls ``fn``
    in this process.
    """
    if nproc < 1:
        raise ValueError(f"nproc must be >= 1, got {nproc}")
    if nproc == 1:
        fn(*args)
        return
    if _env_world() > 1:
        raise ValueError("already inside a distributed job (torchrun): do not also pass --nproc")
    errors = mp.get_context("spawn").SimpleQueue()
    try:
        mp.start_processes(
            _worker,
            args=(nproc, _free_port(), errors, fn, args),
            nprocs=nproc,
            start_method="spawn",
        )
    except (mp.ProcessRaisedException, mp.ProcessExitedException):
        if not errors.empty():
            kind, message = errors.get()
            raise _USER_ERRORS[kind](message) from None
        raise
