"""``grepq score`` end to end: files and folders, CSV and JSON, failures reported with a non-zero exit."""
import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_clip, photo
from PIL import Image

from grepq.cli import main
from grepq.models.low_level import save_low_level
from grepq.scoring.pristine import write_pristine_hdf5
from grepq.scoring.zero_shot import patch_grid


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


META_KEYS = {"grepq_version", "created", "cwd", "command", "settings", "weights", "regressor", "columns", "failed",
             "skipped", "upsampled", "maps"}


def test_outputs_parse_with_the_standard_readers(files, photo_dir, tmp_path, capsys):
    """CSV: header and rows only, metadata in <stem>.meta.json; JSON: one object {meta, scores}; stdout: plain CSV."""
    d = tmp_path / "in"
    shutil.copytree(photo_dir, d)
    Image.fromarray(photo("camera", (100, 120))).save(d / "small.png")  # one 96x96 patch only: upsampled
    (d / "broken.png").write_bytes(b"\x89PNG garbage")
    assert main(args(files, str(d), "--no-progress", "-o", str(tmp_path / "s.csv"))) == 1
    rows = list(csv.DictReader(open(tmp_path / "s.csv", newline="")))
    assert list(rows[0]) == ["image", "q_low", "q_high", "q_total", "upsampled"] and len(rows) == 5
    assert {r["image"]: r["upsampled"] for r in rows} == {str(p): "1" if p.name == "small.png" else "0"
                                                            for p in sorted(d.glob("*.png")) if p.name != "broken.png"}
    meta = json.load(open(tmp_path / "s.meta.json"))
    assert set(meta) == META_KEYS and meta["regressor"] is None and meta["maps"] is None
    assert set(meta["weights"]) == {"ll", "hl", "clip_text", "pristine"} and all(meta["weights"].values())
    assert meta["settings"]["components"] == ["ll", "hl"] and meta["settings"]["progress"] is False
    assert list(meta["columns"]) == list(rows[0]) and meta["upsampled"] == [str(d / "small.png")]
    assert [f["image"] for f in meta["failed"]] == [str(d / "broken.png")]
    assert "broken.png" in meta["failed"][0]["reason"]
    assert main(args(files, str(d), "--no-progress", "-o", str(tmp_path / "s.json"))) == 1
    doc = json.load(open(tmp_path / "s.json"))
    assert set(doc) == {"meta", "scores"} and set(doc["meta"]) == META_KEYS
    assert [{k: str(v) for k, v in r.items()} for r in doc["scores"]] == rows
    capsys.readouterr()
    assert main(args(files, str(d / "small.png"), "--no-progress")) == 0
    assert list(csv.DictReader(capsys.readouterr().out.splitlines()))[0]["upsampled"] == "1"


def test_subfolders_are_reported_or_searched_with_recursive(files, photo_dir, tmp_path, capsys):
    d = tmp_path / "tree"
    shutil.copytree(photo_dir, d / "sub")
    shutil.copy(photo_dir / "coffee.png", d / "top.png")
    assert main(args(files, str(d), "--components", "ll", "--no-progress", "-o", str(tmp_path / "a.csv"))) == 0
    assert "skipped 1 paths" in capsys.readouterr().err
    assert [r["image"] for r in csv.DictReader(open(tmp_path / "a.csv"))] == [str(d / "top.png")]
    assert json.load(open(tmp_path / "a.meta.json"))["skipped"] == [{"path": str(d / "sub"),
                                                                      "reason": "a subfolder (add --recursive)"}]
    assert main(args(files, str(d), "--components", "ll", "--recursive", "-o", str(tmp_path / "b.csv"))) == 0
    assert len(list(csv.DictReader(open(tmp_path / "b.csv")))) == 5
    assert json.load(open(tmp_path / "b.meta.json"))["skipped"] == []


def test_refusals_name_the_cause(files, photo_dir, capsys):
    assert main(args(files, str(photo_dir), "--device", "gpu")) == 2
    assert "cpu, cuda, cuda:N" in capsys.readouterr().err
    assert main(["score", str(photo_dir), "--pristine", str(files / "pristine.hdf5"), "--components", "ll"]) == 2
    err = capsys.readouterr().err
    assert "--ll-weights" in err and "low_level_model_weights.tar" in err and "github.com/suhas-srinath/GRepQ" in err
    assert main(args(files, str(photo_dir), "--maps", "m", "--components", "hl")) == 2
    assert main(args(files, str(photo_dir), "--maps", "m", "--regressor", "r.json")) == 2
    assert main(args(files, str(photo_dir), "--report", "r")) == 2  # the report reads --output
    assert "--output" in capsys.readouterr().err


def test_maps_and_report(files, photo_dir, tmp_path):
    """--maps: per image a .npy (the patch grid) and a PNG, unique names for two inputs called the same; --report."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    shutil.copy(photo_dir / "coffee.png", a / "x.png")
    shutil.copy(photo_dir / "rocket.png", b / "x.png")
    out = tmp_path / "s.csv"
    assert main(args(files, str(a), str(b), "--no-progress", "-o", str(out), "--maps", str(tmp_path / "maps"),
                     "--report", str(tmp_path / "rep"))) == 0
    maps = json.load(open(tmp_path / "s.meta.json"))["maps"]
    assert maps["dir"] == str(tmp_path / "maps") and list(maps["files"]) == [str(a / "x.png"), str(b / "x.png")]
    names = [Path(f[k]).name for f in maps["files"].values() for k in ("npy", "png")]
    assert len(set(names)) == 4 and sorted(names) == sorted(p.name for p in (tmp_path / "maps").iterdir())
    for img, f in maps["files"].items():
        w, h = Image.open(img).size
        m = np.load(f["npy"])
        assert m.dtype == np.float32 and m.shape == patch_grid(h, w) and np.isfinite(m).all()
        assert Image.open(f["png"]).size[0] > 0
    html = (tmp_path / "rep" / "index.html").read_text()
    assert html.count('class="card"') == 2 and html.count('href="maps/') == 2
