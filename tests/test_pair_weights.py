"""Table 4's other pair weights of Eq. 1 (SSIM, MS-SSIM, GMSD): piq's values mapped to [0, 1], in the loader and in
training."""
import numpy as np
import pytest
import torch
from conftest import photo
from test_train_ll import make_training_set, tiny_ll_overrides

from grepq.config import ConfigError
from grepq.data.layout import folder_versions
from grepq.data.pair_weights import pair_weight_matrix
from grepq.data.training_set import LLTrainingDataset
from grepq.train.schema import load_train_config
from grepq.train.tasks import LLTask


def versions(size=(200, 240)):
    """A photograph, two noise levels and a blurred copy: (4, 3, H, W) in [0, 1]."""
    ref = torch.from_numpy(photo("astronaut", size)).permute(2, 0, 1).double() / 255
    g = torch.Generator().manual_seed(0)
    noisy1 = (ref + 0.03 * torch.randn(ref.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    noisy2 = (ref + 0.15 * torch.randn(ref.shape, generator=g, dtype=torch.float64)).clamp(0, 1)
    blur = torch.nn.functional.avg_pool2d(ref[None], 5, 1, 2, count_include_pad=False)[0]
    return torch.stack([ref, noisy1, noisy2, blur]).float()


@pytest.mark.parametrize("pair_weight", ["ssim", "ms_ssim", "gmsd"])
def test_matrix_is_piq_per_pair_mapped_to_unit_interval(pair_weight):
    import piq
    x = versions()
    m = pair_weight_matrix(x, pair_weight)
    assert m.dtype == torch.float64 and m.shape == (4, 4)
    assert torch.equal(m, m.t()) and torch.equal(torch.diag(m), torch.ones(4))
    assert m.min() >= 0 and m.max() <= 1
    fn = {"ssim": lambda a, b: piq.ssim(a, b, data_range=1.0),
          "ms_ssim": lambda a, b: piq.multi_scale_ssim(a, b, data_range=1.0),
          "gmsd": lambda a, b: 1 - piq.gmsd(a, b, data_range=1.0)}[pair_weight]
    xd = x.double()
    for i in range(4):
        for j in range(i):
            expect = float(fn(xd[i:i + 1], xd[j:j + 1]).clamp(0, 1))
            assert m[i, j].item() == pytest.approx(expect, abs=1e-12)
    # more noise, less similar to the reference
    assert m[0, 1] > m[0, 2]


def test_bad_inputs():
    with pytest.raises(ValueError, match="pair_weight"):
        pair_weight_matrix(versions(), "lpips")
    with pytest.raises(ValueError, match="161"):
        pair_weight_matrix(versions((120, 150)), "ms_ssim")
    with pytest.raises(ValueError, match=r"\(D, 3, H, W\)"):
        pair_weight_matrix(torch.rand(4, 1, 64, 64), "ssim")


def test_loader_gives_the_pair_weight_of_the_selected_versions(tmp_path):
    data = make_training_set(tmp_path / "d", n=2, size=(72, 88))
    for pair_weight in ("ssim", "gmsd"):
        ds = LLTrainingDataset(data, pair_weight=pair_weight, fsim_source="stored", grid=2, patch=16)  # FSIM only
        stack, sim = ds.load(1)
        assert sim.shape == (4, 4) and torch.equal(sim, pair_weight_matrix(stack, pair_weight))
        assert not torch.allclose(sim, torch.from_numpy(np.load(ds.folders[1] / "fsim.npy"))[1:, 1:].double())
    ds = LLTrainingDataset(data, pair_weight="none")
    assert torch.equal(ds.load(0)[1], torch.zeros(4, 4, dtype=torch.float64))
    assert len(folder_versions(ds.folders[0])) == 5
    ds = LLTrainingDataset(data, pair_weight="ms_ssim")
    with pytest.raises(ValueError, match="img00.*161"):
        ds.load(0)
    with pytest.raises(ValueError, match="pair_weight"):
        LLTrainingDataset(data, pair_weight="lpips")


def test_training_step_with_another_pair_weight(tmp_path):
    data = make_training_set(tmp_path / "d", n=2, size=(72, 88))
    cfg = load_train_config("ll_tiny_cpu", tiny_ll_overrides(data, tmp_path / "r", "ll.pair_weight=gmsd"))
    task = LLTask(cfg)
    ds = task.build_dataset(data)
    batch = torch.utils.data.default_collate([ds[(0, 0)], ds[(0, 1)]])
    assert torch.equal(batch["pair_weight"][0], pair_weight_matrix(ds.load(0)[0], "gmsd").float())
    loss = task.forward(batch)["loss"]
    assert torch.isfinite(loss)
    with pytest.raises(ConfigError, match="pair_weight"):
        load_train_config("ll_tiny_cpu", ["ll.pair_weight=lpips"])
