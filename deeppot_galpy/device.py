"""Torch devices: checked up front, and batch sizes that shrink when an accelerator runs short.

Every training and evaluation entry point takes a device (``cpu``, ``cuda``, ``cuda:N``).
:func:`resolve_device` turns a typo or a missing GPU into one clear error before any work
starts, rather than a CUDA traceback an hour in.

Evaluating grad ln f of an ensemble holds one autograd graph per member per batch; the batch
that fits depends on the GPU, the ensemble size and the architecture. :func:`map_batches`
starts from a generous batch and halves it whenever the device runs out of memory, so the same
call works on a laptop GPU and an H100. Training batches never adapt: their size is part of
the result (see the configs), and running out of memory there is an error to fix by config.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

__all__ = ["map_batches", "parse_device", "resolve_device"]


def parse_device(spec: str | torch.device) -> torch.device:
    """``spec`` (cpu, cuda, cuda:N) as a :class:`torch.device`, without checking it exists."""
    try:
        dev = torch.device(spec)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"unknown device {spec!r}: use cpu, cuda or cuda:N") from exc
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"device {spec!r} is not supported: use cpu, cuda or cuda:N")
    return dev


def resolve_device(spec: str | torch.device) -> torch.device:
    """``spec`` as a :class:`torch.device` this machine has, or ValueError saying why not."""
    dev = parse_device(spec)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {spec!r}: torch {torch.__version__} sees no CUDA GPU "
                f"(built with CUDA {torch.version.cuda})"
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"device {spec!r}: only {torch.cuda.device_count()} CUDA device(s) visible"
            )
    return dev


def map_batches(fn: Callable[[slice], None], n: int, batch_size: int) -> int:
    """Call ``fn`` on consecutive slices covering ``range(n)``; returns the batch size used last.

    On ``torch.cuda.OutOfMemoryError`` the failed slice is retried with half the batch size
    (down to 1, then the error is raised). ``fn`` must write its results itself, so that a
    retried slice simply overwrites its own rows.
    """
    start = 0
    while start < n:
        stop = min(start + batch_size, n)
        try:
            fn(slice(start, stop))
        except torch.cuda.OutOfMemoryError:
            if batch_size == 1:
                raise
            batch_size //= 2
        else:
            start = stop
            continue
        # outside the except block, so the failed batch's tensors are already released
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return batch_size
