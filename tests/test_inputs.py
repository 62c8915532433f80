"""What GRepQ.score accepts (issue 19): paths, folders, PIL images, numpy arrays, tensors and batches score as their
file does; float values outside [0, 1] and non-finite values are refused; EXIF orientation; the upsampled flag;
grepq pristine's reasons and its few-patches warning."""
import copy
import logging

import numpy as np
import pytest
import torch
from conftest import photo
from PIL import Image

from grepq import GRepQ
from grepq.cli import main
from grepq.data.io import read_image
from grepq.models.high_level import HighLevelModel
from grepq.scoring import pristine as pr


def _scorer(ll_model, small_clip, pristine_patches, **kw):
    return GRepQ.from_files(ll_model, HighLevelModel(copy.deepcopy(small_clip)), pristine=pristine_patches,
                            progress=False, cache=False, **kw)


@pytest.fixture(scope="module")
def scorer(ll_model, small_clip, pristine_patches):
    return _scorer(ll_model, small_clip, pristine_patches)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("inputs")
    arr = photo("coffee", (200, 260))
    Image.fromarray(arr).save(d / "coffee.png")
    Image.fromarray(arr[:, :, 0]).save(d / "grey.png")
    return d, arr


def scores(row):
    return row.q_low, row.q_high, row.q_total


def test_every_accepted_input_scores_as_its_file(scorer, files, one_thread):
    d, arr = files
    ref = scorer.score(str(d / "coffee.png"))[0]
    assert ref.image == str(d / "coffee.png") and ref.upsampled is False and ref.quality_map is None
    tensor = read_image(d / "coffee.png")
    with Image.open(d / "coffee.png") as im:
        inputs = [d / "coffee.png", im, arr, arr.astype(np.float32) / np.float32(255), tensor,
                  torch.from_numpy(arr).permute(2, 0, 1), torch.stack([tensor, tensor])]
        rows = scorer(inputs)
    assert [r.image for r in rows] == [str(d / "coffee.png"), "<PIL 1>", "<array 2>", "<array 3>", "<tensor 4>",
                                       "<tensor 5>", "<tensor 6[0]>", "<tensor 6[1]>"]
    for row in rows:
        assert scores(row) == scores(ref), row.image                          # the same bits
    assert scores(scorer(tensor)[0]) == scores(ref) and scores(scorer.score_image(arr)) == scores(ref)
    grey = scorer.score(d / "grey.png")[0]
    assert scores(scorer(arr[:, :, 0])[0]) == scores(grey) != scores(ref)     # (H, W) grey as a grey file


def test_refused_inputs_name_the_input_and_what_is_expected(scorer, files):
    _, arr = files
    x = torch.from_numpy(arr).permute(2, 0, 1).float()                        # [0, 255]: once scored silently
    with pytest.raises(ValueError, match=r"<tensor 0>: float values must be in \[0, 1\], got \[\d+, 255\] "
                                         r"\(divide by 255\?\)"):
        scorer(x)
    bad = x / 255
    bad[0, 5, 5] = float("nan")
    with pytest.raises(ValueError, match="<tensor 1>: holds NaN or infinite values"):
        scorer([x / 255, bad])
    with pytest.raises(ValueError, match=r"<array 0>: float values must be in \[0, 1\], got \[-0\.5, 0\.5\]$"):
        scorer(np.full((120, 150, 3), 0.5) - np.eye(120, 150)[:, :, None])
    with pytest.raises(ValueError, match=r"<array 0>: expected an array \(H, W, 3\) or \(H, W\), got \(3, 200, 260\)"):
        scorer(arr.transpose(2, 0, 1).copy())
    with pytest.raises(ValueError, match="<array 0>: expected uint8 values, or float values in \\[0, 1\\], got int16"):
        scorer(arr.astype(np.int16))
    with pytest.raises(TypeError, match="cannot score input 1 of type int; GRepQ.score accepts a path .*a PIL image.*"
                                        "numpy array.*torch tensor.*a list of these"):
        scorer([arr, 3])
    rows = scorer.score([arr, x], on_error="record")                          # recorded like an unreadable file
    assert rows[0].error is None and "float values must be in [0, 1]" in rows[1].error


def test_small_images_are_flagged_upsampled(scorer, files):
    _, arr = files
    small, ok = scorer([arr[:100, :130], arr])
    assert small.upsampled is True and ok.upsampled is False
    assert small.as_dict()["upsampled"] is True and "quality_map" not in small.as_dict()


def test_exif_orientation_is_applied_by_default(ll_model, small_clip, pristine_patches, scorer, tmp_path):
    stored = photo("chelsea", (200, 280))
    exif = Image.Exif()
    exif[0x0112] = 6                                                          # "rotate 90 CW to display"
    Image.fromarray(stored).save(tmp_path / "phone.jpg", exif=exif, quality=95)
    Image.fromarray(stored).save(tmp_path / "plain.jpg", quality=95)
    applied = read_image(tmp_path / "phone.jpg")
    kept = read_image(tmp_path / "phone.jpg", "ignore")
    assert applied.shape == (3, 280, 200) and kept.shape == (3, 200, 280)
    assert torch.equal(applied, torch.rot90(kept, -1, dims=(1, 2)))          # as displayed
    assert torch.equal(read_image(tmp_path / "plain.jpg"), read_image(tmp_path / "plain.jpg", "ignore"))
    ignoring = _scorer(ll_model, small_clip, pristine_patches, exif_orientation="ignore")
    phone, plain = scorer([tmp_path / "phone.jpg", tmp_path / "plain.jpg"])
    assert scores(phone) == scores(scorer(torch.rot90(kept, -1, dims=(1, 2)))[0])
    phone_kept, plain_kept = ignoring([tmp_path / "phone.jpg", tmp_path / "plain.jpg"])
    assert scores(phone_kept) == scores(plain_kept) == scores(plain) != scores(phone)   # untagged: parity holds
    with pytest.raises(ValueError, match="exif_orientation must be one of"):
        _scorer(ll_model, small_clip, pristine_patches, exif_orientation="rotate")


def test_pristine_names_the_real_reason_and_warns_on_few_patches(tmp_path, caplog, capsys, monkeypatch):
    Image.fromarray(photo("astronaut")).save(tmp_path / "colour.png")
    Image.fromarray(photo("camera", (200, 300))).save(tmp_path / "grey.png")       # sharp, but no colour
    Image.fromarray(np.zeros((200, 300, 3), np.uint8)).save(tmp_path / "flat.png")    # black (zero padding: a
    Image.fromarray(np.full((200, 300, 3), 128, np.uint8)).save(tmp_path / "mid.png")  # flat mid-grey has sharp rims)
    Image.fromarray(photo("coffee", (50, 80))).save(tmp_path / "small.png")
    with caplog.at_level(logging.WARNING, logger="grepq"):
        patches, skipped = pr.select_pristine_patches(tmp_path, progress=False)
    reasons = {p.split("/")[-1]: why for p, why in skipped}
    assert reasons == {"grey.png": "no patch passes the colourfulness threshold (a grey image)",
                       "flat.png": "no patch passes the sharpness threshold (zero sharpness everywhere)",
                       "mid.png": "no patch passes the colourfulness threshold (a grey image)",
                       "small.png": "80x50: smaller than one 96x96 patch"}
    assert 0 < patches.shape[0] < 129
    assert f"only {patches.shape[0]} pristine patches from 5 images" in caplog.text and "singular" in caplog.text
    assert main(["pristine", str(tmp_path), "-o", str(tmp_path / "p.hdf5"), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "grey.png: no patch passes the colourfulness threshold (a grey image)" in err
    monkeypatch.setattr(pr, "MIN_PRISTINE_PATCHES", patches.shape[0])            # enough: no warning
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="grepq"):
        assert torch.equal(pr.select_pristine_patches(tmp_path, progress=False)[0], patches)
    assert "pristine patches" not in caplog.text
