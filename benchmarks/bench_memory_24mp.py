"""Benchmark: peak memory and time of zero-shot LL scoring (Q_L) of one 24-megapixel photograph (6000x4000).

* **grepq**: ``grepq score IMG --components ll --ll-weights ... --pristine ...`` in a subprocess; its peak
  resident memory is the child's RSS high-water mark (``ru_maxrss`` from ``os.wait4``, Linux, kilobytes), its time
  is from start to exit.
* **official**: the official ``compute_niqe_distance_single_image`` in a subprocess (``/tmp/official``, see
  docs/official-comparison.md), which runs all patches of the image through the LL model in one batch; without the
  official code, a plain script doing the same (all patches in one batch). At 6000x4000 that is 82 x 124 = 10,168
  patches; it is run only if the machine has the memory for it (``MemAvailable`` above the estimate below plus a
  margin), otherwise the estimate is reported.

Estimate of the one-batch path (float32, B = number of patches, 96x96 input): the patches (B x 3 x 96 x 96) and the
two largest live ResNet18 activations at the stem, the conv1 output and the BatchNorm output (each B x 64 x 48 x 48)
= B x 4 bytes x (27,648 + 2 x 147,456), plus the decoded image and the pristine patches.

The photograph: the first four ``test`` photographs of the folder given with ``--photos DIR`` or
``$GREPQ_BENCH_PHOTOS`` (e.g. BSDS500), else four scikit-image photographs (the output's ``inputs`` says which),
upscaled (bicubic) to 3000x2000 each and tiled 2x2, saved as JPEG q95.
Weights: a random LL model in the official layout; pristine patches as in
bench_zero_shot.py (``--pristine-patches``, default 1500). The two Q_L values must agree within 1e-5.

Usage: ``python benchmarks/bench_memory_24mp.py [--photos DIR] [--workdir DIR] [--no-official] [--force-official]``.
Prints a Markdown table and one JSON line (prefix ``RESULT``) for benchmarks/run_all.py.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_inputs  # noqa: E402
import bench_zero_shot as bz  # noqa: E402

WIDTH, HEIGHT = 6000, 4000
PATCH, STRIDE = 96, 48
#: Target of the issue: grepq's peak resident memory for a 24-megapixel image.
TARGET_BYTES = 2 * 2 ** 30
#: Agreement of the two Q_L values (target: zero-shot scores within 1e-5 of the official code).
SCORE_TOL = 1e-5
#: Memory left free when deciding whether the one-batch path can run (OS, other jobs).
MARGIN_BYTES = 3 * 2 ** 30
SCRIPT = Path(__file__).resolve()


def n_patches(h: int = HEIGHT, w: int = WIDTH) -> int:
    return ((h - PATCH) // STRIDE + 1) * ((w - PATCH) // STRIDE + 1)


def one_batch_estimate(n_pristine: int, h: int = HEIGHT, w: int = WIDTH) -> int:
    """Bytes the one-batch path needs beyond the interpreter and weights (see the module doc)."""
    per_patch = 4 * (3 * PATCH * PATCH + 2 * 64 * (PATCH // 2) ** 2)
    image = 4 * 3 * h * w
    pristine = 4 * 3 * PATCH * PATCH * n_pristine
    return n_patches(h, w) * per_patch + image + pristine


def mem_available() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("MemAvailable not found in /proc/meminfo")


def make_photo(path: Path) -> Path:
    """A 6000x4000 JPEG tiled from four upscaled photographs."""
    from PIL import Image

    if path.is_file():
        return path
    tiles = [Image.fromarray(a).resize((WIDTH // 2, HEIGHT // 2), Image.BICUBIC) for a in bz.photos("test", 4, "test")]
    canvas = Image.new("RGB", (WIDTH, HEIGHT))
    for k, t in enumerate(tiles):
        canvas.paste(t, ((k % 2) * WIDTH // 2, (k // 2) * HEIGHT // 2))
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path, quality=95)
    return path


def measure(cmd, cwd: Optional[Path] = None) -> Tuple[float, int, str]:
    """Run ``cmd``; returns (seconds, peak RSS in bytes of that process, stdout). Raises on a non-zero exit."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=cwd)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - t
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise RuntimeError(f"{cmd[:4]} failed ({proc.returncode}):\n{err.read().decode()[-3000:]}")
        return seconds, usage.ru_maxrss * 1024, out.read().decode()


def official_worker(work: Path, image: Path, out: Path) -> None:
    """Q_L of one image with the official single-image function (or the plain one-batch path), written as JSON."""
    import torch

    if bz.official_available():
        off_ll, _, ll, _ = bz._official_models(work, "ll")   # loaded as the official test_zeroshot.py does
        os.chdir(work)  # the official pristine() reads its HDF5 from the working directory
        cfg = bz._official_config(work)
        q = off_ll.compute_niqe_distance_single_image(ll, str(image), cfg)[0]
    else:
        import h5py
        from PIL import Image

        from grepq.models.low_level import load_low_level

        ll = load_low_level(work / "weights" / "low_level_model_weights.tar")[0].eval()
        with torch.no_grad():
            with h5py.File(work / bz.OFFICIAL_HDF5, "r") as f:
                ref = ll(torch.tensor(f["data"][:]))
            x = torch.from_numpy(np.array(Image.open(image))).permute(2, 0, 1).float() / 255.0
            patches = x.unfold(1, PATCH, STRIDE).unfold(2, PATCH, STRIDE).permute(1, 2, 0, 3, 4)
            feats = ll(patches.reshape(-1, 3, PATCH, PATCH))                  # all patches in one batch
            mu_r, mu_t = ref.mean(0, keepdim=True), feats.mean(0, keepdim=True)
            cov_r = (ref - mu_r).t() @ (ref - mu_r) / (ref.shape[0] - 1)
            cov_t = (feats - mu_t).t() @ (feats - mu_t) / (feats.shape[0] - 1)
            d = mu_r - mu_t
            fit = d @ torch.linalg.inv((cov_r + cov_t) / 2 + 1e-3 * torch.eye(d.shape[1])) @ d.t()
            q = float(1.0 - 1.0 / (1.0 + torch.exp(-fit.sqrt() / 100.0)))
    out.write_text(json.dumps({"q_low": q}))


def run(quick: bool = False, workdir: Optional[str] = None, official: bool = True, force_official: bool = False,
        n_pristine: int = 1500) -> Dict[str, object]:
    """Measure grepq (and the official path when it fits in memory); returns the numbers."""
    tmp = None
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="grepq-bench-24mp-")
        workdir = tmp.name
    work = Path(workdir) / bench_inputs.source_key()  # one folder per input source: never reused across sources
    work.mkdir(parents=True, exist_ok=True)
    try:
        if not bench_inputs.recall(work / "weights" / bz.INPUTS_FILE, "calibration"):
            shutil.rmtree(work / "weights", ignore_errors=True)
        paths = bz.make_weights(work / "weights", which=("ll",))
        bench_inputs.remember(work / "weights" / bz.INPUTS_FILE, "calibration")
        paths["pristine"] = work / bz.OFFICIAL_HDF5
        marker = work / f".pristine-{n_pristine}"
        if not (paths["pristine"].is_file() and bench_inputs.recall(marker, "pristine")):
            bz.make_pristine(paths["pristine"], n_pristine)
            bench_inputs.remember(marker, "pristine")
        photo_marker = work / "photo_24mp.inputs.json"
        if not bench_inputs.recall(photo_marker, "test"):
            (work / "photo_24mp.jpg").unlink(missing_ok=True)
        image = make_photo(work / "photo_24mp.jpg")
        bench_inputs.remember(photo_marker, "test")
        out_csv = work / "grepq.csv"
        cmd = [sys.executable, "-m", "grepq", "score", str(image), "--components", "ll",
               "--ll-weights", str(paths["ll"]), "--pristine", str(paths["pristine"]), "--output", str(out_csv)]
        busy = [bz.wait_for_idle()]
        g_s, g_rss, _ = measure(cmd)
        with open(out_csv, newline="") as f:
            g_q = float(next(csv.DictReader(f))["q_low"])
        res: Dict[str, object] = {
            "image": f"{WIDTH}x{HEIGHT}", "patches": n_patches(), "pristine_patches": n_pristine,
            "grepq_s": g_s, "grepq_peak_bytes": g_rss, "grepq_q_low": g_q,
            "one_batch_estimate_bytes": one_batch_estimate(n_pristine), "mem_available_bytes": mem_available(),
            **bench_inputs.describe(),
        }
        if official:
            need = res["one_batch_estimate_bytes"] + MARGIN_BYTES
            if force_official or res["mem_available_bytes"] > need:
                busy.append(bz.wait_for_idle())
                o_s, o_rss, _ = measure([sys.executable, str(SCRIPT), "--worker", "--workdir", str(work),
                                         "--image", str(image), "--worker-out", str(work / "official.json")])
                o_q = json.loads((work / "official.json").read_text())["q_low"]
                res.update(official_s=o_s, official_peak_bytes=o_rss, official_q_low=o_q,
                           official_kind="official code" if bz.official_available() else "plain one-batch script",
                           abs_score_diff=abs(o_q - g_q))
            else:
                res["official_skipped"] = (f"needs about {need / 2 ** 30:.1f} GiB (estimate + margin), "
                                           f"{res['mem_available_bytes'] / 2 ** 30:.1f} GiB available")
        res["busy_cores_before_runs_max"] = max(busy)
        return res
    finally:
        if tmp is not None:
            tmp.cleanup()


def table(res: Dict[str, object]) -> str:
    gib = 2 ** 30
    lines = [f"# zero-shot Q_L of one {res['image']} JPEG ({res['patches']} patches of 96x96, stride 48; "
             f"{res['pristine_patches']} pristine patches)",
             "| run | peak RSS (GiB) | seconds | Q_L |", "|---|---|---|---|",
             f"| grepq score --components ll | {res['grepq_peak_bytes'] / gib:.2f} | {res['grepq_s']:.1f} | "
             f"{res['grepq_q_low']:.8f} |"]
    if "official_s" in res:
        lines.append(f"| official single-image LL ({res['official_kind']}, all patches in one batch) | "
                     f"{res['official_peak_bytes'] / gib:.2f} | {res['official_s']:.1f} | "
                     f"{res['official_q_low']:.8f} |")
        lines.append(f"\n|Q_L grepq - Q_L official| = {res['abs_score_diff']:.1e}")
    elif "official_skipped" in res:
        lines.append(f"\nofficial path not run: {res['official_skipped']}")
    lines.append(f"inputs: {res['inputs']} ({', '.join(res['files'])})")
    lines.append(f"one-batch estimate (module doc): {res['one_batch_estimate_bytes'] / gib:.1f} GiB beyond the "
                 "interpreter and weights")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", default=None,
                    help="keep weights and the photograph here (default: a temporary folder)")
    ap.add_argument("--quick", action="store_true", help="accepted for run_all.py; the measurement is the same")
    ap.add_argument("--no-official", action="store_true", help="skip the one-batch official path")
    ap.add_argument("--force-official", action="store_true", help="run the official path whatever memory is free")
    ap.add_argument("--pristine-patches", type=int, default=1500)
    bench_inputs.add_argument(ap)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--image", help=argparse.SUPPRESS)
    ap.add_argument("--worker-out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        official_worker(Path(args.workdir), Path(args.image), Path(args.worker_out))
        return
    bench_inputs.select(args.photos)
    res = run(args.quick, args.workdir, not args.no_official, args.force_official, args.pristine_patches)
    print(table(res))
    print("RESULT " + json.dumps(res))


if __name__ == "__main__":
    main()
