"""Benchmark: images per second of zero-shot scoring (Q_L + Q_H) on a CUDA GPU, KonIQ-size photographs (1024x768).

Runs, each in its own process on the same images, weights and pristine patches, models loaded and warmed up first
(on ``--warmup`` images not counted), timed over ``--images`` photographs with ``torch.cuda.synchronize``:

* **grepq, float32**: ``GRepQ.from_files(..., device="cuda").score(files)``: consecutive images of one size through
  each model together (``batch_size`` 8 within 4 megapixels: 5 photographs of 1024x768 per batch),
  ``--decode-workers`` threads decoding ahead;
* **grepq, bf16**: the same with ``amp="bf16"`` (``torch.autocast``; the NIQE statistics stay float32);
* **grepq, float32 without TF32**: the float32 run with ``torch.backends.cudnn.allow_tf32`` and
  ``torch.backends.cuda.matmul.allow_tf32`` set to False. torch's defaults (recorded in the result) let cuDNN run
  float32 convolutions in TF32 on Ampere and later GPUs (10-bit mantissa inputs), so the plain float32 run is not
  float32 arithmetic there; this run is, and is the one to compare with the CPU;
* **CPU check** (``--cpu-check K``, default 4; 0 skips it): the first K timed photographs scored on the CPU (float32,
  same weights and pristine patches); the result gives max |Q_L| and |Q_H| differences of every CUDA run against
  it: what "the same code gives the same numbers on CPU and GPU" means for scoring;
* **official per-image fp16 loop** (with ``--official DIR``): the official GRepQ functions
  ``compute_niqe_distance_single_image`` and ``compute_hlm_score_single_image`` in a loop, as its
  ``test_zeroshot.py`` single-image mode. ``DIR`` is the official repository as fetched (its code says ``"cuda"``);
  ``--official-clip DIR`` the copy of OpenAI's CLIP package with the attention-pool positional-embedding line
  commented out, as the official README asks. CLIP is built the way ``clip.load("RN50", device="cuda")`` builds it:
  float16 weights (the "fp16" of this row); the LL model is float32, as in the official code. The official LL call
  re-reads the pristine HDF5 and re-embeds every pristine patch for every image; the HL call re-encodes the prompts.

Also measured: decoding alone (the images/s the CPU can feed, whatever the GPU). The scores of the runs are
compared (max |difference| against grepq float32). Records the GPU model (``torch.cuda.get_device_name``), torch
and CUDA versions. Weights are random (no downloads), made by ``bench_zero_shot.make_weights``; photographs from
``bench_zero_shot.photos``, resized to cover 1024x768 and centre-cropped, JPEG q95. Which photographs: ``--photos
DIR`` (or the environment variable ``GREPQ_BENCH_PHOTOS``), a folder in BSDS500's layout (``DIR/train``,
``DIR/val``, ``DIR/test`` of .jpg: test for the scored images, train and val for the pristine patches and the
weights' BatchNorm calibration); without either, scikit-image's sample photographs (8 of them, then flipped and
rotated copies), so nothing outside the Python packages is read. The result's ``photos`` says which.

Without CUDA it says so, prints ``RESULT {"skipped": ...}`` and exits 0: nothing is measured.
``--device cpu`` runs the same code on the CPU, as a check of the script only (not a GPU figure).

Usage: ``python benchmarks/bench_gpu.py [--images 100] [--photos DIR] [--cpu-check 4]
[--official DIR --official-clip DIR] [--json FILE]``.
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
from typing import Dict, List, Optional

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench_zero_shot as bzs  # noqa: E402  (weights, photographs, the official models and score files)

SCRIPT = Path(__file__).resolve()
KONIQ_SIZE = (1024, 768)  # width, height of KonIQ-10k's photographs
#: The grepq runs: name -> (amp, TF32 allowed). "grepq_off" keeps torch's TF32 defaults (what a user gets).
GREPQ_RUNS = {"grepq_off": ("off", True), "grepq_bf16": ("bf16", True), "grepq_off_no_tf32": ("off", False)}
PHOTOS_ENV = "GREPQ_BENCH_PHOTOS"


def use_photos(folder: Optional[str]) -> dict:
    """Point bench_zero_shot.photos at ``folder`` (BSDS500 layout) or, when None, at scikit-image's photographs
    (bench_zero_shot falls back to them when its folder does not exist); returns what the result records."""
    if folder:
        path = Path(folder).expanduser().resolve()
        if not (path / "test").is_dir() or not any((path / "test").glob("*.jpg")):
            raise SystemExit(f"--photos {folder}: expected a BSDS500-layout folder with test/*.jpg (and train/, val/)")
        bzs.BSDS = path
        return {"source": "folder", "folder": str(path)}
    bzs.BSDS = Path(tempfile.gettempdir()) / "grepq-bench-gpu-no-photo-folder"  # never created: scikit-image photos
    return {"source": "scikit-image sample photographs (bench_zero_shot.photos: 8 photos, then flipped and rotated "
                      "copies)"}


# ------------------------------------------------------------------------------------------------ inputs
def cover_crop(arr: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize (bicubic) so the image covers width x height, then centre-crop to it."""
    from PIL import Image

    h, w = arr.shape[:2]
    s = max(width / w, height / h)
    im = Image.fromarray(arr).resize((max(width, round(w * s)), max(height, round(h * s))), Image.BICUBIC)
    left, top = (im.size[0] - width) // 2, (im.size[1] - height) // 2
    return np.asarray(im.crop((left, top, left + width, top + height)))


def make_photos(folder: Path, n: int) -> List[Path]:
    """``n`` JPEGs of KONIQ_SIZE in ``folder`` (reused when already there)."""
    return bzs.make_test_folder(folder, n, crop=lambda arr: cover_crop(arr, *KONIQ_SIZE))


def prepare(work: Path, n_images: int, warmup: int, n_pristine: int, cpu_check: int = 0) -> Dict[str, Path]:
    """Weights, the pristine HDF5 (official file name) and the warm-up and timed photo folders under ``work``."""
    paths = bzs.make_weights(work / "weights")
    paths["pristine"] = work / bzs.OFFICIAL_HDF5
    marker = work / f".pristine-{n_pristine}"
    if not (paths["pristine"].is_file() and marker.exists()):
        bzs.make_pristine(paths["pristine"], n_pristine)
        for m in work.glob(".pristine-*"):
            m.unlink()
        marker.touch()
    files = make_photos(work / f"koniq_size_{n_images + warmup}", n_images + warmup)
    paths["warmup"], paths["timed"] = work / "warmup.txt", work / "timed.txt"
    paths["warmup"].write_text("\n".join(map(str, files[:warmup])))
    paths["timed"].write_text("\n".join(map(str, files[warmup:])))
    paths["cpu_check"] = work / "cpu_check.txt"
    paths["cpu_check"].write_text("\n".join(map(str, files[warmup:warmup + cpu_check])))
    return paths


def score_diffs(ref: Dict[str, Dict[str, float]], other: Dict[str, Dict[str, float]]) -> dict:
    """Max |difference| per component (q_low, q_high) over the images of ``ref``, which ``other`` must all have,
    and the largest |score| of ``ref`` for scale."""
    missing = sorted(set(ref) - set(other))
    if missing:
        raise RuntimeError(f"{len(missing)} images missing from the compared scores, e.g. {missing[0]}")
    out = {}
    for c in ("q_low", "q_high"):
        pairs = [(ref[k][c], other[k][c]) for k in ref if c in ref[k] and c in other[k]]
        if pairs:
            out[f"max_abs_diff_{c}"] = max(abs(a - b) for a, b in pairs)
            out[f"max_abs_{c}"] = max(abs(a) for a, _ in pairs)
    return out


def _listed(path: Path) -> List[str]:
    return [line for line in path.read_text().splitlines() if line]


def _sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


# ------------------------------------------------------------------------------------------------ workers
def grepq_worker(work: Path, device: str, amp: str, decode_workers: int, out: Path, tf32: bool = True,
                 listing: str = "timed.txt", warm: bool = True) -> dict:
    """grepq's batched scorer: warm up, then time ``score`` over the photographs of ``listing``. ``tf32`` False turns
    TF32 off for cuDNN convolutions and CUDA matrix products (torch's defaults are recorded either way)."""
    from grepq import GRepQ

    defaults = {"cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
                "cuda_matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32}
    if not tf32:
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False

    w = work / "weights"
    scorer = GRepQ.from_files(ll_weights=w / "low_level_model_weights.tar",
                              hl_weights=w / "high_level_model_weights.pth",
                              clip_weights=w / "RN50_random.pt", pristine=work / bzs.OFFICIAL_HDF5, device=device,
                              amp=amp, decode_workers=decode_workers, progress=False)
    if warm:
        scorer.score(_listed(work / "warmup.txt"))
    files = _listed(work / listing)
    _sync(device)
    t = time.perf_counter()
    rows = scorer.score(files)
    _sync(device)
    seconds = time.perf_counter() - t
    bzs._write_worker_csv(out, [{"image": Path(r.image).name, "q_low": r.q_low, "q_high": r.q_high} for r in rows])
    return {"seconds": seconds, "images": len(files), "batch_size": scorer.batch_size,
            "max_batch_pixels": scorer.settings.max_batch_pixels, "decode_workers": decode_workers,
            "tf32_defaults": defaults, "tf32": {"cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
                     "cuda_matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32}}


def official_worker(work: Path, device: str, out: Path) -> dict:
    """The official single-image functions in a loop; CLIP in float16 on CUDA as ``clip.load`` makes it."""
    off_ll, off_hl, ll, hl = bzs._official_models(work, "ll,hl")
    import clip.model

    if torch.device(device).type == "cuda":
        clip.model.convert_weights(hl.clip_model)  # what clip.load(..., device="cuda") does: float16 weights
    ll, hl = ll.to(device), hl.to(device)
    cfg = bzs._official_config(work)
    cfg.device = device
    os.chdir(work)  # the official pristine() reads its HDF5 from the working directory

    def one(p: str) -> dict:
        return {"image": Path(p).name, "q_low": off_ll.compute_niqe_distance_single_image(ll, p, cfg)[0],
                "q_high": off_hl.compute_hlm_score_single_image(hl, p)[0]}

    for p in _listed(work / "warmup.txt"):
        one(p)
    files = _listed(work / "timed.txt")
    _sync(device)
    t = time.perf_counter()
    rows = [one(p) for p in files]
    _sync(device)
    seconds = time.perf_counter() - t
    bzs._write_worker_csv(out, rows)
    return {"seconds": seconds, "images": len(files), "hl_dtype": str(next(hl.clip_model.parameters()).dtype)}


def decode_rate(work: Path) -> dict:
    """Seconds to decode the timed photographs in this process (one thread): what the CPU can feed."""
    from grepq.data.io import read_image

    files = _listed(work / "timed.txt")
    t = time.perf_counter()
    for p in files:
        read_image(p)
    return {"seconds": time.perf_counter() - t, "images": len(files)}


def run_worker(args: List[str], env: Optional[dict] = None) -> dict:
    """Run this script as a worker subprocess; returns the JSON it prints last."""
    proc = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {args[:2]} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------------ the benchmark
def official_ready(official: Optional[str], official_clip: Optional[str]) -> Optional[str]:
    """None if the official code can run, else why not."""
    if not official:
        return "not run: give --official DIR (the official GRepQ repository) and --official-clip DIR"
    if not (Path(official) / "Evaluation" / "zeroshot_ll_model.py").is_file():
        return f"not run: {official}/Evaluation/zeroshot_ll_model.py not found"
    if not official_clip or not (Path(official_clip) / "clip").is_dir():
        return "not run: --official-clip DIR must hold the patched copy of CLIP's package (DIR/clip)"
    return None


def run(args: argparse.Namespace) -> dict:
    """All runs; returns the measured numbers."""
    tmp = None
    if args.workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="grepq-bench-gpu-")
    work = Path(args.workdir or tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    try:
        photos = use_photos(args.photos)
        prepare(work, args.images, args.warmup, args.pristine_patches, args.cpu_check)
        res: Dict[str, object] = {"photos": photos,
            "device": args.device, "gpu": torch.cuda.get_device_name(torch.device(args.device))
            if args.device.startswith("cuda") else None, "torch": torch.__version__, "cuda": torch.version.cuda,
            "images": args.images, "size": "x".join(map(str, KONIQ_SIZE)), "warmup_images": args.warmup,
            "pristine_patches": args.pristine_patches, "runs": {}}
        common = ["--workdir", str(work), "--device", args.device]
        res["runs"]["decode"] = run_worker(["--worker", "decode", *common])
        for name, (amp, tf32) in GREPQ_RUNS.items():
            r = run_worker(["--worker", "grepq", "--amp", amp, "--decode-workers", str(args.decode_workers),
                            "--worker-out", str(work / f"{name}.csv"), *common, *([] if tf32 else ["--no-tf32"])])
            res["runs"][name] = r
        why = official_ready(args.official, args.official_clip)
        if why is None:
            r = run_worker(["--worker", "official", "--official", args.official, "--official-clip", args.official_clip,
                            "--worker-out", str(work / "official.csv"), *common])
            res["runs"]["official_fp16_loop"] = r
        else:
            res["official_skipped"] = why
        ref = bzs.read_scores(work / "grepq_off.csv")
        for name, f in (("grepq_bf16", "grepq_bf16.csv"), ("grepq_off_no_tf32", "grepq_off_no_tf32.csv"),
                        ("official_fp16_loop", "official.csv")):
            if name in res["runs"]:
                res["runs"][name]["max_abs_score_diff_vs_grepq_fp32"] = bzs.compare_scores(
                    ref, bzs.read_scores(work / f))
        if args.cpu_check > 0:
            cpu_args = ["--workdir", str(work), "--device", "cpu"]
            r = run_worker(["--worker", "grepq", "--amp", "off", "--decode-workers", str(args.decode_workers),
                            "--worker-out", str(work / "cpu_check.csv"), "--listing", "cpu_check.txt", "--no-warmup",
                            *cpu_args])
            cpu = bzs.read_scores(work / "cpu_check.csv")
            r["vs"] = {name: score_diffs(cpu, bzs.read_scores(work / f"{name}.csv")) for name in GREPQ_RUNS}
            res["cpu_check"] = r
        for r in res["runs"].values():
            r["images_per_s"] = r["images"] / r["seconds"]
        return res
    finally:
        if tmp is not None:
            tmp.cleanup()


def table(res: dict) -> str:
    base = res["runs"].get("official_fp16_loop")
    clip_dtype = base["hl_dtype"].replace("torch.", "") if base else ""
    names = {"grepq_off": "grepq, batched, float32 (torch's TF32 defaults)",
             "grepq_bf16": "grepq, batched, bf16 autocast",
             "grepq_off_no_tf32": "grepq, batched, float32, TF32 off",
             "official_fp16_loop": f"official per-image loop (CLIP {clip_dtype})",
             "decode": "decoding only (CPU, 1 thread)"}
    lines = [f"# zero-shot Q_L + Q_H, {res['images']} photos {res['size']}, {res['pristine_patches']} pristine "
             f"patches, "
             f"on {res['gpu'] or res['device']} (torch {res['torch']}, CUDA {res['cuda']})",
             "| run | images/s | vs official | max score diff vs grepq float32 |", "|---|---|---|---|"]
    for key, r in res["runs"].items():
        vs = f"{r['images_per_s'] / base['images_per_s']:.2f}x" if base and key != "decode" else "-"
        diff = r.get("max_abs_score_diff_vs_grepq_fp32")
        lines.append(f"| {names[key]} | {r['images_per_s']:.2f} | {vs} | {'-' if diff is None else f'{diff:.1e}'} |")
    if "official_skipped" in res:
        lines.append(f"\nofficial loop {res['official_skipped']}")
    if "cpu_check" in res:
        c = res["cpu_check"]
        lines.append(f"\nCPU check, {c['images']} photos scored on the CPU (float32); max |difference| (Q_L, Q_H):")
        for name, d in c["vs"].items():
            lines.append(f"  {names[name]}: {d.get('max_abs_diff_q_low', float('nan')):.2e}, "
                         f"{d.get('max_abs_diff_q_high', float('nan')):.2e}")
    folder = f" {res['photos']['folder']}" if "folder" in res["photos"] else ""
    lines.append(f"photos: {res['photos']['source']}{folder}")
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=100, help="timed photographs (default 100)")
    ap.add_argument("--warmup", type=int, default=5, help="photographs scored first, not timed (default 5)")
    ap.add_argument("--pristine-patches", type=int, default=1500)
    ap.add_argument("--decode-workers", type=int, default=4, help="grepq's decoding threads (default 4)")
    ap.add_argument("--official", help="the official GRepQ repository (as fetched)")
    ap.add_argument("--official-clip", help="folder holding the patched copy of CLIP's package (FOLDER/clip)")
    ap.add_argument("--device", default="cuda", help="cuda (default) or cuda:N; cpu only checks the script")
    ap.add_argument("--workdir", help="keep weights and photographs here (default: a temporary folder)")
    ap.add_argument("--photos", default=os.environ.get(PHOTOS_ENV) or None,
                    help=f"BSDS500-layout photo folder (DIR/test/*.jpg, DIR/train, DIR/val); default ${PHOTOS_ENV}, "
                         "else scikit-image's sample photographs")
    ap.add_argument("--cpu-check", type=int, default=4,
                    help="score the first K timed photographs on the CPU too and compare (default 4; 0: skip)")
    ap.add_argument("--json", help="also write the result to this JSON file")
    ap.add_argument("--worker", choices=("grepq", "official", "decode"), help=argparse.SUPPRESS)
    ap.add_argument("--amp", default="off", help=argparse.SUPPRESS)
    ap.add_argument("--worker-out", help=argparse.SUPPRESS)
    ap.add_argument("--no-tf32", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--listing", default="timed.txt", help=argparse.SUPPRESS)
    ap.add_argument("--no-warmup", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        if args.official:
            bzs.OFFICIAL_DIR, bzs.OFFICIAL_CLIP_DIR = Path(args.official), Path(args.official_clip)
        work = Path(args.workdir)
        r = {"grepq": lambda: grepq_worker(work, args.device, args.amp, args.decode_workers, Path(args.worker_out),
                                           tf32=not args.no_tf32, listing=args.listing,
                                           warm=not args.no_warmup),
             "official": lambda: official_worker(work, args.device, Path(args.worker_out)),
             "decode": lambda: decode_rate(work)}[args.worker]()
        print(json.dumps(r))
        return 0
    if torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
        msg = "no CUDA device here (torch.cuda.is_available() is False): the GPU benchmark was not run"
        print(msg)
        print("RESULT " + json.dumps({"skipped": msg}))
        return 0
    res = run(args)
    print(table(res))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=1))
    print("RESULT " + json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
