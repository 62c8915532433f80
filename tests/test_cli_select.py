"""``grepq select`` end to end on a toy folder with small random weights: deterministic, excludes, errors."""
import csv

import numpy as np
import pytest
import torch
from conftest import make_clip, photo
from PIL import Image

from grepq.cli import main
from grepq.models.low_level import save_low_level
from grepq.scoring.pristine import write_pristine_hdf5

N_IMAGES = 10


@pytest.fixture(scope="module")
def toy(tmp_path_factory, ll_model, small_clip, pristine_patches):
    """Weights files and a folder of N_IMAGES noisy 96x128 crops of photographs."""
    d = tmp_path_factory.mktemp("select")
    save_low_level(ll_model, d / "ll.tar", fmt="official")
    torch.save(make_clip(seed=3).visual.state_dict(), d / "hl.pth")
    torch.save(small_clip.state_dict(), d / "clip.pt")
    write_pristine_hdf5(pristine_patches, d / "pristine.hdf5")
    (d / "img").mkdir()
    rng = np.random.default_rng(0)
    for i in range(N_IMAGES):
        base = photo(("astronaut", "coffee", "chelsea")[i % 3]).astype(np.float64)
        img = np.clip(base[:96, i * 8:i * 8 + 128] + rng.normal(0, 10 * (i % 4), (96, 128, 3)), 0, 255)
        Image.fromarray(img.astype(np.uint8)).save(d / "img" / f"im{i:02d}.png")
    return d


def select(d, out, *extra):
    return main(["select", str(d / "img"), "--out", str(out), "--cache", str(d / "cache"), "--no-progress",
                 "--ll-weights", str(d / "ll.tar"), "--hl-weights", str(d / "hl.pth"), "--clip-weights",
                 str(d / "clip.pt"), "--pristine", str(d / "pristine.hdf5"), *extra])


def read(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_select_is_deterministic_excludes_and_never_outputs_excluded(toy, tmp_path):
    assert select(toy, tmp_path / "a.csv", "--budget", "4") == 0
    assert select(toy, tmp_path / "b.csv", "--budget", "4") == 0
    a = read(tmp_path / "a.csv")
    assert list(a[0]) == ["image", "order", "distance"] and [r["order"] for r in a] == ["1", "2", "3", "4"]
    assert a == read(tmp_path / "b.csv") and len({r["image"] for r in a}) == 4
    dist = [float(r["distance"]) for r in a]
    assert dist[0] == float("inf") and dist[1:] == sorted(dist[1:], reverse=True)  # farthest first
    # the first two picks already labelled, given as paths and as a .txt list: never output, and the next pick is
    # the one the run without them made third (they are centres)
    (toy / "done.txt").write_text(f"img/{a[1]['image'].split('/')[-1]}\n")
    assert select(toy, tmp_path / "c.csv", "--budget", "2", "--exclude", a[0]["image"],
                  str(toy / "done.txt")) == 0
    c = read(tmp_path / "c.csv")
    assert {r["image"] for r in c}.isdisjoint({a[0]["image"], a[1]["image"]})
    assert c[0]["image"] == a[2]["image"] and float(c[0]["distance"]) == pytest.approx(dist[2])


def test_select_errors_name_the_problem(toy, tmp_path, capsys):
    assert select(toy, tmp_path / "x.csv", "--budget", "11") == 2
    assert "budget 11 exceeds the 10 candidate images" in capsys.readouterr().err
    assert select(toy, tmp_path / "x.csv", "--budget", "2", "--exclude", str(tmp_path / "elsewhere.png")) == 2
    assert "elsewhere.png" in capsys.readouterr().err and not (tmp_path / "x.csv").exists()
