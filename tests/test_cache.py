"""The scoring-constants cache (grepq.scoring.cache, issue 14 item 1): same bits with and without it, the text
transformer and the pristine file untouched when warm, stale and corrupt entries recomputed, nothing unpickled."""
import json
import warnings

import numpy as np
import pytest
import torch

from conftest import make_clip, photo
from grepq import GRepQ
from grepq.api import ScoringSettings
from grepq.cli import main
from grepq.models import high_level as hlm
from grepq.models.low_level import save_low_level
from grepq.scoring import pristine as pr
from grepq.scoring.cache import ConstantsCache, default_cache_dir


@pytest.fixture(scope="module")
def files(tmp_path_factory, ll_model, small_clip, pristine_patches):
    d = tmp_path_factory.mktemp("cache_weights")
    save_low_level(ll_model, d / "ll.tar", fmt="official")
    torch.save(make_clip(seed=5).visual.state_dict(), d / "hl.pth")
    torch.save(small_clip.state_dict(), d / "clip.pt")
    pr.write_pristine_hdf5(pristine_patches, d / "pristine.hdf5")
    return d


@pytest.fixture(scope="module")
def image():
    return torch.from_numpy(photo("coffee", (200, 260))).permute(2, 0, 1).float() / 255


def scorer(files, cache, **kw):
    return GRepQ.from_files(ll_weights=files / "ll.tar", hl_weights=files / "hl.pth", clip_weights=files / "clip.pt",
                            pristine=files / "pristine.hdf5", cache=cache, progress=False, **kw)


def entries(root, kind):
    return sorted(root.glob(f"{kind}-*.npz"))


def test_warm_cache_gives_the_same_bits_without_text_tower_or_pristine_file(files, image, tmp_path, monkeypatch):
    reference = scorer(files, cache=False).score_image(image)
    cold = scorer(files, cache=tmp_path).score_image(image)
    assert len(entries(tmp_path, "pristine-stats")) == 1 and len(entries(tmp_path, "prompt-embeddings")) == 1

    def forbidden(*a, **k):
        raise AssertionError("must not run with a warm cache")

    monkeypatch.setattr(hlm, "build_clip", forbidden)        # the text transformer is never built
    monkeypatch.setattr(hlm, "clip_state_dict", forbidden)   # nor the CLIP file read
    monkeypatch.setattr("grepq.api.read_pristine_hdf5", forbidden)
    warm_scorer = scorer(files, cache=tmp_path)
    warm = warm_scorer.score_image(image)
    assert (warm.q_low, warm.q_high) == (cold.q_low, cold.q_high) == (reference.q_low, reference.q_high)
    with pytest.raises(AssertionError, match="warm cache"):  # reading the patches is possible, on demand
        warm_scorer.pristine_patches


def test_corrupt_or_foreign_entries_are_recomputed(files, image, tmp_path, caplog):
    first = scorer(files, cache=tmp_path).score_image(image)
    stats = entries(tmp_path, "pristine-stats")[0]
    raw = bytearray(stats.read_bytes())
    raw[len(raw) // 2] ^= 0xFF                                  # a flipped byte inside the arrays
    stats.write_bytes(bytes(raw))
    again = scorer(files, cache=tmp_path).score_image(image)
    assert "recomputing" in caplog.text
    assert (again.q_low, again.q_high) == (first.q_low, first.q_high)


def test_an_entry_under_another_keys_name_is_refused(tmp_path, caplog):
    cache = ConstantsCache(tmp_path)
    a = cache.save("pristine-stats", {"ll": "a"}, {"mean": np.zeros((1, 4), np.float32)})
    a.replace(cache.path("pristine-stats", {"ll": "b"}))
    assert cache.load("pristine-stats", {"ll": "b"}) is None and "another key" in caplog.text
    assert cache.load("pristine-stats", {"ll": "a"}) is None  # (moved away: nothing there)
    cache.save("pristine-stats", {"ll": "a"}, {"mean": np.ones((1, 4), np.float32)})
    assert np.array_equal(cache.load("pristine-stats", {"ll": "a"})["mean"], np.ones((1, 4), np.float32))


def test_entries_never_unpickle(tmp_path):
    cache = ConstantsCache(tmp_path)
    np.savez(cache.path("prompt-embeddings", {"a": 1}), text_features=np.array([object()], dtype=object))
    assert cache.load("prompt-embeddings", {"a": 1}) is None      # allow_pickle=False: refused, deleted
    assert not cache.path("prompt-embeddings", {"a": 1}).exists()


def test_key_follows_weights_and_settings_and_file_memo_follows_the_file(files, image, tmp_path, ll_model):
    scorer(files, cache=tmp_path).pristine_stats
    scorer(files, cache=tmp_path, chunk_size=5).pristine_stats       # rounding-only setting: its own entry
    assert len(entries(tmp_path, "pristine-stats")) == 2
    other = tmp_path / "weights"
    other.mkdir()
    for name in ("hl.pth", "clip.pt", "pristine.hdf5"):
        (other / name).symlink_to(files / name)
    with torch.no_grad():
        changed = type(ll_model)().eval()
    save_low_level(changed, other / "ll.tar", fmt="official")
    scorer(other, cache=tmp_path).pristine_stats
    assert len(entries(tmp_path, "pristine-stats")) == 3
    memo = json.loads((tmp_path / "files.json").read_text())
    assert {k.rsplit("|", 1)[1] for k in memo} == {"ll", "pristine", "clip-text"}
    # the same content written again (new date): fingerprinted again, same key, no new entry
    save_low_level(changed, other / "ll.tar", fmt="official")
    scorer(other, cache=tmp_path).pristine_stats
    assert len(entries(tmp_path, "pristine-stats")) == 3


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("GREPQ_CACHE_DIR", str(tmp_path / "a"))
    assert default_cache_dir() == tmp_path / "a"
    monkeypatch.delenv("GREPQ_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "grepq"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_dir() == tmp_path / "home" / ".cache" / "grepq"


def test_cli_cache_dir_and_no_cache(files, photo_dir, tmp_path, monkeypatch):
    base = ["score", str(photo_dir), "--ll-weights", str(files / "ll.tar"), "--hl-weights", str(files / "hl.pth"),
            "--clip-weights", str(files / "clip.pt"), "--pristine", str(files / "pristine.hdf5")]
    monkeypatch.setenv("GREPQ_CACHE_DIR", str(tmp_path / "env"))
    assert main(base + ["--no-cache", "-o", str(tmp_path / "a.csv")]) == 0
    assert not (tmp_path / "env").exists()
    assert main(base + ["--cache-dir", str(tmp_path / "mine"), "-o", str(tmp_path / "b.csv")]) == 0
    assert entries(tmp_path / "mine", "pristine-stats") and not (tmp_path / "env").exists()
    assert (tmp_path / "a.csv").read_text() == (tmp_path / "b.csv").read_text()


# ---------------------------------------------------------------------------------------- GRepQ's constructors
def test_models_and_settings_constructor_and_deprecated_keywords(files, image, ll_model, pristine_patches):
    settings = ScoringSettings(components=("low",), chunk_size=16, progress=False)
    direct = GRepQ(ll_model, None, pristine_patches, settings)
    with pytest.warns(DeprecationWarning, match="from_files"):
        legacy = GRepQ(ll_weights=files / "ll.tar", components=["low"], pristine=pristine_patches, chunk_size=16,
                       progress=False, cache=False)
    assert direct.score_image(image).q_low == legacy.score_image(image).q_low
    assert direct.fingerprints()["ll"] == legacy.fingerprints()["ll"]
    with pytest.raises(ValueError, match="components"):
        ScoringSettings(components=("middle",))
    with pytest.raises(ValueError, match="chunk_size"):
        ScoringSettings(chunk_size=0)
    with pytest.raises(ValueError, match="amp"):
        GRepQ(ll_model, None, pristine_patches, ScoringSettings(components=("low",), amp="fp8"))


def test_old_module_paths_warn_and_are_the_new_modules():
    import importlib
    import sys
    from grepq.scoring import zero_shot
    for old, new in (("grepq.eval.zero_shot", zero_shot), ("grepq.eval.pristine", pr)):
        sys.modules.pop(old, None)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            mod = importlib.import_module(old)
        assert mod is new and any(issubclass(w.category, DeprecationWarning) for w in caught)


def test_eq2_is_one_function(small_clip, monkeypatch):
    from grepq.losses import pseudo_quality
    assert pseudo_quality is hlm.pseudo_quality
    hl = hlm.HighLevelModel(small_clip)
    calls = []
    monkeypatch.setattr(hlm, "pseudo_quality", lambda g, b, k2: calls.append(k2) or torch.zeros_like(g))
    hl.quality_from_embedding(torch.randn(3, hl.embed_dim))
    assert calls == [10.0]
