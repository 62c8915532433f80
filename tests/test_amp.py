"""Mixed precision and channels_last, the hardware options: off by default (float32 is the reference), the same
code path on CPU and CUDA (CPU autocast here), results equal to rounding, fp16 gradient scaling saved and resumed."""
import copy

import pytest
import torch
from test_train_ll import make_training_set, tiny_ll_overrides

from grepq import GRepQ
from grepq.config import ConfigError
from grepq.eval import features as fx
from grepq.models.high_level import HighLevelModel
from grepq.parallel import DistInfo
from grepq.train import train
from grepq.train.checkpoint import load_checkpoint
from grepq.train.schema import load_train_config
from grepq.train.tasks import HLTask, LLTask
from grepq.utils import autocast_context


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_training_set(tmp_path_factory.mktemp("ampdata"), n=8, size=(72, 88))


def _batch(task, data, n):
    ds = task.build_dataset(data)
    return torch.utils.data.default_collate([ds[(0, i)] for i in range(n)])


def _losses(make_task, data, n):
    """Loss of one forward of the same batch, same initial weights, under each setting."""
    out = {}
    for name, extra in (("fp32", []), ("channels_last", ["run.channels_last=true"]), ("bf16", ["run.amp=bf16"])):
        torch.manual_seed(0)
        task = make_task(extra)
        task.train_mode()
        out[name] = {k: v.detach() for k, v in task.forward(_batch(task, data, n)).items()}
    return out


def test_defaults_are_float32():
    cfg = load_train_config("ll_paper")
    assert cfg["run"]["amp"] == "off" and cfg["run"]["channels_last"] is False
    with pytest.raises(ConfigError):
        load_train_config("ll_paper", ["run.amp=fp8"])
    with autocast_context("cpu", "off"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    with autocast_context("cpu", "bf16"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="amp"):
        autocast_context("cpu", "half")


def test_ll_task_channels_last_equal_and_bf16_close(data):
    def make(extra):
        return LLTask(load_train_config("ll_tiny_cpu", tiny_ll_overrides(data, "/tmp/unused", *extra)), DistInfo())

    out = _losses(make, data, 2)
    ref = float(out["fp32"]["loss"])
    assert out["bf16"]["loss"].dtype == torch.float32                 # the loss is computed in float32
    assert float(out["channels_last"]["loss"]) == pytest.approx(ref, rel=1e-5)
    assert float(out["bf16"]["loss"]) != ref                           # autocast really ran in bf16 ...
    assert float(out["bf16"]["loss"]) == pytest.approx(ref, rel=0.05)  # ... and stays close


def test_hl_task_channels_last_equal_and_bf16_close(clip_files, data):
    def make(extra):
        cfg = load_train_config("hl_tiny_cpu", [f"hl.clip={clip_files['state_dict']}", f"data.root={data}", *extra])
        return HLTask(cfg, DistInfo())

    out = _losses(make, data, 8)
    ref = float(out["fp32"]["loss"])
    assert out["bf16"]["loss"].dtype == torch.float32
    assert float(out["channels_last"]["loss"]) == pytest.approx(ref, rel=1e-4)
    assert float(out["bf16"]["loss"]) != ref
    assert float(out["bf16"]["loss"]) == pytest.approx(ref, rel=0.05)


@pytest.mark.filterwarnings("ignore:amp 'fp16' on the CPU")
def test_fp16_training_saves_and_resumes_the_gradient_scaler(data, tmp_path):
    def cfg(run, *extra):
        return load_train_config("ll_tiny_cpu",
                                 tiny_ll_overrides(data, tmp_path / run, "data.num_workers=0", "data.limit=4",
                                                            "ll.epochs=2", "run.deterministic=true", *extra))

    train(cfg("full", "run.amp=fp16"))
    # float16 convolutions are slow on a CPU (about 25x float32): 4 folders, 2 per batch, 2 epochs = 4 steps
    with pytest.warns(UserWarning, match="slower"):
        train(cfg("split", "run.amp=fp16", "run.max_steps=2"))
    ck = load_checkpoint(tmp_path / "split" / "checkpoint.pth")
    assert ck["scaler"] is not None and ck["scaler"]["scale"] > 0
    result = train(cfg("split", "run.amp=fp16"))
    assert result.finished and result.step == 4
    a, b = (load_checkpoint(tmp_path / r / "checkpoint.pth") for r in ("full", "split"))
    # the scale (halved at each overflow, doubled after growth_interval good steps) continued where it stopped
    assert a["scaler"] == b["scaler"]
    wa, wb = (torch.load(tmp_path / r / "ll_weights.pt", weights_only=True)["state_dict"] for r in ("full", "split"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert all(v.dtype == torch.float32 for v in wa.values() if v.is_floating_point())
    # the precision is part of the run: resuming it in float32 is refused, naming the key
    with pytest.raises(ConfigError, match="run.amp"):
        train(cfg("split"))


def test_scoring_channels_last_equal_bf16_close_and_cached_apart(small_clip, ll_model, pristine_patches, photo_dir,
                                                                 tmp_path):
    paths = sorted(photo_dir.glob("*.png"))

    def scorer(**kw):
        return GRepQ.from_files(ll_weights=copy.deepcopy(ll_model),
                                hl_weights=HighLevelModel(copy.deepcopy(small_clip)),
                                pristine=pristine_patches, progress=False, **kw)

    ref = scorer().score(paths)
    cl = scorer(channels_last=True).score(paths)
    bf = scorer(amp="bf16").score(paths)
    for a, b, c in zip(ref, cl, bf):
        assert b.q_low == pytest.approx(a.q_low, rel=1e-5, abs=1e-6)
        assert b.q_high == pytest.approx(a.q_high, rel=1e-5, abs=1e-6)
        assert c.q_high == pytest.approx(a.q_high, abs=0.05) and c.q_low == pytest.approx(a.q_low, abs=0.05)
    assert any(c.q_high != a.q_high for a, c in zip(ref, bf))
    with pytest.raises(ValueError, match="amp"):
        scorer(amp="fp8")
    f32 = fx.extract_features(scorer(), paths[:1], cache_dir=tmp_path, progress=False)
    f16 = fx.extract_features(scorer(amp="bf16"), paths[:1], cache_dir=tmp_path, progress=False)
    assert f32.cache_dir != f16.cache_dir
