"""Scale: training throughput on 1 and 2 processes, memory at 10^6 and 10^7 stars, float32 error.

    python benchmarks/scale.py [--sizes 1000000 10000000] [--nprocs 1 2] [--out FILE.md]

Every measurement runs in a fresh process, so one's memory, threads or process group cannot
disturb another's. All on CPU, one torch thread per process.

throughput
    flows: two members of the default architecture (FlowConfig()), one epoch each over 2^20
    Plummer stars in batches of 4096 (230 steps + the validation pass); one process trains
    both, two processes one each (``deeppot_galpy.distributed``). Stars/s = training rows
    processed by all processes / wall time.
    potential: 300 steps of a 2048-point batch of the default network on 2^15 CBE points (exact
    Plummer gradients); with two processes DistributedDataParallel, each taking half of every
    batch. Points/s = steps x batch / wall time.
memory
    The whole pipeline (``pipeline.fit``: 1 member with a 20 s budget, 2^13 CBE points, 100
    potential steps, no figures) on N stars memory-mapped from a float32 ``.npy`` file, and on
    the same stars read into an in-memory PhaseSpace. The resident set is sampled every 5 ms
    and split into anonymous memory (what the process holds) and file-backed pages (mostly the
    memory map's page cache, which the kernel drops under pressure).
precision
    grad ln f of a trained two-member ensemble evaluated in float32 (as trained) and float64:
    the relative difference per star, next to the ensemble's own error against the exact
    Plummer gradient, to say whether the CBE gradients need float64.

Prints a Markdown table per section, then the JSON records; ``--out`` also writes them to a file.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from memory import ResidentSet  # benchmarks/memory.py (run as a script)

from deeppot_galpy import distributed
from deeppot_galpy.compare import relative_error
from deeppot_galpy.config import FitConfig, FitOptions
from deeppot_galpy.df import FlowConfig, FlowEnsemble, FlowTraining
from deeppot_galpy.mocks import Plummer
from deeppot_galpy.phasespace import PhaseSpace, Standardization
from deeppot_galpy.pipeline import fit
from deeppot_galpy.potential import CBEPoints, PotentialTraining, fit_potential

FLOW_STARS = 2**20
FLOW_BATCH = 4096
POT_STEPS, POT_BATCH = 300, 2048


def plummer_points(n: int, seed: int) -> CBEPoints:
    m = Plummer()
    ps = m.sample(n, seed)
    gx, gv = m.grad_log_df(ps.x, ps.v)
    return CBEPoints(ps.x, ps.v, gx, gv, m.log_df(ps.x, ps.v))


def write_stars(path: Path, n: int, chunk: int = 10**6) -> None:
    """n Plummer stars (float32 x, v) into a .npy file, a chunk at a time."""
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, 6))
    for i, start in enumerate(range(0, n, chunk)):
        stop = min(start + chunk, n)
        out[start:stop] = Plummer().sample(stop - start, seed=i).eta
    out.flush()
    del out


# --- workers: each runs in every process of a job (or alone) ----------------------------------


def _timed(work) -> tuple[float, float]:
    """(wall, CPU) seconds of ``work()`` across the job.

    Wall: from a common start to the last rank's end. CPU: summed over the ranks; on a machine
    shared with other work it shows what the processes cost, where wall time shows mostly
    how much of the CPUs they got.
    """
    job = distributed.current()
    job.barrier()
    t0, c0 = time.perf_counter(), time.process_time()
    work()
    cpu = time.process_time() - c0
    job.barrier()
    wall = time.perf_counter() - t0
    return wall, float(distributed.all_gather_rows(np.array([[cpu]])).sum())


def flows_worker(stars: str, result: str) -> None:
    torch.set_num_threads(1)
    distributed.join("cpu")
    job = distributed.current()
    eta = np.load(stars, mmap_mode="r")[:FLOW_STARS].astype(np.float64)
    ens = FlowEnsemble(Standardization.fit(eta), 2, FlowConfig())
    cfg = FlowTraining(epochs=1, batch_size=FLOW_BATCH)
    wall, cpu = _timed(lambda: ens.fit(eta, cfg, 0, False, members=job.shard(2)))
    if job.is_main:
        steps = int(len(eta) * (1 - cfg.val_fraction)) // FLOW_BATCH
        rows = 2 * steps * FLOW_BATCH
        record = {"seconds": wall, "cpu_seconds": cpu, "steps_per_member": steps, "rows": rows}
        Path(result).write_text(json.dumps(record))


def potential_worker(result: str) -> None:
    torch.set_num_threads(1)
    distributed.join("cpu")
    job = distributed.current()
    points = plummer_points(2**15, 1)
    cfg = PotentialTraining(steps=POT_STEPS, batch_size=POT_BATCH)
    wall, cpu = _timed(lambda: fit_potential(points, cfg, 0, "cpu", False))
    if job.is_main:
        record = {"seconds": wall, "cpu_seconds": cpu, "rows": POT_STEPS * POT_BATCH}
        Path(result).write_text(json.dumps(record))


def throughput(kind: str, nproc: int, stars: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        result = f"{tmp}/result.json"
        if kind == "flows":
            distributed.launch(nproc, flows_worker, stars, result)
        else:
            distributed.launch(nproc, potential_worker, result)
        rec = json.loads(Path(result).read_text())
    rec.update(
        kind=kind,
        nproc=nproc,
        rows_per_second=round(rec["rows"] / rec["seconds"]),
        rows_per_cpu_second=round(rec["rows"] / rec["cpu_seconds"]),
        seconds=round(rec["seconds"], 2),
        cpu_seconds=round(rec["cpu_seconds"], 2),
    )
    return rec


def memory(n: int, source: str, stars: str) -> dict:
    config = FitConfig(
        n_stars=n,
        n_flows=1,
        flow=FlowConfig(),
        flow_training=FlowTraining(epochs=1, batch_size=FLOW_BATCH, time_budget_s=20.0),
        n_points=2**13,
        potential=PotentialTraining(steps=100, batch_size=1024),
    )
    baseline = ResidentSet.sample()[0]  # the imported libraries, before any data
    with tempfile.TemporaryDirectory() as out, ResidentSet() as mem:
        t0 = time.perf_counter()
        if source == "memmap":
            data = np.load(stars, mmap_mode="r")[:n]
        else:
            data = PhaseSpace.from_eta(np.load(stars, mmap_mode="r")[:n].astype(np.float64))
        metrics = fit(data, out, config, options=FitOptions(progress=False, figures=False))
        seconds = time.perf_counter() - t0
    with open("/proc/self/status") as fh:
        hwm = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM"))
    return {
        "stars": n,
        "source": source,
        "seconds": round(seconds, 1),
        "stage_seconds": metrics["timing"]["seconds"],
        "baseline_anon_mb": round(baseline / 2**20),
        "peak_anon_mb": round(mem.anon / 2**20),
        "peak_file_mb": round(mem.file / 2**20),
        "peak_rss_mb": round(hwm / 1024),
        "data_file_mb": round(n * 6 * 4 / 2**20),
    }


def precision() -> dict:
    torch.set_num_threads(1)
    truth = Plummer()
    ps = truth.sample(2**15, 3)
    ens = FlowEnsemble(ps.standardization(), 2, FlowConfig())
    ens.fit(ps, FlowTraining(epochs=8, batch_size=1024), 0, False)
    held = truth.sample(2**14, 4)
    eta = held.eta[held.r < 3.0]  # the demo's evaluation range
    lf32, g32 = ens.log_prob_and_grad(eta)
    lf64, g64 = copy.deepcopy(ens).double().log_prob_and_grad(eta)
    gx, gv = truth.grad_log_df(eta[:, :3], eta[:, 3:])
    exact = np.concatenate([gx, gv], axis=1)

    f32 = relative_error(g32, g64)
    fit_err = relative_error(g64, exact)
    return {
        "points": len(eta),
        "float32_vs_float64_median": float(np.median(f32)),
        "float32_vs_float64_p99": float(np.percentile(f32, 99)),
        "float32_vs_float64_max": float(f32.max()),
        "x_part_median": float(np.median(relative_error(g32[:, :3], g64[:, :3]))),
        "v_part_median": float(np.median(relative_error(g32[:, 3:], g64[:, 3:]))),
        "lnf_abs_diff_max": float(np.abs(lf32 - lf64).max()),
        "flow_vs_exact_median": float(np.median(fit_err)),
    }


# --- orchestration ----------------------------------------------------------------------------


def run_one(task: dict) -> dict:
    """``task`` in a fresh interpreter; its JSON result."""
    cmd = [sys.executable, __file__, "--task", json.dumps(task)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{task} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def do_task(task: dict) -> dict:
    if task["kind"] in ("flows", "potential"):
        return throughput(task["kind"], task["nproc"], task.get("stars", ""))
    if task["kind"] == "memory":
        return memory(task["n"], task["source"], task["stars"])
    return precision()


def report(results: dict) -> str:
    lines = [
        "# Scale benchmark (benchmarks/scale.py)",
        "",
        f"python {platform.python_version()}, torch {torch.__version__}, "
        f"{os.cpu_count()} CPUs, one torch thread per process; load average "
        f"{results['load_average']['start']:.1f} before, {results['load_average']['end']:.1f} "
        "after (other work on the machine takes CPUs from the measured processes: compare "
        "rows/CPU-s across process counts, wall-clock speed-ups only on an idle machine).",
        "",
        "## Training throughput",
        "",
        "| stage | processes | rows | wall [s] | rows/s | speed-up | CPU [s] | rows/CPU-s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for kind, unit in (("flows", "stars"), ("potential", "points")):
        runs = [r for r in results["throughput"] if r["kind"] == kind]
        base = runs[0]["rows_per_second"] if runs else 1
        for r in runs:
            lines.append(
                f"| {kind} ({unit}) | {r['nproc']} | {r['rows']:,} | {r['seconds']} | "
                f"{r['rows_per_second']:,} | {r['rows_per_second'] / base:.2f} | "
                f"{r['cpu_seconds']} | {r['rows_per_cpu_second']:,} |"
            )
    lines += [
        "",
        "## Memory of a whole fit",
        "",
        "| stars | source | data file [MB] | anon before [MB] | peak anon [MB] | "
        "peak file-backed [MB] | peak RSS [MB] | wall [s] | flows / points / potential [s] |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results["memory"]:
        s = r["stage_seconds"]
        lines.append(
            f"| {r['stars']:,} | {r['source']} | {r['data_file_mb']} | {r['baseline_anon_mb']} | "
            f"{r['peak_anon_mb']} | "
            f"{r['peak_file_mb']} | {r['peak_rss_mb']} | {r['seconds']} | "
            f"{s['flows']} / {s['points']} / {s['potential']} |"
        )
    p = results["precision"]
    lines += [
        "",
        "## float32 vs float64 for grad ln f",
        "",
        f"{p['points']:,} held-out Plummer stars (r < 3), a two-member ensemble of the default "
        "architecture trained in float32, evaluated in float32 and float64:",
        "",
        "| | median | median, x part | median, v part | p99 | max |",
        "|---|---:|---:|---:|---:|---:|",
        f"| float32 vs float64, relative difference | "
        f"{p['float32_vs_float64_median']:.1e} | {p['x_part_median']:.1e} | "
        f"{p['v_part_median']:.1e} | {p['float32_vs_float64_p99']:.1e} | "
        f"{p['float32_vs_float64_max']:.1e} |",
        f"| the flows vs the exact gradient (fit error) | "
        f"{p['flow_vs_exact_median']:.2f} | | | | |",
        "",
        "```json",
        json.dumps(results, indent=1),
        "```",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10**6, 10**7])
    parser.add_argument("--nprocs", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--out", help="also write the report to this Markdown file")
    parser.add_argument("--task", help=argparse.SUPPRESS)  # internal: one measurement
    args = parser.parse_args()
    if args.task:
        print(json.dumps(do_task(json.loads(args.task))))
        return

    results: dict = {"throughput": [], "memory": [], "load_average": {"start": os.getloadavg()[0]}}
    with tempfile.TemporaryDirectory() as tmp:
        stars = f"{tmp}/stars.npy"
        write_stars(Path(stars), max(max(args.sizes), FLOW_STARS))
        for kind in ("flows", "potential"):
            for nproc in args.nprocs:
                task = {"kind": kind, "nproc": nproc, "stars": stars}
                results["throughput"].append(run_one(task))
                print(json.dumps(results["throughput"][-1]), flush=True)
        for n in sorted(args.sizes):
            for source in ("memmap", "memory"):
                results["memory"].append(
                    run_one({"kind": "memory", "n": n, "source": source, "stars": stars})
                )
                print(json.dumps(results["memory"][-1]), flush=True)
    results["precision"] = run_one({"kind": "precision"})
    results["load_average"]["end"] = os.getloadavg()[0]
    text = report(results)
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
