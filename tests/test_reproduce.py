"""``grepq reproduce`` on two toy CSV datasets with random small weights: tables, resuming, skipping, dry run."""
import csv
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import photo, torch_threads
from PIL import Image

import grepq
from grepq.api import GRepQ
from grepq.cli import main
from grepq.config import load_config
from grepq.eval import runner
from grepq.eval.reproduce import make_plan, run_reproduce
from grepq.eval.schema import REPRODUCE_SCHEMA
from grepq.models.low_level import save_low_level
from grepq.scoring.pristine import write_pristine_hdf5

N_IMAGES = 12  # per toy dataset: 96 x 144 crops (two LL patches each) at 6 noise levels of 2 photographs


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """One torch thread for the whole module (tests/conftest.py: torch_threads)."""
    with torch_threads(1):
        yield


def _toy_dataset(folder, names, seed):
    rng = np.random.default_rng(seed)
    folder.mkdir()
    rows = []
    for name in names:
        ref = photo(name, (96, 144)).astype(np.float32) / 255
        for level in range(N_IMAGES // len(names)):
            img = np.clip(ref + rng.normal(0, 0.02 + 0.05 * level, ref.shape), 0, 1)
            Image.fromarray((img * 255).round().astype(np.uint8)).save(folder / f"{name}_{level}.png")
            rows.append({"image": f"{name}_{level}.png", "mos": 5 - 0.7 * level + rng.normal(0, 0.1)})
    with open(folder / "scores.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["image", "mos"])
        w.writeheader()
        w.writerows(rows)
    return folder / "scores.csv"


@pytest.fixture(scope="module")
def toy(tmp_path_factory, ll_model, small_clip, pristine_patches):
    d = tmp_path_factory.mktemp("repro")
    save_low_level(ll_model, d / "ll.pt")
    torch.save(small_clip.visual.state_dict(), d / "hl.pth")
    torch.save(small_clip.state_dict(), d / "clip.pt")
    write_pristine_hdf5(pristine_patches[:24], d / "pristine.hdf5")
    cfg = {
        "weights": {"ll": str(d / "ll.pt"), "hl": str(d / "hl.pth"), "clip": str(d / "clip.pt"),
                    "pristine": str(d / "pristine.hdf5")},
        "datasets": {"toya": {"loader": "csv", "root": str(_toy_dataset(d / "a", ("astronaut", "coffee"), 0))},
                     "toyb": {"loader": "csv", "root": str(_toy_dataset(d / "b", ("chelsea", "rocket"), 1))},
                     "clive": {"root": None}},
        "tables": {"run": [1, 2, 3], "cross_pairs": [["toya", "toyb"], ["toyb", "toya"], ["flive", "toya"]]},
        # test-sized protocol (the defaults are the paper's 50/100/200 labels and 10 splits)
        "protocol": {"n_train": [4, 8], "splits": 2, "train_fraction": 0.7},
        "output": {"cache_every": 4, "progress": False},
    }
    (d / "repro.yaml").write_text(yaml.safe_dump(cfg))
    return d


@pytest.fixture(scope="module")
def fresh(toy):
    """An uninterrupted run with its own cache (the other tests reuse its features)."""
    return run_reproduce(_cfg(toy, "fresh"))


def _cfg(toy, name, **more):
    overrides = [f"output.out={toy / name / 'out'}", f"output.cache={toy / name / 'cache'}"]
    overrides += [f"{k}={v}" for k, v in more.items()]
    return load_config(toy / "repro.yaml", overrides, schema=REPRODUCE_SCHEMA)


def _results(out):
    """Every result JSON (timings removed) and the zero-shot score files of an output folder."""
    docs = {}
    for p in sorted(out.glob("*.json")):
        doc = json.loads(p.read_text())
        if "protocol" in doc:
            for r in doc["rows"]:
                r.pop("seconds", None)
            docs[p.name] = doc
    docs.update({p.name: p.read_text() for p in sorted(out.glob("*_scores.csv"))})
    return docs


class _Stop(BaseException):
    """Stands for a kill (not an Exception: nothing may catch it)."""


def test_killed_run_restarts_where_it_stopped_with_the_same_results(toy, fresh, monkeypatch):
    cfg = _cfg(toy, "killed")
    # 1. killed during feature extraction, after 6 images (cache parts of 4 images are written)
    real_iter = GRepQ.iter_computed

    def dying_iter(self, *a, **k):
        for i, item in enumerate(real_iter(self, *a, **k)):
            if i == 6:
                raise _Stop
            yield item

    monkeypatch.setattr(GRepQ, "iter_computed", dying_iter)
    with pytest.raises(_Stop):
        run_reproduce(cfg)
    monkeypatch.setattr(GRepQ, "iter_computed", real_iter)
    assert len(list((toy / "killed" / "cache").rglob("part-*.npz"))) == 1  # 4 images kept
    # 2. killed at the first cross-dataset step (features, Tables 1 and 2 done)
    calls = {"run_zero_shot": 0, "run_data_efficient": 0, "run_cross_dataset": 0, "images computed": 0}

    reals = {name: getattr(runner, name) for name in ("run_zero_shot", "run_data_efficient", "run_cross_dataset")}

    def spy(name, die=False):
        real = reals[name]

        def wrapped(*a, **k):
            calls[name] += 1
            if die:
                raise _Stop
            return real(*a, **k)
        return wrapped

    def counting_iter(self, *a, **k):
        for item in real_iter(self, *a, **k):
            calls["images computed"] += 1
            yield item

    monkeypatch.setattr(GRepQ, "iter_computed", counting_iter)
    for name in ("run_zero_shot", "run_data_efficient", "run_cross_dataset"):
        monkeypatch.setattr(runner, name, spy(name, die=name == "run_cross_dataset"))
    with pytest.raises(_Stop):
        run_reproduce(cfg)
    assert calls == {"run_zero_shot": 2, "run_data_efficient": 2, "run_cross_dataset": 1,
                     "images computed": 2 * N_IMAGES - 4}  # the 4 images of the cache part were not computed again
    # 3. the restart runs only what is left: the two Table 3 steps, every feature from the cache
    for name in ("run_zero_shot", "run_data_efficient", "run_cross_dataset"):
        monkeypatch.setattr(runner, name, spy(name))
    calls.update({k: 0 for k in calls})
    restarted = run_reproduce(cfg)
    assert calls == {"run_zero_shot": 0, "run_data_efficient": 0, "run_cross_dataset": 2, "images computed": 0}
    steps = restarted["run_info"]["steps"]
    assert steps["features/toya"]["status"] == "done before" and steps["table3/toyb->toya"]["status"] == "ran"
    monkeypatch.undo()
    # an uninterrupted run with its own cache gives the same results, bit for bit
    killed_out, fresh_out = toy / "killed" / "out", toy / "fresh" / "out"
    assert _results(killed_out) == _results(fresh_out) and len(_results(fresh_out)) == 2 + 2 + 2 + 2
    def strip(text):
        return text.split("\n", 3)[3]  # the header names the folder
    assert strip(restarted["tables"]) == strip(fresh["tables"])


def test_two_dataset_run_writes_tables_report_and_run_info(toy, fresh, capsys):
    out = toy / "cli" / "out"  # features from the fresh run's cache
    args = ["reproduce", "--config", str(toy / "repro.yaml"), "--out", str(out),
            "--set", f"output.cache={toy / 'fresh' / 'cache'}"]
    assert main(args) == 0
    captured = capsys.readouterr()
    tables = (out / "tables.md").read_text()
    assert captured.out.strip() == tables.strip()
    for t in ("Table 1", "Table 2", "Table 3"):
        assert t in tables
    assert "| toya → toyb | HL+LL |" in tables and "| CLIVE | GRepQ_Z | — | 0.740 |" in tables
    assert "| hl+ll | toya | 4 |" not in tables and "| HL+LL | toya | 4 |" in tables
    report = (out / "report.md").read_text()
    assert "dataset clive: no root given" in report and "Table 3 flive -> toya: flive not given" in report
    assert "dataset PIPAL: not in the configuration" in report
    assert "`protocol.alpha_selection` = `cv` [grepq]" in report
    assert "`protocol.splits` = `2`: changed from the paper's `10`" in report
    assert "[srcc_vs_labels.png](srcc_vs_labels.png)" in report and (out / "srcc_vs_labels.png").stat().st_size > 1000
    info = json.loads((out / "run_info.json").read_text())
    assert info["datasets"]["toya"]["images"] == N_IMAGES and set(info["fingerprints"]["main"]) >= {"ll", "hl"}
    assert info["fingerprints"]["main"]["ll"] == GRepQ.from_files(ll_weights=str(toy / "ll.pt"), pristine=str(
        toy / "pristine.hdf5"), components=["ll"], progress=False).fingerprints()["ll"]
    assert all(s["status"] == "ran" and s["seconds"] >= 0 for s in info["steps"].values())
    head = subprocess.run(["git", "-C", str(Path(grepq.__file__).parent), "rev-parse", "HEAD"], capture_output=True,
                          text=True)
    assert info["git_revision"].split("-")[0] == (head.stdout.strip() if head.returncode == 0 else "unknown")
    assert "skipped dataset clive: no root given" in captured.err
    # a second run does nothing again and says so
    assert main(args) == 0
    info = json.loads((out / "run_info.json").read_text())
    assert {s["status"] for s in info["steps"].values()} == {"done before"}
    # a changed protocol setting redoes the table steps, not the features
    plan = make_plan(_cfg(toy, "fresh", **{"output.out": out, "protocol.seed": 1}))
    from grepq.eval.reproduce import step_done
    assert [s.id for s in plan.steps if step_done(plan, s) is None] == [s.id for s in plan.steps if s.table]


def test_dry_run_lists_steps_and_counts_and_fails_fast_on_a_wrong_root(toy, tmp_path, capsys):
    out = tmp_path / "dry"
    base = ["reproduce", "--config", str(toy / "repro.yaml"), "--out", str(out), "--dry-run"]
    assert main(base) == 0
    err = capsys.readouterr().err
    assert f"toya                {N_IMAGES} images" in err
    assert "features/toyb" in err and "table3/toya->toyb" in err and "to run" in err
    assert "dataset clive: no root given" in err and "Table 3 flive -> toya: flive not given" in err
    assert not out.exists()  # nothing computed, nothing written
    bad = toy / "no_such_folder" / "scores.csv"
    assert main(base + ["--set", f"datasets.toyb.root={bad}"]) == 2
    err = capsys.readouterr().err
    assert f"datasets.toyb (root {bad})" in err and "which is not a folder" in err  # the loader's message
    assert main(base + ["--set", "weights.ll=missing_ll.pt"]) == 2
    assert "weights.ll: missing_ll.pt" in capsys.readouterr().err
    assert main(base + ["--set", "datasets.toyb.rot=x"]) == 2
    assert "did you mean 'root'" in capsys.readouterr().err


def test_plan_finds_what_the_run_would_fail_on_before_any_work(toy, tmp_path, capsys):
    out, cache = tmp_path / "out", tmp_path / "cache"
    base = ["reproduce", "--config", str(toy / "repro.yaml"), "--out", str(out), "--set", f"output.cache={cache}"]
    # 12 images, train_fraction 0.7: 8 training images per split, fewer than 200 labels (found at step 3 before)
    for dry in (["--dry-run"], []):
        assert main(base + ["--set", "protocol.n_train=[4,200]", "--set", "weights.hl=missing_hl.pth"] + dry) == 2
        err = capsys.readouterr().err
        assert "problems the run would fail on (3):" in err and "nothing was computed" in err
        assert "table1/toya: n_train=200 exceeds the 8 training images of split 0 (12 images" in err
        assert "table1/toyb: n_train=200" in err and "weights.hl: missing_hl.pth" in err
        assert not out.exists() and not cache.exists()  # no feature extracted, nothing written
    assert main(base + ["--set", "protocol.splits=0"]) == 2  # the schema's own check, unchanged
    capsys.readouterr()


def test_nothing_to_run_says_why_and_fails(toy, tmp_path, capsys):
    args = ["reproduce", "--config", str(toy / "repro.yaml"), "--out", str(tmp_path / "out"),
            "--set", "datasets.toya.root=null", "--set", "datasets.toyb.root=null"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "1 problem(s) found before any work, nothing was computed: nothing to run (" in err
    assert all(f"dataset {n}: no root given" in err for n in ("toya", "toyb", "clive"))
    assert not (tmp_path / "out").exists()


def test_table4_runs_the_ll_model_of_each_pair_weight_with_ll_features_only(toy, tmp_path):
    from conftest import make_ll
    save_low_level(make_ll(seed=1), tmp_path / "ll_ssim.pt")
    cfg = load_config(toy / "repro.yaml", [
        f"output.out={tmp_path / 'out'}", f"output.cache={tmp_path / 'cache'}", "tables.run=[4]",
        f"datasets.koniq={{loader: csv, root: {toy / 'a' / 'scores.csv'}}}",  # a CSV dataset standing for KonIQ
        f"weights.ll_per_pair_weight.ssim={tmp_path / 'll_ssim.pt'}",
        f"weights.ll_per_pair_weight.fsim={toy / 'll.pt'}"],
        schema=REPRODUCE_SCHEMA)
    result = run_reproduce(cfg)
    assert [s.id for s in result["plan"].steps] == ["features/koniq@ssim", "features/koniq@fsim", "table4/ssim",
                                                    "table4/fsim"]
    cells = [line.split(" | ") for line in result["tables"].split("**Table 4")[1].split("\n") if line.startswith("| ")]
    measured = {(c[0][2:], int(c[1])) for c in cells if c[1].isdigit() and c[2] != "—"}
    assert measured == {("SSIM", 4), ("SSIM", 8), ("FSIM", 4), ("FSIM", 8)}  # label counts outside the paper's too
    fp = result["run_info"]["fingerprints"]
    assert set(fp) == {"ssim", "fsim"} and fp["ssim"]["ll"] != fp["fsim"]["ll"] and fp["ssim"]["hl"] is None

