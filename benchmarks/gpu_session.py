"""One GPU session: grepq's CUDA paths measured and checked in one run of a few minutes (benchmarks/gpu_session.sh).

Written for a one-GPU machine lent for a few minutes, without network: every step runs under its own time limit,
a failed step is recorded and the next one runs, and ``OUT/gpu.json`` is rewritten after every step, so whatever
ran comes back even if the session is cut short. Steps (the CPU cores are split when there are 16 or more: the
timed GPU steps on 0-11, data preparation on 8-11 while the benchmark runs, the tests on 12-15):

* ``env``: GPU, driver, torch / CUDA / cuDNN / NCCL versions, torch's TF32 defaults, the Python packages used.
* ``tests`` (in the background from the start, GPU hidden, 4 cores): pytest on ``tests/test_amp.py
  tests/test_models.py tests/test_zero_shot.py`` (junit in OUT/pytest_core.xml), then, with the time left,
  ``tests/test_losses.py tests/test_train_ll.py tests/test_train_hl.py tests/test_distributed.py``
  (OUT/pytest_more.xml): the test suite on this machine's torch.
* ``data`` (background): LL training data by ``grepq prepare`` (the authors' recipe) on crops of scikit-image
  photographs, HL folders (``<name>/<name>_REF.png``), a random full-size CLIP RN50 saved as a state dict.
* ``bench``: ``benchmarks/bench_gpu.py``: zero-shot scoring images/s at 1024x768, float32 / bf16 / float32 without
  TF32, and the same photographs scored on the CPU (max score differences).
* ``train``: ``grepq train`` on CUDA, LL (``ll_paper``: 8 images x 8 distorted versions, 7x7 fragments of 32 px)
  and HL (``hl_paper``: batch 128 of 224 px crops, random RN50), float32 and bf16 + channels_last: steps/s (time
  stamps of the steps' log lines as they appear, after ``WARM_STEPS`` steps) and finite losses.
* ``checks`` (concurrent processes; correctness only, not timed): the first ``COMPARE_STEPS`` losses of the same
  run (same seed, data and config; LL batch 8, HL batch 32) on the CPU, on CUDA with torch's TF32 defaults, on CUDA
  with ``NVIDIA_TF32_OVERRIDE=0`` (float32 arithmetic in cuDNN and cuBLAS), and on CUDA in two processes on the one
  GPU (torchrun, ``GREPQ_DIST_BACKEND=gloo``, ``bn: global`` = torch SyncBatchNorm over the two halves of the
  batch); also two processes with NCCL on the one GPU (expected to be refused: NCCL will not put two ranks on one
  device) and one torchrun process with ``ll.bn=sync`` (SyncBatchNorm layers; with one process torch falls back to
  plain batch norm).

``--quick`` (what ``GPU_SESSION_DEVICE=cpu`` runs): every step on the CPU with tiny sizes, to check the script.
Usage: ``python benchmarks/gpu_session.py --out DIR [--device cuda] [--quick] [--budget SECONDS]``.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Dict, List, Optional

REPO = Path(__file__).resolve().parent.parent
SCRIPT = Path(__file__).resolve()
PY = sys.executable
#: Steps of each timed training run left out of its rate (CUDA/cuDNN warm-up, first DataLoader batches).
WARM_STEPS = 5
COMPARE_STEPS = 3
#: ``gpu_session.py --grepq-no-tf32 ARGS``: run ``grepq ARGS`` with TF32 off in cuDNN and cuBLAS (torch's flags;
#: the runs also get NVIDIA_TF32_OVERRIDE=0), i.e. float32 arithmetic on Ampere and later GPUs.
NO_TF32_FLAG = "--grepq-no-tf32"
#: Seconds of the budget kept for the correctness checks: a timed training run starts only with more left.
RESERVE_FOR_CHECKS = 90
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field", "retina",
          "motorcycle_left")
RN50_ARGS = dict(embed_dim=1024, image_resolution=224, vision_layers=(3, 4, 6, 3), vision_width=64,
                 vision_patch_size=None, context_length=77, vocab_size=49408, transformer_width=512,
                 transformer_heads=8, transformer_layers=12)
SMALL_CLIP_ARGS = dict(embed_dim=64, image_resolution=224, vision_layers=(1, 1, 1, 1), vision_width=16,
                       vision_patch_size=None, context_length=77, vocab_size=49408, transformer_width=64,
                       transformer_heads=1, transformer_layers=1)
PYTEST_CORE = ["tests/test_amp.py", "tests/test_models.py", "tests/test_zero_shot.py"]
PYTEST_MORE = ["tests/test_losses.py", "tests/test_train_ll.py", "tests/test_train_hl.py", "tests/test_distributed.py"]


# ------------------------------------------------------------------------------------------------ sizes
def sizes(quick: bool) -> dict:
    if quick:  # a check of the script on a small CPU machine
        return dict(bench=["--images", "2", "--warmup", "1", "--pristine-patches", "100", "--cpu-check", "1"],
                    ll_photos=4, ll_side=128, hl_folders=16, hl_side=96, clip=SMALL_CLIP_ARGS,
                    ll=["ll.grid=4", "ll.patch=16", "ll.batch_size=2"], ll_steps=4,
                    hl=["hl.crop=64", "hl.batch_size=8", "hl.group_size=2"], hl_steps=4,
                    ll_cmp=["ll.grid=4", "ll.patch=16", "ll.batch_size=2"],
                    hl_cmp=["hl.crop=64", "hl.batch_size=8", "hl.group_size=2"],
                    workers=0, prep_workers=1, cpu_threads=1, warm=1,
                    pytest_core=["tests/test_distributed.py", "-k", "backend_override"],
                    pytest_more=["tests/test_config.py", "-k", "every_key_has_a_note"],
                    timeouts=dict(bench=400, data=120, prepare=200, train=200, checks=400, pytest=200))
    return dict(bench=["--images", "250", "--warmup", "5", "--pristine-patches", "1500", "--cpu-check", "4"],
                ll_photos=48, ll_side=384, hl_folders=512, hl_side=256, clip=RN50_ARGS,
                ll=["ll.batch_size=8"], ll_steps=30, hl=["hl.batch_size=128"], hl_steps=20,
                ll_cmp=["ll.batch_size=8"], hl_cmp=["hl.batch_size=32"],
                workers=6, prep_workers=4, cpu_threads=4, warm=WARM_STEPS,
                pytest_core=PYTEST_CORE, pytest_more=PYTEST_MORE,
                timeouts=dict(bench=150, data=90, prepare=120, train=60, checks=150, pytest=200))


# ------------------------------------------------------------------------------------------------ the session
class Session:
    """Runs subprocesses under time limits, keeps their logs, and rewrites OUT/gpu.json after every step."""

    def __init__(self, out: Path, work: Path, device: str, quick: bool, budget: float):
        self.out, self.work, self.device, self.quick = out, work, device, quick
        self.t0 = time.monotonic()
        self.deadline = self.t0 + budget
        self.lock = threading.Lock()
        self.logs = work / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        ncores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        self.split = ncores >= 16
        self.running: Dict[int, subprocess.Popen] = {}
        self.result: Dict[str, object] = {"device": device, "quick": quick, "budget_s": budget,
                                          "cpu_cores": ncores, "cores_split": self.split, "steps": {}}

    def kill_all(self, *_):
        """SIGTERM (the shell's overall time limit): end every running step's process group, keep gpu.json."""
        import signal
        for pid in list(self.running):
            try:
                os.killpg(pid, signal.SIGKILL)
            except Exception:
                pass
        self.result["killed_at_s"] = self.elapsed()
        try:
            self.save()
        finally:
            os._exit(143)

    def elapsed(self) -> float:
        return round(time.monotonic() - self.t0, 1)

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def cores(self, which: str) -> Optional[set]:
        if not self.split:
            return None
        return {"bench": set(range(0, 8)), "prep": set(range(8, 12)), "tests": set(range(12, 16)),
                "train": set(range(0, 12))}.get(which)

    def record(self, key: str, value) -> None:
        with self.lock:
            self.result["steps"][key] = value
            self.save()

    def save(self) -> None:
        self.result["elapsed_s"] = self.elapsed()
        tmp = self.out / ".gpu.json.tmp"
        tmp.write_text(json.dumps(self.result, indent=1, default=str))
        tmp.replace(self.out / "gpu.json")

    def say(self, msg: str) -> None:
        print(f"[{self.elapsed():6.1f}s] {msg}", flush=True)

    def start(self, name: str, cmd: List[str], env: Optional[dict] = None, cores: Optional[set] = None,
              threads: Optional[int] = None) -> "Proc":
        e = dict(os.environ)
        if threads:
            e["OMP_NUM_THREADS"] = e["MKL_NUM_THREADS"] = str(threads)
        e.update(env or {})
        log = self.logs / f"{name}.log"
        f = open(log, "w")
        f.write(f"$ {' '.join(cmd)}\n  env: {env or {}}\n")
        f.flush()
        pre = (lambda: os.sched_setaffinity(0, cores)) if cores else None
        p = subprocess.Popen(cmd, cwd=REPO, env=e, stdout=f, stderr=subprocess.STDOUT, preexec_fn=pre,
                             start_new_session=True)
        self.say(f"start {name}: {' '.join(cmd)[:300]}")
        with self.lock:
            self.running[p.pid] = p
        return Proc(self, name, p, f, log, time.monotonic())

    def run(self, name: str, cmd: List[str], timeout: float, **kw) -> dict:
        return self.start(name, cmd, **kw).wait(timeout)


class Proc:
    def __init__(self, session: Session, name: str, popen, f, log: Path, t: float):
        self.s, self.name, self.p, self.f, self.log, self.t = session, name, popen, f, log, t

    def wait(self, timeout: float) -> dict:
        limit = max(1.0, min(timeout, self.s.left()))
        timed_out = False
        try:
            rc = self.p.wait(timeout=max(0.0, limit - (time.monotonic() - self.t)))
        except subprocess.TimeoutExpired:
            timed_out = True
            import signal
            try:
                os.killpg(self.p.pid, signal.SIGTERM)  # its own session: torchrun's workers too
                self.p.wait(timeout=10)
            except Exception:
                try:
                    os.killpg(self.p.pid, signal.SIGKILL)
                except Exception:
                    pass
                self.p.wait()
            rc = self.p.returncode
        with self.s.lock:
            self.s.running.pop(self.p.pid, None)
        self.f.close()
        seconds = round(time.monotonic() - self.t, 2)
        text = self.log.read_text(errors="replace")
        lines = text.splitlines()
        shown = lines if len(lines) <= 160 else lines[:20] + [f"... ({len(lines) - 150} lines) ..."] + lines[-130:]
        with self.s.lock:
            print(f"===== {self.name}: rc={rc}{' TIMED OUT' if timed_out else ''} after {seconds} s "
                  f"(limit {limit:.0f} s) =====", flush=True)
            print("\n".join(shown), flush=True)
            print(f"===== end {self.name} =====", flush=True)
        res = {"rc": rc, "timed_out": timed_out, "seconds": seconds, "limit_s": round(limit, 1),
               "tail": "\n".join(lines[-12:])}
        if rc != 0:  # the first lines that say why (torchrun's own report hides the worker's message in its tail)
            keys = ("Error", "error:", "Duplicate GPU", "ncclInvalidUsage", "grepq train:", "FAILED")
            hits = []
            for ln in lines:
                if any(k in ln for k in keys) and ln.strip() not in hits:
                    hits.append(ln.strip()[:400])
            res["error_lines"] = hits[:6]
        return res


def guarded(session: Session, key: str, fn) -> None:
    """Run one step; an exception is recorded as the step's result, never raised."""
    session.say(f"--- step {key}")
    try:
        fn()
    except Exception as exc:
        session.say(f"step {key} failed: {type(exc).__name__}: {exc}")
        traceback.print_exc()
        with session.lock:
            cur = session.result["steps"].get(key) or {}
            if not isinstance(cur, dict):
                cur = {"value": cur}
            cur["error"] = f"{type(exc).__name__}: {exc}"
            session.result["steps"][key] = cur
            session.save()


# ------------------------------------------------------------------------------------------------ env
def env_info(device: str) -> dict:
    import importlib.metadata as md
    import platform

    import torch

    info = {"python": sys.version.split()[0], "platform": platform.platform(), "torch": torch.__version__,
            "torch_cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
            "torch_threads": torch.get_num_threads(),
            "tf32_defaults": {"cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
                              "cuda_matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
                              "float32_matmul_precision": torch.get_float32_matmul_precision()}}
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info.update(gpu=torch.cuda.get_device_name(0), gpu_count=torch.cuda.device_count(),
                    capability=".".join(map(str, torch.cuda.get_device_capability(0))),
                    gpu_memory_gib=round(p.total_memory / 2 ** 30, 1), cudnn=torch.backends.cudnn.version(),
                    bf16_supported=torch.cuda.is_bf16_supported())
        try:
            info["nccl"] = ".".join(map(str, torch.cuda.nccl.version()))
        except Exception as exc:
            info["nccl"] = f"unknown ({exc})"
    pk = {}
    for name in ("torch", "torchvision", "numpy", "scipy", "scikit-learn", "scikit-image", "h5py", "pillow",
                 "matplotlib", "tqdm", "pyyaml", "pytest", "threadpoolctl", "openai-clip", "ftfy", "regex", "wcwidth",
                 "piq", "openpyxl", "et-xmlfile", "setuptools"):
        try:
            pk[name] = md.version(name)
        except Exception:
            pk[name] = None
    info["packages"] = pk
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import clip
        import pkg_resources  # noqa: F401  (what clip/clip.py imports)
    info["clip_from"], info["pkg_resources_from"] = clip.__file__, pkg_resources.__file__
    import grepq
    info["grepq"], info["grepq_from"] = getattr(grepq, "__version__", None), grepq.__file__
    try:
        info["git_revision"] = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                                              text=True).stdout.strip() or None
    except Exception:
        info["git_revision"] = None
    return info


# ------------------------------------------------------------------------------------------------ data
def _base_photos() -> List:
    import numpy as np
    import skimage.data

    out = []
    for name in PHOTOS:
        img = skimage.data.stereo_motorcycle()[0] if name == "motorcycle_left" else getattr(skimage.data, name)()
        if img.ndim == 2:
            img = np.repeat(img[:, :, None], 3, axis=2)
        out.append(np.ascontiguousarray(img[:, :, :3]))
    return out


def _crops(n: int, side: int, seed: int):
    """n distinct side x side crops of the scikit-image photographs: resized so the short side is 1.25 side, then
    random crops, flips and quarter turns."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    bases = []
    for arr in _base_photos():
        h, w = arr.shape[:2]
        s = 1.25 * side / min(h, w)
        bases.append(np.asarray(Image.fromarray(arr).resize((max(side, round(w * s)), max(side, round(h * s))),
                                                            Image.BICUBIC)))
    for i in range(n):
        a = bases[i % len(bases)]
        y, x = rng.integers(0, a.shape[0] - side + 1), rng.integers(0, a.shape[1] - side + 1)
        c = a[y:y + side, x:x + side]
        c = np.rot90(c, (i // len(bases)) % 4)
        if (i // (4 * len(bases))) % 2:
            c = c[:, ::-1]
        yield i, np.ascontiguousarray(c)


def make_data(work: Path, quick: bool) -> dict:
    """Photographs for grepq prepare, HL folders and a random CLIP state dict under ``work``."""
    import warnings

    import torch
    from PIL import Image

    z = sizes(quick)
    t = time.perf_counter()
    photos = work / "ll_photos"
    photos.mkdir(parents=True, exist_ok=True)
    for i, c in _crops(z["ll_photos"], z["ll_side"], seed=1):
        Image.fromarray(c).save(photos / f"p{i:03d}.png")
    hl = work / "hl_data"
    for i, c in _crops(z["hl_folders"], z["hl_side"], seed=2):
        d = hl / f"h{i:04d}"
        d.mkdir(parents=True, exist_ok=True)
        Image.fromarray(c).save(d / f"h{i:04d}_REF.png", compress_level=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import clip.model as clip_model_lib
    torch.manual_seed(0)
    model = clip_model_lib.CLIP(**z["clip"]).eval()
    with torch.no_grad():  # as tests/conftest.py make_clip: non-trivial BatchNorm parameters and statistics
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
    torch.save(model.state_dict(), work / "clip_random.pt")
    return {"ll_photos": z["ll_photos"], "ll_side": z["ll_side"], "hl_folders": z["hl_folders"],
            "hl_side": z["hl_side"], "clip": "RN50 (random)" if z["clip"] is RN50_ARGS else "small CLIP (random)",
            "clip_mib": round((work / "clip_random.pt").stat().st_size / 2 ** 20, 1),
            "seconds": round(time.perf_counter() - t, 2)}


# ------------------------------------------------------------------------------------------------ training runs
def read_log(run_dir: Path) -> List[dict]:
    f = run_dir / "log.jsonl"
    if not f.is_file():
        return []
    out = []
    for line in f.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            pass
    return out


class StepClock(threading.Thread):
    """Polls a run's log.jsonl and notes when each step's line appears (seconds since the process started)."""

    def __init__(self, run_dir: Path):
        super().__init__(daemon=True)
        self.path, self.times, self.stop_flag = run_dir / "log.jsonl", {}, threading.Event()
        self.t0 = time.monotonic()

    def run(self) -> None:
        pos = 0
        buf = ""
        while not self.stop_flag.is_set():
            try:
                with open(self.path) as f:
                    f.seek(pos)
                    chunk = f.read()
                    pos = f.tell()
            except OSError:
                chunk = ""
            now = time.monotonic() - self.t0
            if chunk:
                buf += chunk
                *lines, buf = buf.split("\n")
                for line in lines:
                    try:
                        r = json.loads(line)
                    except ValueError:
                        continue
                    if r.get("type") == "step":
                        self.times.setdefault(r["step"], now)
            time.sleep(0.01)


class GpuSampler(threading.Thread):
    """nvidia-smi's GPU utilisation and memory used, every ``every`` seconds while a timed run goes (whether the
    run keeps the GPU busy or waits for its data); nothing without nvidia-smi."""

    def __init__(self, every: float = 0.5):
        super().__init__(daemon=True)
        self.every, self.samples, self.stop_flag = every, [], threading.Event()
        self.ok = shutil.which("nvidia-smi") is not None

    def run(self) -> None:
        while self.ok and not self.stop_flag.is_set():
            try:
                query = ["nvidia-smi", "--query-gpu=utilization.gpu,memory.used", "--format=csv,noheader,nounits",
                         "--id=0"]
                r = subprocess.run(query, capture_output=True, text=True, timeout=5)
                u, m = (float(x) for x in r.stdout.strip().split(",")[:2])
                self.samples.append((u, m))
            except Exception:
                pass
            self.stop_flag.wait(self.every)

    def summary(self) -> Optional[dict]:
        if not self.samples:
            return None
        util = [u for u, _ in self.samples]
        return {"samples": len(util), "util_mean_pct": round(sum(util) / len(util), 1),
                "util_max_pct": max(util), "memory_used_max_mib": max(m for _, m in self.samples)}


def train_cmd(task: str, run_dir: Path, data: Path, device: str, steps: int, extra: List[str], clip: Path,
              workers: int, nproc: int = 0, no_tf32: bool = False) -> List[str]:
    """``grepq train`` (under torchrun with ``nproc``); ``no_tf32``: through this script's ``--grepq-no-tf32``."""
    base = [PY, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc)] if nproc else [PY]
    cfg = "ll_paper" if task == "ll" else "hl_paper"
    entry = [str(SCRIPT), NO_TF32_FLAG] if no_tf32 else ["-m", "grepq"]
    args = base + entry + ["train", "--config", cfg, "--data", str(data), "--run-dir", str(run_dir),
                   "--device", device, f"run.max_steps={steps}", "run.checkpoint_every=100000", "run.log_every=1",
                   "run.progress=false", f"data.num_workers={workers}",
                   f"data.pin_memory={'true' if device.startswith('cuda') else 'false'}"]
    if task == "hl":
        args.append(f"hl.clip={clip}")
    return args + extra


def summarize_run(run_dir: Path, proc: dict, clock: Optional[StepClock] = None, warm: int = WARM_STEPS) -> dict:
    log = read_log(run_dir)
    steps = [r for r in log if r.get("type") == "step"]
    losses = [r.get("loss") for r in steps]
    out = dict(proc)
    if proc.get("rc") == 0:
        out.pop("tail", None)  # kept only when the run failed
    out.update(steps=len(steps), losses=losses,
               losses_finite=bool(losses) and all(isinstance(x, float) and math.isfinite(x) for x in losses))
    info = run_dir / "run_info.json"
    if info.is_file():
        ri = json.loads(info.read_text())
        out["run_info"] = {k: ri.get(k) for k in ("device", "backend", "world_size", "finished", "final_step",
                                                   "steps_per_epoch", "images", "torch")}
    out["weights_written"] = any(run_dir.glob("*_weights.pt"))
    if clock is not None and clock.times:
        ts = sorted(clock.times.items())
        out["step_times_s"] = [round(t, 3) for _, t in ts]
        first = [t for s, t in ts if s == warm]
        last_step, last_t = ts[-1]
        if first and last_step > warm:
            out["steps_per_s"] = round((last_step - warm) / (last_t - first[0]), 3)
            out["rate_over_steps"] = [warm, last_step]
        out["first_step_at_s"] = round(ts[0][1], 2)
    return out


def loss_diffs(a: List[float], b: List[float], n: int = COMPARE_STEPS) -> dict:
    """|a - b| and relative per step over the first n steps both have."""
    pairs = [(x, y) for x, y in zip(a[:n], b[:n]) if isinstance(x, float) and isinstance(y, float)]
    if not pairs:
        return {"compared_steps": 0}
    absd = [abs(x - y) for x, y in pairs]
    rel = [abs(x - y) / max(abs(x), 1e-12) for x, y in pairs]
    return {"compared_steps": len(pairs), "abs_diff_per_step": absd, "rel_diff_per_step": rel,
            "step1_rel_diff": rel[0], "max_rel_diff": max(rel)}


NOTES = {
    "bench": "bench_gpu.py: zero-shot Q_L+Q_H images/s at 1024x768 (random weights, scikit-image photos); "
             "cpu_check.vs = max |score difference| of each CUDA run against the same photos scored on the CPU",
    "train": "grepq train on CUDA; steps_per_s from the times the steps' log lines appeared, after the first "
             "`warm` steps, epoch boundaries (a new DataLoader iterator) included; images_per_s = steps_per_s x "
             "batch (LL: images of 8 distorted versions x 2 views each); gpu_while_running = nvidia-smi samples",
    "checks": "the same config, seed and data on CPU and CUDA: rel_diff_per_step = |loss - loss_ref| / |loss_ref| "
              "for the first steps; step 1 is the same weights on both sides (forward arithmetic only), later steps "
              "add Adam updates of rounding-level gradient differences. *_no_tf32 runs (also the 2proc ones) had "
              "torch.backends.cudnn/cuda.matmul.allow_tf32 = False and NVIDIA_TF32_OVERRIDE=0; "
              "*_2proc_gloo_syncbn: torchrun 2 processes on cuda:0, GREPQ_DIST_BACKEND=gloo, bn global = torch "
              "SyncBatchNorm; ll_cuda_2proc_nccl_same_gpu: the default backend on one GPU (expected refusal); "
              "ll_cuda_1proc_torchrun_bn_sync: SyncBatchNorm layers with world size 1 (torch falls back to batch_norm)",
    "tests": "pytest with CUDA hidden (CUDA_VISIBLE_DEVICES=''), 4 cores: the test suite on this machine's torch",
}


# ------------------------------------------------------------------------------------------------ main
def run_grepq_without_tf32(args: List[str]) -> None:
    """``grepq ARGS`` in this process with TF32 off (torch's legacy flags, which torch 2.x still honours)."""
    import runpy

    import torch

    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    sys.argv = ["grepq", *args]
    sys.path.insert(0, str(REPO))
    runpy.run_module("grepq", run_name="__main__", alter_sys=True)


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", help="where gpu.json, the junit files and bench_gpu.json go")
    ap.add_argument("--device", default="cuda", help="cuda (default) or cpu (a check of the script)")
    ap.add_argument("--quick", action="store_true", help="tiny sizes (with --device cpu: the dry run)")
    ap.add_argument("--budget", type=float, default=340.0, help="seconds for all steps together (default 340)")
    ap.add_argument("--work", default=None, help="scratch folder (default /tmp/grepq_gpu_session)")
    ap.add_argument("--make-data", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.make_data:
        print(json.dumps(make_data(Path(args.make_data), args.quick)))
        return 0

    if not args.out:
        ap.error("--out is required")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work or "/tmp/grepq_gpu_session")
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    s = Session(out, work, args.device, args.quick, args.budget)
    import signal
    signal.signal(signal.SIGTERM, s.kill_all)
    z = sizes(args.quick)
    T = z["timeouts"]
    # GPU_SESSION_FAKE_CUDA=1 (dry run only): the CUDA-only checks' code runs, on the CPU (sync BatchNorm then fails)
    cuda = args.device.startswith("cuda") or os.environ.get("GPU_SESSION_FAKE_CUDA") == "1"
    dev = "cuda:0" if args.device.startswith("cuda") else "cpu"
    s.result["notes"] = NOTES
    s.save()

    guarded(s, "env", lambda: s.record("env", env_info(args.device)))
    print(json.dumps(s.result["steps"].get("env"), indent=1, default=str), flush=True)
    quick_flag = ["--quick"] if args.quick else []

    # -- background: tests (GPU hidden, cores 12-15), then data (cores 8-11) -------------------------------------
    def tests():
        env = {"CUDA_VISIBLE_DEVICES": "", "PYTHONDONTWRITEBYTECODE": "1"}
        res = {}
        for key, files in (("core", z["pytest_core"]), ("more", z["pytest_more"])):
            if s.left() < 30:
                res[key] = {"skipped": "no time left"}
                continue
            junit = out / f"pytest_{key}.xml"
            r = s.run(f"pytest_{key}", [PY, "-m", "pytest", "-v", "-p", "no:cacheprovider", "--maxfail=10",
                                        "--durations=8", f"--junitxml={junit}", *files],
                      T["pytest"] if key == "core" else s.left() - 15, env=env, cores=s.cores("tests"),
                      threads=z["cpu_threads"])
            r["files"] = files
            r["summary"] = next((ln for ln in reversed(r["tail"].splitlines()) if " in " in ln and
                                 ("passed" in ln or "failed" in ln or "error" in ln)), None)
            r["junit"] = junit.name if junit.is_file() else None
            res[key] = r
            s.record("tests", res)

    def data():
        r = s.run("make_data", [PY, str(SCRIPT), "--make-data", str(work), *quick_flag], T["data"],
                  cores=s.cores("prep"), threads=z["cpu_threads"])
        try:
            r["made"] = json.loads(r["tail"].splitlines()[-1])
        except Exception:
            pass
        s.record("data", r)
        p = s.run("prepare", [PY, "-m", "grepq", "prepare", str(work / "ll_photos"), "--out", str(work / "ll_data"),
                              "--workers", str(z["prep_workers"]), "--no-progress"], T["prepare"],
                  cores=s.cores("prep"), threads=1)
        folders = sorted(d for d in (work / "ll_data").glob("*") if d.is_dir()) if (work / "ll_data").is_dir() else []
        p["ll_folders"] = len(folders)
        p["versions_per_folder"] = sorted({len(list(d.glob("*.png"))) for d in folders})
        with s.lock:
            s.result["steps"]["data"]["prepare"] = p
            s.save()

    t_tests = threading.Thread(target=lambda: guarded(s, "tests", tests), daemon=True)
    t_data = threading.Thread(target=lambda: guarded(s, "data", data), daemon=True)
    t_tests.start()
    t_data.start()

    # -- bench (cores 0-7) -------------------------------------------------------------------------------------------
    def bench():
        bj = out / "bench_gpu.json"
        r = s.run("bench_gpu", [PY, "benchmarks/bench_gpu.py", "--device", dev, "--workdir", str(work / "bench"),
                                "--json", str(bj), *z["bench"]], T["bench"], cores=s.cores("bench"),
                  threads=z["cpu_threads"] if args.quick else 8)
        if bj.is_file():
            r["result"] = json.loads(bj.read_text())
        s.record("bench", r)

    guarded(s, "bench", bench)
    t_data.join(timeout=max(1.0, s.left()))
    data_ok = (work / "clip_random.pt").is_file() and (work / "ll_data").is_dir()

    # -- timed training runs on the device, one at a time (cores 0-11) -------------------------------------------------
    runs: Dict[str, dict] = {}

    def one_train(name, task, extra, steps, env=None):
        rd = work / "runs" / name
        clock = StepClock(rd)
        data_root = work / ("ll_data" if task == "ll" else "hl_data")
        p = s.start(name, train_cmd(task, rd, data_root, dev, steps, z[task] + extra, work / "clip_random.pt",
                                    z["workers"]), env=env, cores=s.cores("train"), threads=8 if not args.quick else 1)
        clock.t0 = p.t
        clock.start()
        gpu = GpuSampler()
        gpu.start()
        r = p.wait(T["train"])
        time.sleep(0.05)
        clock.stop_flag.set()
        gpu.stop_flag.set()
        clock.join(timeout=2)
        gpu.join(timeout=6)
        runs[name] = summarize_run(rd, r, clock, z["warm"])
        if runs[name].get("steps_per_s"):
            b = int(next(a.split("=")[1] for a in z[task] if a.startswith(f"{task}.batch_size=")))
            runs[name]["images_per_s"] = round(runs[name]["steps_per_s"] * b, 1)
            runs[name]["batch_size"] = b
        runs[name]["gpu_while_running"] = gpu.summary()
        s.record("train", runs)

    def train():
        if not data_ok:
            raise RuntimeError("training data or CLIP weights missing (step data failed)")
        for task, steps in (("ll", z["ll_steps"]), ("hl", z["hl_steps"])):
            for variant, extra in (("fp32", []), ("bf16_channels_last", ["run.amp=bf16", "run.channels_last=true"])):
                if s.left() < RESERVE_FOR_CHECKS + 20:  # the checks matter more than the last timed run
                    runs[f"{task}_{variant}"] = {"skipped": "no time left"}
                    continue
                one_train(f"{task}_{variant}", task, extra, steps)
        for task in ("ll", "hl"):
            fp, bf = runs.get(f"{task}_fp32", {}), runs.get(f"{task}_bf16_channels_last", {})
            if fp.get("losses") and bf.get("losses"):
                bf["vs_fp32"] = loss_diffs(fp["losses"], bf["losses"])
                if fp.get("steps_per_s") and bf.get("steps_per_s"):
                    bf["speedup_vs_fp32"] = round(bf["steps_per_s"] / fp["steps_per_s"], 3)
        s.record("train", runs)

    guarded(s, "train", train)

    # -- correctness checks, concurrently (not timed) ----------------------------------------------------------------
    checks: Dict[str, dict] = {}

    def check_all():
        if not data_ok:
            raise RuntimeError("training data or CLIP weights missing (step data failed)")
        procs = {}
        notf32 = {"NVIDIA_TF32_OVERRIDE": "0"}
        gloo = {"GREPQ_DIST_BACKEND": "gloo"}
        for task in ("ll", "hl"):
            data_root = work / ("ll_data" if task == "ll" else "hl_data")
            cmp_args = z[f"{task}_cmp"]

            def go(name, device, env=None, extra=(), nproc=0, threads=1):
                rd = work / "runs" / name
                no_tf32 = "NVIDIA_TF32_OVERRIDE" in (env or {})
                procs[name] = (rd, s.start(name, train_cmd(task, rd, data_root, device, COMPARE_STEPS,
                                                           cmp_args + list(extra), work / "clip_random.pt", 0, nproc,
                                                           no_tf32=no_tf32),
                                           env=env, threads=threads))

            go(f"{task}_cpu", "cpu", threads=z["cpu_threads"])
            if cuda:
                go(f"{task}_cuda", dev)
                go(f"{task}_cuda_no_tf32", dev, env=notf32)
                go(f"{task}_cuda_2proc_gloo_syncbn", dev, env={**notf32, **gloo}, nproc=2)
            else:  # the same code paths on the CPU (2 processes: grepq's CrossProcessBatchNorm)
                go(f"{task}_cpu_2proc_gloo", "cpu", env=gloo, nproc=2)
        if cuda:
            def go_ll(name, env, extra, nproc):
                rd = work / "runs" / name
                procs[name] = (rd, s.start(name, train_cmd("ll", rd, work / "ll_data", dev, COMPARE_STEPS,
                                                           z["ll_cmp"] + extra, work / "clip_random.pt", 0, nproc),
                                           env=env, threads=1))

            go_ll("ll_cuda_2proc_nccl_same_gpu", {"NCCL_DEBUG": "WARN"}, [], 2)  # expected: NCCL refuses
            go_ll("ll_cuda_1proc_torchrun_bn_sync", {}, ["ll.bn=sync"], 1)     # SyncBatchNorm, world size 1
        for name, (rd, p) in procs.items():
            r = p.wait(T["checks"] if "nccl" not in name else 90)
            checks[name] = summarize_run(rd, r)
            if "nccl" in name:
                text = p.log.read_text(errors="replace")
                hits = [ln.strip() for ln in text.splitlines() if "Duplicate GPU" in ln or "ncclInvalidUsage" in ln]
                checks[name]["nccl_refusal"] = hits[:3]
            s.record("checks", checks)
        # comparisons: every run against the CPU; the 2-process and sync runs against their 1-process twins
        cmp = {}
        for task in ("ll", "hl"):
            ref = checks.get(f"{task}_cpu", {}).get("losses") or []
            for name, r in checks.items():
                if name.startswith(task + "_") and name != f"{task}_cpu" and r.get("losses"):
                    cmp[f"{name}_vs_cpu"] = loss_diffs(ref, r["losses"])
            two = checks.get(f"{task}_cuda_2proc_gloo_syncbn" if cuda else f"{task}_cpu_2proc_gloo", {})
            one = checks.get(f"{task}_cuda_no_tf32" if cuda else f"{task}_cpu", {})
            if two.get("losses") and one.get("losses"):
                cmp[f"{task}_2proc_vs_1proc"] = loss_diffs(one["losses"], two["losses"])
        sync, plain = checks.get("ll_cuda_1proc_torchrun_bn_sync", {}), checks.get("ll_cuda", {})
        if sync.get("losses") and plain.get("losses"):
            cmp["ll_1proc_bn_sync_vs_ll_cuda"] = loss_diffs(plain["losses"], sync["losses"])
        checks["comparisons"] = cmp
        s.record("checks", checks)

    guarded(s, "checks", check_all)

    t_tests.join(timeout=max(1.0, s.left()))
    if t_tests.is_alive():
        s.say("tests still running at the deadline (the thread's time limit stops them)")
        t_tests.join(timeout=30)
    s.result["finished"] = True
    s.save()
    print_summary(s.result)
    return 0


def print_summary(res: dict) -> None:
    """A short digest (the full numbers are in gpu.json)."""
    st = res["steps"]
    print("\n================ SUMMARY ================", flush=True)
    env = st.get("env") or {}
    print(f"machine: {env.get('gpu')} | torch {env.get('torch')} CUDA {env.get('torch_cuda')} cuDNN "
          f"{env.get('cudnn')} NCCL {env.get('nccl')} | TF32 defaults {env.get('tf32_defaults')} | "
          f"elapsed {res.get('elapsed_s')} s")
    b = (st.get("bench") or {})
    if b.get("result"):
        rr = b["result"]
        print(f"bench ({rr['images']} photos {rr['size']}, rc {b.get('rc')}, {b.get('seconds')} s): " + ", ".join(
            f"{k} {v['images_per_s']:.1f} img/s" for k, v in rr["runs"].items()))
        for k, v in (rr.get("cpu_check") or {}).get("vs", {}).items():
            print(f"  vs CPU {k}: |dQ_L| {v.get('max_abs_diff_q_low', float('nan')):.2e} "
                  f"|dQ_H| {v.get('max_abs_diff_q_high', float('nan')):.2e}")
    else:
        print(f"bench: {({k: b.get(k) for k in ('rc', 'timed_out', 'error', 'error_lines')})}")
    for name, r in (st.get("train") or {}).items():
        print(f"train {name}: rc {r.get('rc')} {r.get('seconds')} s steps {r.get('steps')} "
              f"steps/s {r.get('steps_per_s')} finite {r.get('losses_finite')} "
              f"losses[:3] {[round(x, 5) for x in (r.get('losses') or [])[:3]]}"
              + (f" vs fp32 max rel {r['vs_fp32'].get('max_rel_diff'):.2e} speedup {r.get('speedup_vs_fp32')}"
                 if r.get("vs_fp32", {}).get("compared_steps") else "")
              + (f" ERROR {r.get('error_lines') or r.get('tail', '')[-300:]}" if r.get("rc") not in (0, None) else ""))
    ch = st.get("checks") or {}
    for name, r in ch.items():
        if name == "comparisons":
            continue
        print(f"check {name}: rc {r.get('rc')} {r.get('seconds')} s steps {r.get('steps')} "
              f"backend {(r.get('run_info') or {}).get('backend')} world {(r.get('run_info') or {}).get('world_size')}"
              + (f" nccl: {r.get('nccl_refusal')}" if "nccl_refusal" in r else "")
              + (f" ERROR {r.get('error_lines')}" if r.get("rc") not in (0, None) else ""))
    for name, d in (ch.get("comparisons") or {}).items():
        if d.get("compared_steps"):
            print(f"  {name}: rel diff per step {[f'{x:.1e}' for x in d['rel_diff_per_step']]}")
    for key, r in (st.get("tests") or {}).items():
        print(f"pytest {key}: rc {r.get('rc')} {r.get('seconds')} s: {r.get('summary') or r.get('skipped')}")
    errs = {k: v.get("error") for k, v in st.items() if isinstance(v, dict) and v.get("error")}
    if errs:
        print(f"step errors: {errs}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == NO_TF32_FLAG:
        run_grepq_without_tf32(sys.argv[2:])
    else:
        sys.exit(main())
