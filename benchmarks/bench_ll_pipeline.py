"""Benchmark: LL training input pipeline, stored FSIM (grepq) against FSIM computed in the loader (official).

One sample = one image folder of 9 versions (reference + 8 distortions), the whole ``LLTrainingDataset.__getitem__``:
decode the 9 files, the FSIM matrix, two aligned fragment samplings (7x7 x 32 px -> 224) and the flips.

* stored:   ``ll.fsim_source: stored`` — the (9, 9) matrix ``fsim.npy`` written once by ``grepq prepare``;
* official: ``ll.fsim_source: compute`` — one ``piq.fsim(data_range=1.0)`` per pair (36 calls) in float64 in every
  ``__getitem__``, as the official ``FrameLoaderLLModel`` does (the same folders without ``fsim.npy``).

Photos: the first ``--images`` ``train`` photographs of the folder given with ``--photos DIR`` or
``$GREPQ_BENCH_PHOTOS`` (e.g. BSDS500, 481 x 321), otherwise scikit-image's sample photographs; the output's
``inputs`` says which. The folders are made with ``grepq.data.prepare`` (default distortions) when it is
importable, else with a blur/noise stack written here. One torch thread by default: a DataLoader worker runs with
one thread, and the machine's other load then affects both paths alike.

Usage: ``python benchmarks/bench_ll_pipeline.py [--photos DIR] [--images 4] [--repeats 3] [--official-samples 2]
[--threads 1]``. Prints a Markdown table row (images, samples/s stored, samples/s official, ratio) and one JSON line
(prefix ``RESULT``) for benchmarks/run_all.py.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_inputs  # noqa: E402  (the photographs: --photos DIR, $GREPQ_BENCH_PHOTOS or scikit-image's)


def photos(n: int):
    """(source, [(path or None, uint8 HxWx3 array)]) of up to n photographs; names recorded for ``inputs``."""
    if bench_inputs.folder() is not None:
        arrays = bench_inputs.load("train", n, "photos")
        return bench_inputs.folder().name, [(None, a) for a in arrays]
    return "skimage", [(None, a) for a in bench_inputs.load(None, n, "photos")[:n]]


def build_folders(images, root: Path) -> Path:
    """The prepared layout under root/stored; returns that folder."""
    from PIL import Image

    src = root / "src"
    src.mkdir(parents=True)
    for i, (_, arr) in enumerate(images):
        Image.fromarray(arr).save(src / f"photo{i:03d}.png")
    stored = root / "stored"
    try:
        from grepq.data.prepare import prepare
        prepare(src, stored, recipe="fixed", progress=False)
        return stored
    except ImportError:
        pass
    # fallback: reference + 4 blur + 4 noise levels, FSIM from grepq.data.fsim or piq
    import torch.nn.functional as F

    from grepq.data.fsim import fsim_matrix_piq

    for i, (_, arr) in enumerate(images):
        name = f"photo{i:03d}"
        d = stored / name
        d.mkdir(parents=True)
        ref = torch.from_numpy(arr).permute(2, 0, 1).float() / 255
        versions = {f"{name}_REF.png": ref}
        for k, s in enumerate((0.5, 1.0, 2.0, 4.0)):
            x = torch.arange(-8, 9, dtype=torch.float32)
            g = torch.exp(-x ** 2 / (2 * s * s))
            g = g / g.sum()
            b = F.conv2d(F.pad(ref[:, None], (8, 8, 0, 0), mode="replicate"), g.view(1, 1, 1, -1))
            b = F.conv2d(F.pad(b, (0, 0, 8, 8), mode="replicate"), g.view(1, 1, -1, 1))[:, 0]
            versions[f"{name}_blur_{k}.png"] = b
            versions[f"{name}_noise_{k}.png"] = (ref + torch.randn_like(ref) * 0.02 * (k + 1)).clamp(0, 1)
        names = sorted(versions)
        stack = []
        for n in names:
            u8 = (versions[n].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            Image.fromarray(u8).save(d / n)
            stack.append(torch.from_numpy(u8).permute(2, 0, 1).double() / 255)
        np.save(d / "fsim.npy", fsim_matrix_piq(torch.stack(stack)).numpy())
        (d / "versions.json").write_text(json.dumps({"files": [{"file": n} for n in names]}))
    return stored


def official_copy(stored: Path, root: Path) -> Path:
    """The same folders as the official code expects them: image files only."""
    out = root / "official"
    for d in sorted(p for p in stored.iterdir() if p.is_dir() and not p.name.startswith(".")):
        (out / d.name).mkdir(parents=True)
        for f in d.iterdir():
            if f.suffix.lower() == ".png":
                shutil.copy2(f, out / d.name / f.name)
    return out


def rate(dataset, n_samples: int, repeats: int) -> float:
    """Median samples/s over ``repeats`` passes of ``n_samples`` __getitem__ calls."""
    rates = []
    for r in range(repeats):
        t = time.perf_counter()
        for i in range(n_samples):
            dataset[(r, i % len(dataset))]
        rates.append(n_samples / (time.perf_counter() - t))
    return statistics.median(rates)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=4, help="image folders to build (default 4)")
    ap.add_argument("--repeats", type=int, default=3, help="timed passes, median reported (default 3)")
    ap.add_argument("--official-samples", type=int, default=2, help="samples per official pass (slow; default 2)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1, as a DataLoader worker)")
    bench_inputs.add_argument(ap)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    bench_inputs.select(args.photos)

    from grepq.data.training_set import LLTrainingDataset

    source, images = photos(args.images)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        stored = build_folders(images, tmp)
        official = official_copy(stored, tmp)
        fast = LLTrainingDataset(stored, versions="all", fsim_source="stored")
        slow = LLTrainingDataset(official, versions="all", fsim_source="compute")
        sample = fast[(0, 0)]
        d = sample["anchor"].shape[0]
        h, w = images[0][1].shape[:2]
        check = slow[(0, 0)]
        diff = float((check["pair_weight"] - sample["pair_weight"]).abs().max())
        fast[(0, 0)], slow[(0, 0)]  # warm-up (filter banks, allocator)
        r_fast = rate(fast, max(len(fast), 8), args.repeats)
        r_slow = rate(slow, args.official_samples, args.repeats)
    print(f"# LL input pipeline, {source} photos {w}x{h}, D = {d} versions per sample, {args.threads} torch thread(s); "
          f"max |FSIM stored - FSIM piq| = {diff:.2e}")
    print("| images | stored FSIM (samples/s) | FSIM in the loader, piq float64 (samples/s) | ratio |")
    print("|---|---|---|---|")
    print(f"| {len(images)} | {r_fast:.2f} | {r_slow:.4f} | {r_fast / r_slow:.0f}x |")
    inputs = bench_inputs.describe()
    print(f"inputs: {inputs['inputs']} ({', '.join(inputs['files'])})")
    print("RESULT " + json.dumps({"images": len(images), "size": f"{w}x{h}", "versions": d, "threads": args.threads,
                                  "stored_samples_per_s": r_fast, "official_samples_per_s": r_slow,
                                  "max_abs_fsim_diff": diff, **inputs}))


if __name__ == "__main__":
    main()
