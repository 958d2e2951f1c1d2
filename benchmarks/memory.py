"""Peak resident memory of the running process, sampled in a thread (Linux /proc).

One sampler for every benchmark: the resident set (RSS), split into anonymous memory (what the
process allocated) and file-backed pages (e.g. a memory map's cached pages: shared and
reclaimable), each with its peak while the ``with`` block runs.
"""

from __future__ import annotations

import os
import threading
import time

__all__ = ["ResidentSet"]

PAGE = os.sysconf("SC_PAGE_SIZE")


class ResidentSet:
    """``with ResidentSet() as mem: ...`` then ``mem.start``, ``mem.rss``, ``mem.anon``,
    ``mem.file``: the RSS at entry and the peaks (bytes) of RSS, anonymous and file-backed."""

    def __init__(self, interval: float = 0.005):
        self.interval = interval
        self.start = self.rss = self.anon = self.file = 0
        self._stop = threading.Event()

    @staticmethod
    def sample() -> tuple[int, int]:
        """(anonymous, file-backed) resident bytes now."""
        with open("/proc/self/statm") as fh:
            resident, shared = (int(v) for v in fh.read().split()[1:3])
        return (resident - shared) * PAGE, shared * PAGE

    def _update(self) -> None:
        anon, file = self.sample()
        self.anon, self.file = max(self.anon, anon), max(self.file, file)
        self.rss = max(self.rss, anon + file)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._update()
            time.sleep(self.interval)

    def __enter__(self) -> ResidentSet:
        self.start = sum(self.sample())
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._update()
