"""Per-patch distance maps (grepq.scoring.maps): the identity with Q_L's d, the same patches as Q_L, a degraded half
that the map finds, the pixel mapping and the PNG.

The degraded-half test uses the randomly initialised LL model of conftest: it separates strong Gaussian noise
(sigma 0.2) on these photos in both orientations; blur (sigma 2, 4), JPEG (quality 10) and halving the brightness
it does not (measured for issue 20), so they are not asserted here.
"""
import numpy as np
import pytest
import torch
from conftest import make_ll, photo
from PIL import Image

from grepq.api import GRepQ
from grepq.scoring import zero_shot as zs
from grepq.scoring.maps import (
    COLORBAR_LABEL,
    DistanceMap,
    distance_map,
    image_distance_map,
    map_pixel_extent,
    save_map_png,
    upsample_map,
)
from grepq.scoring.settings import ScoringSettings


def as_tensor(arr: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1).float().contiguous() / 255


@pytest.fixture(scope="module")
def scorer(ll_model, pristine_patches):
    return GRepQ(ll_model, None, pristine_patches, ScoringSettings(components=("ll",), chunk_size=16,
                                                                    progress=False))


def check_identity(feats: torch.Tensor, pristine: zs.GaussianStats, grid) -> float:
    dm = distance_map(feats, grid, pristine)
    d = zs.niqe_distance(pristine, zs.fit_gaussian(feats))
    assert torch.equal(dm.distance, d)                                      # the same numbers as Q_L's d
    lhs = (dm.values.double() ** 2).mean()
    rhs = d.double() ** 2 + dm.trace_term.double()
    rel = float((lhs - rhs).abs() / rhs)
    assert rel < 1e-4
    n = feats.shape[0]                                                      # the trace term, written out
    a = (pristine.cov + zs.fit_gaussian(feats).cov) / 2 + 1e-3 * torch.eye(feats.shape[1], dtype=feats.dtype)
    direct = torch.trace(torch.linalg.solve(a, zs.fit_gaussian(feats).cov)) * (n - 1) / n
    assert torch.allclose(dm.trace_term.double(), direct.double(), rtol=1e-4)
    return rel


def test_mean_squared_map_is_d_squared_plus_the_trace_term(pristine_patches, one_thread):
    g = torch.Generator().manual_seed(0)
    pristine = zs.fit_gaussian(torch.randn(60, 16, generator=g, dtype=torch.float64))
    feats = torch.randn(35, 16, generator=g, dtype=torch.float64) * 1.5 + 0.7
    assert check_identity(feats, pristine, (5, 7)) < 1e-12
    # real LL features (float64 model: N = 12 patches < C = 128, a singular Σ_d that eps regularises)
    ll = make_ll().double()
    img = as_tensor(photo("coffee", (192, 240))).double()
    with torch.no_grad():
        pristine = zs.fit_gaussian(ll(pristine_patches.double()))
    feats = zs.ll_patch_features(ll, img)
    assert check_identity(feats, pristine, zs.patch_grid(192, 240)) < 1e-10
    with pytest.raises(ValueError, match=r"N = 3 x 5 = 15 \(the grid\), got \(12, 128\)"):
        distance_map(feats, (3, 5), pristine)


def test_the_map_uses_q_ls_patches_and_a(scorer, ll_model, one_thread):
    img = as_tensor(photo("chelsea", (200, 260)))
    used, dm = image_distance_map(scorer, img)
    assert used is img and isinstance(dm, DistanceMap) and dm.grid == zs.patch_grid(200, 260) == (3, 4)
    assert dm.q_low(scorer.settings.k1) == scorer.q_low(img)                         # the scorer's own d, to the bit
    # cell (r, c) is the patch at rows 48r.., columns 48c..: cut them one by one, row-major
    patches = torch.stack([img[:, 48 * r:48 * r + 96, 48 * c:48 * c + 96] for r in range(3) for c in range(4)])
    with torch.no_grad():
        feats = ll_model(patches)
    by_hand = distance_map(feats, (3, 4), scorer.pristine_stats, scorer.settings.cov_eps)
    assert torch.allclose(by_hand.values, dm.values, rtol=1e-5, atol=1e-6)
    # an image too small for two patches is upsampled as Q_L upsamples it; draw the map over the returned image
    small = as_tensor(photo("coffee", (100, 130)))
    used, dm = image_distance_map(scorer, small)
    assert tuple(used.shape[-2:]) == (144, 188) and dm.grid == (2, 2)
    assert dm.q_low(scorer.settings.k1) == scorer.q_low(small)


@pytest.mark.parametrize("name", ["astronaut", "chelsea"])
def test_the_noisy_half_is_farther_from_pristine(scorer, name, one_thread):
    base = photo(name, (336, 480)).astype(np.float64) / 255                # astronaut 336 x 480, chelsea 300 x 451
    mid = base.shape[1] // 2
    cols = np.arange(zs.patch_grid(*base.shape[:2])[1]) * 48
    left, right = cols + 96 <= mid, cols >= mid                             # patches wholly in one half
    rng = np.random.default_rng(0)
    for noisy, clean in ((right, left), (left, right)):                     # both sides: not the content
        x = base.copy()
        half = slice(mid, None) if noisy is right else slice(0, mid)
        x[:, half] = np.clip(x[:, half] + rng.normal(0, 0.2, x[:, half].shape), 0, 1)
        _, dm = image_distance_map(scorer, torch.from_numpy(x).permute(2, 0, 1).float().contiguous())
        v = dm.values.numpy()
        assert v[:, noisy].mean() > 1.1 * v[:, clean].mean()


def test_pixel_extent_nearest_patch_centre():
    rows, cols = map_pixel_extent((3, 4))
    assert rows.tolist() == [[0, 72], [72, 120], [120, 192]]
    assert cols.tolist() == [[0, 72], [72, 120], [120, 168], [168, 240]]
    assert map_pixel_extent((1, 1))[0].tolist() == [[0, 96]]
    assert map_pixel_extent((1, 2), size=32, stride=32)[1].tolist() == [[0, 32], [32, 64]]
    assert map_pixel_extent((1, 2), size=32, stride=40)[1].tolist() == [[0, 32], [40, 72]]   # gaps stay empty
    vals = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    up = upsample_map(vals, (200, 250))                                     # 8 rows, 10 columns dropped
    assert up.shape == (200, 250)
    assert up[71, 71] == 0 and up[72, 72] == 5 and up[191, 239] == 11 and up[100, 130] == 6
    assert np.isnan(up[192:]).all() and np.isnan(up[:, 240:]).all() and np.isfinite(up[:192, :240]).all()
    with pytest.raises(ValueError, match=r"a 250x200 image has a \(3, 4\) patch grid"):
        upsample_map(vals[:2], (200, 250))


def test_png_has_the_photo_its_aspect_and_the_map(tmp_path):
    arr = photo("astronaut", (336, 500))
    img = as_tensor(arr)
    vals = torch.linspace(1, 5, 6 * 9).reshape(6, 9)                       # covers columns < 480, rows < 336
    out = save_map_png(img, vals, tmp_path / "sub" / "map.png", title="astronaut: Q_L 0.49")
    png = np.asarray(Image.open(out.path).convert("RGB")).astype(float)
    left, top, w, h = out.image_box
    assert (w, h) == (500, 336) and png.shape[0] >= top + h and png.shape[1] > left + w + 50   # room for the bar
    assert abs(w / h - 500 / 336) < 0.01
    box = png[top:top + h, left:left + w]
    assert png.std() > 20 and box.std() > 20                                # not blank
    # the dropped border (columns 480..499) is the bare photo; the rest is tinted by the map
    assert np.abs(box[:, 482:498] - arr[:, 482:498]).mean() < 4
    assert np.abs(box[:, 10:470] - arr[:, 10:470]).mean() > 20
    # each cell is photo / 2 + inferno(its value) / 2: cell (0, 0) covers [0, 72)^2, cell (5, 8) rows 264.., cols 408..
    from matplotlib import colormaps
    for (r, c), (ys, xs) in {(0, 0): (slice(4, 68), slice(4, 68)), (5, 8): (slice(270, 330), slice(412, 476))}.items():
        colour = np.array(colormaps["inferno"]((float(vals[r, c]) - 1) / 4)[:3]) * 255
        assert np.abs(box[ys, xs] - (arr[ys, xs] / 2 + colour / 2)).mean() < 3
    big = save_map_png(as_tensor(photo("coffee")), torch.ones(7, 11), tmp_path / "big.png", max_side=300)
    assert big.image_box[2:] == (300, 200)
    assert COLORBAR_LABEL.startswith("per-patch distance d_i")
