"""Zero-shot scores against the official pipeline's computation (docs/method.md §4).

The official evaluation cannot run here as released (it hard-codes "cuda" and needs CLIP's installed source
edited), so the reference below follows its steps as they stand in the official code (commit 61dd615),
written out independently: ``ToTensor`` of the RGB file, the three-``unfold`` patch extraction, the NIQE module's
mean/covariance/inverse, ``1 - 1/(1 + exp(-d/100))``; and for Q_H, CLIP's own image-encoder forward with the
positional-embedding line removed, ``F.cosine_similarity`` against the prompt embeddings and
``1/(1 + exp(10 (cos_bad - cos_good)))``. Models are randomly initialised stand-ins loaded through the official
file formats.
"""
import copy
import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import photo
from PIL import Image

from grepq import GRepQ
from grepq.api import ScoringSettings
from grepq.data.io import CLIP_MEAN, CLIP_STD
from grepq.models.low_level import official_state_dict
from grepq.scoring import pristine as pr
from grepq.scoring import zero_shot as zs
from grepq.scoring.settings import default_hdf5_name

TOL_SCORE = 1e-5
TOL_FEAT = 1e-4


# ----------------------------------------------------------------------------- the official computation, step by step
def official_read(path):
    x = torch.from_numpy(np.array(Image.open(path))).permute(2, 0, 1).float() / 255.0   # ToTensor of an RGB file
    return x


def official_patches(x, ps=96):
    x = x.unsqueeze(0)
    x = x.unfold(-3, x.size(-3), x.size(-3)).unfold(-3, ps, int(ps / 2)).unfold(-3, ps, int(ps / 2)).squeeze(1)
    x = x.contiguous().view(x.size(0), x.size(1) * x.size(2), x.size(3), x.size(4), x.size(5))
    return x.view(-1, x.size(-3), x.size(-2), x.size(-1)), x


def official_cov(t, mu):
    t = t - mu
    return (1 / (t.shape[-2] - 1)) * t.transpose(-1, -2) @ t


def official_q_low(model, pristine_patches, img):
    with torch.no_grad():
        p = model(pristine_patches).squeeze().unsqueeze(0)
        mu_r = p.mean(dim=-2, keepdim=True)
        sigma_r = official_cov(p, mu_r)
        eye = 0.001 * torch.eye(p.size(-1)).unsqueeze(0)
        patches, x = official_patches(img)
        feats = model(patches).squeeze().view(x.size(0), x.size(1), -1)
        mu_t = feats.mean(dim=-2, keepdim=True)
        sigma_t = official_cov(feats, mu_t)
        diff = mu_r - mu_t
        fit = diff @ torch.linalg.inv((sigma_r + sigma_t) / 2 + eye) @ diff.transpose(-2, -1)
        d = torch.sqrt(fit).squeeze()
        return (1.0 - 1 / (1 + torch.exp(-d / 100.0))).item(), feats[0]


def official_q_high(clip_model, visual_sd, img):
    model = copy.deepcopy(clip_model)
    model.visual.load_state_dict(visual_sd)
    h, w = img.shape[-2:]
    c = model.visual.attnpool.positional_embedding.shape[1]
    # "comment out" x = x + positional_embedding: add zeros of the sequence's length instead
    model.visual.attnpool.positional_embedding = torch.nn.Parameter(torch.zeros((h // 32) * (w // 32) + 1, c))
    model.eval()
    with torch.no_grad():
        text = model.encode_text(__import__("clip").tokenize(["A good photo.", "A bad photo."])).unsqueeze(0)
        x = ((img - torch.tensor(CLIP_MEAN).view(3, 1, 1)) / torch.tensor(CLIP_STD).view(3, 1, 1)).unsqueeze(0)
        feats = model.visual(x).unsqueeze(1)
        score = F.cosine_similarity(feats, text, dim=-1)
        return (1 / (1 + torch.exp(10.0 * (score[:, 1] - score[:, 0])))).item(), feats[0, 0]


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def weights(tmp_path_factory, ll_model, small_clip):
    from conftest import make_clip
    d = tmp_path_factory.mktemp("weights")
    torch.save({"model": {"state_dict": official_state_dict(ll_model)}, "optimizer": {"state_dict": {}},
                "current_iteration": 1}, d / "low_level_model_weights.tar")
    hl_trained = make_clip(seed=7)  # a "fine-tuned" image encoder different from the CLIP one
    torch.save(hl_trained.visual.state_dict(), d / "high_level_model_weights.pth")
    torch.save(small_clip.state_dict(), d / "clip_state_dict.pt")
    return d


@pytest.fixture(scope="module")
def scorer(weights, pristine_patches):
    return GRepQ.from_files(ll_weights=weights / "low_level_model_weights.tar",
                            hl_weights=weights / "high_level_model_weights.pth",
                            clip_weights=weights / "clip_state_dict.pt", pristine=pristine_patches, progress=False)


def test_scores_and_features_match_official_pipeline(scorer, weights, photo_dir, ll_model, small_clip,
                                                     pristine_patches):
    rows = scorer.score(photo_dir)
    assert [r.image for r in rows] == [str(p) for p in sorted(photo_dir.glob("*.png"))]
    visual_sd = torch.load(weights / "high_level_model_weights.pth")
    for row in rows:
        img = official_read(row.image)
        q_low, ll_feats = official_q_low(ll_model, pristine_patches, img)
        q_high, hl_feat = official_q_high(small_clip, visual_sd, img)
        assert abs(row.q_low - q_low) < TOL_SCORE
        assert abs(row.q_high - q_high) < TOL_SCORE
        assert row.q_total == pytest.approx(row.q_low + row.q_high, abs=1e-12)
        ours_ll = scorer.ll_patch_features([img])[0]
        assert ours_ll.shape == ll_feats.shape and (ours_ll - ll_feats).abs().max() < TOL_FEAT
        ours_hl = zs.hl_embeddings(scorer.hl, img[None])[0]
        assert (ours_hl - hl_feat).abs().max() < TOL_FEAT
    # the scores differ between images (the check above is not vacuous)
    assert len({round(r.q_low, 6) for r in rows}) == len(rows)


def test_chunking_gives_the_same_features(scorer):
    img = torch.from_numpy(photo("astronaut")).permute(2, 0, 1).float() / 255
    one = zs.ll_patch_features(scorer.ll, [img], chunk=10_000)[0]
    small = zs.ll_patch_features(scorer.ll, [img], chunk=7)[0]
    assert one.shape == (((512 - 96) // 48 + 1) ** 2, 128)
    assert torch.allclose(one, small, atol=1e-5)


def test_pristine_statistics_computed_once(scorer, monkeypatch):
    _ = scorer.pristine_stats
    calls = []
    monkeypatch.setattr(zs, "fit_gaussian", lambda f, _orig=zs.fit_gaussian: calls.append(f.shape[0]) or _orig(f))
    img = torch.rand(3, 150, 200)
    scorer.score([img, img])
    assert len(calls) == 2 and all(n == 2 * 3 for n in calls)  # one fit per image, none for the pristine set


def test_small_images(scorer):
    tiny = torch.rand(3, 40, 60)
    row = scorer.score_image(tiny)
    assert 0 < row.q_low < 1 and 0 < row.q_high < 1
    up = zs.ensure_min_size(tiny)
    assert min(up.shape[-2:]) == 144 and up.shape[-1] == 216
    ok = torch.rand(3, 96, 150)  # two patches: scored as it is, as the official code would
    assert zs.ensure_min_size(ok) is ok
    strict = copy.copy(scorer)
    strict.settings = dataclasses.replace(scorer.settings, small_image="error")
    with pytest.raises(ValueError, match="fewer than two"):
        strict.score_image(tiny)


def test_pos_embedding_modes_change_q_high(weights, pristine_patches):
    img = torch.from_numpy(photo("coffee")).permute(2, 0, 1).float() / 255
    out = {}
    for mode in ("drop", "interpolate", "keep"):
        s = GRepQ.from_files(hl_weights=weights / "high_level_model_weights.pth",
                             clip_weights=weights / "clip_state_dict.pt",
                             components=["hl"], pos_embedding=mode, progress=False)
        out[mode] = s.score_image(img).q_high
    assert len({round(v, 7) for v in out.values()}) == 3


def test_missing_weights_are_errors(weights, pristine_patches):
    with pytest.raises(ValueError, match="--hl-weights"):
        GRepQ.from_files(ll_weights=weights / "low_level_model_weights.tar", pristine=pristine_patches)
    with pytest.raises(ValueError, match="pristine"):
        GRepQ.from_files(ll_weights=weights / "low_level_model_weights.tar", components=["ll"])
    with pytest.raises(FileNotFoundError, match="missing.hdf5"):
        GRepQ.from_files(ll_weights=weights / "low_level_model_weights.tar", components=["ll"],
                         pristine=weights / "missing.hdf5")


# ----------------------------------------------------------------------------- pristine selection and HDF5
def official_select(img, p_sharp=0.75, p_color=0.80, ps=96):
    """Per-patch loops as the official select_patches / select_colorful_patches, on non-overlapping patches."""
    patches = img.unsqueeze(0).unfold(1, 3, 3).unfold(2, ps, ps).unfold(3, ps, ps).contiguous().view(-1, 3, ps, ps)
    coords = torch.arange(7, dtype=torch.float32) - 3
    g = torch.exp(-(coords[None] ** 2 + coords[:, None] ** 2) / (2 * (7 / 6) ** 2))
    k = (g / g.sum()).view(1, 1, 7, 7)
    sharp = []
    for p in patches:
        grey = (0.2989 * p[0] + 0.587 * p[1] + 0.114 * p[2])[None, None]
        mu = F.conv2d(grey, k, padding=3)
        sharp.append(((F.conv2d(grey ** 2, k, padding=3) - mu ** 2).abs().sqrt()).sum().item())
    kept = [p for p, s in zip(patches, sharp) if s > p_sharp * max(sharp)]
    col = []
    for p in kept:
        rg, yb = (p[0] - p[1]).abs(), (0.5 * (p[0] + p[1]) - p[2]).abs()
        col.append((torch.sqrt(rg.std() ** 2 + yb.std() ** 2) + torch.sqrt(rg.mean() ** 2 + yb.mean() ** 2)).item())
    return torch.stack([p for p, c in zip(kept, col) if c > p_color * max(col)])


def test_pristine_selection_matches_official_rule(tmp_path):
    for name in ("astronaut", "coffee"):
        Image.fromarray(photo(name)).save(tmp_path / f"{name}.png")
    (tmp_path / "tiny.png").write_bytes(b"")  # unreadable: reported, not fatal
    Image.fromarray(photo("coffee", (50, 50))).save(tmp_path / "small.png")  # smaller than a patch
    patches, skipped = pr.select_pristine_patches(tmp_path, progress=False)
    expect = torch.cat([official_select(official_read(tmp_path / f"{n}.png")) for n in ("astronaut", "coffee")])
    assert patches.shape == expect.shape and torch.equal(patches, expect)
    assert {p.split("/")[-1] for p, _ in skipped} == {"tiny.png", "small.png"}
    out = pr.write_pristine_hdf5(patches, tmp_path / default_hdf5_name())
    assert out.name == "pristine_patches_096_0.75_0.80.hdf5"
    assert torch.equal(pr.read_pristine_hdf5(out), patches)


def test_pristine_hdf5_validation(tmp_path):
    import h5py
    with h5py.File(tmp_path / "wrong_key.hdf5", "w") as f:
        f.create_dataset("patches", data=np.zeros((4, 3, 96, 96), np.float32))
    with pytest.raises(ValueError, match="wrong_key.hdf5.*'data'"):
        pr.read_pristine_hdf5(tmp_path / "wrong_key.hdf5")
    with h5py.File(tmp_path / "shape.hdf5", "w") as f:
        f.create_dataset("data", data=np.zeros((4, 96, 96, 3), np.float32))
    with pytest.raises(ValueError, match=r"shape.hdf5.*\(N, 3, R, R\)"):
        pr.read_pristine_hdf5(tmp_path / "shape.hdf5")
    with h5py.File(tmp_path / "range.hdf5", "w") as f:
        f.create_dataset("data", data=np.full((4, 3, 96, 96), 255, np.float32))
    with pytest.raises(ValueError, match=r"range.hdf5.*\[0, 1\]"):
        pr.read_pristine_hdf5(tmp_path / "range.hdf5")
    (tmp_path / "text.hdf5").write_text("hello")
    with pytest.raises(ValueError, match="text.hdf5"):
        pr.read_pristine_hdf5(tmp_path / "text.hdf5")


# ---------------------------------------------------------------------------------------- GRepQ's constructors
def test_models_and_settings_constructor(weights, ll_model, pristine_patches):
    image = torch.from_numpy(photo("coffee", (200, 260))).permute(2, 0, 1).float() / 255
    settings = ScoringSettings(components=("ll",), chunk_size=16, progress=False)
    direct = GRepQ(ll_model, None, pristine_patches, settings)
    from_files = GRepQ.from_files(ll_weights=weights / "low_level_model_weights.tar", components=["ll"],
                                  pristine=pristine_patches, chunk_size=16, progress=False, cache=False)
    assert direct.score_image(image).q_low == from_files.score_image(image).q_low
    assert direct.fingerprints()["ll"] == from_files.fingerprints()["ll"]
    assert direct.settings is settings
    with pytest.raises(TypeError, match="from_files"):
        GRepQ(weights / "low_level_model_weights.tar")
    with pytest.raises(ValueError, match="components"):
        ScoringSettings(components=("middle",))
    with pytest.raises(ValueError, match="chunk_size"):
        ScoringSettings(chunk_size=0)
    with pytest.raises(ValueError, match="amp"):
        GRepQ(ll_model, None, pristine_patches, ScoringSettings(components=("ll",), amp="fp8"))


def test_missing_weights_name_where_the_released_files_are():
    """Every path to a scorer (score, fit, eval, reproduce, Python) ends in GRepQ: a missing model or pristine set is
    an error that says where the released files come from."""
    from grepq.api import GRepQ
    from grepq.scoring.settings import ScoringSettings
    for comps, what in ((("ll",), "low_level_model_weights.tar"), (("hl",), "high_level_model_weights.pth")):
        with pytest.raises(ValueError, match=f"{what} is linked from the official README.*suhas-srinath/GRepQ"):
            GRepQ(None, None, None, ScoringSettings(components=comps))
