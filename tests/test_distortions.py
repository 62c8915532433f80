"""Tests of grepq.data.distortions: KADIS levels, determinism, ranges, and agreement with KADIS's own output."""
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import color, data

from grepq.data import distortions as dist
from grepq.data import kadis_ops
from grepq.data.distortions import (
    DEFAULT_LEVELS,
    DEFAULT_TYPES,
    DISTORTION_LEVELS,
    DistortionSpec,
    apply_distortion,
    distortion_stack,
    hsv_saturation,
    jpeg2000,
    lab_saturation,
)


@pytest.fixture(scope="module")
def photo():
    # A real photograph (skimage's astronaut), cropped small, float32 in [0, 1], full 0..1 range.
    img = data.astronaut()[80:208, 140:300].astype(np.float32) / 255.0
    img = (img - img.min()) / (img.max() - img.min())
    return img.astype(np.float32)


def psnr(a, b):
    return 10 * np.log10(1.0 / np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))


def test_levels_are_the_kadis_levels_of_spec_6():
    assert DISTORTION_LEVELS["gaussian_blur"] == (0.1, 0.5, 1.0, 2.0, 5.0)
    assert DISTORTION_LEVELS["jpeg"] == (43, 36, 24, 7, 4)
    assert DISTORTION_LEVELS["jpeg2000"] == (16, 32, 45, 120, 400)
    assert DistortionSpec("jpeg2000", 5, legacy=True).value == 170  # grepq before the KADIS check (recipe fixed)
    assert DISTORTION_LEVELS["white_noise"] == (0.001, 0.002, 0.003, 0.005, 0.01)
    assert DISTORTION_LEVELS["hsv_saturation"] == (0.4, 0.2, 0.1, 0.0, -0.4)
    assert DISTORTION_LEVELS["lab_saturation"] == (1.0, 2.0, 3.0, 6.0, 9.0)
    # The paper's four kinds: blur, compression, noise, colour saturation; two levels each -> D = 8.
    assert len(DEFAULT_TYPES) == 4 and len(DEFAULT_LEVELS) == 2
    assert DistortionSpec("jpeg", 2).value == 36 and DistortionSpec("jpeg", 2).name == "jpeg_2"


@pytest.mark.parametrize("range_mode", ["kadis", "clip"])
def test_every_type_and_level_keeps_shape_dtype_range(photo, range_mode):
    for t, values in DISTORTION_LEVELS.items():
        for level in range(1, len(values) + 1):
            out = apply_distortion(photo, DistortionSpec(t, level), np.random.default_rng(0), range_mode=range_mode)
            assert out.shape == photo.shape and out.dtype == np.float32, (t, level)
            assert out.min() >= 0.0 and out.max() <= 1.0, (t, level)
            assert np.isfinite(out).all()


@pytest.mark.parametrize("kind", ["gaussian_blur", "white_noise", "jpeg", "jpeg2000"])
def test_psnr_decreases_with_level(photo, kind):
    values = [psnr(apply_distortion(photo, DistortionSpec(kind, lv), np.random.default_rng(1), range_mode="clip"),
                   photo) for lv in range(1, 6)]
    assert all(a > b for a, b in zip(values, values[1:])), values
    assert values[-1] < 32  # the strongest level is a visible distortion


def test_saturation_types_change_colourfulness_monotonically(photo):
    def chroma(img):
        lab = color.rgb2lab(img.astype(np.float64))
        return np.hypot(lab[..., 1], lab[..., 2]).mean()

    c0 = chroma(photo)
    hsv = [chroma(apply_distortion(photo, DistortionSpec("hsv_saturation", lv), range_mode="clip"))
           for lv in (1, 2, 3, 4)]
    assert c0 > hsv[0] > hsv[1] > hsv[2] > hsv[3]  # factors 0.4, 0.2, 0.1, 0: less and less colour
    assert hsv[3] < 0.5  # factor 0: grey
    lab = [chroma(apply_distortion(photo, DistortionSpec("lab_saturation", lv), range_mode="clip")) for lv in (1, 2, 3)]
    assert abs(lab[0] - c0) < 1e-3 < lab[1] - c0 and lab[2] > lab[1]  # factor 1 = unchanged, then more colour


def test_hsv_saturation_is_hsv_scaling(photo):
    for factor in (0.4, 0.2, 0.1, 0.0):
        hsv = color.rgb2hsv(photo.astype(np.float64))
        hsv[..., 1] *= factor
        np.testing.assert_allclose(hsv_saturation(photo, factor), color.hsv2rgb(hsv), atol=1e-6)
    grey = hsv_saturation(photo, 0.0)
    np.testing.assert_allclose(grey[..., 0], photo.max(axis=2), atol=1e-7)  # factor 0 -> V = max(R, G, B)
    # A negative factor turns a red pixel to its complementary hue (cyan) at 40 % of its saturation.
    red = np.array([[[0.6, 0.3, 0.3]]], dtype=np.float32)
    out = hsv_saturation(red, -0.4)
    np.testing.assert_allclose(out[0, 0], [0.6, 0.72, 0.72], atol=1e-6)
    h, s, _ = color.rgb2hsv(out.astype(np.float64))[0, 0]
    assert abs(h - 0.5) < 1e-6 and abs(s - 0.4 * 0.5 * 0.6 / 0.72) < 1e-6


def test_lab_saturation_factor_one_is_identity_and_matches_skimage(photo):
    np.testing.assert_allclose(lab_saturation(photo, 1.0), photo, atol=1e-6)
    lab = color.rgb2lab(photo.astype(np.float64))
    lab[..., 1:] *= 2.0
    ref = np.clip(color.lab2rgb(lab), 0, 1)
    assert np.abs(lab_saturation(photo, 2.0) - ref).mean() < 1e-3


def test_kadis_range_mode_stretches_input_and_output(photo):
    dull = (0.2 + 0.5 * photo).astype(np.float32)  # spans 0.2 .. 0.7
    spec = DistortionSpec("gaussian_blur", 1)  # sigma 0.1: practically the identity
    np.testing.assert_allclose(apply_distortion(dull, spec, range_mode="kadis"), photo, atol=1e-5)
    np.testing.assert_allclose(apply_distortion(dull, spec, range_mode="clip"), dull, atol=1e-5)
    inverted = apply_distortion(photo, DistortionSpec("hsv_saturation", 5), range_mode="kadis")
    assert inverted.min() == 0.0 and inverted.max() == 1.0


def test_stack_is_deterministic_and_ordered(photo):
    a = distortion_stack(photo, seed=7)
    b = distortion_stack(photo, seed=7)
    c = distortion_stack(photo, seed=8)
    names = [n for n, _ in a]
    assert names == [f"{t}_{lv}" for t in DEFAULT_TYPES for lv in DEFAULT_LEVELS]
    assert all(x.tobytes() == y.tobytes() for (_, x), (_, y) in zip(a, b))
    differs = {n: x.tobytes() != y.tobytes() for (n, x), (_, y) in zip(a, c)}
    assert differs["white_noise_2"] and differs["white_noise_4"]  # the seed drives the noise
    assert not differs["gaussian_blur_2"] and not differs["jpeg_4"]  # deterministic types ignore it
    # One (type, level) gives the same result whatever else is in the stack.
    alone = distortion_stack(photo, types=["white_noise"], levels=[4], seed=7)
    assert alone[0][1].tobytes() == dict(a)["white_noise_4"].tobytes()
    # uint8 input is the same image
    u8 = np.round(photo * 255).astype(np.uint8)
    assert distortion_stack(u8, seed=7)[0][1].shape == photo.shape


def test_bad_input_and_names_raise_clear_errors(photo, monkeypatch):
    with pytest.raises(ValueError, match="available types"):
        DistortionSpec("unknown_blur", 1)
    with pytest.raises(ValueError, match="1..5"):
        DistortionSpec("jpeg", 6)
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        distortion_stack(photo[..., 0])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        distortion_stack(photo * 2)
    with pytest.raises(ValueError, match="repeated"):
        distortion_stack(photo, types=["jpeg", "jpeg"])
    with pytest.raises(ValueError, match="range_mode"):
        distortion_stack(photo, range_mode="stretch")
    monkeypatch.setattr(dist, "jpeg2000_available", lambda: False)
    with pytest.raises(RuntimeError, match="OpenJPEG"):
        jpeg2000(photo, 16)


def test_pillow_here_has_openjpeg():
    # The JPEG 2000 type needs Pillow built with OpenJPEG; the project's environment has it.
    assert dist.jpeg2000_available()


# ------------------------------------------------------------------------------------------------------------------
# Against KADIS's own output (tests/data/kadis: the unmodified KADIS-700k generator run under GNU Octave, README.md)

KADIS_DIR = Path(__file__).parent / "data" / "kadis"
#: Every deterministic entry must reach this PSNR against KADIS's output (issue 10: >= 40 dB) ...
MIN_PSNR_DB = 40.0
#: ... and every type except the codecs this one (only rounding differs). JPEG / JPEG 2000 depend on the codec
#: library's version, so they keep the 40 dB floor. The measured values are in tests/data/kadis/measured_psnr.json,
#: written by ``GREPQ_RECORD_KADIS_PSNR=1 python -m pytest tests/test_distortions.py -k kadis`` (README, docs).
AIM_PSNR_DB = 60.0
CODEC_IDS = (9, 10)
DETERMINISTIC_IDS = (1, 2, 3, 7, 8, 9, 10, 16, 17, 24, 25)
MEASURED_PSNR_FILE = KADIS_DIR / "measured_psnr.json"


@pytest.fixture(scope="module")
def kadis():
    ref = json.loads((KADIS_DIR / "reference.json").read_text())
    mosaic = np.asarray(Image.open(KADIS_DIR / "outputs_subsampled.png").convert("RGB"))
    inputs = {e["input"]: np.asarray(Image.open(KADIS_DIR / e["input"]).convert("RGB")) for e in ref["entries"]}
    return ref, mosaic, inputs


def _psnr8(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


def _kadis_output(inp, spec, rng=None):
    """imdist_generator + generate_kadis700k's writer: mapmm, distortion, mapmm, round(255 x)."""
    out = apply_distortion(inp, spec, rng, range_mode="kadis")
    return np.round(out.astype(np.float64) * 255).astype(np.uint8)


def _reference_crop(ref, mosaic, entry):
    h = ref["crop_shape"][0]
    return mosaic[entry["mosaic_index"] * h:(entry["mosaic_index"] + 1) * h]


def _entries(ref, kadis_id):
    found = [e for e in ref["entries"] if e["kadis_id"] == kadis_id]
    assert len(found) == 15, (kadis_id, len(found))  # 3 photographs x 5 levels
    return found


def test_reference_fixture_covers_13_types_and_all_levels(kadis):
    ref, mosaic, _ = kadis
    assert sorted({e["kadis_id"] for e in ref["entries"]}) == [1, 2, 3, 7, 8, 9, 10, 11, 12, 16, 17, 24, 25]
    assert {e["level"] for e in ref["entries"]} == {1, 2, 3, 4, 5}
    assert [s["kadis_id"] for s in ref["skipped"]] == [15]  # denoise: needs MATLAB's DnCNN
    for e in ref["entries"]:  # grepq's level tables are the generator's
        assert dist.kadis_type(e["kadis_id"]).levels[e["level"] - 1] == pytest.approx(e["parameter"])


def _kadis_psnr(ref, mosaic, inputs, e):
    """PSNR (dB; inf = identical) of grepq's 8-bit output against KADIS's, on the fixture's subsampled pixels."""
    stride = ref["stride"]
    if e["kadis_id"] == 3:  # motion blur, with the angle KADIS drew
        x = dist._mapmm(inputs[e["input"]].astype(np.float64) / 255)
        raw = kadis_ops.correlate_replicate(x, kadis_ops.motion_kernel(e["parameter"], e["random"]["angle_deg"]))
        ours = np.round(dist._finish(raw, "kadis").astype(np.float64) * 255).astype(np.uint8)
    else:
        ours = _kadis_output(inputs[e["input"]], DistortionSpec(dist.kadis_type(e["kadis_id"]).name, e["level"]))
    return _psnr8(ours[::stride, ::stride], _reference_crop(ref, mosaic, e))


@pytest.fixture(scope="module")
def kadis_psnr(kadis):
    """{kadis_id: [(entry, psnr)]} for every entry of the deterministic types, measured once."""
    ref, mosaic, inputs = kadis
    return {i: [(e, _kadis_psnr(ref, mosaic, inputs, e)) for e in _entries(ref, i)] for i in DETERMINISTIC_IDS}


@pytest.mark.parametrize("kadis_id", DETERMINISTIC_IDS)
def test_deterministic_types_match_kadis_output(kadis, kadis_psnr, kadis_id):
    """Motion blur (3) is drawn with KADIS's recorded angle; every other type is deterministic."""
    ref, mosaic, inputs = kadis
    name = dist.kadis_type(kadis_id).name
    for e, p in kadis_psnr[kadis_id]:
        assert p >= (MIN_PSNR_DB if kadis_id in CODEC_IDS else AIM_PSNR_DB), (name, e["output"], p)
        if kadis_id == 9:  # JPEG 2000 (README: degenerate at levels 4-5 on small crops): same strength as KADIS's
            inp = inputs[e["input"]]
            ours = _kadis_output(inp, DistortionSpec(name, e["level"]))
            r = dist._mapmm(inp.astype(np.float64) / 255) * 255
            strength = 10 * np.log10(255.0 ** 2 / np.mean((ours - r) ** 2))
            assert abs(strength - e["stats"]["psnr_vs_stretched_input_db"]) < 0.5, (e["output"], strength)


def _measured_summary(kadis_psnr):
    """What README and docs/differences.md quote: per type and level the minimum PSNR over the 3 photographs."""
    types = {}
    for i, found in kadis_psnr.items():
        by_level = {}
        for e, p in found:
            by_level[e["level"]] = min(by_level.get(e["level"], float("inf")), p)
        types[str(i)] = {"name": dist.kadis_type(i).name, "codec": i in CODEC_IDS,
                         "threshold_db": MIN_PSNR_DB if i in CODEC_IDS else AIM_PSNR_DB,
                         "min_psnr_db_by_level": {str(lv): "identical" if v == float("inf") else round(v, 1)
                                                  for lv, v in sorted(by_level.items())},
                         "identical": f"{sum(p == float('inf') for _, p in found)}/{len(found)}"}

    def lowest(codec):
        vals = [p for i, f in kadis_psnr.items() if (i in CODEC_IDS) == codec for _, p in f if p != float("inf")]
        return round(min(vals), 1)

    return {"measured_by": "GREPQ_RECORD_KADIS_PSNR=1 python -m pytest tests/test_distortions.py -k kadis",
            "pixels": "the fixture's subsampled outputs (every 6th row and column of 192x128, outputs_subsampled.png)",
            "threshold_db": AIM_PSNR_DB, "codec_threshold_db": MIN_PSNR_DB,
            "min_psnr_db_non_codec": lowest(False), "min_psnr_db_codec": lowest(True), "types": types}


def test_kadis_psnr_is_recorded_and_quoted_with_the_tested_thresholds(kadis_psnr):
    """The measured minima are printed (-s) and, with GREPQ_RECORD_KADIS_PSNR=1, written to measured_psnr.json;
    the recorded file and README state the thresholds asserted above."""
    summary = _measured_summary(kadis_psnr)
    print(json.dumps(summary, indent=1))
    if os.environ.get("GREPQ_RECORD_KADIS_PSNR"):
        MEASURED_PSNR_FILE.write_text(json.dumps(summary, indent=1) + "\n")
    recorded = json.loads(MEASURED_PSNR_FILE.read_text())
    assert (recorded["threshold_db"], recorded["codec_threshold_db"]) == (AIM_PSNR_DB, MIN_PSNR_DB)
    assert recorded["min_psnr_db_non_codec"] >= AIM_PSNR_DB and recorded["min_psnr_db_codec"] >= MIN_PSNR_DB
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    assert f"≥ {AIM_PSNR_DB:g} dB, codecs ≥ {MIN_PSNR_DB:g} dB" in readme
    assert f"{AIM_PSNR_DB:g} dB PSNR or more (codecs {MIN_PSNR_DB:g} dB)" in readme


def test_motion_blur_draws_an_integer_angle_in_0_180_as_kadis():
    img = data.astronaut()[:64, :64]
    spec = DistortionSpec("motion_blur", 5)
    angles = [int(np.random.default_rng(s).integers(0, 181)) for s in range(4)]
    for s, angle in enumerate(angles):
        x = dist._mapmm(img.astype(np.float32) / 255).astype(np.float32).astype(np.float64)
        expected = dist._finish(kadis_ops.correlate_replicate(x, kadis_ops.motion_kernel(10, angle)), "kadis")
        assert np.array_equal(apply_distortion(img, spec, np.random.default_rng(s)), expected)
    k = kadis_ops.motion_kernel(1, 45)  # length 1 is the identity at every angle (Octave's own kernel gives NaN)
    assert k.shape == (1, 1) and k[0, 0] == pytest.approx(1.0)
    for length, angle in ((10, 0), (6, 37), (4, 90), (2, 135)):
        k = kadis_ops.motion_kernel(length, angle)
        assert k.sum() == pytest.approx(1.0) and np.allclose(k, k[::-1, ::-1])  # centred, point-symmetric


@pytest.mark.parametrize("kadis_id", [11, 12])
def test_noise_types_match_kadis_statistics(kadis, kadis_id):
    """Noise cannot match pixel for pixel (other generators): the midtone std of output - input within 5 %."""
    ref, _, inputs = kadis
    name = dist.kadis_type(kadis_id).name
    for e in _entries(ref, kadis_id):
        inp = inputs[e["input"]]
        r = dist._mapmm(inp.astype(np.float64) / 255) * 255
        mid = (r > 0.2 * 255) & (r < 0.8 * 255)
        ours = _kadis_output(inp, DistortionSpec(name, e["level"]), np.random.default_rng(e["random"]["octave_seed"]))
        d = ours.astype(np.float64) - r
        st = e["stats"]
        assert abs(d[mid].std() / st["diff_std_midtones"] - 1) < 0.05, (e["output"], d[mid].std(), st)
        # (The mean of d is not compared: KADIS's final mapmm stretches a result whose noisy extremes fall short of
        # 0 or 1, a shift of up to ~3 grey levels that depends on the draw, in KADIS's output as in grepq's.)
        clipped = np.mean((ours == 0) | (ours == 255))
        assert abs(clipped - st["clipped_fraction"]) <= 0.2 * st["clipped_fraction"] + 0.002, (e["output"], clipped)


def test_denoise_is_a_labelled_substitute_that_removes_noise():
    kt = dist.kadis_type(15)
    assert kt.name == "denoise_nlm" and "DnCNN" in kt.substitute and "non-local means" in kt.substitute
    img = data.astronaut()[100:196, 150:278]
    x = dist._mapmm(img.astype(np.float64) / 255)
    for level, variance in enumerate(kt.levels, start=1):
        spec = DistortionSpec("denoise_nlm", level)
        out = apply_distortion(img, spec, np.random.default_rng(level)).astype(np.float64)
        noisy = np.clip(x + np.random.default_rng(level).standard_normal(x.shape) * np.sqrt(variance), 0, 1)
        assert _psnr8(out * 255, x * 255) > _psnr8(noisy * 255, x * 255) + 2, level  # it denoises ...
        assert _psnr8(out * 255, x * 255) < 40, level  # ... and leaves visible damage
        assert np.array_equal(out, apply_distortion(img, spec, np.random.default_rng(level)))  # seeded


def test_lab_saturation_clips_before_the_final_stretch_and_legacy_does_not(photo):
    new = apply_distortion(photo, DistortionSpec("lab_saturation", 5), range_mode="kadis")
    old = apply_distortion(photo, DistortionSpec("lab_saturation", 5, legacy=True), range_mode="kadis")
    lab = kadis_ops.srgb_to_lab(photo.astype(np.float64))
    lab[..., 1:] *= 9.0
    rgb = kadis_ops.lab_to_srgb(lab)
    assert rgb.min() < -0.1 and rgb.max() > 1.1  # factor 9 leaves the gamut
    assert np.array_equal(new, dist._finish(np.clip(rgb, 0, 1), "kadis"))  # imsaturate: truncate, then mapmm
    assert np.array_equal(old, dist._finish(rgb, "kadis"))  # grepq before the check: compressed by mapmm
    assert np.abs(old - new).max() > 0.05
