"""Tests of grepq.data.distortions: KADIS levels, determinism, ranges, and that each distortion distorts."""
import numpy as np
import pytest
from skimage import color, data

from grepq.data import distortions as dist
from grepq.data.distortions import (DEFAULT_LEVELS, DEFAULT_TYPES, DISTORTION_LEVELS, DistortionSpec,
                                    apply_distortion, distortion_stack, hsv_saturation, jpeg2000, lab_saturation)


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
    assert DISTORTION_LEVELS["jpeg2000"] == (16, 32, 45, 120, 170)
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
    hsv = [chroma(apply_distortion(photo, DistortionSpec("hsv_saturation", lv), range_mode="clip")) for lv in (1, 2, 3, 4)]
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
        DistortionSpec("motion_blur", 1)
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
