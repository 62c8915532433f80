"""Parity with the official GRepQ code: run it and grepq on the CPU on the same random weights and images, and
regenerate docs/official-comparison.md with the grepq commit it ran at.

Usage::

    python benchmarks/official_parity.py --official /path/to/GRepQ [--doc docs/official-comparison.md]

``--official`` is a git checkout of the public repository ``suhas-srinath/GRepQ`` (never part of grepq, never copied
into it); the page names its commit as ``git -C DIR rev-parse HEAD`` gives it (a folder that is not the top of a git
work tree is refused, so the commit is never typed by hand). Nothing is downloaded and no file of that checkout or
of any installed package is edited; the official code's expectations are met at run time, in this process only,
and undone afterwards (:func:`official_runtime`):

* its ``HLModel`` calls ``clip.load("RN50")``: ``clip.load`` returns the float32 random RN50 made here (CLIP's own
  ``clip.model.CLIP``), as ``clip.load`` on a CPU would (no fp16 conversion there);
* its README asks users to delete the line of CLIP's ``AttentionPool2d.forward`` that adds the positional embedding:
  during each call the embedding is swapped for zeros of the right length (x + 0 = x, bit for bit);
* ``"cuda"`` and ``.cuda()``: ``Tensor.to("cuda")`` goes to the CPU and ``Tensor.cuda()`` / ``Module.cuda()``
  return the object itself;
* ``pandas`` (imported by its ``Evaluation/dataloader.py``, unused by the functions called here) is given an empty
  stand-in module when it is not installed.

Inputs, all made here: random weights (``bench_zero_shot.make_weights``: an LL model in the official ``.tar``
layout, a full-size RN50 as the CLIP weights, a second RN50's ``visual`` as the HL weights; BatchNorm statistics
re-estimated on scikit-image photographs), pristine images and test images from scikit-image.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import types
import warnings
from pathlib import Path
from typing import Dict, List

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_zero_shot as bz  # noqa: E402  (weights, photographs, the grepq CLI run, score comparison)

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "official-comparison.md"
#: Test photographs (scikit-image): name, file format. RGB only (the official single-image LL function does not
#: repeat a grey channel).
TEST_IMAGES = (("astronaut", "png"), ("coffee", "jpg"), ("chelsea", "png"), ("rocket", "png"),
               ("immunohistochemistry", "png"), ("motorcycle_left", "jpg"))
PRISTINE_IMAGES = ("astronaut", "coffee", "chelsea", "rocket")
#: Targets of docs/official-comparison.md (max absolute difference).
TARGETS = {"q_low": 1e-5, "q_high": 1e-5, "ll_features": 1e-4, "hl_embedding": 1e-4, "loss": 1e-6}


# ------------------------------------------------------------------------------------------------ inputs
def skimage_photo(name: str) -> np.ndarray:
    import skimage.data
    img = skimage.data.stereo_motorcycle()[0] if name == "motorcycle_left" else getattr(skimage.data, name)()
    return np.ascontiguousarray(img[:, :, :3])


def make_inputs(work: Path) -> Dict[str, Path]:
    """Weights (random, official formats), a pristine-image folder and a test-image folder under ``work``."""
    from PIL import Image
    bz.bench_inputs.use_skimage()  # scikit-image photographs only, on every machine
    paths = bz.make_weights(work / "weights")
    for folder, names in (("pristine_images", [(n, "png") for n in PRISTINE_IMAGES]), ("images", TEST_IMAGES)):
        (work / folder).mkdir(parents=True, exist_ok=True)
        for name, ext in names:
            Image.fromarray(skimage_photo(name)).save(work / folder / f"{name}.{ext}", quality=90)
        paths[folder] = work / folder
    return paths


# ------------------------------------------------------------------------------------------------ the official code
@contextlib.contextmanager
def official_runtime(official: Path, rn50: Path):
    """The official code importable and runnable on the CPU (module doc); everything is restored on exit."""
    import clip
    import clip.model
    saved = {"clip.load": clip.load, "pool": clip.model.AttentionPool2d.forward, "to": torch.Tensor.to,
             "tcuda": torch.Tensor.cuda, "mcuda": torch.nn.Module.cuda, "path": list(sys.path),
             "modules": set(sys.modules)}

    def local_load(name, device="cpu", jit=False, download_root=None):
        model = clip.model.CLIP(*bz.RN50_ARGS)
        model.load_state_dict(torch.load(rn50, map_location="cpu", weights_only=True), strict=True)
        return model.float().eval(), None

    def pool_without_positional_embedding(self, x):
        pe = self.positional_embedding
        self._parameters["positional_embedding"] = torch.nn.Parameter(
            torch.zeros(x.shape[2] * x.shape[3] + 1, pe.shape[1], dtype=pe.dtype), requires_grad=False)
        try:
            return saved["pool"](self, x)
        finally:
            self._parameters["positional_embedding"] = pe

    def to_cpu(self, *args, **kwargs):
        args = tuple("cpu" if isinstance(a, str) and a.startswith("cuda") else a for a in args)
        if isinstance(kwargs.get("device"), str) and kwargs["device"].startswith("cuda"):
            kwargs["device"] = "cpu"
        return saved["to"](self, *args, **kwargs)

    clip.load, clip.model.AttentionPool2d.forward = local_load, pool_without_positional_embedding
    torch.Tensor.to = to_cpu
    torch.Tensor.cuda = lambda self, *a, **k: self
    torch.nn.Module.cuda = lambda self, *a, **k: self
    if importlib.util.find_spec("pandas") is None:
        sys.modules["pandas"] = types.ModuleType("pandas")
    sys.path.insert(0, str(official))
    try:
        yield
    finally:
        clip.load, clip.model.AttentionPool2d.forward, torch.Tensor.to = saved["clip.load"], saved["pool"], saved["to"]
        torch.Tensor.cuda, torch.nn.Module.cuda = saved["tcuda"], saved["mcuda"]
        sys.path[:] = saved["path"]
        for name in set(sys.modules) - saved["modules"]:
            if name.split(".")[0] in ("networks", "losses", "Evaluation", "pandas"):
                del sys.modules[name]


class Recorder(torch.nn.Module):
    """Wraps a module and keeps its outputs (detached), so that the features compared are the ones the official
    functions computed."""

    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self.inner, self.outputs = inner, []

    def forward(self, x):
        out = self.inner(x)
        self.outputs.append(out.detach().clone())
        return out


def run_official(paths: Dict[str, Path], work: Path) -> Dict[str, object]:
    """Scores, features, prompt embeddings and pristine patches from the official functions."""
    from types import SimpleNamespace

    import clip
    import networks
    from Evaluation import zeroshot_hl_model as off_hl
    from Evaluation import zeroshot_ll_model as off_ll

    ll = networks.LLModel(encoder="resnet18", head="mlp")  # as the official test_zeroshot.py loads them
    ll.load_state_dict(torch.load(paths["ll"], weights_only=True)["model"]["state_dict"], strict=True)
    hl = networks.HLModel()
    hl.clip_model.visual.load_state_dict(torch.load(paths["hl"], weights_only=True), strict=False)
    ll, hl = ll.eval().requires_grad_(False), hl.eval().requires_grad_(False)
    ll_rec, hl_rec = Recorder(ll), Recorder(hl.image_encoder)
    hl.image_encoder = hl_rec
    cfg = SimpleNamespace(device="cpu", patch_size=bz.PATCH, sharpness_param=0.75, colorfulness_param=0.8,
                          pristine_img_dir=str(paths["pristine_images"]) + "/")
    cwd = work / "official_cwd"  # the official pristine() writes and reads its HDF5 in the working directory
    cwd.mkdir(exist_ok=True)
    here = os.getcwd()
    os.chdir(cwd)
    try:
        torch.manual_seed(0)
        patches = off_ll.pristine(cfg)
        out = {"pristine": patches.clone(), "hdf5": cwd / bz.OFFICIAL_HDF5, "scores": {}, "ll": {}, "hl": {}}
        for p in sorted(paths["images"].iterdir()):
            ll_rec.outputs.clear(), hl_rec.outputs.clear()
            q_low = off_ll.compute_niqe_distance_single_image(ll_rec, str(p), cfg)[0]
            q_high = off_hl.compute_hlm_score_single_image(hl, str(p))[0]
            out["scores"][p.name] = {"q_low": q_low, "q_high": q_high}
            out["ll"][p.name], out["hl"][p.name] = ll_rec.outputs[-1].squeeze(), hl_rec.outputs[-1][0]
        with torch.no_grad():
            out["text"] = hl.clip_model.encode_text(clip.tokenize(["A good photo.", "A bad photo."]))
    finally:
        os.chdir(here)
    return out


def official_losses() -> Dict[str, float]:
    """QACL (B=8, D=9, C=128) and GCL (M=16, C=128), official against grepq's official variants: max |difference|
    over randn and rand inputs, tau 0.5 and 0.1, in float32 and float64."""
    import losses as off

    from grepq.losses import gcl, qacl
    worst = {}
    for dtype in (torch.float32, torch.float64):
        for tau in (0.5, 0.1):
            for draw in (torch.randn, torch.rand):
                g = torch.Generator().manual_seed(3)
                a, p = draw(8, 9, 128, generator=g, dtype=dtype), draw(8, 9, 128, generator=g, dtype=dtype)
                s = torch.tril(torch.rand(8, 9, 9, generator=g, dtype=dtype), diagonal=-1)
                s = torch.exp(-(s + s.transpose(1, 2)))  # symmetric, diagonal 1 (the official test's stand-in)
                d_q = abs(float(off.weighted_contrastive_loss(a, p, tau, s, mode_in=True))
                          - float(qacl(a, p, s, temperature=tau, variant="official")))
                bad, good = draw(16, 128, generator=g, dtype=dtype), draw(16, 128, generator=g, dtype=dtype)
                ref = off.GroupContrastiveLoss(16, tau).to(dtype)(bad, good)
                d_g = abs(float(ref) - float(gcl(bad, good, temperature=tau, variant="official")))
                name = "float32" if dtype == torch.float32 else "float64"
                worst[f"qacl_{name}"] = max(worst.get(f"qacl_{name}", 0.0), d_q)
                worst[f"gcl_{name}"] = max(worst.get(f"gcl_{name}", 0.0), d_g)
    return worst


# ------------------------------------------------------------------------------------------------ grepq
def run_grepq(paths: Dict[str, Path], hdf5: Path) -> Dict[str, object]:
    """grepq's Python API on the same files (the official pristine HDF5)."""
    from grepq import GRepQ
    from grepq.data.io import read_image
    from grepq.scoring.zero_shot import hl_embeddings
    scorer = GRepQ.from_files(paths["ll"], paths["hl"], paths["clip"], hdf5, device="cpu")
    out = {"scores": {}, "ll": {}, "hl": {}, "text": scorer.hl.text_features.detach().clone()}
    with torch.no_grad():
        for p in sorted(paths["images"].iterdir()):
            img = read_image(p)
            row = scorer.score_image(img, p.name)
            out["scores"][p.name] = {"q_low": row.q_low, "q_high": row.q_high}
            out["ll"][p.name] = scorer.ll_patch_features([img])[0]
            out["hl"][p.name] = hl_embeddings(scorer.hl, img[None])[0].reshape(-1)
    return out


def same_patch_set(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether two (N, 3, R, R) sets hold the same patches, in any order."""
    def key(t):
        return sorted(hashlib.sha1(x.numpy().tobytes()).hexdigest() for x in t.float().contiguous())
    return a.shape == b.shape and key(a) == key(b)


def max_diff(a: Dict[str, torch.Tensor], b: Dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


# ------------------------------------------------------------------------------------------------ the run and the doc
def measure(official: Path, work: Path) -> Dict[str, object]:
    from grepq.scoring.pristine import select_pristine_patches
    paths = make_inputs(work)
    t0 = time.time()
    with official_runtime(official, paths["clip"]):
        off = run_official(paths, work)
        losses = official_losses()
    mine = run_grepq(paths, off["hdf5"])
    cli = {"images": paths["images"], "ll": paths["ll"], "pristine": off["hdf5"], "hl": paths["hl"],
           "clip": paths["clip"]}
    bz.run_grepq(cli, work / "grepq_cli.csv")
    cli_scores = bz.read_scores(work / "grepq_cli.csv")
    selected, _ = select_pristine_patches(paths["pristine_images"], progress=False)
    def comp(which):
        return max(abs(off["scores"][k][which] - s[k][which]) for s in (mine["scores"],) for k in s)
    res = {
        "q_low_api": comp("q_low"), "q_high_api": comp("q_high"),
        "q_low_cli": max(abs(off["scores"][k]["q_low"] - cli_scores[k]["q_low"]) for k in cli_scores),
        "q_high_cli": max(abs(off["scores"][k]["q_high"] - cli_scores[k]["q_high"]) for k in cli_scores),
        "ll_features": max_diff(off["ll"], mine["ll"]), "hl_embedding": max_diff(off["hl"], mine["hl"]),
        "ll_abs_max": max(float(v.abs().max()) for v in off["ll"].values()),
        "hl_abs_max": max(float(v.abs().max()) for v in off["hl"].values()),
        "ll_patches_max": max(int(v.shape[0]) for v in off["ll"].values()),
        "text": float((off["text"].double() - mine["text"].double()).abs().max()),
        "pristine_count": int(off["pristine"].shape[0]),
        "pristine_same_set": same_patch_set(off["pristine"], selected), **losses,
        "images": {p.name: list(__import__("PIL.Image", fromlist=["Image"]).open(p).size)
                   for p in sorted(paths["images"].iterdir())},
        "seconds": round(time.time() - t0, 1),
    }
    return res


class NotACheckout(ValueError):
    """The ``--official`` folder is not the top of a git work tree, so its commit cannot be read."""


def official_commit(official: Path) -> str:
    """``git -C official rev-parse HEAD``, with ``-dirty`` when tracked files differ from it. Raises
    :class:`NotACheckout` when ``official`` is not the top folder of a git work tree (a folder inside another
    repository would otherwise report that repository's commit)."""
    def git(*args):
        return subprocess.run(["git", "-C", str(official), *args], capture_output=True, text=True, timeout=30)

    top = git("rev-parse", "--show-toplevel")
    if top.returncode != 0 or Path(top.stdout.strip()).resolve() != Path(official).resolve():
        raise NotACheckout(f"{official}: not the top of a git checkout (git rev-parse --show-toplevel: "
                           f"{(top.stdout or top.stderr).strip() or 'nothing'}); clone suhas-srinath/GRepQ with git")
    rev = git("rev-parse", "HEAD")
    if rev.returncode != 0:
        raise NotACheckout(f"{official}: git rev-parse HEAD failed: {rev.stderr.strip()}")
    dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
    return rev.stdout.strip() + ("-dirty" if dirty else "")


def official_identity(official: Path) -> Dict[str, str]:
    files = ["networks.py", "losses.py", "Evaluation/zeroshot_ll_model.py", "Evaluation/zeroshot_hl_model.py",
             "Evaluation/compute_statistical_deviation.py", "Evaluation/dataloader.py"]
    h = hashlib.sha1()
    for f in files:
        h.update((official / f).read_bytes())
    return {"commit": official_commit(official), "files_sha1": h.hexdigest(),
            "files": ", ".join(f"`{f}`" for f in files)}


def _yes(value: float, target: float) -> str:
    return "yes" if value <= target else "**no**"


def render(res: Dict[str, object], grepq_rev: str, official: Dict[str, str], command: str) -> str:
    """docs/official-comparison.md from the measured numbers (every number in it comes from ``res``)."""
    def f(x):
        return "0" if x == 0 else f"{x:.1e}"
    t = TARGETS
    rows = [
        ("Q_L per image, Python API (`GRepQ.score_image`)", res["q_low_api"], t["q_low"]),
        ("Q_L per image, `grepq score` CLI", res["q_low_cli"], t["q_low"]),
        ("Q_H per image, Python API", res["q_high_api"], t["q_high"]),
        ("Q_H per image, `grepq score` CLI", res["q_high_cli"], t["q_high"]),
        (f"LL features (up to {res['ll_patches_max']} patches x 128; values up to {res['ll_abs_max']:.2g})",
         res["ll_features"], t["ll_features"]),
        (f"HL embedding (1024; values up to {res['hl_abs_max']:.3g})", res["hl_embedding"], t["hl_embedding"]),
        ("prompt embeddings (\"A good photo.\", \"A bad photo.\")", res["text"], None),
        ("QACL, official variant, float32 (tau 0.5 and 0.1)", res["qacl_float32"], t["loss"]),
        ("GCL, official variant, float32 (tau 0.5 and 0.1)", res["gcl_float32"], t["loss"]),
        ("QACL, float64", res["qacl_float64"], None),
        ("GCL, float64 (the official loss keeps tau as a float32 buffer)", res["gcl_float64"], None),
    ]
    table = "\n".join(f"| {name} | {f(v)} | {'—' if tgt is None else f(tgt)} | {'—' if tgt is None else _yes(v, tgt)} |"
                      for name, v, tgt in rows)
    images = ", ".join(f"{k} ({w}x{h})" for k, (w, h) in res["images"].items())
    met = all(v <= tgt for _, v, tgt in rows if tgt is not None) and res["pristine_same_set"]
    return f"""# grepq against the official GRepQ code: measured differences

**Every number on this page was written by `benchmarks/official_parity.py`** (the command below), which runs the
official code and grepq in one process on the CPU, on the same random weights and the same images, and regenerates
this file. grepq commit: `{grepq_rev}`. Official code: commit `{official['commit']}` (SHA-1 of the files used:
`{official['files_sha1']}`). All targets met: **{'yes' if met else 'no'}**.

## Measured differences (max absolute value over the {len(res['images'])} test images)

| quantity | max \\|official − grepq\\| | target | met |
|---|---|---|---|
{table}
| pristine patches: official `pristine(config)` vs grepq `select_pristine_patches` ({res['pristine_count']} patches from 4 photographs) | {'the same set' if res['pristine_same_set'] else '**different sets**'} | same set | {'yes' if res['pristine_same_set'] else '**no**'} |

Both sides score against the pristine HDF5 that the official `pristine(config)` wrote. The CLI rows run
`grepq score` as a separate process (installed, unedited `clip`).

## What was compared

| quantity | official code | grepq |
|---|---|---|
| Q_L per image (Eq. 5-6) | `compute_niqe_distance_single_image` | `GRepQ.score_image`; `grepq score` |
| Q_H per image (Eq. 2) | `compute_hlm_score_single_image` | the same two |
| LL features | the LL model's output inside the official single-image call (recorded) | `GRepQ.ll_patch_features(img)` |
| HL embedding | `model.image_encoder(...)` inside the official single-image call (recorded) | `grepq.scoring.zero_shot.hl_embeddings` |
| prompt embeddings | `clip_model.encode_text(clip.tokenize(["A good photo.", "A bad photo."]))` | `GRepQ.hl.text_features` |
| pristine patches | `pristine(config)` (its own random patch order) | `select_pristine_patches` (compared as sets) |
| QACL | `weighted_contrastive_loss(..., mode_in=True)`; B=8, D=9, C=128 | `grepq.losses.qacl(..., variant="official")` |
| GCL | `GroupContrastiveLoss(16, tau)`; M=16, C=128 | `grepq.losses.gcl(..., variant="official")` |

## How

- **Official code**: a checkout given with `--official` (files used: {official['files']}). It is never copied into
  grepq and no file is edited. What it expects is provided at run time, in the script's process only: `clip.load`
  returns the random float32 RN50 below; CLIP's attention-pool positional embedding is replaced by zeros during each
  call (the official README asks users to delete the line that adds it); `"cuda"` / `.cuda()` stay on the CPU; an
  empty `pandas` stand-in when pandas is not installed (only `Evaluation/dataloader.py` imports it). The models are
  loaded as the official `test_zeroshot.py` does (`strict=True` for LL, `visual.load_state_dict(strict=False)`
  for HL, then `eval()`).
- **Weights**, random (`benchmarks/bench_zero_shot.make_weights`): LL = the grepq LL model (seed 0) saved in the
  official 246-key `.tar` layout; CLIP = a full-size RN50 `clip.model.CLIP(1024, 224, (3,4,6,3), 64, None, 77,
  49408, 512, 8, 12)` (seed 1) as a state dict; HL = the `visual` state dict of a second RN50 (seed 2). Every
  BatchNorm has random γ, β and running statistics re-estimated on scikit-image photographs.
- **Images** (scikit-image, RGB): test images {images}; pristine images astronaut, coffee, chelsea, rocket (PNG).
- **Losses**: `randn` and `rand` features; the FSIM stand-in is symmetric `exp(-U)` with diagonal 1, as in the
  official test.
- **Machine**: {platform.machine()}, Python {platform.python_version()}, torch {torch.__version__}, CPU,
  {torch.get_num_threads()} threads; the run took {res['seconds']} s.

## Reproducing

```bash
{command}
```
"""


def main(argv: List[str] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--official", required=True, type=Path,
                    help="git checkout of suhas-srinath/GRepQ (its commit is read with git rev-parse HEAD)")
    ap.add_argument("--workdir", type=Path, help="keep the weights and images here (default: a temporary folder)")
    ap.add_argument("--doc", type=Path, default=DOC, help="the page to write (default: %(default)s)")
    ap.add_argument("--json", type=Path, help="also write the measured numbers as JSON")
    args = ap.parse_args(argv)
    if not (args.official / "networks.py").is_file():
        ap.error(f"{args.official}: not a checkout of the official GRepQ code (no networks.py)")
    try:
        official_commit(args.official)  # refuse before the measurement, not after it
    except NotACheckout as exc:
        ap.error(str(exc))
    warnings.filterwarnings("ignore")
    from grepq.version import git_revision
    with tempfile.TemporaryDirectory(prefix="grepq-parity-") as tmp:
        work = args.workdir or Path(tmp)
        res = measure(args.official.resolve(), work)
    command = "python benchmarks/official_parity.py --official /path/to/GRepQ"
    text = render(res, git_revision(), official_identity(args.official), command)
    args.doc.write_text(text, encoding="utf-8")
    if args.json:
        args.json.write_text(json.dumps(res, indent=1) + "\n")
    print(json.dumps({k: v for k, v in res.items() if k != "images"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
