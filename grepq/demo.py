"""``grepq demo``: the low-level model trained and evaluated end to end on the CPU, offline, in minutes.

scikit-image's photographs are split by scene; the training part is synthesised (4 types x 2 levels, FSIM stored)
and the LL model trained with QACL for ``--minutes``; the held-out part gets two other types (JPEG, JPEG 2000) at
all 5 levels. Q_L (Eq. 5-6) and few-shot ridge on LL features of the trained and the untrained network are compared
against MS-SSIM to the undistorted photo; CLIP's HL zero-shot is added when weights are available. Writes
``report.md`` and plots. A demonstration at toy scale, not a reproduction of the paper's numbers.
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
from PIL import Image

__all__ = ["run_demo", "DemoResult", "TRAIN_PHOTOS", "HELDOUT_PHOTOS", "TRAIN_TYPES", "HELDOUT_TYPES"]

#: scikit-image's photographs (files of its data folder): training part ...
TRAIN_PHOTOS = ("astronaut.png", "coffee.png", "motorcycle_left.png", "motorcycle_right.png", "hubble_deep_field.jpg",
                "ihc.png", "retina.jpg", "moon.png", "coins.png", "grass.png", "gravel.png", "clock_motion.png")
#: ... and held-out part (other scenes).
HELDOUT_PHOTOS = ("chelsea.png", "rocket.jpg", "camera.png", "brick.png")
#: Distortions the model is trained on (docs/method.md §6 bank; the paper's blur / noise / saturation families) ...
TRAIN_TYPES = ("gaussian_blur", "white_noise", "hsv_saturation", "lab_saturation")
TRAIN_LEVELS = (2, 4)
#: ... and the held-out distortions it never sees (compression), at every KADIS level.
HELDOUT_TYPES = ("jpeg", "jpeg2000")
HELDOUT_LEVELS = (1, 2, 3, 4, 5)
#: Short side of the photographs used (they are resized once; small enough for a CPU).
PHOTO_SIDE = 256
#: Label counts of the few-shot comparison on the held-out images.
FEW_SHOT_LABELS = (10, 20)


@dataclass
class DemoResult:
    out_dir: Path
    srcc_trained: float
    srcc_untrained: float
    few_shot: Dict[str, Dict[int, float]]
    train_seconds: float
    train_steps: int
    hl_srcc: Optional[float] = None
    hl_message: str = ""
    report: Optional[Path] = None
    notes: List[str] = field(default_factory=list)


def check_gain(d: DemoResult) -> Optional[str]:
    """``--check``: None when the trained model's zero-shot SRCC beats the untrained one's, else why (NaN fails)."""
    if math.isfinite(d.srcc_trained) and math.isfinite(d.srcc_untrained) and d.srcc_trained > d.srcc_untrained:
        return None
    return (f"the trained low-level model does not beat the untrained one on the held-out set: zero-shot Q_L SRCC "
            f"with MS-SSIM {d.srcc_trained:.3f} (trained) vs {d.srcc_untrained:.3f} (untrained), {d.train_steps} "
            f"training steps")


def skimage_photo_dir() -> Path:
    import skimage.data
    return Path(os.path.dirname(skimage.data.__file__))


def _load_photo(path: Path, side: int) -> np.ndarray:
    """A photograph as uint8 (H, W, 3), short side resized to ``side`` (Lanczos), grey repeated to RGB."""
    from .data.io import read_image
    img = read_image(path)
    pil = Image.fromarray((img.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
    w, h = pil.size
    s = side / min(w, h)
    pil = pil.resize((max(side, round(w * s)), max(side, round(h * s))), Image.LANCZOS)
    w, h = pil.size
    left, top = (w - side) // 2, (h - side) // 2
    return np.array(pil.crop((left, top, left + side, top + side)))


def _clip_source(clip_weights: Optional[str]) -> Optional[str]:
    if clip_weights or os.environ.get("GREPQ_CLIP_WEIGHTS"):
        return clip_weights or os.environ["GREPQ_CLIP_WEIGHTS"]
    cached = Path(os.path.expanduser("~/.cache/clip/RN50.pt"))
    return str(cached) if cached.is_file() else None


def _ms_ssim(ref: np.ndarray, img: np.ndarray) -> float:
    import piq
    a = torch.from_numpy(np.array(ref)).permute(2, 0, 1)[None].double() / 255
    b = torch.from_numpy(np.array(img)).permute(2, 0, 1)[None].double() / 255
    return float(piq.multi_scale_ssim(b, a, data_range=1.0))


def _build_heldout(out: Path, seed: int) -> Tuple[List[Path], np.ndarray, List[str]]:
    """Held-out images: each photo with HELDOUT_TYPES x HELDOUT_LEVELS; returns paths, MS-SSIM, scene of each."""
    from .data.distortions import distortion_stack
    folder = out / "heldout"
    folder.mkdir(parents=True, exist_ok=True)
    paths, quality, scenes = [], [], []
    for name in HELDOUT_PHOTOS:
        ref = _load_photo(skimage_photo_dir() / name, PHOTO_SIDE)
        stem = Path(name).stem
        for dname, img in distortion_stack(ref.astype(np.float32) / 255, types=HELDOUT_TYPES, levels=HELDOUT_LEVELS,
                                           seed=seed, range_mode="clip"):
            u8 = (np.clip(img, 0, 1) * 255).round().astype(np.uint8)
            p = folder / f"{stem}_{dname}.png"
            Image.fromarray(u8).save(p)
            paths.append(p)
            quality.append(_ms_ssim(ref, u8))
            scenes.append(stem)
    return paths, np.asarray(quality), scenes


def _train_ll(out: Path, minutes: float, device: str, seed: int, progress: bool):
    from .data.prepare import prepare
    from .train import train
    from .train.schema import load_train_config
    photos = out / "photos"
    photos.mkdir(parents=True, exist_ok=True)
    for name in TRAIN_PHOTOS:
        Image.fromarray(_load_photo(skimage_photo_dir() / name, PHOTO_SIDE)).save(photos / f"{Path(name).stem}.png")
    # recipe grid: exactly TRAIN_TYPES x TRAIN_LEVELS, so the held-out types stay unseen (the default authors recipe
    # would draw JPEG and JPEG 2000 too)
    summary = prepare(photos, out / "train_set", recipe="grid", types=TRAIN_TYPES, levels=TRAIN_LEVELS, seed=seed,
                      progress=progress, range_mode="clip")
    if not summary.ok:
        raise ValueError(f"synthesis failed for {summary.failed}")
    cfg = load_train_config(None, [
        "task=ll", f"seed={seed}", f"run.dir={out / 'run_ll'}", f"run.device={device}",
        f"data.root={out / 'train_set'}", "data.num_workers=0", "data.pin_memory=false",
        f"run.progress={str(progress).lower()}", "run.log_every=1", "run.checkpoint_every=20", "ll.batch_size=4",
        "ll.grid=7", "ll.patch=16", "ll.epochs=1000", "ll.schedule=constant", f"run.max_seconds={minutes * 60:.0f}"])
    t0 = time.perf_counter()
    result = train(cfg)
    return result, time.perf_counter() - t0, photos


def run_demo(out_dir: str = "grepq_demo", minutes: float = 4.0, device: str = "cpu", seed: int = 0,
             clip_weights: Optional[str] = None, progress: bool = True) -> DemoResult:
    """Run the demo into ``out_dir`` (see the module docstring); returns the measured numbers."""
    from .api import GRepQ
    from .eval import metrics
    from .eval.features import extract_features
    from .eval.protocols import data_efficient
    from .eval.regression import RegressionSettings
    from .models.low_level import LowLevelModel, load_low_level
    from .scoring.pristine import select_pristine_patches

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    untrained = LowLevelModel().eval()   # the baseline: the same network at its initialisation
    result, seconds, photos = _train_ll(out, minutes, device, seed, progress)
    trained, _ = load_low_level(out / "run_ll" / "ll_weights.pt")
    pristine, _ = select_pristine_patches(photos, progress=False)

    paths, quality, scenes = _build_heldout(out, seed)
    scores, few, ll_feats = {}, {}, {}
    for label, model in (("trained", trained), ("untrained", untrained)):
        scorer = GRepQ.from_files(ll_weights=model, components=["ll"], pristine=pristine, device=device,
                                  progress=False)
        fs = extract_features(scorer, paths, progress=False)
        scores[label] = fs.q_low
        ll_feats[label] = fs.ll
        res = data_efficient(fs.ll.astype(np.float64), quality, RegressionSettings(n_train=FEW_SHOT_LABELS, seed=seed),
                             refs=scenes, feature_sets={"ll": slice(0, fs.ll.shape[1])}, dataset="demo")
        few[label] = {int(r["n_train"]): float(r["srcc"]) for r in res.medians}
    srcc = {k: metrics.srcc(v, quality) for k, v in scores.items()}

    hl_srcc, hl_msg = None, ""
    source = _clip_source(clip_weights)
    if source is None:
        hl_msg = ("high-level model skipped: no CLIP weights here. To include it, pass --clip-weights /path/to/RN50.pt "
                  "(OpenAI's file), or set GREPQ_CLIP_WEIGHTS, or put RN50.pt in ~/.cache/clip/.")
    else:
        try:
            hl = GRepQ.from_files(hl_weights="stock-clip", clip_weights=source, components=["hl"], device=device,
                                  progress=False)
            q_high = np.array([r.q_high for r in hl.score(paths)])
            hl_srcc = metrics.srcc(q_high, quality)
            hl_msg = f"high-level model (CLIP {source}, zero-shot prompts): SRCC {hl_srcc:.3f}"
        except (OSError, ValueError) as exc:
            hl_msg = f"high-level model skipped: {exc}"

    demo = DemoResult(out, srcc["trained"], srcc["untrained"], few, seconds, result.step, hl_srcc, hl_msg)
    demo.report = _write_report(out, demo, quality, scores, len(paths))
    _own_predictor_demo(demo, ll_feats["trained"], quality, scenes, seed)
    return demo


#: Held-out photographs whose images are "labelled" in the own-predictor step (the others are predicted).
OWN_PREDICTOR_LABELLED_PHOTOS = 2


def _own_predictor_demo(demo: DemoResult, ll: np.ndarray, quality: np.ndarray, scenes, seed: int) -> None:
    """README's "your own quality predictor": fit a regressor on the trained LL features of two held-out photographs'
    images (saved to ``my_predictor.json``, loaded back), predict the others' and report their SRCC."""
    import warnings

    from .eval import metrics
    from .eval.regressor import Regressor, fit_regressor
    from .eval.splits import split_indices

    n_scenes = len(set(scenes))
    train, test = split_indices(len(quality), 0, seed=seed, train_fraction=OWN_PREDICTOR_LABELLED_PHOTOS / n_scenes,
                                refs=scenes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # few labels per fold: expected at this toy scale
        reg = fit_regressor(ll[train].astype(np.float64), quality[train], feature_set="ll",
                            refs=np.asarray(scenes)[train],
                            source={"kind": "demo", "labelled_photos": OWN_PREDICTOR_LABELLED_PHOTOS})
    path = reg.save(demo.out_dir / "my_predictor.json")
    q_pred = Regressor.load(path).predict(ll[test].astype(np.float64))
    srcc = metrics.srcc(q_pred, quality[test])
    note = (f"own predictor (grepq fit): ridge on the trained LL features of {train.size} labelled images of "
            f"{OWN_PREDICTOR_LABELLED_PHOTOS} photographs (alpha {reg.info['alpha']:g}), SRCC {srcc:.3f} on the "
            f"{test.size} images of the other photographs; saved to {path}")
    demo.notes.append(note)
    if demo.report is not None:
        with open(demo.report, "a") as fh:
            fh.write(f"\n## Your own predictor from a few labels\n\n{note}.\n")


def _write_report(out: Path, d: DemoResult, quality: np.ndarray, scores: Dict[str, np.ndarray], n: int) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(9, 4), sharey=True)
    for ax, label in zip(axes, ("untrained", "trained")):
        ax.scatter(scores[label], quality, s=14)
        ax.set_xlabel(f"Q_L ({label} LL model)")
        ax.set_title(f"{label}: SRCC {getattr(d, 'srcc_' + label):.3f}")
    axes[0].set_ylabel("MS-SSIM to the undistorted photo")
    fig.tight_layout()
    fig.savefig(out / "q_low_vs_msssim.png", dpi=110)
    plt.close(fig)
    from .train.logging import read_log
    records = [r for r in read_log(out / "run_ll" / "log.jsonl") if r.get("type") == "step" and "loss" in r]
    steps, losses = [r["step"] for r in records], [r["loss"] for r in records]
    if steps:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        ax.plot(steps, losses)
        ax.set_xlabel("step")
        ax.set_ylabel("QACL loss")
        fig.tight_layout()
        fig.savefig(out / "training_loss.png", dpi=110)
        plt.close(fig)
    gain = d.srcc_trained - d.srcc_untrained
    lines = [
        "# grepq demo report", "",
        "GRepQ's low-level model trained with QACL on scikit-image's photographs (synthetic distortions: "
        f"{', '.join(TRAIN_TYPES)} at KADIS levels {TRAIN_LEVELS}), evaluated on {n} images of "
        f"{len(HELDOUT_PHOTOS)} held-out photographs with distortions it never saw ({', '.join(HELDOUT_TYPES)}, levels "
        f"{HELDOUT_LEVELS[0]}-{HELDOUT_LEVELS[-1]}). Quality reference: MS-SSIM of each image to its undistorted "
        f"photograph.",
        "", f"Training: {d.train_steps} steps in {d.train_seconds:.0f} s on the CPU.", "",
        "| | untrained network | trained (QACL) | difference |", "|---|---|---|---|",
        f"| zero-shot Q_L, SRCC with MS-SSIM | {d.srcc_untrained:.3f} | {d.srcc_trained:.3f} | {gain:+.3f} |",
    ]
    for k in FEW_SHOT_LABELS:
        u, t = d.few_shot["untrained"].get(k, float("nan")), d.few_shot["trained"].get(k, float("nan"))
        lines.append(f"| ridge on LL features, {k} labels (median SRCC, 10 scene splits) | {u:.3f} | {t:.3f} | "
                     f"{t - u:+.3f} |")
    lines += ["", f"High-level model: {d.hl_message}", "",
              "![Q_L against MS-SSIM](q_low_vs_msssim.png)", "", "![training loss](training_loss.png)", "",
              "A toy-scale run: the paper trains on 5,000 photographs for 15 epochs on a GPU."]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
