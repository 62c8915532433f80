"""Benchmark: bfloat16 on the CPU. ``amp="bf16", channels_last=True`` against float32, for zero-shot scoring and for
the LL and HL training steps.

Each measurement runs in its own process (``--worker``), with the torch threads set (``--threads``, default: the
machine's cores), the models loaded and warmed up before the clock starts; float32 and bf16 runs are interleaved
(``--repeats``, the best of each kept), each started on an idle machine (``wait_for_idle``, as bench_zero_shot).

* **Scoring** (what ``grepq score`` runs): ``GRepQ.from_files(ll, hl, clip, pristine, amp=..., channels_last=...)``
  with random weights in the released formats as bench_zero_shot.py makes them (a full-size RN50 CLIP, its
  ``visual`` as HL weights, a LL model in the official ``.tar`` layout, official-format pristine HDF5), warmed up by
  scoring the first photograph (which also computes or reads the pristine statistics, cached per precision as
  grepq's cache keys them), then ``scorer.score(files)`` over ``--images`` 500x500 JPEG photographs is timed.
  Reported: seconds per image of each, the speed-up, and the max and median |bf16 - float32| over the images of
  Q_L, Q_H and GRepQ_Z (Eq. 7), beside the float32 scores' range and the rank correlation (SRCC) of the two.
* **Training**: ``grepq train``'s engine (``grepq.train.train``) on a small prepared set as bench_train_steps.py
  makes it (LL: scikit-image photographs through ``grepq prepare``; HL: 128 image folders), float32 against
  ``run.amp=bf16 run.channels_last=true``. The HL model is the full-size RN50 (random). In one process: one warm-up
  run of 1 step, then runs of 1 and of N + 1 steps; seconds per step = (T(N + 1) - T(1)) / N, so the model build
  and the run folder are excluded. Reported: seconds per step of each, the speed-up, and the loss of every step of
  both (``run.log_every=1``, same seed and data) and their largest difference; for HL also the steps whose
  pseudo-label groups (the lowest and highest M of Eq. 2, a sort) differ between the two.

The photographs: ``--photos DIR`` / ``$GREPQ_BENCH_PHOTOS`` or scikit-image's (bench_inputs.py), recorded in the
result (``inputs``). Also recorded: the CPU model, its bf16 flags (``avx512_bf16``, ``amx_bf16``), torch's CPU
capability and the torch threads each worker ran with. No target: measured only.

Usage: ``python benchmarks/bench_cpu_bf16.py [--images 16] [--steps 6] [--repeats 2] [--threads N] [--quick]
[--workdir DIR] [--photos DIR] [--no-wait]``. Prints a Markdown table and one ``RESULT {json}`` line.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Dict, List, Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench_inputs  # noqa: E402  (the photographs: --photos DIR, $GREPQ_BENCH_PHOTOS or scikit-image's)
import bench_zero_shot as bz  # noqa: E402  (weights in the released formats, pristine HDF5, test photographs)

SCRIPT = Path(__file__).resolve()
MODES = {"fp32": {"amp": "off", "channels_last": False}, "bf16": {"amp": "bf16", "channels_last": True}}
COMPONENTS = (("q_low", "Q_L"), ("q_high", "Q_H"), ("q_total", "GRepQ_Z"))
#: Training settings: LL as bench_train_steps.py but the paper's 224-px fragments (7 x 32); HL at the paper's crop.
LL_SETTINGS = ["ll.batch_size=2", "ll.grid=7", "ll.patch=32"]
HL_SETTINGS = ["hl.batch_size=8", "hl.group_size=2"]


# ------------------------------------------------------------------------------------------------ machine
def cpu_info() -> Dict[str, object]:
    """The CPU model, its bf16 flags, torch's CPU capability and whether oneDNN takes bf16 here."""
    import torch

    model, flags = "unknown", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and model == "unknown":
                    model = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    out: Dict[str, object] = {"cpu": model, "cores": os.cpu_count(),
                              "bf16_flags": sorted(f for f in flags if "bf16" in f or f.startswith("amx")),
                              "torch": torch.__version__}
    try:
        out["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    except AttributeError:
        pass
    try:
        out["mkldnn_bf16_supported"] = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        pass
    return out


# ------------------------------------------------------------------------------------------------ workers
def score_worker(work: Path, mode: str, threads: int, out: Path) -> None:
    """One process: load the scorer in ``mode``, warm it up on the first photograph, time ``score`` on all."""
    import torch

    torch.set_num_threads(threads)
    from grepq import GRepQ

    paths = json.loads((work / "paths.json").read_text())
    files = sorted(Path(paths["images"]).glob("*.jpg"))
    t = time.perf_counter()
    scorer = GRepQ.from_files(paths["ll"], paths["hl"], paths["clip"], paths["pristine"],
                              cache=work / "constants_cache", device="cpu", progress=False, **MODES[mode])
    load_s = time.perf_counter() - t
    t = time.perf_counter()
    scorer.score([files[0]])  # warm-up: oneDNN primitives, allocator, pristine statistics (cached per precision)
    warm_s = time.perf_counter() - t
    t = time.perf_counter()
    rows = scorer.score(files)
    seconds = time.perf_counter() - t
    out.write_text(json.dumps({
        "mode": mode, "seconds": seconds, "images": len(files), "load_s": load_s, "warmup_s": warm_s,
        "torch_threads": torch.get_num_threads(),
        "scores": {Path(r.image).name: {k: getattr(r, k) for k, _ in COMPONENTS} for r in rows}}))


def train_worker(work: Path, mode: str, threads: int, out: Path, task: str, steps: int) -> None:
    """One process: a warm-up run of 1 step, then runs of 1 and ``steps + 1`` steps of the engine in ``mode``."""
    import torch

    torch.set_num_threads(threads)
    from grepq.train import train
    from grepq.train.logging import read_log
    from grepq.train.schema import load_train_config

    info = json.loads((work / "train_data.json").read_text())
    extra = LL_SETTINGS if task == "ll" else HL_SETTINGS + [f"hl.clip={info['clip']}"]
    # float32 is the default (run.amp=off); bf16 is what the README names
    overrides = ["run.amp=bf16", "run.channels_last=true"] if MODES[mode]["amp"] == "bf16" else []
    runs = work / f"runs_{task}_{mode}_{os.getpid()}"

    def run(n: int, tag: str) -> float:
        d = runs / tag
        shutil.rmtree(d, ignore_errors=True)
        cfg = load_train_config(None, [f"task={task}", f"run.dir={d}", "run.device=cpu", f"data.root={info[task]}",
                                       "data.num_workers=0", "data.pin_memory=false", "run.progress=false",
                                       "run.log_every=1", "run.checkpoint_every=100000", f"run.max_steps={n}",
                                       f"{task}.epochs=1000", *overrides, *extra])
        t = time.perf_counter()
        train(cfg)
        return time.perf_counter() - t

    groups: List[List[List[int]]] = []
    if task == "hl":  # record each step's pseudo-label groups (S_b, S_g as batch positions): bf16 may swap members
        import grepq.train.tasks as tasks

        plain = tasks.pseudo_label_groups

        def recorded(q, m):
            bad, good = plain(q, m)
            groups.append([sorted(bad.tolist()), sorted(good.tolist())])
            return bad, good

        tasks.pseudo_label_groups = recorded
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warm = run(1, "warmup")
        one = run(1, "one")
        del groups[:]
        many = run(steps + 1, "many")
    losses = [r["loss"] for r in read_log(runs / "many" / "log.jsonl") if r.get("type") == "step"]
    shutil.rmtree(runs, ignore_errors=True)
    out.write_text(json.dumps({"mode": mode, "task": task, "steps": steps, "step_s": (many - one) / steps,
                               "warmup_run_s": warm, "one_step_run_s": one, "losses": losses, "groups": groups,
                               "torch_threads": torch.get_num_threads()}))


def _spawn(work: Path, args: List[str], max_wait: float) -> dict:
    """Run a worker (after waiting for an idle machine); returns its JSON and the busy cores seen before it."""
    busy = bz.wait_for_idle(max_wait)
    out = work / f"worker_{time.monotonic_ns()}.json"
    cmd = [sys.executable, str(SCRIPT), "--workdir", str(work), "--worker-out", str(out), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    res = json.loads(out.read_text())
    out.unlink()
    res["busy_cores_before"] = round(busy, 2)
    return res


# ------------------------------------------------------------------------------------------------ the comparisons
def _abs_diffs(a: Dict[str, dict], b: Dict[str, dict], key: str) -> List[float]:
    if set(a) != set(b):
        raise RuntimeError("the float32 and bf16 runs scored other images")
    return [abs(a[n][key] - b[n][key]) for n in sorted(a)]


def _srcc(a: List[float], b: List[float]) -> float:
    """Spearman's rank correlation (average ranks for ties)."""
    import numpy as np
    from scipy.stats import rankdata

    return float(np.corrcoef(rankdata(a), rankdata(b))[0, 1])


def scoring(work: Path, threads: int, repeats: int, max_wait: float) -> Dict[str, object]:
    runs: Dict[str, List[dict]] = {m: [] for m in MODES}
    for _ in range(repeats):
        for mode in MODES:
            runs[mode].append(_spawn(work, ["--worker", "score", "--mode", mode, "--threads", str(threads)], max_wait))
    best = {m: min(r, key=lambda x: x["seconds"]) for m, r in runs.items()}
    n = best["fp32"]["images"]
    per = {m: best[m]["seconds"] / n for m in MODES}
    for m in MODES:  # every run of a mode must give the same scores (deterministic on one machine)
        if any(r["scores"] != runs[m][0]["scores"] for r in runs[m]):
            raise RuntimeError(f"the {m} runs gave different scores")
    diff = {}
    for key, label in COMPONENTS:
        a, b = (best[m]["scores"] for m in MODES)
        d = _abs_diffs(a, b, key)
        ref = [a[n][key] for n in sorted(a)]
        diff[label] = {"max": max(d), "median": statistics.median(d), "fp32_min": min(ref), "fp32_max": max(ref),
                       "srcc": _srcc(ref, [b[n][key] for n in sorted(a)])}
    return {"images": n, "fp32_s_per_image": per["fp32"], "bf16_s_per_image": per["bf16"],
            "speedup": per["fp32"] / per["bf16"], "abs_score_diff": diff,
            "all_s_per_image": {m: [round(r["seconds"] / n, 4) for r in runs[m]] for m in MODES},
            "torch_threads": sorted({r["torch_threads"] for rs in runs.values() for r in rs}),
            "busy_cores_before": [r["busy_cores_before"] for rs in runs.values() for r in rs]}


def training(work: Path, threads: int, repeats: int, steps: int, max_wait: float) -> Dict[str, object]:
    out = {}
    for task in ("ll", "hl"):
        runs: Dict[str, List[dict]] = {m: [] for m in MODES}
        for _ in range(repeats):
            for mode in MODES:
                runs[mode].append(_spawn(work, ["--worker", "train", "--task", task, "--mode", mode, "--steps",
                                                str(steps), "--threads", str(threads)], max_wait))
        best = {m: min(r, key=lambda x: x["step_s"]) for m, r in runs.items()}
        lf, lb = best["fp32"]["losses"], best["bf16"]["losses"]
        if len(lf) != steps + 1 or len(lb) != steps + 1:
            raise RuntimeError(f"{task}: expected {steps + 1} logged losses, got {len(lf)} and {len(lb)}")
        d = [abs(a - b) for a, b in zip(lf, lb)]
        extra = {}
        if task == "hl":  # steps whose pseudo-label groups differ between float32 and bf16
            pairs = zip(best["fp32"]["groups"], best["bf16"]["groups"])
            extra["steps_with_other_groups"] = [i + 1 for i, (a, b) in enumerate(pairs) if a != b]
        out[task] = {"fp32_s_per_step": best["fp32"]["step_s"], "bf16_s_per_step": best["bf16"]["step_s"],
                     "speedup": best["fp32"]["step_s"] / best["bf16"]["step_s"],
                     "losses_fp32": lf, "losses_bf16": lb, "max_abs_loss_diff": max(d),
                     "max_rel_loss_diff": max(x / abs(a) for x, a in zip(d, lf)),
                     "all_s_per_step": {m: [round(r["step_s"], 4) for r in runs[m]] for m in MODES},
                     "torch_threads": sorted({r["torch_threads"] for rs in runs.values() for r in rs}),
                     "settings": LL_SETTINGS if task == "ll" else HL_SETTINGS + ["hl.clip=full-size RN50 (random)"],
                     "busy_cores_before": [r["busy_cores_before"] for rs in runs.values() for r in rs], **extra}
    return out


def prepare_training_data(work: Path, clip: str) -> None:
    """The LL set (``grepq prepare`` of scikit-image photographs) and the HL folders of bench_train_steps.py."""
    import bench_train_steps as bts

    root = work / "train_data"
    if not (root / "done").is_file():
        shutil.rmtree(root, ignore_errors=True)
        root.mkdir(parents=True)
        bts.make_data(root)
        bts.make_hl_data(root)
        (root / "done").write_text("")
    (work / "train_data.json").write_text(json.dumps({"ll": str(root / "train"), "hl": str(root / "hl_train"),
                                                      "clip": clip}))


def run(images: int, steps: int, repeats: int, threads: int, workdir: Optional[str], n_pristine: int,
        max_wait: float, parts=("scoring", "training")) -> Dict[str, object]:
    tmp = None
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="grepq-bench-bf16-")
        workdir = tmp.name
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    try:
        paths = bz.prepare_workdir(work, images, n_pristine)
        (work / "paths.json").write_text(json.dumps({k: str(v) for k, v in paths.items()}))
        res: Dict[str, object] = {"threads": threads, **cpu_info(), "modes": MODES, "repeats": repeats}
        if "scoring" in parts:
            res["scoring"] = {"size": f"{bz.TEST_SIDE}x{bz.TEST_SIDE}", "pristine_patches": n_pristine,
                              **scoring(work, threads, repeats, max_wait)}
        if "training" in parts:
            prepare_training_data(work, str(paths["clip"]))
            res["training"] = {"steps": steps, **training(work, threads, repeats, steps, max_wait)}
        res.update(bench_inputs.describe())
        return res
    finally:
        if tmp is not None:
            tmp.cleanup()


def table(res: Dict[str, object]) -> str:
    lines = [f"# bf16 on the CPU: {res['cpu']}, {res['cores']} cores, bf16 flags {res['bf16_flags'] or 'none'}, "
             f"torch {res['torch']} ({res.get('torch_cpu_capability', '?')}), {res['threads']} threads; "
             f"float32 vs amp=bf16 + channels_last, best of {res['repeats']}",
             "| what | float32 | bf16 + channels_last | speed-up | difference |", "|---|---|---|---|---|"]
    s = res.get("scoring")
    if s:
        d = s["abs_score_diff"]
        diffs = "; ".join(f"{k} max {v['max']:.1e}, median {v['median']:.1e} (float32 range {v['fp32_min']:.4f}.."
                          f"{v['fp32_max']:.4f}, SRCC {v['srcc']:.3f})" for k, v in d.items())
        lines.append(f"| zero-shot score, {s['images']} photos {s['size']} (s/image) | {s['fp32_s_per_image']:.3f} "
                     f"| {s['bf16_s_per_image']:.3f} | {s['speedup']:.2f}x | |score| {diffs} |")
    t = res.get("training")
    if t:
        for task in ("ll", "hl"):
            r = t[task]
            lines.append(f"| {task.upper()} training step ({', '.join(r['settings'])}) (s/step) | "
                         f"{r['fp32_s_per_step']:.3f} | {r['bf16_s_per_step']:.3f} | {r['speedup']:.2f}x | "
                         f"|loss| max {r['max_abs_loss_diff']:.1e} (relative {r['max_rel_loss_diff']:.1e}) "
                         f"over {t['steps'] + 1} steps"
                         + (f"; pseudo-label groups differ at steps {r['steps_with_other_groups'] or 'none'}"
                            if task == "hl" else "") + " |")
    lines.append(f"inputs: {res['inputs']} ({res['count']} files: {', '.join(res['files'][:6])}"
                 f"{', ...' if res['count'] > 6 else ''})")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=None, help="test photographs, 500x500 (default 16, --quick 6)")
    ap.add_argument("--steps", type=int, default=None, help="timed training steps (default 6, --quick 3)")
    ap.add_argument("--repeats", type=int, default=None, help="interleaved runs of each, best kept (default 2, "
                                                                "--quick 1)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                    help="torch threads of every worker (default: the machine's cores, %(default)s)")
    ap.add_argument("--pristine-patches", type=int, default=500, help="pristine patches of Q_L (default 500)")
    ap.add_argument("--only", choices=("scoring", "training"), help="run one of the two comparisons")
    ap.add_argument("--quick", action="store_true", help="fewer images and steps, one repeat")
    ap.add_argument("--workdir", default=None, help="keep weights, images and data here (default: temporary)")
    ap.add_argument("--no-wait", action="store_true", help="time at once, without waiting for an idle machine")
    bench_inputs.add_argument(ap)
    ap.add_argument("--worker", choices=("score", "train"), help=argparse.SUPPRESS)
    ap.add_argument("--mode", choices=tuple(MODES), help=argparse.SUPPRESS)
    ap.add_argument("--task", choices=("ll", "hl"), help=argparse.SUPPRESS)
    ap.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker == "score":
        score_worker(Path(args.workdir), args.mode, args.threads, Path(args.worker_out))
        return 0
    if args.worker == "train":
        train_worker(Path(args.workdir), args.mode, args.threads, Path(args.worker_out), args.task,
                     args.steps)
        return 0
    bench_inputs.select(args.photos)
    max_wait = 600.0
    if args.no_wait:
        bz.IDLE_CORES = float("inf")
    res = run(args.images or (6 if args.quick else 16), args.steps or (3 if args.quick else 6),
              args.repeats or (1 if args.quick else 2), args.threads, args.workdir, args.pristine_patches, max_wait,
              (args.only,) if args.only else ("scoring", "training"))
    print(table(res))
    print("RESULT " + json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
