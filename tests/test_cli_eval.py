"""``grepq eval`` (zeroshot, data-efficient, cross-dataset) and ``grepq tables`` on a small synthetic dataset."""
import csv
import json

import numpy as np
import pytest
import torch
import yaml
from conftest import photo
from PIL import Image

from grepq.cli import main
from grepq.models.low_level import save_low_level
from grepq.scoring.pristine import write_pristine_hdf5


@pytest.fixture(scope="module")
def setup(tmp_path_factory, ll_model, small_clip, pristine_patches):
    d = tmp_path_factory.mktemp("eval")
    save_low_level(ll_model, d / "ll.pt")
    torch.save(small_clip.visual.state_dict(), d / "hl.pth")
    torch.save(small_clip.state_dict(), d / "clip.pt")
    write_pristine_hdf5(pristine_patches, d / "pristine.hdf5")
    # a "dataset": 40 crops of 4 photographs at 10 noise levels; score = PSNR-like quality, scene = photo
    rng = np.random.default_rng(0)
    (d / "imgs").mkdir()
    rows = []
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        ref = photo(name, (128, 160)).astype(np.float32) / 255
        for level in range(10):
            sigma = 0.01 + 0.03 * level
            img = np.clip(ref + rng.normal(0, sigma, ref.shape), 0, 1)
            fname = f"{name}_{level}.png"
            Image.fromarray((img * 255).round().astype(np.uint8)).save(d / "imgs" / fname)
            rows.append({"image": fname, "mos": 5 - 4 * level / 9 + rng.normal(0, 0.1), "scene": name})
    with open(d / "imgs" / "scores.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["image", "mos", "scene"])
        w.writeheader()
        w.writerows(rows)
    return d


def common(d, out):
    return ["--dataset", "csv", "--root", str(d / "imgs" / "scores.csv"), "--dataset-option", "ref_column=scene",
            "--ll-weights", str(d / "ll.pt"), "--hl-weights", str(d / "hl.pth"), "--clip-weights", str(d / "clip.pt"),
            "--pristine", str(d / "pristine.hdf5"), "--out", str(out), "--cache", str(d / "cache")]


def test_eval_protocols_and_tables(setup, tmp_path, capsys):
    out = tmp_path / "results"
    assert main(["eval", "zeroshot", *common(setup, out)]) == 0
    z = json.load(open(out / "zeroshot_csv.json"))
    assert z["protocol"] == "zero_shot" and {r["predictor"] for r in z["rows"]} == {"GRepQ_Z", "Q_H", "Q_L"}
    scores = list(csv.DictReader(open(out / "zeroshot_csv_scores.csv")))
    assert len(scores) == 40 and set(scores[0]) == {"image", "mos", "q_low", "q_high", "q_total"}
    assert (out / "zeroshot_csv_scatter.png").stat().st_size > 1000
    assert (out / "zeroshot_csv_hl_embedding.png").stat().st_size > 1000

    assert main(["eval", "data-efficient", *common(setup, out), "--n-train", "8,16", "--splits", "3"]) == 0
    de = json.load(open(out / "data_efficient_csv_ridge_cv.json"))
    assert {r["n_train"] for r in de["medians"]} == {8, 16}
    assert {r["feature_set"] for r in de["medians"]} == {"hl+ll", "hl", "ll"}
    assert len([r for r in de["rows"] if r["n_train"] == 8 and r["feature_set"] == "ll"]) == 3
    # noise level is what the scores follow: the LL features must predict it well from 16 labels
    ll16 = [r for r in de["medians"] if r["n_train"] == 16 and r["feature_set"] == "ll"][0]
    assert ll16["srcc"] > 0.5

    assert main(["eval", "data-efficient", *common(setup, out), "--n-train", "8", "--splits", "2",
                 "--alpha-selection", "oracle", "--feature-sets", "ll"]) == 0
    assert (out / "data_efficient_csv_ridge_oracle.json").exists()

    assert main(["eval", "cross-dataset", *common(setup, out), "--source", "csv", "--source-root",
                 str(setup / "imgs" / "scores.csv"), "--source-option", "ref_column=scene"]) == 0
    assert (out / "cross_csv_to_csv.json").exists()

    capsys.readouterr()
    assert main(["tables", str(out)]) == 0
    text = (out / "tables.md").read_text()
    for t in ("Table 1", "Table 2", "Table 3", "Table 4"):
        assert t in text
    assert "oracle" in text.lower() and "PLCC" in text
    assert (out / "srcc_vs_labels.png").stat().st_size > 1000


def test_eval_config_file_and_errors(setup, tmp_path, capsys):
    cfg = tmp_path / "eval.yaml"
    cfg.write_text("data:\n  dataset: csv\nprotocol:\n  n_train: [8]\n  splits: 2\n  feature_sets: [ll]\n")
    args = [a for a in common(setup, tmp_path / "r") if a not in ("--dataset", "csv")]
    assert main(["eval", "data-efficient", "--config", str(cfg), *args]) == 0
    assert json.load(open(tmp_path / "r" / "data_efficient_csv_ridge_cv.json"))["medians"][0]["n_train"] == 8
    # the command line wins over the file, --set over both
    assert main(["eval", "data-efficient", "--config", str(cfg), *args, "--n-train", "16"]) == 0
    assert json.load(open(tmp_path / "r" / "data_efficient_csv_ridge_cv.json"))["medians"][0]["n_train"] == 16
    capsys.readouterr()
    assert main(["eval", "data-efficient", "--config", str(cfg), *args, "--n-train", "16", "--set",
                 "protocol.n_train=[12]", "--set", "protocol.plcc_fit=cubic", "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["protocol"]["n_train"] == [12] and printed["protocol"]["plcc_fit"] == "cubic"
    assert printed["data"]["options"] == {"ref_column": "scene"} and printed["protocol"]["splits"] == 2
    cfg.write_text("data:\n  dataset: csv\nprotocol:\n  n_trian: [8]\n")
    assert main(["eval", "data-efficient", "--config", str(cfg), *args]) == 2
    assert "did you mean 'protocol.n_train'" in capsys.readouterr().err
    assert main(["eval", "data-efficient", *args, "--set", "protocol.splits=0"]) == 2
    assert "protocol.splits: expected a positive integer" in capsys.readouterr().err
    assert main(["eval", "zeroshot", "--dataset", "nosuch", "--root", str(tmp_path), "--components", "ll",
                 "--ll-weights", str(setup / "ll.pt"), "--pristine", str(setup / "pristine.hdf5")]) == 2
    assert "valid names" in capsys.readouterr().err


def test_limit_uses_first_images(setup, tmp_path):
    out = tmp_path / "lim"
    assert main(["eval", "zeroshot", *common(setup, out), "--limit", "12", "--components", "ll"]) == 0
    assert len(list(csv.DictReader(open(out / "zeroshot_csv_scores.csv")))) == 12
