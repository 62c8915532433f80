"""LL training: image folders, the aligned fragment sampler, FSIM stored or computed, the LL task, NaN stop.

``make_training_set`` (also used by the other training tests) writes image folders in grepq's prepared layout:
``<name>_REF.png`` + 4 distorted versions + ``fsim.npy`` + ``versions.json`` (or the official layout: images only).
"""
import json
from pathlib import Path

import numpy as np
import piq
import pytest
import torch
from conftest import photo
from PIL import Image

from grepq.cli import main
from grepq.data.fragments import bilinear_resize, fragment_offsets, fragment_views, sample_fragments, sample_generator
from grepq.data.layout import DataError
from grepq.data.training_set import LLTrainingDataset
from grepq.parallel import DistInfo
from grepq.train import NonFiniteLossError, train
from grepq.train.schema import load_train_config
from grepq.train.tasks import LLTask

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")


def make_training_set(root, n=6, size=(72, 88), layout="prepared", seed=0):
    """n image folders of real photo crops (REF, 2 noise and 2 darkening levels); FSIM values random but valid."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    for i in range(n):
        name = f"img{i:02d}"
        base = photo(PHOTOS[i % len(PHOTOS)])
        y, x = rng.integers(0, base.shape[0] - size[0]), rng.integers(0, base.shape[1] - size[1])
        ref = base[y:y + size[0], x:x + size[1]]
        files = {f"{name}_REF.png": ref}
        for lvl in (1, 2):
            noisy = ref + rng.normal(0, 15 * lvl, ref.shape)
            files[f"{name}_noise_{lvl}.png"] = np.clip(noisy, 0, 255).astype(np.uint8)
            files[f"{name}_dark_{lvl}.png"] = (ref * (1 - 0.3 * lvl)).astype(np.uint8)
        d = root / name
        d.mkdir(parents=True, exist_ok=True)
        names = sorted(files)
        for f in names:
            Image.fromarray(files[f]).save(d / f)
        if layout == "prepared":
            m = rng.uniform(0.3, 0.95, (len(names), len(names)))
            m = (m + m.T) / 2
            np.fill_diagonal(m, 1.0)
            np.save(d / "fsim.npy", m)
            (d / "versions.json").write_text(json.dumps({"files": [{"file": f} for f in names]}))
    return root


def tiny_ll_overrides(data, run_dir, *extra):
    """LL settings that run in well under a second per step on a CPU (32 px fragments)."""
    return [f"data.root={data}", f"run.dir={run_dir}", "ll.grid=2", "ll.patch=16", "run.progress=false", *extra]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_training_set(tmp_path_factory.mktemp("lldata"), n=6)


# ---------------------------------------------------------------------------------------------------------------
# Fragment sampler


def test_fragments_are_224_and_small_images_are_upsampled():
    stack = torch.rand(3, 3, 64, 96)
    a, p, info = fragment_views(stack, sample_generator(0, 0, 0))
    assert a.shape == p.shape == (3, 3, 224, 224)
    assert info["size"] == (224, 336)                                      # short side 64 -> 224, aspect kept
    big = torch.rand(2, 3, 300, 260)
    a, _, info = fragment_views(big, sample_generator(0, 0, 0))
    assert a.shape == (2, 3, 224, 224) and info["size"] == (300, 260)     # no resize when large enough


def test_offsets_follow_the_official_grid_rule():
    h, w, g, p = 300, 250, 7, 32
    for k in range(5):
        top, left = fragment_offsets(h, w, g, p, sample_generator(1, 0, k))
        for i in range(g):
            start = min(h // g * i, h - p)
            assert ((top[i] >= start) & (top[i] < start + max(1, h // g - p))).all()
            start = min(w // g * i, w - p)
            assert ((left[:, i] >= start) & (left[:, i] < start + max(1, w // g - p))).all()
    # a cell of exactly the patch size (224 px image): no random offset
    top, left = fragment_offsets(224, 224, g, p, sample_generator(0, 0, 0))
    assert torch.equal(top[:, 0], torch.arange(7) * 32) and torch.equal(left[0], torch.arange(7) * 32)
    # a coordinate image shows the mini-patches are contiguous blocks from those corners
    rows = torch.arange(h, dtype=torch.float64).view(h, 1).expand(h, w)
    cols = torch.arange(w, dtype=torch.float64).view(1, w).expand(h, w)
    top, left = fragment_offsets(h, w, g, p, sample_generator(2, 0, 0))
    frag = sample_fragments(torch.stack([rows, cols, rows])[None], top, left, p)[0]
    for i in range(g):
        for j in range(g):
            block = frag[:, i * p:(i + 1) * p, j * p:(j + 1) * p]
            assert torch.equal(block[0], top[i, j] + torch.arange(p, dtype=torch.float64).view(p, 1).expand(p, p))
            assert torch.equal(block[1], left[i, j] + torch.arange(p, dtype=torch.float64).view(1, p).expand(p, p))


def test_views_are_aligned_and_flipped_alike_across_versions():
    base = torch.rand(3, 130, 170) * 0.5
    offsets = torch.tensor([0.0, 0.1, 0.25, 0.4])
    stack = base[None] + offsets.view(4, 1, 1, 1)          # versions = one image + a constant per version
    flips = set()
    for k in range(12):
        a, p, info = fragment_views(stack, sample_generator(0, 0, k))
        for v in range(4):  # the same pixels were taken from every version (and flipped the same way)
            assert torch.allclose(a[v] - a[0], offsets[v].expand_as(a[0]), atol=1e-6)
            assert torch.allclose(p[v] - p[0], offsets[v].expand_as(p[0]), atol=1e-6)
        up = bilinear_resize(stack, info["size"])
        ref = torch.nn.functional.interpolate(stack, size=info["size"], mode="bilinear", align_corners=False)
        assert torch.allclose(up, ref, atol=2e-5)
        expect = sample_fragments(up, *info["positive_offsets"], 32)
        expect = expect.flip(-1) if info["hflip"] else expect
        expect = expect.flip(-2) if info["vflip"] else expect
        assert torch.equal(p, expect)
        flips.add((info["hflip"], info["vflip"]))
    assert len(flips) >= 3  # both flips happen, independently


def test_samples_are_deterministic_per_seed_epoch_index(data):
    ds = LLTrainingDataset(data, seed=5)
    one, again, other_epoch = ds[(2, 3)], ds[(2, 3)], ds[(3, 3)]
    assert torch.equal(one["anchor"], again["anchor"]) and torch.equal(one["positive"], again["positive"])
    assert not torch.equal(one["anchor"], other_epoch["anchor"])
    def loader(w):
        return torch.utils.data.DataLoader(ds, batch_size=2, num_workers=w, sampler=[(2, i) for i in range(6)])
    a = [b["anchor"] for b in loader(0)]
    b = [b["anchor"] for b in loader(2)]
    assert all(torch.equal(x, y) for x, y in zip(a, b))   # worker count does not change the data


# ---------------------------------------------------------------------------------------------------------------
# Versions and FSIM


def test_versions_and_stored_fsim(data):
    stored = np.load(data / "img01" / "fsim.npy")
    names = [e["file"] for e in json.loads((data / "img01" / "versions.json").read_text())["files"]]
    ref = [i for i, n in enumerate(names) if "_REF" in n]
    keep = [i for i in range(len(names)) if i not in ref]
    paper = LLTrainingDataset(data, versions="distorted")[(0, 1)]
    assert paper["anchor"].shape[0] == 4 and paper["pair_weight"].shape == (4, 4)
    assert np.allclose(paper["pair_weight"].numpy(), stored[np.ix_(keep, keep)], atol=1e-7)
    official = LLTrainingDataset(data, versions="all")[(0, 1)]
    assert official["anchor"].shape == (5, 3, 224, 224)
    assert np.allclose(official["pair_weight"].numpy(), stored, atol=1e-7)


def test_official_layout_computes_fsim_with_piq(tmp_path):
    root = make_training_set(tmp_path / "official", n=1, size=(48, 56), layout="official")
    ds = LLTrainingDataset(root, versions="all", fsim_source="auto")
    s = ds[(0, 0)]["pair_weight"]
    assert s.shape == (5, 5) and torch.allclose(s, s.t()) and torch.all(s.diagonal() == 1)
    files = sorted((root / "img00").glob("*.png"))
    x = [torch.from_numpy(np.array(Image.open(f))).permute(2, 0, 1)[None].double() / 255 for f in files[:2]]
    assert float(s[1, 0]) == pytest.approx(float(piq.fsim(x[1], x[0], data_range=1.0)), abs=1e-6)
    with pytest.raises(DataError, match="no fsim.npy"):
        LLTrainingDataset(root, fsim_source="stored")[(0, 0)]


def test_bad_folders_are_clear_errors(tmp_path):
    root = make_training_set(tmp_path / "bad", n=2)
    np.save(root / "img00" / "fsim.npy", np.eye(3))
    with pytest.raises(DataError, match=r"img00.*fsim.npy.*\(5, 5\)"):
        LLTrainingDataset(root)[(0, 0)]
    Image.fromarray(np.zeros((10, 12, 3), np.uint8)).save(root / "img01" / "img01_noise_1.png")
    with pytest.raises(DataError, match="img01.*one size"):
        LLTrainingDataset(root)[(0, 1)]
    with pytest.raises(DataError, match="no such folder"):
        LLTrainingDataset(tmp_path / "nowhere")


# ---------------------------------------------------------------------------------------------------------------
# Task and engine


def _task(data, tmp_path, *extra):
    cfg = load_train_config("ll_tiny_cpu", tiny_ll_overrides(data, tmp_path / "run", *extra))
    torch.manual_seed(0)
    return cfg, LLTask(cfg, DistInfo())


@pytest.mark.parametrize("variant", ["paper", "official"])
def test_ll_task_reduces_the_loss_and_trains_every_parameter(data, tmp_path, variant):
    cfg, task = _task(data, tmp_path, f"ll.loss={variant}", "ll.lr=1e-3", "ll.versions=all")
    ds = task.build_dataset(data)
    batch = torch.utils.data.default_collate([ds[(0, i)] for i in range(2)])
    opt = task.make_optimizer()
    assert {id(p) for g in opt.param_groups for p in g["params"]} == {id(p) for p in task.model.parameters()}
    task.train_mode()
    losses = []
    for step in range(6):
        out = task.forward(batch)
        opt.zero_grad()
        out["loss"].backward()
        if step == 0:
            missing = [n for n, p in task.model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
            assert not missing, f"parameters without gradient: {missing}"
        opt.step()
        losses.append(float(out["loss"].detach()))
    assert losses[-1] < losses[0]


def test_nan_loss_stops_with_the_step(data, tmp_path, monkeypatch, capsys):
    real = LLTask.forward
    calls = {"n": 0}

    def forward(self, batch):
        out = real(self, batch)
        calls["n"] += 1
        if calls["n"] == 3:
            out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(LLTask, "forward", forward)
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss \(nan\) at step 3 \(epoch 0, batch 3\)"):
        train(load_train_config("ll_tiny_cpu", tiny_ll_overrides(data, tmp_path / "nan", "run.checkpoint_every=100")))
    calls["n"] = 0
    status = main(["train", "--config", "ll_tiny_cpu", *tiny_ll_overrides(data, tmp_path / "nan2")])
    assert status == 1 and "non-finite loss (nan) at step 3" in capsys.readouterr().err
    assert not (tmp_path / "nan2" / "ll_weights.pt").exists()


def test_pair_weight_none_is_infonce():
    """Table 4's "None" row: ll.pair_weight=none trains with s ≡ 0 whatever the stored FSIM."""
    import torch

    from grepq.losses import qacl
    from grepq.train.schema import load_train_config
    from grepq.train.tasks import LLTask
    cfg = load_train_config(None, ["ll.pair_weight=none", "ll.grid=2", "ll.patch=16", "run.device=cpu"])
    task = LLTask(cfg)
    g = torch.Generator().manual_seed(0)
    batch = {"anchor": torch.rand(2, 3, 3, 32, 32, generator=g), "positive": torch.rand(2, 3, 3, 32, 32, generator=g),
             "pair_weight": torch.full((2, 3, 3), 0.9)}
    task.model.eval()
    out = task.forward(batch)["loss"]
    with torch.no_grad():
        fa = task.model(batch["anchor"].flatten(0, 1)).view(2, 3, -1)
        fp = task.model(batch["positive"].flatten(0, 1)).view(2, 3, -1)
    assert abs(out.item() - qacl(fa, fp, torch.zeros(2, 3, 3)).item()) < 1e-5
    assert abs(out.item() - qacl(fa, fp, batch["pair_weight"]).item()) > 1e-3


def test_last_loss_is_the_last_epochs_mean_loss(data, tmp_path):
    """TrainResult.last_loss: the last epoch's mean loss as log.jsonl records it (not NaN after a finished run),
    and for a run stopped inside an epoch the mean of that epoch's steps."""
    done = train(load_train_config("ll_tiny_cpu", tiny_ll_overrides(data, tmp_path / "a", "ll.epochs=2",
                                                                    "run.log_every=1")))
    records = [json.loads(line) for line in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    epochs = [r for r in records if r["type"] == "epoch"]
    assert done.finished and len(epochs) == 2 and done.last_loss == pytest.approx(epochs[-1]["loss"], rel=1e-12)
    part = train(load_train_config("ll_tiny_cpu", tiny_ll_overrides(data, tmp_path / "b", "ll.epochs=2",
                                                                    "run.log_every=1", "run.max_steps=2")))
    steps = [r["loss"] for r in records if r["type"] == "step"][:2]
    assert not part.finished and part.last_loss == pytest.approx(sum(steps) / 2, rel=1e-12)
