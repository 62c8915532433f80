"""Scale-out (grepq/parallel.py, grepq/eval/score_shards.py): shares of the images in independent jobs
(--shard I/N) and in torchrun processes (2 gloo CPU processes) merge into exactly what one process computes: the same
feature arrays (bit for bit), the same score file (byte for byte), the same evaluation result; killed shares resume;
bad merges are errors."""
import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from conftest import make_clip, photo
from PIL import Image

from grepq import GRepQ, parallel
from grepq.cli import main
from grepq.eval import features as fx
from grepq.models.high_level import HighLevelModel
from grepq.models.low_level import save_low_level
from grepq.scoring.pristine import write_pristine_hdf5

# one torch thread per test (tests/conftest.py): faster on shared cores, and the same rounding as a
# torchrun process
pytestmark = pytest.mark.usefixtures("one_thread")

PHOTOS = (("astronaut", (150, 170)), ("coffee", (160, 150)), ("chelsea", (150, 150)), ("rocket", (170, 150)),
          ("camera", (150, 160)), ("coins", (150, 180)))


@pytest.fixture(scope="module")
def setup(tmp_path_factory, ll_model, small_clip, pristine_patches):
    """Weight files, six small photographs and a CSV dataset of them."""
    d = tmp_path_factory.mktemp("shard")
    save_low_level(ll_model, d / "ll.tar", fmt="official")
    torch.save(make_clip(seed=3).visual.state_dict(), d / "hl.pth")
    torch.save(small_clip.state_dict(), d / "clip.pt")
    write_pristine_hdf5(pristine_patches[::2].contiguous(), d / "pristine.hdf5")
    (d / "imgs").mkdir()
    for k, (name, size) in enumerate(PHOTOS):
        Image.fromarray(photo(name, size)).save(d / "imgs" / f"{k}_{name}.png")
    with open(d / "scores.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", "mos"])
        w.writerows([f"imgs/{k}_{name}.png", 1 + k % 4] for k, (name, _) in enumerate(PHOTOS))
    return d


def weights(d):
    return ["--ll-weights", str(d / "ll.tar"), "--hl-weights", str(d / "hl.pth"), "--clip-weights", str(d / "clip.pt"),
            "--pristine", str(d / "pristine.hdf5")]


@pytest.fixture
def counted(monkeypatch):
    """Counts the images GRepQ.compute is called on."""
    calls = []
    orig = GRepQ.compute

    def compute(self, imgs, *a, **k):
        calls.extend([1] * len(imgs))
        return orig(self, imgs, *a, **k)

    monkeypatch.setattr(GRepQ, "compute", compute)
    return calls


def test_shares_cover_the_list_once_in_order():
    for n in (0, 1, 5, 7, 40):
        for count in (1, 2, 3, 4, 8):
            joined = [i for k in range(count) for i in parallel.Shard(k, count).share(n)]
            assert joined == list(range(n)), (n, count)
    assert parallel.Shard.parse(" 3/4") == parallel.Shard(3, 4) and parallel.Shard(1, 3).share(7) == range(2, 4)
    for bad in ("4/4", "1", "-1/2", "a/b", "1/0"):
        with pytest.raises(parallel.ShardError, match="I/N"):
            parallel.Shard.parse(bad)


def test_torchrun_rank_and_shard_compose(monkeypatch):
    """Under torchrun (W processes) with --shard I/N: share I * W + rank of N * W, on the rank's device
    (init_distributed's: cuda:LOCAL_RANK for --device cuda), waiting at barriers long enough for a large share."""
    seen = {}

    def fake_init(device, timeout=None):
        seen.update(device=device, timeout=timeout)
        return parallel.DistInfo(1, 1, 2, torch.device("cuda:1"), "nccl")

    monkeypatch.setattr(parallel, "init_distributed", fake_init)
    so = parallel.start("1/3", "cuda")
    assert so.shard == parallel.Shard(3, 6) and str(so.device) == "cuda:1" and so.independent and not so.merges
    assert seen == {"device": "cuda", "timeout": parallel.BARRIER_TIMEOUT}
    so = parallel.start(None, "cuda")
    assert so.shard == parallel.Shard(1, 2) and not so.independent and not so.merges and so.sharded


# ------------------------------------------------------------------------------------------------ features
@pytest.fixture(scope="module")
def scorer(small_clip, ll_model, pristine_patches):
    import copy
    return GRepQ.from_files(ll_weights=ll_model, hl_weights=HighLevelModel(copy.deepcopy(small_clip)),
                 pristine=pristine_patches[::2].contiguous(), progress=False)


def test_feature_shards_fill_one_cache_equal_to_one_process(scorer, setup, tmp_path, counted):
    paths = sorted((setup / "imgs").glob("*.png"))
    one = fx.extract_features(scorer, paths, cache_dir=tmp_path / "one", progress=False)
    counted.clear()
    a = fx.extract_features(scorer, paths, cache_dir=tmp_path / "sh", save_every=2, progress=False,
                            shard=parallel.Shard(0, 2))
    assert len(counted) == 3 and a.names == [str(p) for p in paths[:3]]
    # a kill of shard 1 after its first part: a part on disk and a temporary file it was writing
    b = fx.extract_features(scorer, paths, cache_dir=tmp_path / "sh", save_every=2, progress=False,
                            shard=parallel.Shard(1, 2))
    assert b.cache_dir == a.cache_dir  # one cache key for all shards
    names = sorted(p.name for p in a.cache_dir.glob("part-*.npz"))
    assert [n[:11] for n in names] == ["part-s0of2-"] * 2 + ["part-s1of2-"] * 2
    for p in a.cache_dir.glob("part-s1of2-*"):
        if p.name.endswith("0000005.npz"):
            p.unlink()
    (a.cache_dir / ".tmp-s1of2-12345.npz").write_bytes(b"cut short")
    (a.cache_dir / ".tmp-s0of2-777.npz").write_bytes(b"shard 0 still writing")
    counted.clear()
    fx.extract_features(scorer, paths, cache_dir=tmp_path / "sh", save_every=2, progress=False,
                        shard=parallel.Shard(1, 2))
    assert len(counted) == 1  # only the image of the lost part
    assert not (a.cache_dir / ".tmp-s1of2-12345.npz").exists() and (a.cache_dir / ".tmp-s0of2-777.npz").exists()
    counted.clear()
    merged = fx.extract_features(scorer, paths, cache_dir=tmp_path / "sh", progress=False)
    assert counted == []  # the merge finds every image cached
    for k in ("hl", "ll", "q_low", "q_high"):
        assert np.array_equal(getattr(merged, k), getattr(one, k)), k
    assert merged.names == one.names


# ------------------------------------------------------------------------------------------------ score
def run_meta(meta):
    """A run's metadata (a dict or a .meta.json file) but when and how it was started."""
    meta = json.loads(meta.read_text()) if isinstance(meta, Path) else meta
    return {k: v for k, v in meta.items() if k not in ("created", "command")}


def test_score_shards_merge_to_the_single_process_file(setup, tmp_path, capsys, counted):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for p in sorted((setup / "imgs").glob("*.png"))[:4]:
        (folder / p.name).write_bytes(p.read_bytes())
    (folder / "1b_broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    one = tmp_path / "one.csv"
    assert main(["score", str(folder), str(tmp_path / "missing.png"), *weights(setup), "-o", str(one)]) == 1
    err_one = capsys.readouterr().err
    out = tmp_path / "sh.csv"
    def sh(*a):
        return main(["score", str(folder), str(tmp_path / "missing.png"), *weights(setup), "-o", str(out), *a])
    assert main(["score", "--merge-shards", "-o", str(out)]) == 2
    assert "no part files" in capsys.readouterr().err
    assert sh("--shard", "0/2") == 1  # shard 0 holds the broken image
    err = capsys.readouterr().err
    assert "1b_broken.jpg" in err and "--merge-shards" in err
    assert main(["score", "--merge-shards", "-o", str(out)]) == 2
    assert "missing the parts of shard(s) 1/2" in capsys.readouterr().err
    # shard 1 (2_chelsea, 3_rocket, missing.png) killed after its first image, the second line cut short
    assert sh("--shard", "1/2") == 1
    part = out.with_name("sh.csv.shard-1-of-2.jsonl")
    lines = part.read_bytes().split(b"\n")
    part.write_bytes(b"\n".join(lines[:2]) + b"\n" + lines[2][:20])
    assert main(["score", "--merge-shards", "-o", str(out)]) == 2
    assert "shard 1/2 has scored 1 of its 3 images" in capsys.readouterr().err
    counted.clear()
    assert sh("--shard", "1/2") == 1
    assert len(counted) == 1  # 3_rocket again (missing.png fails before computing)
    capsys.readouterr()
    assert main(["score", "--merge-shards", "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert out.read_bytes() == one.read_bytes()  # rows in input order, the same numbers
    assert run_meta(out.with_name("sh.meta.json")) == run_meta(one.with_name("one.meta.json"))
    assert [ln for ln in err.splitlines() if ln.startswith("grepq score: failed")] == \
        [ln for ln in err_one.splitlines() if ln.startswith("grepq score: failed")]
    assert "2 of 6 images failed" in err and not list(tmp_path.glob("sh.csv.shard-*"))


def test_score_part_of_other_weights_is_started_again(setup, tmp_path, caplog, capsys, counted):
    imgs = str(setup / "imgs")
    out = tmp_path / "s.json"
    assert main(["score", imgs, *weights(setup), "-o", str(out), "--shard", "1/2", "--components", "ll"]) == 0
    counted.clear()
    assert main(["score", imgs, *weights(setup), "-o", str(out), "--shard", "1/2", "--components", "ll"]) == 0
    assert counted == []  # finished: nothing to do
    assert main(["score", imgs, *weights(setup), "-o", str(out), "--shard", "1/2"]) == 0
    assert len(counted) == 3 and "starting this share again" in caplog.text
    assert main(["score", imgs, *weights(setup), "-o", str(out), "--shard", "0/2", "--components", "ll"]) == 0
    capsys.readouterr()
    assert main(["score", "--merge-shards", "-o", str(out)]) == 2
    assert "different weights, settings or images" in capsys.readouterr().err
    assert main(["score", "--merge-shards", "-o", str(out), imgs]) == 2


# ------------------------------------------------------------------------------------------------ eval
def eval_args(d, out, cache):
    return ["eval", "zeroshot", "--dataset", "csv", "--root", str(d / "scores.csv"), *weights(d), "--out", str(out),
            "--cache", str(cache), "--no-plots"]


def results(out):
    return json.loads((out / "zeroshot_csv.json").read_text())["rows"], (out / "zeroshot_csv_scores.csv").read_text()


def test_eval_two_independent_shards_then_merge_equal_one_process(setup, tmp_path, capsys, counted):
    """What issue 14 must show: a sharded evaluation whose merged result equals the single-process one."""
    assert main(eval_args(setup, tmp_path / "one", tmp_path / "c1")) == 0
    assert main([*eval_args(setup, tmp_path / "sh", tmp_path / "c2"), "--shard", "0/2"]) == 0
    assert main([*eval_args(setup, tmp_path / "sh", tmp_path / "c2"), "--shard", "1/2"]) == 0
    assert not (tmp_path / "sh").exists()  # shards extract, the protocol runs once, at the merge
    assert "without --shard" in capsys.readouterr().err
    counted.clear()
    assert main(eval_args(setup, tmp_path / "sh", tmp_path / "c2")) == 0
    assert counted == []
    assert results(tmp_path / "sh") == results(tmp_path / "one")
    assert main([*eval_args(setup, tmp_path / "x", "none"), "--shard", "0/2"]) == 2
    assert "--cache cannot be none" in capsys.readouterr().err


def _free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _torchrun_worker(rank, world, jobs, status_dir):
    """One process of a 2-process job, with the environment torchrun gives it (RANK, LOCAL_RANK, WORLD_SIZE,
    MASTER_ADDR/PORT, one thread): runs each grepq command line of ``jobs`` [(port, argv)]."""
    torch.set_num_threads(1)
    codes = []
    for port, argv in jobs:
        os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), MASTER_ADDR="127.0.0.1",
                          MASTER_PORT=str(port))
        codes.append(main(argv))
    (status_dir / f"rank{rank}.json").write_text(json.dumps(codes))


def test_two_gloo_processes_equal_one_process(setup, tmp_path):
    """2 CPU processes (gloo) as torchrun starts them: eval zeroshot (each extracts its share into the cache, rank 0
    merges after the barrier and runs the protocol once) and score (rank 0 writes the file) give the
    single-process results. torch.multiprocessing rather than a torchrun subprocess: the same environment, and the
    two commands share one interpreter start per process (the command sequence under torchrun is in the README)."""
    score = ["score", str(setup / "imgs"), *weights(setup), "-o"]
    jobs = [(_free_port(), eval_args(setup, tmp_path / "ev2", tmp_path / "c2")),
            (_free_port(), score + [str(tmp_path / "s2.json")])]
    mp.spawn(_torchrun_worker, args=(2, jobs, tmp_path), nprocs=2, join=True)
    assert [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)] == [[0, 0], [0, 0]]
    assert main(eval_args(setup, tmp_path / "ev1", tmp_path / "c1")) == 0
    assert main(score + [str(tmp_path / "s1.json")]) == 0
    assert results(tmp_path / "ev2") == results(tmp_path / "ev1")
    assert len(list((tmp_path / "c2").glob("*/part-s1of2-*.npz"))) == 1
    s1, s2 = (json.loads((tmp_path / f"s{i}.json").read_text()) for i in (1, 2))
    assert s2["scores"] == s1["scores"] and run_meta(s2["meta"]) == run_meta(s1["meta"])
    assert not list(tmp_path.glob("s2.json.shard-*"))
