"""Batching same-size images and decoding ahead: the same scores and features as one image at a time, in order."""
import copy
import threading

import numpy as np
import pytest
import torch
from conftest import photo
from PIL import Image

from grepq import GRepQ
from grepq.eval import features as fx
from grepq.models import high_level as hlm
from grepq.models.high_level import HighLevelModel
from grepq.scoring import zero_shot as zs
from grepq.scoring.batching import batch_limit, prefetch_map, same_size_batches


@pytest.fixture(scope="module")
def mixed_dir(tmp_path_factory):
    """Eight photographs: five crops of 200x232 (three consecutive, then a 160x192 and a 64x64, then two more),
    and a corrupt file between them, so batches must break on size and on errors."""
    d = tmp_path_factory.mktemp("mixed")
    specs = [("a_astronaut", "astronaut", (200, 232)), ("b_coffee", "coffee", (200, 232)),
             ("c_chelsea", "chelsea", (200, 232)), ("d_rocket", "rocket", (160, 192)), ("e_tiny", "coffee", (64, 64)),
             ("g_camera", "camera", (200, 232)), ("h_astro2", "astronaut", (200, 232))]
    for fname, name, size in specs:
        Image.fromarray(photo(name, size)).save(d / f"{fname}.png")
    (d / "f_broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return d


def _scorer(small_clip, ll_model, pristine, **kw):
    return GRepQ.from_files(ll_weights=ll_model, hl_weights=HighLevelModel(copy.deepcopy(small_clip)),
                            pristine=pristine,
                            progress=False, **kw)


def test_same_size_batches_groups_consecutive_and_keeps_order():
    t = lambda h, w: torch.zeros(3, h, w)  # noqa: E731
    err = ValueError("bad")
    stream = [(0, t(10, 10)), (1, t(10, 10)), (2, t(10, 10)), (3, t(12, 10)), (4, err), (5, t(12, 10)), (6, t(12, 10))]
    batches = list(same_size_batches(stream, batch_size=2, max_batch_pixels=10 ** 6))
    assert [[k for k, _ in b] for b in batches] == [[0, 1], [2], [3], [4], [5, 6]]
    # the pixel budget caps a batch below batch_size: 250 pixels hold two 10x10 images, one 12x10 ... two
    batches = list(same_size_batches(stream, batch_size=8, max_batch_pixels=250))
    assert [[k for k, _ in b] for b in batches] == [[0, 1], [2], [3], [4], [5, 6]]
    assert batch_limit(100, 100, 8, 5_000) == 1 and batch_limit(10, 10, 8, 10 ** 6) == 8
    with pytest.raises(ValueError, match="batch_size"):
        list(same_size_batches(stream, 0, 100))


@pytest.mark.parametrize("workers", [0, 3])
def test_prefetch_map_keeps_order_and_passes_errors(workers):
    seen_threads = set()

    def fn(i):
        seen_threads.add(threading.current_thread().name)
        if i % 5 == 3:
            raise ValueError(f"item {i}")
        return i * i

    out = list(prefetch_map(fn, list(range(23)), workers))
    assert [i for i, _ in out] == list(range(23))
    for i, r in out:
        if i % 5 == 3:
            assert isinstance(r, ValueError) and str(r) == f"item {i}"
        else:
            assert r == i * i
    assert any(n.startswith("grepq-decode") for n in seen_threads) == (workers > 0)
    # None is an item like any other
    items = [0, None, 2, None]
    assert [i for i, _ in prefetch_map(lambda x: x, items, workers)] == items


def test_prefetch_map_reads_a_bounded_distance_ahead_and_cancels_on_early_stop():
    import time
    started = []

    def slow(i):
        started.append(i)
        time.sleep(0.02)
        return i

    gen = prefetch_map(slow, list(range(50)), workers=2)
    assert next(gen) == (0, 0)
    time.sleep(0.2)
    assert len(started) <= 2 + 2          # workers + 1 queued, plus the one handed over
    gen.close()                            # the consumer stops: queued work is cancelled, threads end
    assert len(started) <= 5
    assert not any(t.name.startswith("grepq-decode") for t in threading.enumerate())


def test_ll_patch_features_of_many_images_match_one_image_at_a_time(ll_model):
    imgs = [torch.from_numpy(photo(n, (200, 232))).permute(2, 0, 1).float() / 255 for n in ("astronaut", "coffee")]
    imgs.append(torch.from_numpy(photo("chelsea", (150, 300))).permute(2, 0, 1).float() / 255)
    many = zs.ll_patch_features(ll_model, imgs, chunk=7)
    for img, f in zip(imgs, many):
        one = zs.ll_patch_features(ll_model, [img], chunk=64)[0]
        assert f.shape == one.shape
        assert torch.allclose(f, one, rtol=1e-5, atol=1e-5)


def test_attention_query_is_decided_per_image_and_batches_are_sliced(small_clip, monkeypatch):
    hl = HighLevelModel(copy.deepcopy(small_clip)).eval()
    x = torch.rand(5, 3, 96, 128)
    with torch.no_grad():
        single = torch.cat([hl.embed(x[i:i + 1]) for i in range(5)])
        pool = hl.visual.attnpool
        per_image = pool.num_heads * (3 * 4 + 1) ** 2 * 4
        # room for two images' attention matrices: "all" is kept (per image) and the batch is cut in slices of 2
        monkeypatch.setattr(hlm, "AUTO_QUERY_BYTES", 2 * per_image)
        calls = []
        orig = hlm._attention
        monkeypatch.setattr(hlm, "_attention", lambda p, t, q: calls.append((t.shape[1], q)) or orig(p, t, q))
        batched = hl.embed(x)
    assert calls == [(2, "all"), (2, "all"), (1, "all")]
    assert torch.allclose(batched, single, rtol=1e-5, atol=1e-4)


def test_batched_scores_and_features_match_one_at_a_time(small_clip, ll_model, pristine_patches, mixed_dir, tmp_path,
                                                        monkeypatch):
    paths = sorted(mixed_dir.glob("*.png"))
    one = _scorer(small_clip, ll_model, pristine_patches, batch_size=1)
    many = _scorer(small_clip, ll_model, pristine_patches, batch_size=4, decode_workers=2)
    sizes = []
    orig = many.compute
    monkeypatch.setattr(many, "compute", lambda imgs, *a, **_: sizes.append(len(imgs)) or orig(imgs, *a))
    rows1 = one.score(paths, on_error="record")
    rows4 = many.score(paths, on_error="record")
    # a, b, c share a size (one batch of 3); d, e alone; f fails; g, h a batch of 2
    assert sizes == [3, 1, 1, 2]
    assert [r.image for r in rows4] == [str(p) for p in paths] == [r.image for r in rows1]
    broken = [r for r in rows4 if r.error]
    assert len(broken) == 1 and "f_broken.png" in broken[0].error
    for r1, r4 in zip(rows1, rows4):
        if r1.error:
            continue
        assert r4.q_low == pytest.approx(r1.q_low, rel=1e-5, abs=1e-6)
        assert r4.q_high == pytest.approx(r1.q_high, rel=1e-5, abs=1e-6)
        assert r4.q_total == pytest.approx(r4.q_low + r4.q_high)
    f1 = fx.extract_features(one, paths, progress=False, on_error="record")
    f4 = fx.extract_features(many, paths, cache_dir=tmp_path, save_every=2, progress=False, on_error="record")
    ok = [i for i, p in enumerate(paths) if "broken" not in p.name]
    assert [p for p, _ in f4.failed] == [str(mixed_dir / "f_broken.png")]
    assert np.allclose(f4.hl[ok], f1.hl[ok], rtol=1e-5, atol=1e-4)
    assert np.allclose(f4.ll[ok], f1.ll[ok], rtol=1e-5, atol=1e-5)
    assert np.allclose(f4.q_low[ok], f1.q_low[ok], rtol=1e-5, atol=1e-6)
    # the cache written in batches reads back the same
    again = fx.extract_features(many, paths, cache_dir=tmp_path, save_every=2, progress=False, on_error="record")
    assert np.array_equal(again.hl[ok], f4.hl[ok])


def test_a_failing_size_fails_only_its_batch(small_clip, ll_model, pristine_patches, mixed_dir):
    paths = [p for p in sorted(mixed_dir.glob("*.png")) if "broken" not in p.name]
    s = _scorer(small_clip, ll_model, pristine_patches, batch_size=8, small_image="error")
    rows = s.score(paths, on_error="record")
    failed = [r for r in rows if r.error]
    assert [r.image for r in failed] == [str(mixed_dir / "e_tiny.png")]
    assert failed[0].error.startswith(str(mixed_dir / "e_tiny.png") + ": ")  # the message names the image
    with pytest.raises(ValueError, match="fewer than two"):
        s.score(paths, on_error="raise")


def test_a_batch_of_failing_images_names_each_and_features_record_them(small_clip, ll_model, pristine_patches,
                                                                      tmp_path):
    d = tmp_path / "tiny"
    d.mkdir()
    for name in ("coffee", "chelsea", "rocket"):
        Image.fromarray(photo(name, (64, 64))).save(d / f"{name}.png")
    Image.fromarray(photo("astronaut", (200, 232))).save(d / "z_big.png")
    paths = sorted(d.glob("*.png"))
    s = _scorer(small_clip, ll_model, pristine_patches, batch_size=8, small_image="error")
    rows = s.score(paths, on_error="record")
    assert [r.error is not None for r in rows] == [True, True, True, False]
    for r in rows[:3]:
        assert r.error.startswith(r.image + ": ") and "fewer than two" in r.error
    with pytest.raises(ValueError, match="chelsea.png: image of 64x64"):
        s.score(paths, on_error="raise")
    fs = fx.extract_features(s, paths, progress=False, on_error="record")
    assert [p for p, _ in fs.failed] == [str(p) for p in paths[:3]] and "fewer than two" in fs.failed[0][1]
    assert np.isnan(fs.q_low[0]) and not np.isnan(fs.q_low[3])
    with pytest.raises(ValueError, match="chelsea.png"):
        fx.extract_features(s, paths, progress=False)


def test_out_of_memory_on_a_batch_falls_back_to_one_image_at_a_time(small_clip, ll_model, pristine_patches, mixed_dir,
                                                                   monkeypatch, caplog):
    paths = [p for p in sorted(mixed_dir.glob("*.png")) if "broken" not in p.name]
    ref = _scorer(small_clip, ll_model, pristine_patches, batch_size=1).score(paths)
    s = _scorer(small_clip, ll_model, pristine_patches, batch_size=4)
    orig, sizes = s.compute, []

    def flaky(imgs, features=False, **kw):
        sizes.append(len(imgs))
        if len(imgs) > 1:
            raise torch.OutOfMemoryError("simulated")
        return orig(imgs, features, **kw)

    monkeypatch.setattr(s, "compute", flaky)
    with caplog.at_level("WARNING", logger="grepq"):
        rows = s.score(paths)
    assert "one at a time" in caplog.text
    assert sizes == [3, 1, 1, 1, 1, 1, 2, 1, 1]
    assert [r.q_low for r in rows] == pytest.approx([r.q_low for r in ref], rel=1e-5)
    monkeypatch.setattr(s, "compute", lambda imgs, *a, **_: (_ for _ in ()).throw(torch.OutOfMemoryError("x")))
    with pytest.raises(torch.OutOfMemoryError):
        s.score(paths[:1])


def test_batch_options_are_checked(small_clip, ll_model, pristine_patches):
    with pytest.raises(ValueError, match="batch_size"):
        _scorer(small_clip, ll_model, pristine_patches, batch_size=0)
    with pytest.raises(ValueError, match="decode_workers"):
        _scorer(small_clip, ll_model, pristine_patches, decode_workers=-1)
    s = _scorer(small_clip, ll_model, pristine_patches)
    assert s.batch_size == 1  # CPU default
    with pytest.raises(ValueError, match="one shape"):
        s.compute([torch.rand(3, 100, 100), torch.rand(3, 100, 120)])
