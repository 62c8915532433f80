"""The scoring-constants cache (grepq.scoring.cache, issue 14 item 1): same bits with and without it, the text
transformer and the pristine file untouched when warm, stale and corrupt entries recomputed, nothing unpickled."""
import json

import numpy as np
import pytest
import torch
from conftest import make_clip, photo

from grepq import GRepQ
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
    memo = json.loads((tmp_path / "files.json").read_text())
    assert sorted(k.rsplit("|", 1)[1] for k in memo) == ["clip-text", "ll", "pristine"]

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


def test_a_corrupt_entry_is_recomputed(files, image, tmp_path, caplog):
    first = scorer(files, cache=tmp_path, components=("ll",)).score_image(image)
    stats = entries(tmp_path, "pristine-stats")[0]
    raw = bytearray(stats.read_bytes())
    raw[len(raw) // 2] ^= 0xFF                                  # a flipped byte inside the arrays
    stats.write_bytes(bytes(raw))
    again = scorer(files, cache=tmp_path, components=("ll",)).score_image(image)
    assert "recomputing" in caplog.text
    assert again.q_low == first.q_low
    assert ConstantsCache(tmp_path).load("pristine-stats", {"x": 0}) is None  # (no entry: None, no error)
    assert len(entries(tmp_path, "pristine-stats")) == 1                        # the entry was written again


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


def test_key_follows_weights_and_settings_and_file_memo_follows_the_file(files, tmp_path, ll_model):
    low = {"components": ("ll",)}
    scorer(files, cache=tmp_path, **low).pristine_stats
    scorer(files, cache=tmp_path, chunk_size=5, **low).pristine_stats       # rounding-only setting: its own entry
    assert len(entries(tmp_path, "pristine-stats")) == 2
    other = tmp_path / "weights"
    other.mkdir()
    for name in ("hl.pth", "clip.pt", "pristine.hdf5"):
        (other / name).symlink_to(files / name)
    with torch.no_grad():
        changed = type(ll_model)().eval()
    save_low_level(changed, other / "ll.tar", fmt="official")
    scorer(other, cache=tmp_path, **low).pristine_stats
    assert len(entries(tmp_path, "pristine-stats")) == 3
    memo = json.loads((tmp_path / "files.json").read_text())
    assert sorted(k.rsplit("|", 1)[1] for k in memo) == ["ll", "ll", "pristine", "pristine"]
    # the same content written again (new date): fingerprinted again, same key, no new entry
    save_low_level(changed, other / "ll.tar", fmt="official")
    scorer(other, cache=tmp_path, **low).pristine_stats
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
    one = sorted(photo_dir.glob("*.png"))[0]
    base = ["score", str(one), "--ll-weights", str(files / "ll.tar"), "--pristine", str(files / "pristine.hdf5"),
            "--components", "ll"]
    monkeypatch.setenv("GREPQ_CACHE_DIR", str(tmp_path / "env"))
    assert main(base + ["--no-cache", "-o", str(tmp_path / "a.csv")]) == 0
    assert not (tmp_path / "env").exists()
    assert main(base + ["--cache-dir", str(tmp_path / "mine"), "-o", str(tmp_path / "b.csv")]) == 0
    assert entries(tmp_path / "mine", "pristine-stats") and not (tmp_path / "env").exists()
    assert (tmp_path / "a.csv").read_text() == (tmp_path / "b.csv").read_text()
