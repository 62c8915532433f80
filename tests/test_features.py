"""Feature extraction for evaluation: the same numbers as the scorer, cached, resumable, keyed by weights."""
import numpy as np
import pytest
import torch
from conftest import make_ll

from grepq import GRepQ
from grepq.eval import features as fx
from grepq.models.high_level import HighLevelModel


@pytest.fixture(scope="module")
def scorer(small_clip, ll_model, pristine_patches):
    import copy
    return GRepQ.from_files(ll_weights=ll_model, hl_weights=HighLevelModel(copy.deepcopy(small_clip)),
                            pristine=pristine_patches,
                 progress=False)


def test_features_match_scorer_and_official_whole_image_forward(scorer, photo_dir, tmp_path):
    paths = sorted(photo_dir.glob("*.png"))
    fs = fx.extract_features(scorer, paths, cache_dir=tmp_path, name="photos", progress=False)
    rows = scorer.score(paths)
    assert np.allclose(fs.q_low, [r.q_low for r in rows], atol=1e-7)
    assert np.allclose(fs.q_high, [r.q_high for r in rows], atol=1e-7)
    assert fs.hl.shape == (4, 64) and fs.ll.shape == (4, 128) and fs.matrix().shape == (4, 192)
    from grepq.data.io import read_image
    with torch.no_grad():
        whole = scorer.ll(read_image(paths[1])[None])[0].numpy()
    assert np.allclose(fs.ll[1], whole, atol=1e-6)


def test_cache_is_reused_and_resumes(scorer, photo_dir, tmp_path, monkeypatch):
    paths = sorted(photo_dir.glob("*.png"))
    calls = []
    orig = scorer.compute
    monkeypatch.setattr(scorer, "compute",
                        lambda imgs, features=False, **kw: calls.extend([1] * len(imgs)) or orig(imgs, features, **kw))
    first = fx.extract_features(scorer, paths[:2], cache_dir=tmp_path, name="p", save_every=1, progress=False)
    assert len(calls) == 2
    # an interrupted run of all four left the first two parts: only the other two are computed
    part_dir = first.cache_dir
    full = fx.extract_features(scorer, paths, cache_dir=tmp_path, name="p", save_every=1, progress=False)
    assert full.cache_dir != part_dir  # the image list is part of the key
    calls.clear()
    again = fx.extract_features(scorer, paths, cache_dir=tmp_path, name="p", save_every=1, progress=False)
    assert calls == [] and np.array_equal(again.hl, full.hl) and np.array_equal(again.q_low, full.q_low)
    # simulate a kill: drop the last part file and leave a stray temp file
    parts = sorted(full.cache_dir.glob("part-*.npz"))
    parts[-1].unlink()
    (full.cache_dir / ".tmp-999.npz").write_bytes(b"partial")
    resumed = fx.extract_features(scorer, paths, cache_dir=tmp_path, name="p", save_every=1, progress=False)
    assert len(calls) == 1 and np.array_equal(resumed.ll, full.ll)


def test_other_weights_get_another_cache(scorer, photo_dir, tmp_path, pristine_patches):
    paths = sorted(photo_dir.glob("*.png"))[:1]
    a = fx.extract_features(scorer, paths, cache_dir=tmp_path, progress=False)
    other = GRepQ.from_files(ll_weights=make_ll(seed=9), components=["ll"], pristine=pristine_patches, progress=False)
    b = fx.extract_features(other, paths, cache_dir=tmp_path, progress=False)
    assert a.cache_dir != b.cache_dir and b.hl is None and not np.allclose(a.ll, b.ll)


def test_unreadable_image_recorded_or_raised(scorer, photo_dir, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"nope")
    paths = [sorted(photo_dir.glob("*.png"))[0], bad]
    with pytest.raises(OSError, match="bad.png"):
        fx.extract_features(scorer, paths, progress=False)
    fs = fx.extract_features(scorer, paths, progress=False, on_error="record")
    assert fs.failed[0][0] == str(bad) and np.isnan(fs.q_low[1]) and not np.isnan(fs.q_low[0])
