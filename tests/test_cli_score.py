"""``grepq score`` end to end: files and folders, CSV and JSON, failures reported with a non-zero exit."""
import csv
import json
import shutil
import subprocess
import sys

import pytest
import torch
from conftest import make_clip

from grepq.cli import main
from grepq.models.low_level import save_low_level
from grepq.scoring.pristine import write_pristine_hdf5


@pytest.fixture(scope="module")
def files(tmp_path_factory, ll_model, small_clip, pristine_patches):
    d = tmp_path_factory.mktemp("cli")
    save_low_level(ll_model, d / "low_level_model_weights.tar", fmt="official")
    torch.save(make_clip(seed=3).visual.state_dict(), d / "high_level_model_weights.pth")
    torch.save(small_clip.state_dict(), d / "clip.pt")
    write_pristine_hdf5(pristine_patches, d / "pristine.hdf5")
    return d


def args(files, *extra):
    return ["score", "--ll-weights", str(files / "low_level_model_weights.tar"), "--hl-weights",
            str(files / "high_level_model_weights.pth"), "--clip-weights", str(files / "clip.pt"),
            "--pristine", str(files / "pristine.hdf5"), *extra]


def test_score_folder_to_csv_and_json(files, photo_dir, tmp_path):
    assert main(args(files, str(photo_dir), "--output", str(tmp_path / "s.csv"))) == 0
    rows = list(csv.DictReader(open(tmp_path / "s.csv")))
    assert list(rows[0]) == ["image", "q_low", "q_high", "q_total", "upsampled"]
    assert len(rows) == 4
    for r in rows:
        assert float(r["q_total"]) == pytest.approx(float(r["q_low"]) + float(r["q_high"]), abs=1e-9)
    one = str(sorted(photo_dir.glob("*.png"))[0])
    assert main(args(files, one, "--output", str(tmp_path / "s.json"))) == 0
    data = json.load(open(tmp_path / "s.json"))["scores"]
    assert data[0]["image"] == one and data[0]["q_low"] == pytest.approx(float(rows[0]["q_low"]), abs=1e-12)


def test_folder_with_a_bad_file_carries_on_and_fails(files, photo_dir, tmp_path, capsys):
    d = tmp_path / "mixed"
    shutil.copytree(photo_dir, d)
    (d / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    (d / "readme.txt").write_text("not an image")
    status = main(args(files, str(d), "--output", str(tmp_path / "m.csv")))
    err = capsys.readouterr().err
    assert status == 1
    assert "broken.jpg" in err and "1 of 5 images failed" in err
    assert len(list(csv.DictReader(open(tmp_path / "m.csv")))) == 4


def test_low_only_and_bad_options(files, photo_dir, capsys):
    assert main(["score", "--ll-weights", str(files / "low_level_model_weights.tar"), "--pristine",
                 str(files / "pristine.hdf5"), "--components", "ll", str(photo_dir)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "image,q_low,q_high,q_total,upsampled" and out[1].endswith(",,,0")
    assert main(args(files, str(photo_dir), "--output", "x.txt")) == 2
    assert main(["score", str(photo_dir), "--components", "ll", "--pristine", str(files / "pristine.hdf5")]) == 2
    assert "--ll-weights" in capsys.readouterr().err


def test_console_script_runs():
    out = subprocess.run([sys.executable, "-m", "grepq", "score", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--pos-embedding" in out.stdout


def test_batching_and_precision_options(files, tmp_path):
    """--batch-size/--decode-workers give the same scores (to rounding); --channels-last too; --amp bf16 is close."""
    from conftest import photo
    from PIL import Image
    d = tmp_path / "same_size"
    d.mkdir()
    for name in ("astronaut", "coffee", "chelsea", "rocket", "camera"):
        Image.fromarray(photo(name, (180, 200))).save(d / f"{name}.png")

    def scores(*extra):
        out = tmp_path / f"{len(list(tmp_path.glob('*.csv')))}.csv"
        assert main(args(files, str(d), "--output", str(out), *extra)) == 0
        return [(r["image"], float(r["q_low"]), float(r["q_high"])) for r in csv.DictReader(open(out))]

    ref = scores()
    for extra, tol in ((["--batch-size", "3", "--decode-workers", "2"], 1e-5), (["--channels-last"], 1e-5),
                       (["--amp", "bf16"], 0.05)):
        got = scores(*extra)
        assert [g[0] for g in got] == [r[0] for r in ref], extra
        for g, r in zip(got, ref):
            assert g[1] == pytest.approx(r[1], abs=tol) and g[2] == pytest.approx(r[2], abs=tol), extra
    with pytest.raises(SystemExit):
        main(args(files, str(d), "--amp", "fp8"))
