"""Run the grepq benchmarks, store each one's result in benchmarks/results/<name>.json and write docs/benchmarks.md
from all of those files (the page is generated, never edited: its fixed text is in doc_templates.py).

Usage::

    python benchmarks/run_all.py [--quick] [--only NAME ...] [--photos DIR] [--workdir DIR] [--json FILE]
    python benchmarks/run_all.py --render-only

Each benchmark script runs in its own subprocess (so one's memory and threads do not affect another's), started
once other jobs leave the CPU idle (up to ``--max-wait`` seconds; the scripts comparing timings wait the same way
before each timed run), and is parsed from its output: the scripts print a ``RESULT {json}`` line, or
(bench_train_steps.py) a table. Their full output is printed as it arrives, then the summary table. Each results
file records the command, the grepq commit (``git rev-parse HEAD``, ``git describe --always --dirty``), start and end
time, the load average at both, the machine, the rows and the script's RESULT numbers (its ``inputs`` among them).
``--only`` keeps the other benchmarks' last results files, and the page is written from all of them, each section
naming its own run. The photographs: ``--photos DIR`` or ``$GREPQ_BENCH_PHOTOS``, else scikit-image's
(bench_inputs.py). The exit status is 1 if a benchmark failed or a target was not met, else 0.

Adding a benchmark: write a function ``rows(ctx) -> List[Row]`` that keeps its parsed result with ``ctx.keep`` and
append it to :data:`BENCHMARKS` (or, for the training-step rates, to :data:`TRAINING_BENCHMARKS`, the hook left for
them below); its title and explanation go in doc_templates.py.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench_zero_shot as bz  # noqa: E402  (its targets)
from bench_zero_shot import wait_for_idle  # noqa: E402  (each timed script starts on an idle machine)

# Targets: FSIM precomputation >= 5x the per-pair piq loop with equal values (1e-5); LL input pipeline >= 100x;
# zero-shot no slower than the official loop (here also applied to the official dataset mode), scores within 1e-5;
# 24 MP under 2 GB, same score, no slower; the data-efficient protocol under 30 s on 2 cores.
ZERO_SHOT_MIN_RATIO = 1.0        # official loop time / grepq time
MEMORY_24MP_MAX_BYTES = 2 * 2 ** 30
SCORE_TOL = 1e-5                 # |Q grepq - Q official| (target: zero-shot scores within 1e-5 of the official code)
PROTOCOL_MAX_SECONDS = 30.0
FSIM_MIN_RATIO = 5.0             # piq-per-pair time / grepq fsim_matrix time (float64)
FSIM_TOL = 1e-5                  # max |FSIM grepq - FSIM piq|, float64
LL_PIPELINE_MIN_RATIO = 100.0    # samples/s with stored FSIM / samples/s with FSIM computed in the loader


@dataclass
class Row:
    """One line of the summary: what is compared, the target, what was measured, and whether it met the target."""

    benchmark: str
    compared: str
    target: str
    measured: str
    met: Optional[bool]
    detail: str = ""


@dataclass
class Context:
    quick: bool
    workdir: Path
    outputs: Dict[str, str]
    max_wait: float = 600.0
    raw: Dict[str, dict] = field(default_factory=dict)

    def keep(self, name: str, result: dict) -> dict:
        """Keep a benchmark's parsed result (its ``RESULT`` JSON) for its results file; returns it."""
        self.raw[name] = result
        return result


class NotRun(Exception):
    """A benchmark that cannot run on this machine (no CUDA device): its last results file is kept as it is."""


def run_script(ctx: Context, name: str, args: List[str]) -> str:
    """Run ``benchmarks/<name>`` with ``args``; its output is echoed and returned. Raises on a non-zero exit."""
    cmd = [sys.executable, str(HERE / name), *args]
    busy = wait_for_idle(ctx.max_wait)
    print(f"\n## {name} {' '.join(args)}  (load average {os.getloadavg()[0]:.2f}; other jobs at start: "
          f"{busy:.2f} cores busy)", flush=True)
    t = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    shown = "\n".join(line for line in proc.stdout.splitlines() if not line.startswith("RESULT "))
    print(shown, flush=True)
    print(f"({time.perf_counter() - t:.0f} s, load average after {os.getloadavg()[0]:.2f})", flush=True)
    ctx.outputs[name] = proc.stdout
    if proc.returncode != 0:
        raise RuntimeError(f"{name} exited with {proc.returncode}: {proc.stderr.strip()[-1500:]}")
    return proc.stdout


def result_json(text: str) -> dict:
    lines = [line for line in text.splitlines() if line.startswith("RESULT ")]
    if not lines:
        raise RuntimeError("no RESULT line in the benchmark's output")
    return json.loads(lines[-1][len("RESULT "):])


def _yes(ok: bool) -> bool:
    return bool(ok)


# ------------------------------------------------------------------------------------------------ benchmarks
def fsim_rows(ctx: Context) -> List[Row]:
    r = ctx.keep("fsim", result_json(run_script(ctx, "bench_fsim.py", ["--repeats", "1" if ctx.quick else "3"])))
    ref, ours, diff = r["piq_float64_s"], r["grepq_float64_s"], r["max_abs_diff_float64"]
    ratio = ref / ours
    return [Row(f"FSIM of {r['versions']} versions ({r['pairs']} pairs), {r['size']}", "grepq `fsim_matrix` "
                "(float64) vs `piq.fsim` per pair (official loader)",
                f">= {FSIM_MIN_RATIO:g}x, max diff <= {FSIM_TOL:g}",
                f"{ratio:.1f}x ({ref:.2f} s vs {ours:.2f} s), max diff {diff:.1e}",
                _yes(ratio >= FSIM_MIN_RATIO and diff <= FSIM_TOL))]


def ll_pipeline_rows(ctx: Context) -> List[Row]:
    args = ["--repeats", "1", "--official-samples", "1"] if ctx.quick else []
    r = ctx.keep("ll_pipeline", result_json(run_script(ctx, "bench_ll_pipeline.py", args)))
    fast, slow = r["stored_samples_per_s"], r["official_samples_per_s"]
    ratio = fast / slow
    return [Row(f"LL training input pipeline (one sample = {r['versions']} versions)", "stored FSIM (`grepq prepare`) "
                "vs FSIM computed in the loader (official)", f">= {LL_PIPELINE_MIN_RATIO:g}x",
                f"{ratio:.0f}x ({fast:.2f} vs {slow:.4f} samples/s), max FSIM diff {r['max_abs_fsim_diff']:.1e}",
                _yes(ratio >= LL_PIPELINE_MIN_RATIO))]


def zero_shot_rows(ctx: Context) -> List[Row]:
    args = ["--workdir", str(ctx.workdir / "zero_shot")] + (["--quick"] if ctx.quick else [])
    r = ctx.keep("zero_shot", result_json(run_script(ctx, "bench_zero_shot.py", args)))
    if "official_s" not in r:
        raise RuntimeError("bench_zero_shot.py did not time the official loop")
    ratio = r["official_s"] / r["grepq_s"]
    same = r["max_abs_score_diff"] <= SCORE_TOL
    rows = [Row(f"zero-shot Q_L + Q_H, {r['images']} photos {r['size']}, whole process",
                f"`grepq score FOLDER` vs the {r['official_kind']} per-image loop; floor = forward passes only",
                f">= {ZERO_SHOT_MIN_RATIO:g}x, scores within {SCORE_TOL:g}",
                f"{ratio:.2f}x ({r['official_s']:.1f} s vs {r['grepq_s']:.1f} s; floor {r['floor_s']:.1f} s), "
                f"max score diff {r['max_abs_score_diff']:.1e}", _yes(ratio >= ZERO_SHOT_MIN_RATIO and same))]
    if "official_dataset_s" in r:
        ratio_set = r["official_dataset_s"] / r["grepq_s"]
        same_set = r["max_abs_score_diff_dataset"] <= SCORE_TOL
        rows.append(Row(f"zero-shot Q_L + Q_H, {r['images']} photos {r['size']}, whole process",
                        "`grepq score FOLDER` (warm cache) vs the official dataset mode (pristine features and prompts "
                        "once)", f">= {bz.DATASET_MIN_SPEEDUP:g}x, scores within {SCORE_TOL:g}",
                        f"{ratio_set:.2f}x ({r['official_dataset_s']:.1f} s vs {r['grepq_s']:.1f} s), "
                        f"max score diff {r['max_abs_score_diff_dataset']:.1e}",
                        _yes(ratio_set >= bz.DATASET_MIN_SPEEDUP and same_set)))
    floor_ratio = r["grepq_s"] / r["floor_s"]
    rows.append(Row(f"zero-shot Q_L + Q_H, {r['images']} photos {r['size']}, whole process",
                    "`grepq score FOLDER`, warm constants cache, vs the floor (forward passes only, in memory); "
                    "cold cache reported", f"warm <= {bz.FLOOR_MAX_RATIO:g}x floor, warm = cold scores (bits)",
                    f"{floor_ratio:.2f}x ({r['grepq_s']:.1f} s vs floor {r['floor_s']:.1f} s; cold "
                    f"{r['grepq_cold_s']:.1f} s)", _yes(floor_ratio <= bz.FLOOR_MAX_RATIO
                                                        and r["warm_cold_scores_identical"])))
    return rows


def memory_rows(ctx: Context) -> List[Row]:
    args = ["--workdir", str(ctx.workdir / "memory_24mp")]
    r = ctx.keep("memory", result_json(run_script(ctx, "bench_memory_24mp.py", args)))
    gib = 2 ** 30
    rows = []
    peak = r["grepq_peak_bytes"]
    if "official_s" in r:
        ratio_mem = r["official_peak_bytes"] / peak
        ratio_t = r["official_s"] / r["grepq_s"]
        same = r["abs_score_diff"] <= SCORE_TOL
        rows.append(Row("24 MP photo (6000x4000), Q_L: peak memory", "`grepq score IMG --components ll` vs the "
                        f"{r['official_kind']} (all patches in one batch)",
                        f"grepq < {MEMORY_24MP_MAX_BYTES / gib:g} GiB",
                        f"{peak / gib:.2f} GiB vs {r['official_peak_bytes'] / gib:.2f} GiB ({ratio_mem:.1f}x less)",
                        _yes(peak < MEMORY_24MP_MAX_BYTES)))
        rows.append(Row("24 MP photo (6000x4000), Q_L: time and score", "the same two runs",
                        f">= 1x, scores within {SCORE_TOL:g}",
                        f"{ratio_t:.2f}x ({r['official_s']:.1f} s vs {r['grepq_s']:.1f} s), "
                        f"score diff {r['abs_score_diff']:.1e}", _yes(ratio_t >= 1.0 and same)))
    else:
        est = r["one_batch_estimate_bytes"]
        rows.append(Row("24 MP photo (6000x4000), Q_L: peak memory", "`grepq score IMG --components ll` vs the "
                        "one-batch path (not run: " + r.get("official_skipped", "") + ")",
                        f"grepq < {MEMORY_24MP_MAX_BYTES / gib:g} GiB",
                        f"{peak / gib:.2f} GiB vs an estimated {est / gib:.1f} GiB ({est / peak:.1f}x less)",
                        _yes(peak < MEMORY_24MP_MAX_BYTES)))
        rows.append(Row("24 MP photo (6000x4000), Q_L: time and score", "official path not run", ">= 1x",
                        f"grepq {r['grepq_s']:.1f} s; no comparison", None))
    return rows


def protocol_rows(ctx: Context) -> List[Row]:
    r = ctx.keep("protocol", result_json(run_script(ctx, "bench_protocol.py", ["--quick"] if ctx.quick else [])))
    names = ", ".join(f"{d['name']} {d['images']}" for d in r["datasets"])
    return [Row("data-efficient protocol, 5 datasets x 3 label counts x 10 splits x 3 feature sets",
                f"wall time on {r['cpus']} cores from cached features ({names})",
                f"< {PROTOCOL_MAX_SECONDS:g} s", f"{r['total_s']:.1f} s ({PROTOCOL_MAX_SECONDS / r['total_s']:.1f}x "
                "under the limit)", _yes(r["total_s"] < PROTOCOL_MAX_SECONDS))]


def gpu_rows(ctx: Context) -> List[Row]:
    """Images/s on a CUDA GPU (bench_gpu.py): grepq batched float32 and bf16 against the official per-image fp16
    loop, which runs when $GREPQ_BENCH_OFFICIAL (the official repository) and $GREPQ_BENCH_OFFICIAL_CLIP (the folder
    of the patched CLIP copy) are set. No target: measured only. Without CUDA: one row saying it was not run."""
    import torch

    what = "grepq `score` batched, float32 and bf16, vs the official per-image loop (CLIP fp16)"
    if not torch.cuda.is_available():
        raise NotRun("no CUDA device on this machine")
    args = ["--workdir", str(ctx.workdir / "gpu"), "--images", "30" if ctx.quick else "100"]
    official, clip_copy = os.environ.get("GREPQ_BENCH_OFFICIAL"), os.environ.get("GREPQ_BENCH_OFFICIAL_CLIP")
    if official and clip_copy:
        args += ["--official", official, "--official-clip", clip_copy]
    r = ctx.keep("gpu", result_json(run_script(ctx, "bench_gpu.py", args)))
    runs = r["runs"]
    base = runs.get("official_fp16_loop")
    parts = []
    for key, label in (("grepq_off", "float32"), ("grepq_bf16", "bf16")):
        ratio = f" ({runs[key]['images_per_s'] / base['images_per_s']:.2f}x official)" if base else ""
        parts.append(f"{label} {runs[key]['images_per_s']:.1f} img/s{ratio}")
    parts.append(f"official {base['images_per_s']:.1f} img/s" if base else r.get("official_skipped", ""))
    return [Row(f"zero-shot on {r['gpu']}, {r['images']} photos {r['size']}", what, "- (measured only)",
                "; ".join(parts), None)]


def cpu_bf16_rows(ctx: Context) -> List[Row]:
    """float32 against ``amp=bf16`` + channels_last on the CPU (bench_cpu_bf16.py): zero-shot scoring (seconds per
    image, score differences) and the LL and HL training steps (seconds per step, loss differences). No target:
    measured only; the CPU's bf16 flags are in the row."""
    args = ["--workdir", str(ctx.workdir / "cpu_bf16")] + (["--quick"] if ctx.quick else [])
    r = ctx.keep("cpu_bf16", result_json(run_script(ctx, "bench_cpu_bf16.py", args)))
    where = (f"{r['cpu']}, bf16 flags: {', '.join(r['bf16_flags']) or 'none'}; {r['threads']} torch threads, "
             f"{r['torch']}")
    s, t = r["scoring"], r["training"]
    diffs = ", ".join(f"{k} {v['max']:.1e} / {v['median']:.1e} (SRCC {v['srcc']:.3f})"
                      for k, v in s["abs_score_diff"].items())
    rows = [Row(f"zero-shot scoring on the CPU, {s['images']} photos {s['size']}, models loaded and warm",
                f"`amp=bf16, channels_last=True` vs float32 (`GRepQ.from_files(...).score`, the `grepq score` path; "
                f"{where})", "- (measured only)",
                f"{s['speedup']:.2f}x ({s['fp32_s_per_image']:.3f} vs {s['bf16_s_per_image']:.3f} s/image); "
                f"score abs diff max / median: {diffs}", None)]
    for task in ("ll", "hl"):
        x = t[task]
        groups = (f"; pseudo-label groups differ at {len(x['steps_with_other_groups'])} of {t['steps'] + 1} steps"
                  if task == "hl" else "")
        rows.append(Row(f"{task.upper()} training step on the CPU ({', '.join(x['settings'])})",
                        f"`run.amp=bf16 run.channels_last=true` vs float32 (grepq's engine; {where})",
                        "- (measured only)",
                        f"{x['speedup']:.2f}x ({x['fp32_s_per_step']:.2f} vs {x['bf16_s_per_step']:.2f} s/step); "
                        f"loss abs diff max {x['max_abs_loss_diff']:.1e} (relative {x['max_rel_loss_diff']:.1e}) "
                        f"over the first {t['steps'] + 1} steps{groups}", None))
    return rows


#: The benchmarks run_all runs, in order: each ``fn(ctx) -> List[Row]``.
BENCHMARKS: List[Callable[[Context], List[Row]]] = [
    fsim_rows, ll_pipeline_rows, zero_shot_rows, memory_rows, protocol_rows, gpu_rows, cpu_bf16_rows,
]

# ---------------------------------------------------------------------------------------------------------
# HOOK: training-step rates (LL and HL training step of grepq vs the plain PyTorch equivalent).
# Append functions ``fn(ctx: Context) -> List[Row]`` here; run_all runs them after BENCHMARKS and adds their rows
# to the table (use run_script(ctx, "bench_<name>.py", args) and result_json(...) as the functions above do).
#: grepq's training step may cost at most this fraction more than the plain loop (timing noise on 2 cores).
TRAIN_STEP_MIN_RATIO = 0.95


def train_steps_rows(ctx: Context) -> List[Row]:
    """LL and HL training steps/s of grepq's engine against the plain PyTorch loop (bench_train_steps.py)."""
    out = run_script(ctx, "bench_train_steps.py", ["--steps", "4" if ctx.quick else "8"])
    rows = []
    for line in out.splitlines():
        m = re.match(r"\| (LL|HL) training step \((.*?)\) \| ([0-9.]+) \| ([0-9.]+) \| ([0-9.]+) \|", line)
        if m:
            task, what, g, p, r = m.groups()
            rows.append(Row(f"{task} training step", f"grepq engine vs plain PyTorch loop ({what})",
                            f">= {TRAIN_STEP_MIN_RATIO} x", f"{float(r):.2f} x ({g} vs {p} steps/s)",
                            float(r) >= TRAIN_STEP_MIN_RATIO))
    if len(rows) != 2:
        raise RuntimeError("bench_train_steps.py printed no LL/HL rows")
    ctx.keep("train_steps", {"steps": 4 if ctx.quick else 8, "table_rows": [asdict(r) for r in rows]})
    return rows


TRAINING_BENCHMARKS: List[Callable[[Context], List[Row]]] = [train_steps_rows]
# ---------------------------------------------------------------------------------------------------------


def machine() -> Dict[str, str]:
    import torch

    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    ram = "unknown"
    try:
        with open("/proc/meminfo") as f:
            kb = int(next(line.split()[1] for line in f if line.startswith("MemTotal:")))
        ram = f"{kb / 2 ** 20:.1f} GiB"
    except (OSError, StopIteration):
        pass
    return {"cpu": cpu, "cores": str(os.cpu_count()), "ram": ram, "python": platform.python_version(),
            "torch": torch.__version__, "torch_threads": str(torch.get_num_threads())}


def table(rows: List[Row]) -> str:
    mark = {True: "yes", False: "**no**", None: "-"}
    lines = ["| benchmark | compared | target | measured | met |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r.benchmark} | {r.compared} | {r.target} | {r.measured} | {mark[r.met]} |")
    return "\n".join(lines)


def name_of(fn: Callable) -> str:
    return fn.__name__.replace("_rows", "")


# ------------------------------------------------------------------------------------------------ results and doc
RESULTS_DIR = HERE / "results"
DOC = HERE.parent / "docs" / "benchmarks.md"


def grepq_commit() -> Dict[str, str]:
    """``git rev-parse HEAD`` and ``git describe --always --dirty`` of this checkout ("unknown" outside one)."""
    def git(*args: str) -> str:
        try:
            out = subprocess.run(["git", "-C", str(HERE), *args], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            return "unknown"
        return out.stdout.strip() if out.returncode == 0 else "unknown"

    return {"commit": git("rev-parse", "HEAD"), "describe": git("describe", "--always", "--dirty")}


def now_utc() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())


def loadavg() -> List[float]:
    return [round(x, 2) for x in os.getloadavg()]


def save_result(results: Path, name: str, record: dict) -> Path:
    results.mkdir(parents=True, exist_ok=True)
    path = results / f"{name}.json"
    path.write_text(json.dumps(record, indent=1, default=str) + "\n")
    return path


def load_results(results: Path) -> Dict[str, dict]:
    """Every ``<name>.json`` in ``results``, by name."""
    out = {}
    for path in sorted(Path(results).glob("*.json")):
        out[path.stem] = json.loads(path.read_text())
    return out


def _flatten(value, prefix: str = "") -> List[tuple]:
    if isinstance(value, dict):
        rows = []
        for k, v in value.items():
            rows.extend(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return rows
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        rows = []
        for i, v in enumerate(value):
            rows.extend(_flatten(v, f"{prefix}[{i}]"))
        return rows
    return [(prefix, value)]


def generic_table(data: dict) -> str:
    """A results file of another format (e.g. bench_gpu.py's own JSON): every key and value, nested keys joined."""
    lines = ["| key | value |", "|---|---|"]
    for k, v in _flatten(data):
        text = json.dumps(v) if isinstance(v, (list, dict)) else str(v)
        lines.append(f"| `{k}` | {text.replace('|', '/')} |")
    return "\n".join(lines)


def provenance(rec: dict) -> str:
    """The lines under a section's title: when, at which commit, on which machine, under which load, on which inputs."""
    if rec.get("imported"):
        return f"**Not measured by this script.** {rec['imported']}"
    m = rec.get("machine", {})
    load = (f"load average (1/5/15 min) {'/'.join(map(str, rec['load_start']))} at the start, "
            f"{'/'.join(map(str, rec['load_end']))} at the end")
    raw = rec.get("raw", {})
    files = raw.get("files") or []
    shown = ", ".join(f"`{f}`" for f in files[:8]) + (f" and {len(files) - 8} more" if len(files) > 8 else "")
    inputs = f"{raw['inputs']} ({raw.get('count', len(files))} files: {shown})" if "inputs" in raw else "generated here"
    return (f"Measured {rec['started']} to {rec['ended']} ({rec['seconds']:.0f} s) by `{rec['command']}`; grepq "
            f"`{rec['grepq']['describe']}` (commit `{rec['grepq']['commit']}`). Machine: {m.get('cores')} cores, "
            f"{m.get('cpu')}, {m.get('ram')} RAM, Python {m.get('python')}, torch {m.get('torch')} "
            f"({m.get('torch_threads')} threads). {load[0].upper() + load[1:]}. Inputs: {inputs}.")


def render(results: Dict[str, dict]) -> str:
    """docs/benchmarks.md from the results files: every number in it comes from them."""
    import doc_templates as tpl

    order = [name_of(f) for f in BENCHMARKS + TRAINING_BENCHMARKS]
    names = [n for n in order if n in results] + sorted(n for n in results if n not in order)
    commits = {results[n].get("grepq", {}).get("commit") for n in names if not results[n].get("imported")}
    out = [tpl.HEADER.strip(), ""]
    if len(commits) > 1 or any(results[n].get("imported") for n in names):
        out += [tpl.MIXED.strip(), ""]
    out += ["## Summary", "", "| section | measured | grepq | met |", "|---|---|---|---|"]
    mark = {True: "yes", False: "**no**", None: "-"}
    for n in names:
        rec = results[n]
        rows = [Row(**r) for r in rec.get("rows", [])]
        met = "; ".join(sorted({mark[r.met] for r in rows})) or "-"
        when = "imported, see the section" if rec.get("imported") else rec.get("started", "?")
        grepq = rec.get("grepq", {}).get("describe", "?")
        out.append(f"| [{tpl.TITLES.get(n, n)}](#{n.replace('_', '-')}) | {when} | `{grepq}` | {met} |")
    out.append("")
    for n in names:
        rec = results[n]
        out += [f"<a id=\"{n.replace('_', '-')}\"></a>", f"## {tpl.TITLES.get(n, n)}", ""]
        if "rows" in rec:
            out += [provenance(rec), "", table([Row(**r) for r in rec["rows"]]), ""]
        else:  # a results file written by another script (bench_gpu.py): its keys as they are
            out += ["Written by another script than run_all.py; its keys as they are:", "", generic_table(rec), ""]
        if tpl.PROSE.get(n):
            out += [tpl.PROSE[n].strip(), ""]
    out += [tpl.FOOTER.strip(), ""]
    return "\n".join(out)


def main(argv: Optional[List[str]] = None) -> int:
    import bench_inputs

    every = BENCHMARKS + TRAINING_BENCHMARKS
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer images and repeats (a few minutes)")
    ap.add_argument("--only", nargs="+", choices=[name_of(f) for f in every],
                    help="run only these benchmarks; the others' last results files are kept and rendered")
    bench_inputs.add_argument(ap)
    ap.add_argument("--workdir", help="keep generated weights and images here between runs (default: temporary)")
    ap.add_argument("--results", type=Path, default=RESULTS_DIR,
                    help="folder of the per-benchmark results files (default: benchmarks/results)")
    ap.add_argument("--doc", type=Path, default=DOC, help="the page written from the results (default: %(default)s)")
    ap.add_argument("--render-only", action="store_true", help="run nothing: rewrite --doc from --results")
    ap.add_argument("--json", help="also write this run's rows and the machine description to this JSON file")
    ap.add_argument("--max-wait", type=float, default=600.0,
                    help="seconds to wait for other jobs to finish before each timed run (default 600)")
    args = ap.parse_args(argv)
    if args.render_only:
        args.doc.write_text(render(load_results(args.results)), encoding="utf-8")
        print(f"wrote {args.doc} from {len(load_results(args.results))} results files in {args.results}")
        return 0
    photos = bench_inputs.select(args.photos)  # exported to the scripts as $GREPQ_BENCH_PHOTOS
    tmp = None
    if args.workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="grepq-bench-")
    ctx = Context(args.quick, Path(args.workdir or tmp.name), {}, args.max_wait)
    ctx.workdir.mkdir(parents=True, exist_ok=True)
    info = machine()
    cmd = ("python benchmarks/run_all.py" + (" --quick" if args.quick else "")
           + (f" --photos {photos.name}" if photos is not None else ""))
    print(f"# grepq benchmarks: `{cmd}`\nmachine: {info['cores']} cores, {info['cpu']}, {info['ram']} RAM, "
          f"Python {info['python']}, torch {info['torch']} ({info['torch_threads']} threads); "
          f"load average at start {os.getloadavg()[0]:.2f}; photographs: "
          f"{photos.name if photos is not None else bench_inputs.SKIMAGE}", flush=True)
    rows: List[Row] = []
    failed = False
    t0 = time.perf_counter()
    try:
        for fn in every:
            name = name_of(fn)
            if args.only and name not in args.only:
                continue
            started, load_start, t = now_utc(), loadavg(), time.perf_counter()
            try:
                got = fn(ctx)
            except NotRun as exc:
                print(f"\n## {name}: not run ({exc}); its last results file, if any, is kept", flush=True)
                continue
            except (RuntimeError, KeyError, ValueError, OSError, json.JSONDecodeError) as exc:
                failed = True
                got = [Row(name, "benchmark failed", "-", f"error: {exc}".replace("\n", " ")[:300], False)]
            rows.extend(got)
            save_result(args.results, name, {
                "benchmark": name, "command": cmd.replace("run_all.py", f"run_all.py --only {name}")
                if args.only else cmd, "grepq": grepq_commit(), "started": started, "ended": now_utc(),
                "seconds": round(time.perf_counter() - t, 1), "load_start": load_start, "load_end": loadavg(),
                "machine": info, "quick": args.quick, "rows": [asdict(r) for r in got], "raw": ctx.raw.get(name, {}),
            })
    finally:
        if tmp is not None:
            tmp.cleanup()
    print(f"\n# Summary ({time.perf_counter() - t0:.0f} s; load average at end {os.getloadavg()[0]:.2f})\n")
    print(table(rows))
    args.doc.write_text(render(load_results(args.results)), encoding="utf-8")
    print(f"\nwrote {args.doc} from the results files in {args.results}")
    if args.json:
        Path(args.json).write_text(json.dumps({"command": cmd, "machine": info, "rows": [asdict(r) for r in rows]},
                                              indent=1))
    return 1 if failed or any(r.met is False for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
