"""LL and HL training steps/s: grepq's engine (``grepq.train.train``) against the plain PyTorch loop.

The plain loop is what one would write by hand: the same dataset and model, a DataLoader, forward of both views,
the loss, ``backward``, ``optimizer.step`` — no logging, no checkpoints, no scheduler. grepq's engine adds its
logging, scalar reduction, checkpointing and schedule. Both run the same number of steps on the same data; the
per-step time of grepq is (T(N + 1 steps) − T(1 step)) / N, so start-up (model build, run directory) is excluded
on both sides. Target: grepq no slower (ratio >= 0.95, the noise of this machine).

    python benchmarks/bench_train_steps.py [--steps N] [--repeats R]
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

PHOTOS = ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "motorcycle_left.png", "hubble_deep_field.jpg",
          "ihc.png", "retina.jpg")
LL_SETTINGS = ["ll.batch_size=4", "ll.grid=7", "ll.patch=16"]
HL_SETTINGS = ["hl.batch_size=8", "hl.group_size=2"]


def make_data(root: Path) -> Path:
    import skimage.data

    from grepq.data.prepare import prepare
    src = root / "photos"
    src.mkdir(parents=True)
    folder = Path(os.path.dirname(skimage.data.__file__))
    for name in PHOTOS:
        img = Image.open(folder / name).convert("RGB")
        s = 256 / min(img.size)
        img = img.resize((round(img.size[0] * s), round(img.size[1] * s)), Image.LANCZOS)
        img.save(src / f"{Path(name).stem}.png")
    prepare(src, root / "train", recipe="fixed", seed=0, progress=False, range_mode="clip")
    return root / "train"


def make_hl_data(root: Path) -> Path:
    """128 HL image folders (``<name>/<name>_REF.png``): each photo in its 8 flips/rotations and 2 crops, so one
    epoch is 16 steps of 8 images, as in real training where epochs hold many steps (with one step per epoch the
    engine's per-epoch work -- a new DataLoader iterator, the epoch log record -- would be counted on every step)."""
    import skimage.data
    out = root / "hl_train"
    folder = Path(os.path.dirname(skimage.data.__file__))
    for name in PHOTOS:
        img = Image.open(folder / name).convert("RGB")
        s = 256 / min(img.size)
        img = img.resize((round(img.size[0] * s), round(img.size[1] * s)), Image.LANCZOS)
        arr = np.asarray(img)
        for t in range(8):
            a = np.rot90(arr, t % 4)
            a = a[:, ::-1] if t >= 4 else a
            for c, crop in enumerate((a[:240, :240], a[-240:, -240:])):
                d = out / f"{Path(name).stem}_{t}{c}"
                d.mkdir(parents=True)
                Image.fromarray(np.ascontiguousarray(crop)).save(d / f"{d.name}_REF.png")
    return out


def grepq_step_time(task: str, data: Path, run_root: Path, steps: int, extra) -> float:
    from grepq.train import train
    from grepq.train.schema import load_train_config

    def run(n: int) -> float:
        d = run_root / f"{task}_{n}"
        shutil.rmtree(d, ignore_errors=True)
        cfg = load_train_config(None, [f"task={task}", f"run.dir={d}", "run.device=cpu", f"data.root={data}",
                                 "data.num_workers=0", "data.pin_memory=false", "run.progress=false",
                                 "run.log_every=10", "run.checkpoint_every=100000", f"run.max_steps={n}",
                                 f"{task}.epochs=1000", *extra])
        t = time.perf_counter()
        train(cfg)
        return time.perf_counter() - t

    return (run(steps + 1) - run(1)) / steps


def plain_step_time(task: str, data: Path, steps: int, clip_path: str) -> float:
    from torch.utils.data import DataLoader

    from grepq.data.training_set import HLTrainingDataset, LLTrainingDataset
    from grepq.losses import gcl, pseudo_label_groups, qacl
    from grepq.models.high_level import HighLevelModel, load_clip
    from grepq.models.low_level import LowLevelModel
    torch.manual_seed(0)
    if task == "ll":
        ds = LLTrainingDataset(data, grid=7, patch=16)
        model = LowLevelModel().train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.05)
        batch_size = 4
    else:
        ds = HLTrainingDataset(data)
        model = HighLevelModel(load_clip(clip_path)).train()
        model.visual.attnpool.positional_embedding.requires_grad_(False)
        opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=5e-6)
        batch_size = 8
    keys = [(0, i) for i in range(len(ds))] * (steps * batch_size // len(ds) + 2)
    loader = DataLoader(_Lazy(ds, keys),
                        batch_size=batch_size, num_workers=0)
    t0 = None
    for i, batch in enumerate(loader):
        if task == "ll":
            a, p, s = batch["anchor"], batch["positive"], batch["pair_weight"]
            b, d = a.shape[:2]
            fa = model(a.flatten(0, 1)).view(b, d, -1)
            fp = model(p.flatten(0, 1)).view(b, d, -1)
            loss = qacl(fa, fp, s, 0.5, "paper")
        else:
            emb, head = model(batch["image"])
            bad, good = pseudo_label_groups(model.quality_from_embedding(emb.detach()), 2)
            loss = gcl(head[bad], head[good], 0.1, "paper")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if i == 0:  # the clock starts after the first step, before the second batch is loaded (as grepq's T(1))
            t0 = time.perf_counter()
        if i == steps:
            break
    return (time.perf_counter() - t0) / steps


class _Lazy(torch.utils.data.Dataset):
    def __init__(self, ds, keys):
        self.ds, self.keys = ds, keys

    def __len__(self):
        return len(self.keys)

    def __getitem__(self, i):
        return self.ds[self.keys[i]]


def rows(steps: int = 8, repeats: int = 2):
    """[(name, grepq steps/s, plain steps/s, ratio)] for LL and HL."""
    from conftest import SMALL_CLIP_ARGS, make_clip
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = {"ll": make_data(root), "hl": make_hl_data(root)}
        clip_path = root / "clip.pt"
        torch.save(make_clip(SMALL_CLIP_ARGS).state_dict(), clip_path)
        out = []
        for task, extra in (("ll", LL_SETTINGS), ("hl", HL_SETTINGS + [f"hl.clip={clip_path}"])):
            g, p = float("inf"), float("inf")
            for _ in range(repeats):  # interleaved, best of each: the machine's noise hits both sides alike
                g = min(g, grepq_step_time(task, data[task], root / "runs", steps, extra))
                p = min(p, plain_step_time(task, data[task], steps, str(clip_path)))
            out.append((f"{task.upper()} training step", 1 / g, 1 / p, p / g))
        return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=2, help="interleaved runs of each side; the best is kept")
    args = ap.parse_args(argv)
    warnings.simplefilter("ignore")
    print("| benchmark | grepq steps/s | plain PyTorch steps/s | ratio (grepq / plain) |")
    print("|---|---|---|---|")
    for name, g, p, r in rows(args.steps, args.repeats):
        print(f"| {name} (CPU, "
              f"{'batch 4 x 8 versions, 112 px' if name.startswith('LL') else 'batch 8, small CLIP RN'}) "
              f"| {g:.3f} | {p:.3f} | {r:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
