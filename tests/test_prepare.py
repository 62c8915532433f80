"""Tests of grepq.data.prepare: recipes, layout, FSIM of the written files, resuming, sharding, workers, kill -9."""
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
from conftest import torch_threads
from PIL import Image
from skimage import data
from skimage.io import imread

from grepq.cli import main as cli_main
from grepq.data import distortions as dist
from grepq.data import kadis_ops
from grepq.data.distortions import AUTHORS_LEVELS, AUTHORS_TYPES, DISTORTION_KADIS_IDS
from grepq.data.fsim import fsim_matrix
from grepq.data.prepare import FSIM_FILE, PARTIAL_DIR, VERSIONS_FILE, check_item, item_seed, prepare
from grepq.data.recipes import make_recipe

PHOTOS = {  # three small real photographs (crops of skimage's data), different sizes
    "astronaut": lambda: data.astronaut()[40:112, 180:276],
    "chelsea": lambda: data.chelsea()[60:124, 100:180],
    "coffee": lambda: data.coffee()[100:170, 200:280],
}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One torch thread for the whole module (tests/conftest.py: torch_threads)."""
    with torch_threads(1):
        yield


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
        # The authors' recipe: 4 different types of their 12, 2 different levels of 2..5 each; every row says
        # what the file is (KADIS id, function, level, parameter), the substitute labelled.
        rows = [r for r in meta["files"] if r["type"] != "reference"]
        types = {r["type"] for r in rows}
        assert len(types) == 4 and types <= set(AUTHORS_TYPES)
        for t in types:
            levels = [r["level"] for r in rows if r["type"] == t]
            assert len(set(levels)) == 2 and set(levels) <= set(AUTHORS_LEVELS)
        for r in rows:
            assert r["kadis_id"] == DISTORTION_KADIS_IDS[r["type"]] and r["parameter"] is not None
            assert ("substitute" in r) == (r["type"] == "denoise_nlm")
        assert meta["settings"]["recipe"]["name"] == "authors"
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
    next(p for p in (out / "chelsea").glob("*.png") if "_REF" not in p.name).unlink()
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
    proc = subprocess.Popen([sys.executable, "-m", "grepq", "prepare", str(inputs), "--out", str(killed),
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


def main(argv):
    return cli_main(["prepare", *argv])


def test_command_line(photos, tmp_path):
    # --types / --levels without --recipe: every type at every level (recipe grid), as these options always meant.
    code = main([str(photos), "--out", str(tmp_path / "out"), "--types", "jpeg,white_noise", "--levels", "1,5",
                 "--shard", "0/3", "--no-progress", "--seed", "3"])
    assert code == 0
    (item,) = [p for p in (tmp_path / "out").iterdir() if p.is_dir()]
    assert item.name == "astronaut"  # sorted names: astronaut, chelsea, coffee -> shard 0 of 3 holds the first
    meta = json.loads((item / VERSIONS_FILE).read_text())
    assert [r["file"] for r in meta["files"]] == ["astronaut_REF.png", "astronaut_jpeg_1.png", "astronaut_jpeg_5.png",
                                                  "astronaut_white_noise_1.png", "astronaut_white_noise_5.png"]
    assert np.load(item / FSIM_FILE).shape == (5, 5)
    assert json.loads((item / VERSIONS_FILE).read_text())["settings"]["recipe"]["name"] == "grid"
    assert main([str(photos), "--out", str(tmp_path / "x"), "--recipe", "fixed", "--n-types", "2"]) == 2  # clear error


#: What grepq wrote before recipes existed (main at 57a4ad3: `prepare(photos, out, seed=3)` on PHOTOS), checked
#: by running 57a4ad3 itself: the exact decoded pixels of every file and versions.json (without grepq_version /
#: source path), and each fsim.npy's sum and index-weighted sum. FSIM is compared to 1e-10, not bit for bit: its
#: last bits follow torch's CPU kernels (ATEN_CPU_CAPABILITY=default vs avx512 changes them; the pixels do not).
MAIN_57A4AD3_DIGEST = "5f23f48faadf0cba2ce91b69441192c649ec9f6c4b0ef46730fedf3b4cdef0b9"
MAIN_57A4AD3_FSIM_SUMS = {"astronaut": (72.88474352553521, 2889.636374899116),
                          "chelsea": (71.73728171231652, 2847.3928174311786),
                          "coffee": (68.86580843063612, 2683.979700965546)}


def content_digest(out: Path):
    """(sha256 of the decoded pixels, names and versions.json of every item, {item: FSIM sums})."""
    import hashlib
    h, sums = hashlib.sha256(), {}
    for folder in sorted(p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for f in sorted(folder.iterdir()):
            h.update(f.name.encode())
            if f.suffix == ".png":
                h.update(np.asarray(Image.open(f)).tobytes())
            elif f.suffix == ".npy":
                m = np.load(f)
                sums[folder.name] = (m.sum(), (m * np.arange(m.size).reshape(m.shape)).sum())
            else:
                meta = json.loads(f.read_text())
                meta.pop("grepq_version"), meta.pop("source")
                h.update(json.dumps(meta, sort_keys=True).encode())
    return h.hexdigest(), sums


def test_recipe_fixed_reproduces_the_files_grepq_wrote_before_recipes(photos, tmp_path):
    out = tmp_path / "fixed"
    prepare(photos, out, recipe="fixed", seed=3, progress=False)
    digest, sums = content_digest(out)
    assert digest == MAIN_57A4AD3_DIGEST
    assert sums.keys() == MAIN_57A4AD3_FSIM_SUMS.keys()
    for name, expected in MAIN_57A4AD3_FSIM_SUMS.items():
        np.testing.assert_allclose(sums[name], expected, rtol=1e-10, atol=0)
    meta = json.loads((out / "coffee" / VERSIONS_FILE).read_text())
    assert meta["settings"]["format"] == 1 and "recipe" not in meta["settings"]  # old folders keep counting as done
    assert len(prepare(photos, out, recipe="fixed", seed=3, progress=False).skipped_done) == 3


def test_recipe_draws_depend_on_seed_and_name_only_and_are_uniform():
    authors = make_recipe("authors")
    counts = {t: 0 for t in AUTHORS_TYPES}
    level_pairs = {}
    n = 3000
    for k in range(n):
        specs = authors.draw(item_seed(0, f"img{k}"))
        assert len(specs) == 8 and [s.kadis.id for s in specs] == sorted(s.kadis.id for s in specs)
        for t in {s.type for s in specs}:
            counts[t] += 1
        pair = tuple(s.level for s in specs[:2])
        level_pairs[pair] = level_pairs.get(pair, 0) + 1
    for t, c in counts.items():  # each type in 4/12 of the images
        assert abs(c / n - 1 / 3) < 0.035, (t, c)
    assert len(level_pairs) == 6 and min(level_pairs.values()) > n / 6 * 0.8  # the 6 pairs of {2,3,4,5}
    assert authors.draw(item_seed(0, "a")) == authors.draw(item_seed(0, "a")) != authors.draw(item_seed(1, "a"))
    no_denoise = make_recipe("authors-no-denoise")
    assert all(s.type != "denoise_nlm" for k in range(300) for s in no_denoise.draw(item_seed(0, f"i{k}")))
    custom = make_recipe("random", types=["jpeg", "lens_blur", "darken"], levels=[1, 5], n_types=2, n_levels=1)
    specs = custom.draw(5)
    assert len(specs) == 2 and {s.level for s in specs} <= {1, 5}
    with pytest.raises(ValueError, match="available types"):
        make_recipe("grid", types=["no_such_blur"])


def test_kadis_naming_is_the_official_layout_and_grepq_reads_it(photos, tmp_path, reference_run):
    from grepq.data.training_set import LLTrainingDataset
    out = tmp_path / "LIVE_FB_synthetic"
    s = prepare(photos, out, naming="kadis", seed=3, progress=False)
    assert len(s.done) == 3
    assert (out / "LIVEFB.csv").read_text().splitlines() == ["im_loc", "astronaut.bmp", "chelsea.bmp", "coffee.bmp"]
    grepq_meta = json.loads((reference_run[0] / "astronaut" / VERSIONS_FILE).read_text())
    folder = out / "astronaut.bmp"
    files = sorted(os.listdir(folder))  # the official loader reads every file here as an image
    assert len(files) == 9 and all(f.endswith(".bmp") for f in files) and "astronaut_REF.bmp" in files
    by_kadis = {f"astronaut_{r['kadis_id']:02d}_{r['level']:02d}.bmp": r["file"] for r in grepq_meta["files"]
                if r["kadis_id"]}
    assert sorted(by_kadis) + ["astronaut_REF.bmp"] == files  # the same draw as grepq's naming, KADIS's names
    for kadis_file, grepq_file in by_kadis.items():  # ... and the same pixels
        assert np.array_equal(imread(folder / kadis_file), imread(reference_run[0] / "astronaut" / grepq_file))
    assert (out / ".grepq" / "astronaut.bmp" / FSIM_FILE).is_file()
    ds = LLTrainingDataset(out, versions="all", fsim_source="stored")
    assert [p.name for p in ds.folders] == ["astronaut.bmp", "chelsea.bmp", "coffee.bmp"]
    _, sim = ds.load(0)
    assert sim.shape == (9, 9) and torch.equal(sim, torch.from_numpy(np.load(out / ".grepq/astronaut.bmp/fsim.npy")))
    assert len(prepare(photos, out, naming="kadis", seed=3, progress=False).skipped_done) == 3
    (out / ".grepq" / "chelsea.bmp" / FSIM_FILE).unlink()  # metadata lost: the item is redone
    assert [r["name"] for r in prepare(photos, out, naming="kadis", seed=3, progress=False).done] == ["chelsea"]


def test_versions_json_records_the_motion_blur_angle_each_file_was_made_with(photos, tmp_path):
    """The angle KADIS's imblurmotion draws per image is in versions.json, and it is the angle of the written file."""
    out = tmp_path / "motion"
    prepare(photos, out, types=["motion_blur", "jpeg"], levels=[4, 5], seed=3, progress=False)
    angles = []
    for folder in sorted(p for p in out.iterdir() if p.is_dir()):
        rows = json.loads((folder / VERSIONS_FILE).read_text())["files"]
        ref = np.asarray(Image.open(folder / f"{folder.name}_REF.png")).astype(np.float32) / 255
        x = dist._mapmm(ref.astype(np.float64)).astype(np.float32)  # the generator's input stretch
        for row in rows:
            if row["type"] != "motion_blur":
                assert "random" not in row
                continue
            angle = row["random"]["angle_deg"]
            assert isinstance(angle, int) and 0 <= angle <= 180
            kernel = kadis_ops.motion_kernel(row["parameter"], angle)
            made = dist._finish(kadis_ops.correlate_replicate(x.astype(np.float64), kernel), "kadis")
            written = np.asarray(Image.open(folder / row["file"]))
            assert np.array_equal(written, np.round(np.clip(made, 0, 1) * 255).astype(np.uint8)), row
            angles.append(angle)
    assert len(angles) == 6 and len(set(angles)) > 1  # 3 images x 2 levels, drawn per image and level
