"""Time and memory to ingest and cut synthetic Gaia-like catalogs of 10^6 and 10^7 rows.

    python benchmarks/ingest.py [--sizes 1000000 10000000] [--modes table parquet]

Each (size, mode) runs in a fresh subprocess so that one run's memory does not hide another's.
``table``: an in-memory astropy Table -> ``catalog_to_phasespace`` (the cuts, the transform, the
PhaseSpace). ``parquet``: the same rows written to a Parquet file in the temporary directory
(not timed), then read + ingest from the path. Memory is the process's resident set, sampled
every 5 ms: the peak during ingest, and that peak minus the resident set just before (the data
already loaded, for ``table``). Prints a Markdown table, then one JSON object per run.

The rows are drawn directly (no galaxy model): stars up to 3 kpc away with Gaia-like parallax
errors, 30% without radial velocity, 0.1% duplicated source_ids, 0.01% NaN proper motions, so
every cut removes something.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from memory import ResidentSet  # benchmarks/memory.py (run as a script)


def synthetic_table(n: int, seed: int = 0):
    """Gaia archive columns with units (see the module docstring)."""
    import astropy.units as u
    from astropy.table import MaskedColumn, Table

    rng = np.random.default_rng(seed)
    distance = 3.0 * rng.uniform(0.0, 1.0, n) ** (1.0 / 3.0)  # uniform in a 3 kpc sphere
    plx_err = 0.02 * rng.lognormal(0.0, 0.7, n)
    pmra = rng.normal(0.0, 20.0, n)
    pmra[rng.uniform(size=n) < 1e-4] = np.nan
    source_id = np.arange(n, dtype=np.int64) * 7 + 4_000_000_000
    dup = rng.choice(n, n // 1000, replace=False)
    source_id[dup] = source_id[(dup + 1) % n]
    table = Table(
        {
            "source_id": source_id,
            "ra": rng.uniform(0.0, 360.0, n) * u.deg,
            "dec": np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, n))) * u.deg,
            "parallax": (1.0 / distance + rng.normal(0.0, 1.0, n) * plx_err) * u.mas,
            "parallax_error": plx_err * u.mas,
            "pmra": pmra * u.mas / u.yr,
            "pmdec": rng.normal(0.0, 20.0, n) * u.mas / u.yr,
        },
        copy=False,
    )
    table["radial_velocity"] = MaskedColumn(
        rng.normal(0.0, 40.0, n), mask=rng.uniform(size=n) < 0.3, unit=u.km / u.s
    )
    return table


def worker(n: int, mode: str, path: str | None) -> dict:
    from deeppot_galpy.data import QualityCuts, catalog_to_phasespace

    cuts = QualityCuts()
    t0 = time.perf_counter()
    if mode == "table":
        source = synthetic_table(n)
    else:
        source = path
    t_make = time.perf_counter() - t0
    with ResidentSet() as mem:
        t0 = time.perf_counter()
        ps, report = catalog_to_phasespace(source, cuts=cuts)
        seconds = time.perf_counter() - t0
    return {
        "rows": n,
        "mode": mode,
        "kept": len(ps),
        "seconds": round(seconds, 2),
        "rows_per_second": round(n / seconds),
        "rss_before_mb": round(mem.start / 2**20),
        "peak_rss_mb": round(mem.rss / 2**20),
        "ingest_extra_mb": round((mem.rss - mem.start) / 2**20),
        "setup_seconds": round(t_make, 2),
        "cuts": {s.name: s.removed for s in report.steps},
    }


def markdown(results: list[dict]) -> str:
    head = "| rows | source | kept | time [s] | rows/s | peak RSS [MB] | ingest extra [MB] |"
    lines = [head, "|---:|---|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(
            f"| {r['rows']:,} | {r['mode']} | {r['kept']:,} | {r['seconds']:.1f} | "
            f"{r['rows_per_second']:,} | {r['peak_rss_mb']:,} | {r['ingest_extra_mb']:,} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    p.add_argument("--modes", nargs="+", default=["table", "parquet"], choices=["table", "parquet"])
    p.add_argument("--worker", nargs=3, metavar=("N", "MODE", "PATH"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.worker:
        n, mode, path = args.worker
        print(json.dumps(worker(int(n), mode, path)))
        return 0

    results = []
    with tempfile.TemporaryDirectory(prefix="deeppot_bench_") as tmp:
        for n in args.sizes:
            path = Path(tmp) / f"gaia_{n}.parquet"
            if "parquet" in args.modes:
                synthetic_table(n).write(path)
            for mode in args.modes:
                out = subprocess.run(
                    [sys.executable, __file__, "--worker", str(n), mode, str(path)],
                    check=True,
                    capture_output=True,
                    text=True,
                )
                results.append(json.loads(out.stdout.strip().splitlines()[-1]))
            path.unlink(missing_ok=True)

    print(f"Ingest + cuts, {os.cpu_count()} CPUs, python {sys.version.split()[0]}\n")
    print(markdown(results))
    print("\n```json")
    print(json.dumps(results, indent=1))
    print("```")
    return 0


if __name__ == "__main__":
    sys.exit(main())
