"""Tests of grepq.data.datasets on tiny fixtures written in each owner's file format."""
from __future__ import annotations

import csv
import dataclasses
import io
from functools import lru_cache
from pathlib import Path
from typing import Iterable

import numpy as np
import openpyxl
import pytest
import scipy.io as sio
from PIL import Image

from grepq.data import datasets as D
from grepq.data.datasets import DatasetError, IQADataset, load_dataset
from grepq.data.io import read_image


# ------------------------------------------------------------------------------------------------ helpers
@lru_cache(maxsize=None)
def _image_bytes(fmt: str) -> bytes:
    """An 8x8 RGB image encoded as ``fmt`` (PNG, BMP, JPEG)."""
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def _write_images(folder: Path, names: Iterable[str]) -> None:
    for name in names:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        ext = path.suffix.lower()
        fmt = {".png": "PNG", ".bmp": "BMP", ".jpg": "JPEG", ".jpeg": "JPEG"}[ext]
        path.write_bytes(_image_bytes(fmt))


def _cell(strings) -> np.ndarray:
    """A MATLAB cell array (column) of strings, as scipy.io.savemat writes it."""
    cell = np.empty((len(strings), 1), dtype=object)
    for i, s in enumerate(strings):
        cell[i, 0] = s
    return cell


def _row_cell(strings) -> np.ndarray:
    cell = np.empty((1, len(strings)), dtype=object)
    for i, s in enumerate(strings):
        cell[0, i] = s
    return cell


def _write_csv(path: Path, header, rows, quote_all_strings=False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, quoting=csv.QUOTE_NONNUMERIC if quote_all_strings else csv.QUOTE_MINIMAL)
        writer.writerow(header)
        writer.writerows(rows)


# ------------------------------------------------------------------------------------------- IQADataset
def _toy(n=5, refs=True, polarity="mos"):
    return IQADataset(name="toy", root=Path("/tmp"), paths=[Path(f"/tmp/{i}.png") for i in range(n)],
                      scores=np.arange(n, dtype=float), polarity=polarity,
                      refs=[f"r{i // 2}" for i in range(n)] if refs else None, score_range=(0, 10))


def test_iqadataset_subset_head_and_validation():
    ds = _toy()
    assert len(ds) == 5 and not ds.lower_better and ds.is_synthetic
    assert _toy(polarity="dmos").lower_better
    assert ds.scores.dtype == np.float64 and ds.score_range == (0.0, 10.0)
    sub = ds.subset([4, 1])
    assert [p.name for p in sub.paths] == ["4.png", "1.png"]
    assert sub.scores.tolist() == [4.0, 1.0] and sub.refs == ["r2", "r0"] and sub.polarity == "mos"
    mask = np.array([True, False, True, False, False])
    assert ds.subset(mask).scores.tolist() == [0.0, 2.0]
    assert len(ds.head(3)) == 3 and ds.head(3).scores.tolist() == [0.0, 1.0, 2.0]
    assert len(ds.head(100)) == 5 and len(ds.head(0)) == 0
    with pytest.raises(DatasetError, match="non-negative"):
        ds.head(-1)
    with pytest.raises(DatasetError, match="out of range"):
        ds.subset([5])
    with pytest.raises(DatasetError, match="boolean mask"):
        ds.subset(np.array([True, False]))
    with pytest.raises(dataclasses.FrozenInstanceError):
        ds.name = "other"
    with pytest.raises(ValueError):  # the scores array is read-only
        ds.scores[0] = 3.0
    with pytest.raises(DatasetError, match="one score per image"):
        IQADataset(name="x", root=Path("/"), paths=[Path("/a")], scores=np.zeros(2), polarity="mos")
    with pytest.raises(DatasetError, match="polarity"):
        IQADataset(name="x", root=Path("/"), paths=[Path("/a")], scores=np.zeros(1), polarity="higher")
    assert issubclass(DatasetError, ValueError)


# ---------------------------------------------------------------------------------------------- CLIVE
def _clive_fixture(root: Path, n_total: int, mos=None) -> np.ndarray:
    names = [f"t{i}.bmp" for i in range(1, 8)] + [f"{i}.JPG" if i % 50 == 0 else f"{i}.bmp"
                                                  for i in range(1, n_total - 6)]
    mos = np.linspace(3.0, 92.0, n_total) if mos is None else mos
    (root / "Data").mkdir(parents=True)
    # As released: AllImages_release is a 1169x1 cell, AllMOS_release a 1x1169 double row vector.
    sio.savemat(root / "Data" / "AllImages_release.mat", {"AllImages_release": _cell(names)})
    sio.savemat(root / "Data" / "AllMOS_release.mat", {"AllMOS_release": mos.reshape(1, -1)})
    _write_images(root / "Images" / "trainingImages", names[:7])
    _write_images(root / "Images", names[7:])
    return mos


def test_clive_full_length_1162_and_1169(tmp_path):
    mos = _clive_fixture(tmp_path, D.CLIVE_TOTAL)
    ds = D.load_clive(tmp_path)
    assert len(ds) == 1162 and ds.name == "CLIVE" and ds.polarity == "mos" and ds.refs is None
    assert ds.paths[0] == tmp_path / "Images" / "1.bmp"
    assert all(p.is_absolute() for p in ds.paths)
    np.testing.assert_array_equal(ds.scores, mos[7:])
    full = D.load_clive(tmp_path, include_training=True)
    assert len(full) == 1169
    assert full.paths[0] == tmp_path / "Images" / "trainingImages" / "t1.bmp"
    assert full.paths[7] == ds.paths[0]
    np.testing.assert_array_equal(full.scores, mos)
    assert tuple(read_image(ds.paths[0]).shape) == (3, 8, 8)


def test_clive_count_missing_and_nan(tmp_path):
    mos = _clive_fixture(tmp_path / "a", 20)
    with pytest.raises(DatasetError, match="expected 1162"):
        D.load_clive(tmp_path / "a")
    ds = D.load_clive(tmp_path / "a", strict_count=False)
    assert len(ds) == 13 and ds.scores.tolist() == mos[7:].tolist()
    assert len(D.load_clive(tmp_path / "a", include_training=True, strict_count=False)) == 20
    (tmp_path / "a" / "Images" / "5.bmp").unlink()
    with pytest.raises(DatasetError, match=r"1 of 13 images listed in .*AllImages_release\.mat are missing.*5\.bmp"):
        D.load_clive(tmp_path / "a", strict_count=False)

    bad = np.linspace(3.0, 92.0, 20)
    bad[10] = np.nan
    _clive_fixture(tmp_path / "b", 20, mos=bad)
    with pytest.raises(DatasetError, match=r"AllMOS_release\.mat.*entry 11.*nan"):
        D.load_clive(tmp_path / "b", strict_count=False)


# ------------------------------------------------------------------------------------------- KonIQ-10k
KONIQ_HEADER = ["image_name", "c1", "c2", "c3", "c4", "c5", "c_total", "MOS", "SD", "MOS_zscore"]


def _koniq_fixture(root: Path, rows):
    _write_csv(root / "koniq10k_scores_and_distributions.csv", KONIQ_HEADER, rows, quote_all_strings=True)
    names = [r[0] for r in rows]
    _write_images(root / "1024x768", names)
    _write_images(root / "512x384", names)


def test_koniq10k(tmp_path):
    rows = [[f"{1000 + i}.jpg", 0, 1, 20, 70, 9, 100, 3.0 + i * 0.1, 0.5, 60.0 + i] for i in range(5)]
    _koniq_fixture(tmp_path, rows)
    with pytest.raises(DatasetError, match="lists 5 images, expected 10073"):
        D.load_koniq10k(tmp_path)
    ds = D.load_koniq10k(tmp_path, strict_count=False)
    assert len(ds) == 5 and ds.polarity == "mos" and ds.score_range == (1.0, 5.0)
    np.testing.assert_allclose(ds.scores, [3.0, 3.1, 3.2, 3.3, 3.4])
    assert ds.paths[2] == tmp_path / "1024x768" / "1002.jpg"
    z = D.load_koniq10k(tmp_path, score_column="MOS_zscore", resolution="512x384", strict_count=False)
    np.testing.assert_allclose(z.scores, [60, 61, 62, 63, 64])
    assert z.score_range == (0.0, 100.0) and z.paths[0].parent.name == "512x384"
    with pytest.raises(DatasetError, match="resolution"):
        D.load_koniq10k(tmp_path, resolution="640x480", strict_count=False)


def test_koniq10k_bad_score_duplicate_and_header(tmp_path):
    rows = [[f"{i}.jpg", 0, 0, 0, 0, 0, 0, 3.0, 0.5, 50.0] for i in range(4)]
    rows[2][7] = "abc"
    _koniq_fixture(tmp_path / "a", rows)
    with pytest.raises(DatasetError, match=r"koniq10k_scores_and_distributions\.csv, line 4, column MOS: got 'abc'"):
        D.load_koniq10k(tmp_path / "a", strict_count=False)

    rows = [[f"{i}.jpg", 0, 0, 0, 0, 0, 0, 3.0, 0.5, 50.0] for i in range(4)] + [["1.jpg", 0, 0, 0, 0, 0, 0, 2, 1, 3]]
    _koniq_fixture(tmp_path / "b", rows)
    with pytest.raises(DatasetError, match=r"duplicate.*'1\.jpg' \(line 3 and line 6\)"):
        D.load_koniq10k(tmp_path / "b", strict_count=False)

    _write_csv(tmp_path / "c" / "koniq10k_scores_and_distributions.csv", ["name", "score"], [["a.jpg", 3]])
    with pytest.raises(DatasetError, match="no column 'image_name'"):
        D.load_koniq10k(tmp_path / "c", strict_count=False)


# ------------------------------------------------------------------------------------------------ LIVE
def _live_fixture(root: Path, distorted: Iterable[int], realigned=False, total=D.LIVE_TOTAL):
    """A LIVE R2 copy with ``total`` entries; entries not in ``distorted`` are references (orgs == 1)."""
    distorted = set(distorted)
    orgs = np.array([[0.0 if i in distorted else 1.0 for i in range(total)]])
    dmos = np.arange(total, dtype=float).reshape(1, -1) / 10.0
    refnames = [f"scene{i % 29}.bmp" for i in range(total)]
    root.mkdir(parents=True, exist_ok=True)
    if realigned:
        sio.savemat(root / "dmos_realigned.mat", {"dmos_new": dmos + 1000.0, "dmos_std": dmos, "orgs": orgs})
    sio.savemat(root / "dmos.mat", {"dmos": dmos, "orgs": orgs})
    sio.savemat(root / "refnames_all.mat", {"refnames_all": _row_cell(refnames)})
    rels = []
    for folder, count in D.LIVE_FOLDERS:
        rels.extend(f"{folder}/img{k}.bmp" for k in range(1, count + 1))
    _write_images(root, [rels[i] for i in sorted(distorted) if i < len(rels)])
    return dmos.ravel(), refnames


def test_live_mapping_polarity_refs_and_count(tmp_path):
    picks = [0, 226, 227, 459, 460, 634, 808, 981]
    dmos, refnames = _live_fixture(tmp_path, picks, realigned=True)
    with pytest.raises(DatasetError, match="lists 8 images with orgs == 0.*expected 779"):
        D.load_live(tmp_path)
    ds = D.load_live(tmp_path, strict_count=False)
    expect = ["jp2k/img1.bmp", "jp2k/img227.bmp", "jpeg/img1.bmp", "jpeg/img233.bmp", "wn/img1.bmp",
              "gblur/img1.bmp", "fastfading/img1.bmp", "fastfading/img174.bmp"]
    assert [p.relative_to(tmp_path).as_posix() for p in ds.paths] == expect
    assert ds.polarity == "dmos" and ds.lower_better
    np.testing.assert_allclose(ds.scores, dmos[picks])
    assert ds.refs == [refnames[i] for i in picks]
    re_ds = D.load_live(tmp_path, realigned=True, strict_count=False)
    np.testing.assert_allclose(re_ds.scores, dmos[picks] + 1000.0)


def test_live_full_count_and_structure_errors(tmp_path):
    rng = np.random.default_rng(1)
    picks = sorted(rng.choice(D.LIVE_TOTAL, size=D.LIVE_COUNT, replace=False).tolist())
    _live_fixture(tmp_path / "full", picks)
    ds = D.load_live(tmp_path / "full")  # strict: 779 distorted images
    assert len(ds) == 779 and len(set(ds.refs)) == 29
    (tmp_path / "full" / "wn" / "img1.bmp").unlink(missing_ok=True)
    (tmp_path / "full" / ds.paths[3].relative_to(tmp_path / "full")).unlink()
    with pytest.raises(DatasetError, match=r"of 779 images listed in .*dmos\.mat are missing"):
        D.load_live(tmp_path / "full")
    _live_fixture(tmp_path / "short", [0, 1], total=900)
    with pytest.raises(DatasetError, match="to have 982 entries"):
        D.load_live(tmp_path / "short", strict_count=False)


# ------------------------------------------------------------------------------------------------ CSIQ
def _csiq_fixture(root: Path, rows, header_row=4):
    """csiq.DMOS.xlsx as distributed: sheet all_by_image, header below some title rows, column A empty."""
    wb = openpyxl.Workbook()
    wb.active.title = "notes"
    ws = wb.create_sheet("all_by_image")
    ws.cell(row=1, column=2, value="CSIQ DMOS (all by image)")
    for j, h in enumerate(["image", "dst_idx", "dst_type", "dst_lev", "dmos_std", "dmos"]):
        ws.cell(row=header_row, column=2 + j, value=h)
    for i, r in enumerate(rows):
        for j, v in enumerate(r):
            ws.cell(row=header_row + 1 + i, column=2 + j, value=v)
    root.mkdir(parents=True, exist_ok=True)
    wb.save(root / "csiq.DMOS.xlsx")


CSIQ_ROWS = [
    [1600, 1, "noise", 1, 0.061, 0.062],
    [1600, 3, "jpeg 2000", 2, 0.1, 0.135],
    ["aerial_city", 4, "f noise", 3, 0.1, 0.3],
    ["aerial_city", 5, "blur", 5, 0.1, 0.9],
    ["boston", 6, "contrast", 2, 0.1, 0.34],
    ["boston", 2, "jpeg", 4, 0.1, 0.74],
]
CSIQ_FILES = ["dst_imgs/awgn/1600.AWGN.1.png", "dst_imgs/jpeg2000/1600.jpeg2000.2.png",
              "dst_imgs/fnoise/aerial_city.fnoise.3.png", "dst_imgs/blur/aerial_city.BLUR.5.png",
              "dst_imgs/contrast/boston.contrast.2.png", "dst_imgs/jpeg/boston.JPEG.4.png"]


def test_csiq(tmp_path):
    _csiq_fixture(tmp_path, CSIQ_ROWS)
    _write_images(tmp_path, CSIQ_FILES)
    with pytest.raises(DatasetError, match="expected 866"):
        D.load_csiq(tmp_path)
    ds = D.load_csiq(tmp_path, strict_count=False)
    assert [p.relative_to(tmp_path).as_posix() for p in ds.paths] == CSIQ_FILES
    assert ds.refs == ["1600", "1600", "aerial_city", "aerial_city", "boston", "boston"]
    assert ds.polarity == "dmos" and ds.score_range == (0.0, 1.0)
    np.testing.assert_allclose(ds.scores, [r[5] for r in CSIQ_ROWS])
    (tmp_path / CSIQ_FILES[4]).unlink()
    pattern = r"1 of 6 images listed in .*csiq\.DMOS\.xlsx are missing.*boston\.contrast\.2\.png"
    with pytest.raises(DatasetError, match=pattern):
        D.load_csiq(tmp_path, strict_count=False)


def test_csiq_bad_values(tmp_path):
    rows = [list(r) for r in CSIQ_ROWS]
    rows[2][5] = "NaN"
    _csiq_fixture(tmp_path / "a", rows, header_row=3)
    with pytest.raises(DatasetError, match=r"csiq\.DMOS\.xlsx, sheet 'all_by_image', row 6, column dmos: got 'NaN'"):
        D.load_csiq(tmp_path / "a", strict_count=False)
    rows[2][5] = None
    _csiq_fixture(tmp_path / "e", rows)
    with pytest.raises(DatasetError, match=r"missing score in .*row 7, column dmos: got an empty cell"):
        D.load_csiq(tmp_path / "e", strict_count=False)
    rows = [list(r) for r in CSIQ_ROWS]
    rows[1][2], rows[1][1] = "mystery", 9
    _csiq_fixture(tmp_path / "b", rows)
    with pytest.raises(DatasetError, match="unknown distortion.*row 6"):
        D.load_csiq(tmp_path / "b", strict_count=False)
    rows = [list(r) for r in CSIQ_ROWS] + [list(CSIQ_ROWS[0])]
    _csiq_fixture(tmp_path / "c", rows)
    with pytest.raises(DatasetError, match="duplicate"):
        D.load_csiq(tmp_path / "c", strict_count=False)


# ----------------------------------------------------------------------------------------------- PIPAL
def test_pipal(tmp_path):
    labels = {"A0001.txt": [("A0001_00_00.bmp", 1520.0648), ("A0001_01_03.bmp", 1575.4945)],
              "A0002.txt": [("A0002_00_00.bmp", 1466.4372), ("A0002_06_26.bmp", 1313.9093)]}
    (tmp_path / "Train_Label").mkdir()
    for fname, entries in labels.items():
        (tmp_path / "Train_Label" / fname).write_text("".join(f"{n},{s}\n" for n, s in entries))
    _write_images(tmp_path / "Distortion_1", ["A0001_00_00.bmp", "A0001_01_03.bmp"])
    _write_images(tmp_path / "Distortion_2", ["A0002_00_00.bmp", "A0002_06_26.bmp"])
    _write_images(tmp_path / "Train_Ref", ["A0001.bmp", "A0002.bmp"])
    with pytest.raises(DatasetError, match="expected 23200"):
        D.load_pipal(tmp_path)
    ds = D.load_pipal(tmp_path, strict_count=False)
    assert [p.parent.name for p in ds.paths] == ["Distortion_1", "Distortion_1", "Distortion_2", "Distortion_2"]
    assert ds.refs == ["A0001.bmp", "A0001.bmp", "A0002.bmp", "A0002.bmp"]
    assert all((tmp_path / "Train_Ref" / r).is_file() for r in ds.refs)
    assert ds.polarity == "mos" and not ds.lower_better and ds.score_range is None
    np.testing.assert_allclose(ds.scores, [1520.0648, 1575.4945, 1466.4372, 1313.9093])
    (tmp_path / "Distortion_2" / "A0002_06_26.bmp").unlink()
    with pytest.raises(DatasetError, match="1 of 4 images.*missing under .*Distortion_1.*A0002_06_26.bmp"):
        D.load_pipal(tmp_path, strict_count=False)
    (tmp_path / "Train_Label" / "A0003.txt").write_text("A0003_00_00.bmp,\n")
    with pytest.raises(DatasetError, match=r"A0003\.txt, line 1: got ''"):
        D.load_pipal(tmp_path, strict_count=False)


# ----------------------------------------------------------------------------------------------- FLIVE
def test_flive(tmp_path):
    rows = [["voc_emotic_ava/AVA__129332.jpg", 58.65], ["blur_dataset/motion0091.jpg", 0.0],
            ["EE371R/cjc3_10_1.jpg", 71.3]]
    _write_csv(tmp_path / "labels_image.csv", ["name", "mos"], rows)
    _write_images(tmp_path / "database", [r[0] for r in rows])
    with pytest.raises(DatasetError, match="expected 39810"):
        D.load_flive(tmp_path)
    ds = D.load_flive(tmp_path, strict_count=False)
    assert ds.paths[0] == tmp_path / "database" / "voc_emotic_ava" / "AVA__129332.jpg"
    np.testing.assert_allclose(ds.scores, [58.65, 0.0, 71.3])
    assert ds.polarity == "mos" and ds.score_range == (0.0, 100.0)
    # The label file inside database/ (as in the FLIVE_Database repository) works too.
    (tmp_path / "labels_image.csv").rename(tmp_path / "database" / "labels_image.csv")
    assert len(D.load_flive(tmp_path, strict_count=False)) == 3
    assert len(D.load_flive(tmp_path / "database", strict_count=False)) == 3


# ------------------------------------------------------------------------------------------------ SPAQ
def test_spaq(tmp_path):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["Image name", "MOS", "Brightness", "Colorfulness", "Contrast", "Noisiness", "Sharpness"])
    ws.append(["00001.jpg", 42.0, 40, 50, 45, 60, 40])
    ws.append(["00002.jpg", 71.5, 70, 60, 65, 80, 70])
    ws.append(["00003.jpg", 12.25, 10, 20, 15, 30, 10])
    (tmp_path / "Annotations").mkdir()
    wb.save(tmp_path / "Annotations" / "MOS and Image attribute scores.xlsx")
    _write_images(tmp_path / "TestImage", ["00001.jpg", "00002.jpg", "00003.jpg"])
    with pytest.raises(DatasetError, match="expected 11125"):
        D.load_spaq(tmp_path)
    ds = D.load_spaq(tmp_path, strict_count=False)
    assert ds.paths[1] == tmp_path / "TestImage" / "00002.jpg"
    np.testing.assert_allclose(ds.scores, [42.0, 71.5, 12.25])
    assert ds.polarity == "mos" and ds.refs is None


# --------------------------------------------------------------------------------------------- TID2013
def test_tid2013_case_insensitive_names_and_refs(tmp_path):
    lines = ["5.51429 I01_01_1.bmp", "5.56757 i01_01_2.bmp", "5.91429 I01_11_1.BMP", "4.2 i25_03_4.bmp", ""]
    (tmp_path / "mos_with_names.txt").write_text("\n".join(lines))
    # On disk the distorted files are lower case; the references are I01.BMP .. I24.BMP and i25.bmp.
    _write_images(tmp_path / "distorted_images", ["i01_01_1.bmp", "i01_01_2.bmp", "i01_11_1.bmp", "i25_03_4.bmp"])
    _write_images(tmp_path / "reference_images", ["I01.BMP", "i25.bmp"])
    with pytest.raises(DatasetError, match="expected 3000"):
        D.load_tid2013(tmp_path)
    ds = D.load_tid2013(tmp_path, strict_count=False)
    assert [p.name for p in ds.paths] == ["i01_01_1.bmp", "i01_01_2.bmp", "i01_11_1.bmp", "i25_03_4.bmp"]
    assert all(p.is_file() for p in ds.paths)
    assert ds.refs == ["I01.BMP", "I01.BMP", "I01.BMP", "I25.BMP"]
    assert ds.polarity == "mos" and ds.score_range == (0.0, 9.0)
    np.testing.assert_allclose(ds.scores, [5.51429, 5.56757, 5.91429, 4.2])
    (tmp_path / "mos_with_names.txt").write_text("5.5 i01_01_1.bmp\nNaN i01_01_2.bmp\n")
    with pytest.raises(DatasetError, match=r"mos_with_names\.txt, line 2: got 'NaN'"):
        D.load_tid2013(tmp_path, strict_count=False)
    (tmp_path / "mos_with_names.txt").write_text("5.5 i01_01_1.bmp extra\n")
    with pytest.raises(DatasetError, match="line 1"):
        D.load_tid2013(tmp_path, strict_count=False)


# ------------------------------------------------------------------------------------------- KADID-10k
def test_kadid10k(tmp_path):
    rows = [["I01_01_01.png", "I01.png", 4.57, 0.496], ["I01_01_05.png", "I01.png", 1.1, 0.3],
            ["I02_02_01.png", "I02.png", 3.2, 0.748]]
    _write_csv(tmp_path / "dmos.csv", ["dist_img", "ref_img", "dmos", "var"], rows)
    _write_images(tmp_path / "images", [r[0] for r in rows] + ["I01.png", "I02.png"])
    with pytest.raises(DatasetError, match="expected 10125"):
        D.load_kadid10k(tmp_path)
    ds = D.load_kadid10k(tmp_path, strict_count=False)
    assert ds.polarity == "mos" and not ds.lower_better  # higher = better despite the column name
    assert ds.refs == ["I01.png", "I01.png", "I02.png"]
    np.testing.assert_allclose(ds.scores, [4.57, 1.1, 3.2])
    (tmp_path / "images" / "I01_01_05.png").unlink()
    with pytest.raises(DatasetError, match=r"1 of 3 images listed in .*dmos\.csv are missing.*I01_01_05\.png"):
        D.load_kadid10k(tmp_path, strict_count=False)


# -------------------------------------------------------------------------------------------- AGIQA-3K
def test_agiqa3k(tmp_path):
    header = ["name", "prompt", "adj1", "adj2", "style", "mos_quality", "std_quality", "mos_align", "std_align"]
    rows = [["AttnGAN_normal_000.jpg", "statue of a man", "", "", "", 0.9656, 0.22, 0.4089, 0.61],
            ["AttnGAN_normal_060.jpg", "artwork with only triangles, anime style", "", "", "anime style",
             0.9198, 0.72, 0.8505, 0.84],
            ["midjourney_normal_001.png", "a cat, warm color", "warm color", "", "", 3.9, 0.5, 2.8, 0.7]]
    _write_csv(tmp_path / "data.csv", header, rows)
    _write_images(tmp_path / "AGIQA-3K", [r[0] for r in rows])
    with pytest.raises(DatasetError, match="expected 2982"):
        D.load_agiqa3k(tmp_path)
    ds = D.load_agiqa3k(tmp_path, strict_count=False)  # image folder found by itself
    assert ds.paths[1] == tmp_path / "AGIQA-3K" / "AttnGAN_normal_060.jpg"
    np.testing.assert_allclose(ds.scores, [0.9656, 0.9198, 3.9])
    al = D.load_agiqa3k(tmp_path, score="alignment", image_dir="AGIQA-3K", strict_count=False)
    np.testing.assert_allclose(al.scores, [0.4089, 0.8505, 2.8])
    assert al.polarity == "mos"
    with pytest.raises(DatasetError, match="score must be"):
        D.load_agiqa3k(tmp_path, score="aesthetics", strict_count=False)
    (tmp_path / "AGIQA-3K").rename(tmp_path / "elsewhere")
    with pytest.raises(DatasetError, match="cannot find the image folder"):
        D.load_agiqa3k(tmp_path, strict_count=False)


# ------------------------------------------------------------------------------------------ generic CSV
def test_generic_csv(tmp_path):
    rows = [["imgs/a.png", 0.2, "s1"], ["imgs/b.png", 0.7, "s1"], ["imgs/c.png", 0.5, "s2"]]
    _write_csv(tmp_path / "labels.csv", ["file", "distortion_score", "scene"], rows)
    _write_images(tmp_path, [r[0] for r in rows])
    ds = D.load_csv(tmp_path / "labels.csv", image_column="file", score_column="distortion_score",
                    polarity="dmos", ref_column="scene", name="mine")
    assert ds.name == "mine" and ds.lower_better and ds.refs == ["s1", "s1", "s2"]
    assert ds.paths[2] == tmp_path / "imgs" / "c.png"
    same = D.load_csv(tmp_path, csv_file="labels.csv", image_column="FILE", score_column="distortion_score")
    assert same.polarity == "mos" and same.refs is None and same.scores.tolist() == [0.2, 0.7, 0.5]
    with pytest.raises(DatasetError, match="expected 10"):
        D.load_csv(tmp_path / "labels.csv", image_column="file", score_column="distortion_score", expected_count=10)
    with pytest.raises(DatasetError, match="polarity"):
        D.load_csv(tmp_path / "labels.csv", polarity="up")
    with pytest.raises(DatasetError, match="csv_file"):
        D.load_csv(tmp_path)


# ----------------------------------------------------------------------------------------------- registry
def test_registry_names_aliases_options_and_limit(tmp_path):
    for alias, key in [("LIVEC", "clive"), ("clive", "clive"), ("KonIQ-10k", "koniq10k"), ("koniq", "koniq10k"),
                       ("LIVE", "live"), ("kadid", "kadid10k"), ("KADID-10k", "kadid10k"),
                       ("AGIQA-3K", "agiqa3k"), ("agiqa3k", "agiqa3k"), ("TID2013", "tid2013"), ("csiq", "csiq"),
                       ("PIPAL", "pipal"), ("FLIVE", "flive"), ("SPAQ", "spaq"), ("CSV", "csv")]:
        assert D.loader_name(alias) == key
        assert D.DATASETS[key].__name__.startswith("load_")
    assert set(D.EXPECTED_COUNTS) == set(D.DATASETS) - {"csv"}
    with pytest.raises(DatasetError, match=r"unknown dataset 'imagenet'.*valid names: clive, koniq10k"):
        load_dataset("imagenet", tmp_path)
    rows = [[f"I01_01_0{i}.png", "I01.png", 4.0 - i * 0.5, 0.4] for i in range(1, 5)]
    _write_csv(tmp_path / "dmos.csv", ["dist_img", "ref_img", "dmos", "var"], rows)
    _write_images(tmp_path / "images", [r[0] for r in rows])
    with pytest.raises(DatasetError, match=r"unknown option\(s\) \['resolution'\].*valid options: \['strict_count'\]"):
        load_dataset("kadid", tmp_path, resolution="512x384")
    ds = load_dataset("KADID-10k", tmp_path, strict_count=False, limit=2)
    assert ds.name == "KADID-10k" and len(ds) == 2 and ds.scores.tolist() == [3.5, 3.0]
    with pytest.raises(DatasetError, match="expected 10125"):  # limit does not relax the count check
        load_dataset("kadid", tmp_path, limit=2)


def test_one_alias_table_for_loaders_and_tables():
    """The tables' dataset names come from the loaders' registry: every loader name and alias has its table name."""
    from grepq.data.datasets import ALIASES, DATASETS, TABLE_NAMES, table_name
    for name in list(DATASETS) + list(ALIASES):
        if name == "csv":
            assert table_name(name) == "csv"
            continue
        expected = TABLE_NAMES[ALIASES.get(name, name)]
        assert table_name(name) == expected == table_name(name.upper())
    assert table_name("KADID-10k") == "KADID-10k" and table_name("my_photos") == "my_photos"


def test_load_dataset_passes_a_name_option_to_the_csv_loader(tmp_path):
    """The CSV loader's ``name`` option reaches it through load_dataset (was a TypeError: a clash with the
    dataset-name argument)."""
    from PIL import Image
    for i in range(3):
        Image.new("RGB", (8, 8), (i, i, i)).save(tmp_path / f"im{i}.png")
    (tmp_path / "scores.csv").write_text("image,mos\n" + "".join(f"im{i}.png,{i}\n" for i in range(3)))
    ds = load_dataset("csv", tmp_path / "scores.csv", name="mine")
    assert ds.name == "mine" and len(ds) == 3
