#!/usr/bin/env python
"""Make the files in ``assets/`` (see assets/README.md): ``python scripts/make_assets.py [--out assets]``.

- ``photos/*.jpg``: four of scikit-image's sample photographs (public domain / CC0), small, for the README.
- ``distortion_gallery.jpg``: the authors' 12 KADIS types at levels 1-5 on one photograph, made by
  :func:`grepq.data.distortions.distortion_stack` (grepq's training-data bank, seed 0).
- ``report_screenshot.png``: ``grepq score --maps ... --report`` of a toy run (random weights: the scores mean
  nothing), rendered by headless Chromium (skipped with a message when Chromium is not installed).
- ``quality_map_example.png``: the toy run's ``--maps`` PNG of coffee.jpg with its right half noised (Gaussian,
  sigma 0.2): the map is higher there even with the random LL model (tests/test_maps.py measures the same case).

Needs the test extra (the random models are built by tests/conftest.py) and, for the screenshot, Chromium.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parent.parent
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")  # licences: assets/README.md
HALF_NOISED = "coffee_right_half_noised.png"  # the quality-map example
GALLERY_PHOTO, TILE = "coffee", (240, 160)  # the photograph of the gallery and the size it is distorted at
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--window-size=1200,1500"]


def skimage_photo(name: str) -> Image.Image:
    import skimage.data
    return Image.fromarray(getattr(skimage.data, name)()).convert("RGB")


def make_photos(out: Path, longest: int = 320) -> None:
    (out / "photos").mkdir(parents=True, exist_ok=True)
    for name in PHOTOS:
        img = skimage_photo(name)
        img.thumbnail((longest, longest), Image.Resampling.LANCZOS)
        img.save(out / "photos" / f"{name}.jpg", quality=88)


def make_gallery(out: Path) -> None:
    from grepq.data.distortions import AUTHORS_TYPES, distortion_stack, kadis_type
    ref = np.asarray(skimage_photo(GALLERY_PHOTO).resize(TILE, Image.Resampling.LANCZOS))
    font = ImageFont.truetype(_font(), 15)
    small = ImageFont.truetype(_font(), 12)
    (tw, th), label_w, head_h, cap_h, gap = TILE, 264, 30, 18, 4
    grid = Image.new("RGB", (label_w + 6 * (tw + gap), head_h + len(AUTHORS_TYPES) * (th + cap_h + gap)), "white")
    draw = ImageDraw.Draw(grid)
    for col, head in enumerate(["reference"] + [f"level {lv}" for lv in range(1, 6)]):
        draw.text((label_w + col * (tw + gap) + tw // 2, head_h // 2), head, fill="black", font=font, anchor="mm")
    for row, name in enumerate(AUTHORS_TYPES):
        kt, y = kadis_type(name), head_h + row * (th + cap_h + gap)
        note = "grepq's substitute: non-local means\ninstead of KADIS's DnCNN" if kt.substitute else kt.kadis_function
        draw.multiline_text((8, y + 8), f"{name}\nKADIS type {kt.id}", fill="black", font=font, spacing=4)
        draw.multiline_text((8, y + 52), f"{note}\n{kt.parameter.split(';')[0]}", fill="#555", font=small)
        versions = [v for _, v in distortion_stack(ref, types=[name], levels=[1, 2, 3, 4, 5], seed=0)]
        for col, img in enumerate([ref] + [np.round(v * 255).astype(np.uint8) for v in versions]):
            x = label_w + col * (tw + gap)
            grid.paste(Image.fromarray(np.asarray(img)), (x, y))
            if col:
                draw.text((x + tw // 2, y + th + 2), f"{kt.levels[col - 1]:g}", fill="#333", font=small, anchor="mt")
    grid.save(out / "distortion_gallery.jpg", quality=85, optimize=True)


def _font() -> str:
    from matplotlib import font_manager
    return font_manager.findfont("DejaVu Sans")


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def screenshot(page: Path, png: Path, profile: Path) -> None:
    """``page`` rendered by headless Chromium into ``png`` (1200 x 1500)."""
    cmd = [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={png}", page.resolve().as_uri()]
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)


def toy_report(work: Path, photos: Path) -> Path:
    """``grepq score`` of the README photos and a few distorted versions with random weights (tests/conftest.py),
    then ``grepq report``, both run in ``work`` (the current folder); returns the report's index.html."""
    import torch

    from grepq.cli import main
    from grepq.data.distortions import distortion_stack
    from grepq.models.low_level import save_low_level
    sys.path.insert(0, str(ROOT / "tests"))
    from conftest import make_clip, make_ll
    torch.set_num_threads(1)
    (work / "photos").mkdir()
    for p in sorted(photos.glob("*.jpg")):
        shutil.copy(p, work / "photos" / p.name)
    for p, kinds in ((photos / "coffee.jpg", ("gaussian_blur", "jpeg")), (photos / "chelsea.jpg", ("white_noise",))):
        for name, v in distortion_stack(np.asarray(Image.open(p)), types=kinds, levels=[4], seed=0):
            Image.fromarray(np.round(v * 255).astype(np.uint8)).save(work / "photos" / f"{p.stem}_{name}.png")
    half = np.asarray(Image.open(photos / "coffee.jpg"), dtype=np.float64) / 255
    right = half[:, half.shape[1] // 2:]
    right[:] = np.clip(right + np.random.default_rng(0).normal(0, 0.2, right.shape), 0, 1)
    Image.fromarray(np.round(half * 255).astype(np.uint8)).save(work / "photos" / HALF_NOISED)
    save_low_level(make_ll(), work / "ll_random.tar", fmt="official")
    clip = make_clip()
    torch.save(clip.visual.state_dict(), work / "hl_random.pth")
    torch.save(clip.state_dict(), work / "clip_random.pt")
    (work / "pristine").mkdir()
    for name in PHOTOS:
        skimage_photo(name).save(work / "pristine" / f"{name}.png")
    argv = ["score", "photos", "--ll-weights", "ll_random.tar", "--hl-weights", "hl_random.pth", "--clip-weights",
            "clip_random.pt", "--pristine", "pristine", "--no-cache", "--no-progress", "--output", "scores.csv",
            "--maps", "maps"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if main(argv) != 0:
            raise SystemExit("make_assets: grepq score failed")
    report = ["report", "scores.csv", "--out", "report", "--thumb-size", "200", "--no-progress",
              "--title", "grepq report of a toy run (random weights: the scores mean nothing)"]
    if main(report) != 0:
        raise SystemExit("make_assets: grepq report failed")
    return work / "report" / "index.html"


def make_report_assets(out: Path) -> None:
    """The toy run (:func:`toy_report`): its map of :data:`HALF_NOISED` and, with Chromium, the report's screenshot."""
    import json
    before, photos = Path.cwd(), (out / "photos").resolve()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "toy_run"
        work.mkdir()
        os.chdir(work)  # the page shows paths relative to where grepq score ran
        try:
            index = toy_report(work, photos)
        finally:
            os.chdir(before)
        maps = json.loads((work / "scores.meta.json").read_text())["maps"]["files"]
        shutil.copy(work / maps[f"photos/{HALF_NOISED}"]["png"], out / "quality_map_example.png")
        if chromium() is None:
            print("make_assets: skipped report_screenshot.png: no Chromium (apt-get install chromium)")
            return
        raw, opened = Path(tmp) / "shot.png", index.with_name("metadata_open.html")
        opened.write_text(index.read_text().replace("<details>", "<details open>", 1))  # show the run's metadata
        screenshot(opened, raw, Path(tmp) / "profile")
        Image.open(raw).convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT).save(
            out / "report_screenshot.png", optimize=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ROOT / "assets"), help="output folder (default: the repo's assets/)")
    out = Path(parser.parse_args().out)
    out.mkdir(parents=True, exist_ok=True)
    make_photos(out)
    make_gallery(out)
    make_report_assets(out)
    for p in sorted(out.rglob("*")):
        if p.is_file():
            print(f"{p.relative_to(out)}: {p.stat().st_size / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
