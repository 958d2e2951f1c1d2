"""Named random streams: one independent seed per stage of a fit, all from the run's seed.

A run has one seed, ``s``. Each stage draws from its own stream, the child of
``numpy.random.SeedSequence(s)`` with a fixed key (:data:`STREAMS`); a stage with parts (replicate
b) takes the grandchild ``(key, b)``. Children of a SeedSequence are statistically independent of
each other and of the parent, so no two stages share random numbers whatever ``s``, the number of
flow members or of replicates. (Hand-picked offsets did collide: member k trained from ``s + k``
while the CBE points were drawn from ``s + 3``.) A key never changes once given, so adding a
stream leaves every other stream, and so every earlier run, as it was.

The streams::

    flows              flow training: validation split, member k's initial weights and shuffling
                       (the ensemble derives member k's seed from this one)
    points             the CBE points drawn from the flows (one grandchild per ensemble)
    jeans              the placement of the weak-form Jeans test functions (also for replicates)
    potential          the potential network's initial weights and mini-batches
    replicate_points   replicate b's CBE points, drawn from flow member b   (grandchild b)
    replicate_stars    replicate b's bootstrap resample of the stars         (grandchild b)
    replicate_fits     the replicates' refits (fit_replicates gives replicate b its own seed)
    held_out           the true system's held-out stars that score a mock run
    figures            the random subsets and held-out stars the figures draw
    jeans_check        the placement of the Jeans test functions that measure the fit's tension

The demo's stars are ``mock.sample(n, s)``: the seed a user gives is the seed of the data, so
``run_demo(seed=s)`` fits exactly the stars ``mock.sample(n, s)`` returns. That stream is
SeedSequence(s) itself, which no child equals.
"""

from __future__ import annotations

import numpy as np

__all__ = ["STREAMS", "spawn_seeds", "stream_seed"]

STREAMS: dict[str, int] = {
    "flows": 0,
    "points": 1,
    "jeans": 2,
    "potential": 3,
    "replicate_points": 4,
    "replicate_stars": 5,
    "replicate_fits": 6,
    "held_out": 7,
    "figures": 8,
    "jeans_check": 9,
    "disk_density": 10,
}


def stream_seed(seed: int, name: str, *part: int) -> int:
    """The integer seed of stream ``name`` (and ``part``, e.g. replicate b) of a run's ``seed``.

    The value is below 2**31, so that the offsets consumers add to it (flow member k: ``+ k``;
    the figures' ``+ 20_000``) stay valid 32-bit seeds for numpy's legacy global generator, which
    galpy's samplers use.

    >>> stream_seed(0, "flows") == stream_seed(0, "flows") != stream_seed(0, "points")
    True
    """
    if name not in STREAMS:
        raise ValueError(f"unknown random stream {name!r}; streams: {sorted(STREAMS)}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be an integer >= 0, not {seed!r}")
    return _as_int(np.random.SeedSequence(int(seed), spawn_key=(STREAMS[name], *part)))


def spawn_seeds(seed: int, n: int) -> list[int]:
    """``n`` independent integer seeds from one (SeedSequence children, below 2**31).

    For a function that splits its one seed among parts (one per ensemble, say): ``seed + i``
    would give part 1 the stream that ``seed + 1`` gives elsewhere.
    """
    return [_as_int(child) for child in np.random.SeedSequence(int(seed)).spawn(n)]


def _as_int(sequence: np.random.SeedSequence) -> int:
    # 31 bits: see stream_seed
    return int(sequence.generate_state(1)[0] >> 1)
