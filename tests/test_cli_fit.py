"""``grepq fit`` -> ``grepq score --regressor`` end to end on a CSV of labelled toy images: it reproduces the SRCC
the data-efficient protocol reports for the same split; bad CSVs and refused weights get clear errors."""
import csv
import json

import numpy as np
import pytest
import torch
from conftest import make_clip, make_ll, photo
from PIL import Image

from grepq.cli import build_parser, main
from grepq.commands.score import scorer_from_args
from grepq.eval import metrics as M
from grepq.eval import protocols as PR
from grepq.eval import splits as SP
from grepq.eval.features import extract_features
from grepq.eval.regression import RegressionSettings
from grepq.eval.regressor import Regressor
from grepq.models.low_level import save_low_level
from grepq.scoring.pristine import write_pristine_hdf5

N_IMAGES = 25
N_LABELS = 20


@pytest.fixture(scope="module")
def weights(tmp_path_factory, ll_model, small_clip, pristine_patches):
    d = tmp_path_factory.mktemp("fitw")
    save_low_level(ll_model, d / "ll.tar", fmt="official")
    save_low_level(make_ll(seed=5), d / "ll_other.tar", fmt="official")
    torch.save(make_clip(seed=3).visual.state_dict(), d / "hl.pth")
    torch.save(small_clip.state_dict(), d / "clip.pt")
    write_pristine_hdf5(pristine_patches, d / "pristine.hdf5")
    return d


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """N_IMAGES noisy crops of photographs (in a subfolder) and labels that fall with the noise: all.csv."""
    d = tmp_path_factory.mktemp("labelled")
    (d / "img").mkdir()
    rng = np.random.default_rng(0)
    rows = []
    for i in range(N_IMAGES):
        base = photo(("astronaut", "coffee", "chelsea", "rocket")[i % 4]).astype(np.float64)
        y0, x0 = rng.integers(0, 150, size=2)
        sigma = rng.uniform(0, 60)
        img = np.clip(base[y0:y0 + 96, x0:x0 + 96] + rng.normal(0, sigma, (96, 96, 3)), 0, 255)
        Image.fromarray(img.astype(np.uint8)).save(d / "img" / f"im{i:02d}.png")
        rows.append((f"img/im{i:02d}.png", round(5.0 - sigma / 15 + rng.normal(0, 0.2), 3)))
    _write_csv(d / "all.csv", rows)
    return d, rows


def _write_csv(path, rows, header=("image", "mos")):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def wargs(w, *extra):
    return ["--ll-weights", str(w / "ll.tar"), "--hl-weights", str(w / "hl.pth"), "--clip-weights",
            str(w / "clip.pt"), "--pristine", str(w / "pristine.hdf5"), *extra]


def test_fit_then_score_reproduces_the_protocol_srcc(weights, labelled, tmp_path, capsys):
    d, rows = labelled
    y = np.array([r[1] for r in rows])
    # split 0 of the data-efficient protocol (it depends on the number of images only)
    train, test = SP.split_indices(N_IMAGES, 0)
    lab = train[:N_LABELS]
    assert lab.size == train.size  # every training image is labelled: the features below cover all images
    # a user's CSV of the labelled images of that split, in its order
    _write_csv(d / "train.csv", [rows[i] for i in lab])
    reg_file = tmp_path / "reg.json"
    cache = ["--cache", str(d / "cache")]
    score_cache = ["--feature-cache", str(d / "cache")]
    assert main(["fit", "--csv", str(d / "train.csv"), "-o", str(reg_file), *cache, *wargs(weights)]) == 0
    out = capsys.readouterr().out
    test_paths = [str(d / rows[i][0]) for i in test]
    assert main(["score", *test_paths, "--regressor", str(reg_file), "-o", str(tmp_path / "p.csv"), *score_cache,
                 *wargs(weights)]) == 0

    # the protocol on the same features (read back from the cache fit and score filled: same scorer, same code)
    scorer = scorer_from_args(build_parser().parse_args(["score", *wargs(weights), "x"]))
    X = np.zeros((N_IMAGES, 64 + 128))
    X[lab] = extract_features(scorer, [str(d / rows[i][0]) for i in lab], d / "cache", name="csv",
                              progress=False).matrix("hl+ll")
    X[test] = extract_features(scorer, test_paths, d / "cache", name="score", progress=False).matrix("hl+ll")
    res = PR.data_efficient(X, y, RegressionSettings(n_train=(N_LABELS,), splits=1))
    assert "CV estimate" in out and f"alpha = {res.rows[0]['alpha']:g}" in out
    reg = Regressor.load(reg_file)
    assert reg.info["labels"]["n"] == N_LABELS and reg.info["source"]["kind"] == "csv"
    assert reg.feature_dims == {"hl": 64, "ll": 128}
    assert reg.fingerprints == scorer.fingerprints()

    pred = list(csv.DictReader(open(tmp_path / "p.csv", newline="")))
    meta = json.load(open(tmp_path / "p.meta.json"))
    assert meta["regressor"]["polarity"] == "mos" and meta["regressor"]["file"] == str(reg_file)
    assert meta["regressor"]["label_range"] == [reg.info["labels"]["min"], reg.info["labels"]["max"]]
    assert [p["image"] for p in pred] == test_paths
    q = np.array([float(p["q_pred"]) for p in pred])
    assert M.srcc(q, y[test]) == pytest.approx(res.rows[0]["srcc"], abs=1e-12)
    assert M.plcc(q, y[test], "none") == pytest.approx(res.rows[0]["plcc"], abs=1e-6)

    assert main(["score", *test_paths, "--regressor", str(reg_file), "-o", str(tmp_path / "p.json"), *score_cache,
                 *wargs(weights)]) == 0
    capsys.readouterr()
    assert main(["score", *test_paths, "--regressor", str(reg_file), "--components", "ll", *wargs(weights)]) == 2
    assert "fit on hl+ll features, but --components ll does not compute hl" in capsys.readouterr().err
    doc = json.load(open(tmp_path / "p.json"))
    assert doc["meta"]["regressor"]["polarity"] == "mos"
    assert doc["scores"][0]["q_pred"] == pytest.approx(q[0], abs=1e-12)

    # other LL weights: refused with both fingerprints, unless overridden (with a warning)
    other = wargs(weights)
    other[1] = str(weights / "ll_other.tar")
    assert main(["score", test_paths[0], "--regressor", str(reg_file), *other]) == 2
    err = capsys.readouterr().err
    assert reg.fingerprints["ll"] in err and "ll weights" in err
    assert main(["score", test_paths[0], "--regressor", str(reg_file), "--allow-weight-mismatch", *other]) == 0
    assert "warning" in capsys.readouterr().err


def test_cross_dataset_saves_and_reuses_its_regressor(weights, labelled, tmp_path):
    """grepq eval cross-dataset --save-regressor, then --regressor-file: the saved source regressor tested on the
    target gives the fitted run's correlations (the same code path as grepq score --regressor)."""
    from grepq.eval.results import load_result

    d, rows = labelled
    lab = SP.split_indices(N_IMAGES, 0)[0][:N_LABELS]
    _write_csv(d / "train.csv", [rows[i] for i in lab])  # the same file (and feature cache) as the test above
    common = ["--dataset", "csv", "--root", str(d / "train.csv"), "--cache", str(d / "cache"), "--no-plots",
              *wargs(weights)]
    assert main(["eval", "cross-dataset", "--source", "csv", "--source-root", str(d / "train.csv"),
                 "--save-regressor", str(tmp_path / "src.json"), "--out", str(tmp_path / "fit"), *common]) == 0
    fitted = load_result(next((tmp_path / "fit").glob("cross_*.json"))).rows[0]
    reg = Regressor.load(tmp_path / "src.json")
    assert reg.info["alpha"] == fitted["alpha"] and reg.info["source"]["kind"] == "cross_dataset"
    assert reg.info["labels"]["n"] == N_LABELS
    assert main(["eval", "cross-dataset", "--regressor-file", str(tmp_path / "src.json"),
                 "--out", str(tmp_path / "reuse"), *common]) == 0
    again = load_result(next((tmp_path / "reuse").glob("cross_*.json"))).rows[0]
    assert again["regressor_file"] == str(tmp_path / "src.json")
    for k in ("srcc", "plcc", "krcc"):
        assert again[k] == pytest.approx(fitted[k], abs=1e-10)


@pytest.mark.parametrize("problem,expect", [
    ("missing", "im99.png"), ("duplicate", "duplicate"), ("non-numeric", "non-numeric score")])
def test_bad_csv_is_a_clear_error(labelled, tmp_path, capsys, problem, expect):
    d, rows = labelled
    rows = [list(r) for r in rows[:12]]
    if problem == "missing":
        rows[3][0] = "img/im99.png"
    elif problem == "duplicate":
        rows[5] = list(rows[2])
    else:
        rows[4][1] = "good"
    _write_csv(d / f"{problem}.csv", rows)
    assert main(["fit", "--csv", str(d / f"{problem}.csv"), "-o", str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err
    assert expect in err and f"{problem}.csv" in err
    assert not (tmp_path / "r.json").exists()


def test_fit_needs_one_label_source(tmp_path, capsys):
    assert main(["fit", "-o", str(tmp_path / "r.json")]) == 2
    assert "--csv" in capsys.readouterr().err


def test_fit_refuses_constant_labels_and_says_when_it_clamps_cv_folds(weights, labelled, tmp_path, capsys):
    d, rows = labelled
    _write_csv(d / "flat.csv", [(r[0], 3.0) for r in rows[:12]])
    assert main(["fit", "--csv", str(d / "flat.csv"), "-o", str(tmp_path / "r.json"), "--cache", str(d / "cache"),
                 *wargs(weights)]) == 2
    assert "all 12 labels are 3" in capsys.readouterr().err and not (tmp_path / "r.json").exists()
    _write_csv(d / "few.csv", rows[:6])
    assert main(["fit", "--csv", str(d / "few.csv"), "-o", str(tmp_path / "r.json"), "--cv-folds", "10",
                 "--cache", str(d / "cache"), *wargs(weights)]) == 0
    cap = capsys.readouterr()
    assert "--cv-folds 10 is more than the 6 labelled images: using 6 folds" in cap.err
    assert "CV estimate (6 folds" in cap.out
