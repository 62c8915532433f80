"""HL training: REF crops, the HL task (paper / official head, frozen text side, BatchNorm modes), and a tiny
end-to-end run: grepq train (LL and HL) -> grepq score with the trained weights -> grepq export (official formats).

The small CLIP of conftest (same code as RN50, narrower) stands in for RN50.
"""
import copy
import csv
import json

import numpy as np
import pytest
import torch
from PIL import Image
from test_train_ll import make_training_set, tiny_ll_overrides

from grepq.cli import main
from grepq.commands.export import export_run
from grepq.data.io import CLIP_MEAN, CLIP_STD
from grepq.data.layout import DataError
from grepq.data.training_set import HLTrainingDataset, hl_preprocess
from grepq.models.high_level import load_hl_visual_weights
from grepq.models.low_level import load_low_level
from grepq.parallel import DistInfo
from grepq.scoring.pristine import write_pristine_hdf5
from grepq.train.schema import load_train_config
from grepq.train.tasks import HLTask


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_training_set(tmp_path_factory.mktemp("hldata"), n=8, size=(72, 88))


def hl_task(clip_file, *extra):
    cfg = load_train_config("hl_tiny_cpu", [f"hl.clip={clip_file}", *extra])
    torch.manual_seed(0)
    return HLTask(cfg, DistInfo())


def batch_of(task, data, n=8):
    ds = task.build_dataset(data)
    return torch.utils.data.default_collate([ds[i] for i in range(n)])


def run_steps(task, batch, steps=2):
    opt = task.make_optimizer()
    task.train_mode()
    out = None
    for _ in range(steps):
        out = task.forward(batch)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
    return opt, out


# ---------------------------------------------------------------------------------------------------------------
# Data


def test_ref_crop_pad_and_resize():
    img = torch.rand(3, 64, 96)
    norm = (img - torch.tensor(CLIP_MEAN).view(3, 1, 1)) / torch.tensor(CLIP_STD).view(3, 1, 1)
    out = hl_preprocess(img, 224, "pad")                  # official: CenterCrop zero-pads the normalised tensor
    assert out.shape == (3, 224, 224)
    top, left = (224 - 64) // 2, (224 - 96) // 2
    assert torch.equal(out[:, top:top + 64, left:left + 96], norm)
    assert torch.all(out[:, :top] == 0) and torch.all(out[:, :, :left] == 0)
    out = hl_preprocess(img, 224, "resize")               # short side resized to 224 first: no padding
    assert out.shape == (3, 224, 224) and (out == 0).float().mean() < 0.01
    big = torch.rand(3, 300, 260)
    nb = (big - torch.tensor(CLIP_MEAN).view(3, 1, 1)) / torch.tensor(CLIP_STD).view(3, 1, 1)
    assert torch.equal(hl_preprocess(big, 224, "pad"), nb[:, 38:262, 18:242])  # plain centre crop, no resize


def test_hl_dataset_reads_the_reference_only(data, tmp_path):
    ds = HLTrainingDataset(data, crop=64)
    s = ds[3]
    assert s["image"].shape == (3, 64, 64) and s["name"] == "img03"
    assert ds.reference(3).name == "img03_REF.png"
    (tmp_path / "x").mkdir()
    Image.fromarray(np.zeros((40, 40, 3), np.uint8)).save(tmp_path / "x" / "x_blur_1.png")
    with pytest.raises(DataError, match=r"x: expected one reference image.*_REF.*found none"):
        HLTrainingDataset(tmp_path)[0]


# ---------------------------------------------------------------------------------------------------------------
# Task


def test_paper_hl_trains_encoder_and_head_text_side_frozen(clip_files, data):
    task = hl_task(clip_files["state_dict"], "hl.lr=1e-3")
    model = task.model
    assert "text_features" in dict(model.named_buffers())
    assert not any("text" in n or "transformer" in n for n, _ in model.named_parameters())  # no text encoder to train
    text = model.text_features.clone()
    head0 = copy.deepcopy(model.head.state_dict())
    vis0 = model.visual.layer1[0].conv1.weight.detach().clone()
    batch = batch_of(task, data)
    task.train_mode()
    out = task.forward(batch)
    out["loss"].backward()
    trainable = task.trainable_parameters()
    names = {id(p): n for n, p in model.named_parameters()}
    missing = [names[id(p)] for p in trainable if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"trainable parameters without gradient: {missing}"
    assert model.visual.attnpool.positional_embedding.grad is None  # 'drop': unused, not optimised
    assert id(model.visual.attnpool.positional_embedding) not in {id(p) for p in trainable}
    assert {id(p) for p in model.head.parameters()} <= {id(p) for p in trainable}
    run_steps(task, batch)
    assert torch.equal(model.text_features, text)
    assert not torch.equal(model.head[0].weight, head0["0.weight"])
    assert not torch.equal(model.visual.layer1[0].conv1.weight, vis0)
    # the pseudo-labels are Eq. 2 on the encoder output of this batch
    with torch.no_grad():
        emb, _ = model(batch["image"])
        expected = float(model.quality_from_embedding(emb).mean())
        assert float(task.forward(batch)["q_mean"]) == pytest.approx(expected, abs=1e-6)


def test_official_hl_head_is_frozen_relu_and_never_optimised(clip_files, data):
    task = hl_task(clip_files["state_dict"], "hl.head_activation=relu", "hl.head_trainable=false", "hl.loss=official",
                   "hl.temperature=0.5", "hl.lr=1e-3")
    model = task.model
    assert isinstance(model.head[1], torch.nn.ReLU)
    head0 = copy.deepcopy(model.head.state_dict())
    vis0 = model.visual.conv1.weight.detach().clone()
    opt, out = run_steps(task, batch_of(task, data))
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    assert not ({id(p) for p in model.head.parameters()} & in_opt)
    assert all(torch.equal(model.head.state_dict()[k], v) for k, v in head0.items())
    assert not torch.equal(model.visual.conv1.weight, vis0)  # the gradient still flows through the head
    assert torch.isfinite(out["loss"])


def test_batchnorm_modes(clip_files, data):
    def bn(t):
        return t.model.visual.bn1
    frozen = hl_task(clip_files["state_dict"], "hl.bn=frozen")
    mean0 = bn(frozen).running_mean.clone()
    batch = batch_of(frozen, data)
    run_steps(frozen, batch, 1)
    assert torch.equal(bn(frozen).running_mean, mean0) and not bn(frozen).training
    trained = hl_task(clip_files["state_dict"], "hl.bn=train")
    run_steps(trained, batch, 1)
    assert not torch.equal(bn(trained).running_mean, mean0) and bn(trained).training
    with pytest.raises(ValueError, match="SyncBatchNorm.*needs CUDA"):
        hl_task(clip_files["state_dict"], "hl.bn=sync")
    with pytest.raises(ValueError, match="'keep' needs hl.crop = 224"):
        hl_task(clip_files["state_dict"], "hl.pos_embedding=keep")


def test_group_size_from_config(clip_files):
    task = hl_task(clip_files["state_dict"])
    assert task.group_size(8) == 2                         # hl_tiny_cpu: M = 2
    task.section["group_size"] = None
    assert task.group_size(128) == 16                      # paper: round(128 / 8)
    task.section["group_divisor"] = 32
    assert task.group_size(128) == 4                       # official 'tau' 32


# ---------------------------------------------------------------------------------------------------------------
# End to end


def test_tiny_end_to_end_train_score_export(clip_files, data, tmp_path, pristine_patches, capsys):
    ll_run, hl_run = tmp_path / "ll", tmp_path / "hl"
    # TensorBoard is optional: without the package the run warns and goes on with log.jsonl
    assert main(["train", "--config", "ll_tiny_cpu", *tiny_ll_overrides(data, ll_run), "--max-steps", "2",
                 "run.tensorboard=true"]) == 0
    assert main(["train", "--config", "hl_tiny_cpu", "--data", str(data), "--run-dir", str(hl_run),
                 f"hl.clip={clip_files['state_dict']}", "--max-steps", "1"]) == 0
    for run, weights in ((ll_run, "ll_weights.pt"), (hl_run, "hl_weights.pt")):
        for f in ("config.yaml", "run_info.json", "log.jsonl", "checkpoint.pth", weights):
            assert (run / f).is_file(), f
    records = [json.loads(line) for line in open(ll_run / "log.jsonl")]
    assert [r["step"] for r in records] == [1, 2] and {"loss", "lr", "epoch", "type"} <= set(records[0])
    # stopped by --max-steps (1 of 2 steps)
    assert json.loads((hl_run / "run_info.json").read_text())["finished"] is False
    write_pristine_hdf5(pristine_patches, tmp_path / "pristine.hdf5")
    image = str(data / "img00" / "img00_REF.png")
    capsys.readouterr()
    assert main(["score", image, "--ll-weights", str(ll_run / "ll_weights.pt"), "--hl-weights",
                 str(hl_run / "hl_weights.pt"), "--clip-weights", str(clip_files["state_dict"]), "--pristine",
                 str(tmp_path / "pristine.hdf5"), "--output", str(tmp_path / "s.csv")]) == 0
    row = next(csv.DictReader(open(tmp_path / "s.csv")))
    assert 0 < float(row["q_low"]) < 1 and 0 < float(row["q_high"]) < 1
    # the scored HL model is the trained one, not stock CLIP
    stock = main(["score", image, "--hl-weights", "stock-clip", "--clip-weights", str(clip_files["state_dict"]),
                  "--components", "hl", "--output", str(tmp_path / "stock.csv")])
    assert stock == 0 and float(next(csv.DictReader(open(tmp_path / "stock.csv")))["q_high"]) != float(row["q_high"])
    # official formats
    written = export_run(ll_run) + export_run(hl_run)
    assert [w.name for w in written] == ["low_level_model_weights.tar", "high_level_model_weights.pth"]
    ll_official, report = load_low_level(ll_run / "low_level_model_weights.tar")
    ll_ours, _ = load_low_level(ll_run / "ll_weights.pt")
    assert "official" in report.format
    assert len(torch.load(ll_run / "low_level_model_weights.tar")["model"]["state_dict"]) == 246
    assert all(torch.equal(ll_official.state_dict()[k], v) for k, v in ll_ours.state_dict().items())
    hl_off = torch.load(hl_run / "high_level_model_weights.pth")
    assert not any(k.startswith(("visual.", "head.")) for k in hl_off)
    ours = load_hl_visual_weights(hl_run / "hl_weights.pt")
    assert all(torch.equal(ours["visual." + k], v) for k, v in hl_off.items())
    assert load_low_level(ll_run / "checkpoint.pth")[1].format == "grepq training checkpoint"
