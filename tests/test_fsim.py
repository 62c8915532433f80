"""Tests of grepq.data.fsim: equal to piq.fsim per pair (the official loader's computation), symmetric, diagonal 1."""
import numpy as np
import piq
import pytest
import torch
from conftest import torch_threads
from skimage import data

from grepq.data.distortions import distortion_stack
from grepq.data.fsim import fsim_features, fsim_matrix, fsim_pair


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One torch thread for the whole module (tests/conftest.py: torch_threads)."""
    with torch_threads(1):
        yield


def versions_of(photo_u8, types=("gaussian_blur", "jpeg", "white_noise", "hsv_saturation"), levels=(2, 4)):
    """(D, 3, H, W) float64 in [0, 1]: the reference and its distorted versions, 8-bit like the files on disk."""
    ref = photo_u8.astype(np.float32) / 255.0
    stack = [ref] + [v for _, v in distortion_stack(ref, types, levels, seed=0)]
    u8 = [np.round(v * 255).astype(np.uint8) for v in stack]
    return torch.from_numpy(np.stack(u8)).permute(0, 3, 1, 2).to(torch.float64) / 255.0


def piq_matrix(v, chromatic=True):
    """The official loader's matrix: one piq.fsim call per pair, lower triangle, symmetrised, diagonal 1."""
    d = v.shape[0]
    m = np.zeros((d, d))
    for i in range(d):
        for j in range(i):
            m[i, j] = piq.fsim(v[i:i + 1], v[j:j + 1], data_range=1.0, chromatic=chromatic).item()
    m = m + m.T
    np.fill_diagonal(m, 1.0)
    return m


@pytest.fixture(scope="module")
def small_versions():
    return versions_of(data.astronaut()[60:124, 200:264])  # 64 x 64 crop of a photograph, 9 versions


def test_matrix_equals_piq_per_pair(small_versions):
    ours = fsim_matrix(small_versions)
    assert ours.shape == (9, 9) and ours.dtype == torch.float64
    ref = piq_matrix(small_versions)
    assert np.abs(ours.numpy() - ref).max() < 1e-5
    # the matrix is informative: versions differ, so off-diagonal values spread below 1
    off = ours.numpy()[~np.eye(9, dtype=bool)]
    assert off.min() < 0.9 and off.max() < 1.0


def test_symmetric_with_unit_diagonal(small_versions):
    m = fsim_matrix(small_versions)
    assert torch.equal(m, m.T)
    assert torch.equal(torch.diagonal(m), torch.ones(9, dtype=torch.float64))
    # identical versions get 1 off the diagonal too (computed, not filled in)
    twice = torch.cat([small_versions[:1], small_versions[:1]])
    assert abs(fsim_matrix(twice)[1, 0].item() - 1.0) < 1e-12


@pytest.mark.parametrize("crop", [(slice(10, 73), slice(30, 95)),  # odd sizes 63 x 65 (piq's odd frequency grid)
                                  (slice(0, 384), slice(0, 392))])  # short side 384 -> average pooling by 2
def test_odd_sizes_and_pooling_equal_piq(crop):
    photo = data.chelsea()[crop]
    v = versions_of(photo, types=("white_noise", "jpeg"), levels=(4,))  # 3 versions
    assert np.abs(fsim_matrix(v).numpy() - piq_matrix(v)).max() < 1e-5


def test_pair_and_float32(small_versions):
    a, b = small_versions[0], small_versions[5]
    expected = piq.fsim(a[None], b[None], data_range=1.0).item()
    assert abs(fsim_pair(a, b) - expected) < 1e-5
    m32 = fsim_matrix(small_versions.float(), dtype=torch.float32)
    assert m32.dtype == torch.float32
    assert np.abs(m32.double().numpy() - piq_matrix(small_versions)).max() < 1e-4  # measured: ~3e-7


def test_grey_non_chromatic_equals_piq():
    grey = torch.from_numpy(data.camera()[100:164, 100:180].astype(np.float64) / 255.0)
    v = torch.stack([grey, grey.flip(-1), torch.clamp(grey * 0.7 + 0.1, 0, 1)])[:, None]  # (3, 1, 64, 80)
    assert np.abs(fsim_matrix(v, chromatic=False).numpy() - piq_matrix(v, chromatic=False)).max() < 1e-5


def test_features_are_per_version(small_versions):
    both = fsim_features(small_versions[:4])
    one = fsim_features(small_versions[2:3])
    assert both.pc.shape == (4, 64, 64)
    assert torch.allclose(both.pc[2], one.pc[0], atol=1e-12) and torch.allclose(both.gm[2], one.gm[0])


def test_bad_input_raises(small_versions):
    with pytest.raises(ValueError, match=r"\(D, C, H, W\)"):
        fsim_matrix(small_versions[0])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fsim_matrix(small_versions * 255)
    with pytest.raises(ValueError, match="chromatic"):
        fsim_matrix(small_versions[:, :1])
    with pytest.raises(ValueError, match="same shape"):
        fsim_pair(small_versions[0], small_versions[1, :, :32])
