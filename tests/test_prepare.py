"""Tests of grepq.data.prepare: layout, FSIM of the written files, resuming, sharding, workers, kill -9."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import piq
import pytest
import torch
from PIL import Image
from skimage import data
from skimage.io import imread

from grepq.data.fsim import fsim_matrix
from grepq.data.prepare import (FSIM_FILE, PARTIAL_DIR, VERSIONS_FILE, check_item, item_seed, main, prepare)

PHOTOS = {  # three small real photographs (crops of skimage's data), different sizes
    "astronaut": lambda: data.astronaut()[40:112, 180:276],
    "chelsea": lambda: data.chelsea()[60:124, 100:180],
    "coffee": lambda: data.coffee()[100:170, 200:280],
}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # shared CPUs make torch's thread pool slow on small images
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    for name, make in PHOTOS.items():
        Image.fromarray(make()).save(folder / f"{name}.png")
    return folder


@pytest.fixture(scope="module")
def reference_run(photos, tmp_path_factory):
    """One uninterrupted run with workers=1: the output every other layout must reproduce byte for byte."""
    out = tmp_path_factory.mktemp("reference") / "out"
    summary = prepare(photos, out, seed=3, progress=False)
    return out, summary


def tree(out: Path) -> dict:
    """{relative path: bytes} of every file in the item folders (not the reports, not .partial)."""
    files = {}
    for folder in sorted(p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for f in sorted(folder.iterdir()):
            files[f"{folder.name}/{f.name}"] = f.read_bytes()
    return files


def test_layout_versions_and_fsim_of_written_files(reference_run):
    out, summary = reference_run
    assert sorted(r["name"] for r in summary.done) == sorted(PHOTOS) and not summary.failed
    for name in PHOTOS:
        folder = out / name
        meta = json.loads((folder / VERSIONS_FILE).read_text())
        files = [r["file"] for r in meta["files"]]
        assert len(files) == 9 and files == sorted(files) and files[0] == f"{name}_REF.png"
        assert sorted(os.listdir(folder)) == sorted(files + [FSIM_FILE, VERSIONS_FILE])
        assert {r["type"] for r in meta["files"]} == {"reference", "gaussian_blur", "jpeg", "white_noise",
                                                      "hsv_saturation"}
        assert meta["item_seed"] == item_seed(3, name) and meta["grepq_version"]
        # The reference is the input's pixels.
        assert np.array_equal(imread(folder / f"{name}_REF.png"), PHOTOS[name]())
        # fsim.npy = FSIM of the files as the official loader reads them (imread / 255, float64), same order.
        stack = np.stack([imread(folder / f) / 255.0 for f in sorted(files)])
        versions = torch.from_numpy(stack).permute(0, 3, 1, 2)
        matrix = np.load(folder / FSIM_FILE)
        assert matrix.shape == (9, 9) and matrix.dtype == np.float64
        assert np.array_equal(matrix, fsim_matrix(versions).numpy())
        assert abs(matrix[4, 1] - piq.fsim(versions[4:5], versions[1:2], data_range=1.0).item()) < 1e-5
        assert check_item(folder, meta["settings"]) == ("done", "")
    report = json.loads((out / "prepare_report.json").read_text())
    assert report["counts"]["done"] == 3 and len(report["warnings"]) == 3  # all are smaller than 224


def test_rerun_skips_done_items(reference_run, photos, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(reference_run[0], out)
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*/*")}
    summary = prepare(photos, out, seed=3, progress=False)
    assert not summary.done and sorted(r["name"] for r in summary.skipped_done) == sorted(PHOTOS)
    assert stamps == {p: p.stat().st_mtime_ns for p in out.glob("*/*")}


def test_shards_union_and_two_workers_are_byte_identical(reference_run, photos, tmp_path):
    expected = tree(reference_run[0])
    sharded = tmp_path / "sharded"
    names = []
    for i in range(2):
        s = prepare(photos, sharded, seed=3, shard=(i, 2), progress=False)
        names += [r["name"] for r in s.done]
        assert (sharded / f"prepare_report.shard-{i}-of-2.json").is_file()
    assert sorted(names) == sorted(PHOTOS) and len(set(names)) == 3  # disjoint, union = all
    assert tree(sharded) == expected
    parallel = tmp_path / "parallel"
    s = prepare(photos, parallel, seed=3, workers=2, progress=False)
    assert len(s.done) == 3 and tree(parallel) == expected


def test_killed_items_are_redone(reference_run, photos, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(reference_run[0], out)
    expected = tree(reference_run[0])
    # astronaut: killed while being written (a .partial folder, no final folder)
    shutil.rmtree(out / "astronaut")
    (out / PARTIAL_DIR / "astronaut").mkdir(parents=True)
    (out / PARTIAL_DIR / "astronaut" / "astronaut_REF.png").write_bytes(b"half")
    # chelsea: a folder missing one file
    (out / "chelsea" / "chelsea_jpeg_4.png").unlink()
    assert check_item(out / "chelsea")[0] == "incomplete"
    summary = prepare(photos, out, seed=3, progress=False)
    assert sorted(r["name"] for r in summary.done) == ["astronaut", "chelsea"]
    assert [r["name"] for r in summary.skipped_done] == ["coffee"]
    assert tree(out) == expected and not (out / PARTIAL_DIR).exists()


def test_failures_and_ignored_files_are_reported(photos, tmp_path):
    inputs = tmp_path / "in"
    shutil.copytree(photos, inputs)
    (inputs / "broken.jpg").write_bytes(b"not a jpeg")
    Image.fromarray(data.astronaut()[:20, :40]).save(inputs / "tiny.png")
    (inputs / "notes.txt.bak").write_text("x")
    out = tmp_path / "out"
    summary = prepare(inputs, out, seed=3, progress=False)
    failed = {Path(r["source"]).name: r["reason"] for r in summary.failed}
    assert failed["broken.jpg"].startswith("unreadable") and "too small" in failed["tiny.png"]
    assert [Path(r["path"]).name for r in summary.ignored] == ["notes.txt.bak"]
    assert len(summary.done) == 3 and not summary.ok
    report = json.loads((out / "prepare_report.json").read_text())
    assert report["counts"]["failed"] == 2 and report["counts"]["ignored"] == 1
    assert "broken.jpg" in (out / "prepare_report.csv").read_text()
    assert not (out / "broken").exists() and not (out / "tiny").exists()


def test_collisions_list_files_and_changed_settings(photos, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    shutil.copy(photos / "coffee.png", a / "same.png")
    shutil.copy(photos / "chelsea.png", b / "same.png")
    listing = tmp_path / "list.txt"
    listing.write_text("# two files with one stem\na/same.png\nb/same.png\n")
    with pytest.raises(ValueError, match="same file stem"):
        prepare(listing, tmp_path / "o1", progress=False)
    s = prepare(listing, tmp_path / "o1", on_collision="suffix", progress=False)
    assert sorted(r["name"] for r in s.done) == ["same__1", "same__2"]
    assert json.loads((tmp_path / "o1" / "same__2" / VERSIONS_FILE).read_text())["source"] == str(b / "same.png")
    # Re-running with other settings neither skips nor overwrites: the item is reported as failed.
    before = tree(tmp_path / "o1")
    s = prepare(listing, tmp_path / "o1", on_collision="suffix", seed=4, progress=False)
    assert len(s.failed) == 2 and "other settings" in s.failed[0]["reason"] and not s.done
    assert tree(tmp_path / "o1") == before
    with pytest.raises(ValueError, match="shard"):
        prepare(listing, tmp_path / "o2", shard=(2, 2), progress=False)
    with pytest.raises(ValueError, match="lossless"):
        prepare(listing, tmp_path / "o2", ext="jpg", progress=False)


def test_sigkill_mid_run_then_resume_equals_uninterrupted(tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    photo = data.astronaut()
    for k in range(8):  # eight items, so that the kill lands after the first and before the last
        Image.fromarray(photo[40 * k:40 * k + 128, 30 * k:30 * k + 160]).save(inputs / f"img{k}.png")
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "grepq.data.prepare", str(inputs), "--out", str(killed),
                             "--seed", "5", "--no-progress"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    try:
        while time.time() < deadline and proc.poll() is None:
            if list(killed.glob(f"*/{VERSIONS_FILE}")):  # a first item is complete
                break
            time.sleep(0.005)
        done_at_kill = len(list(killed.glob(f"*/{VERSIONS_FILE}")))
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "prepare finished before it could be killed"
    print("items done at kill:", done_at_kill)
    assert 1 <= done_at_kill < 8
    resumed = prepare(inputs, killed, seed=5, progress=False)
    assert len(resumed.skipped_done) >= done_at_kill and len(resumed.done) + len(resumed.skipped_done) == 8
    prepare(inputs, clean, seed=5, progress=False)
    assert tree(killed) == tree(clean) and len(tree(clean)) == 8 * 11, done_at_kill


def test_command_line(photos, tmp_path):
    code = main([str(photos), "--out", str(tmp_path / "out"), "--types", "jpeg,white_noise", "--levels", "1,5",
                 "--shard", "0/3", "--no-progress", "--seed", "3"])
    assert code == 0
    (item,) = [p for p in (tmp_path / "out").iterdir() if p.is_dir()]
    assert item.name == "astronaut"  # sorted names: astronaut, chelsea, coffee -> shard 0 of 3 holds the first
    meta = json.loads((item / VERSIONS_FILE).read_text())
    assert [r["file"] for r in meta["files"]] == ["astronaut_REF.png", "astronaut_jpeg_1.png", "astronaut_jpeg_5.png",
                                                  "astronaut_white_noise_1.png", "astronaut_white_noise_5.png"]
    assert np.load(item / FSIM_FILE).shape == (5, 5)
