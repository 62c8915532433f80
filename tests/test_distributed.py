"""Two gloo processes on the CPU give the single-process loss and gradients on the same global batch.

BatchNorm is frozen (``bn: frozen``) in these comparisons: in train mode each process normalises with the
statistics of its own part of the batch, which is what the official multi-GPU code would do too but is not the
single-process computation. With frozen BN the only differences left are float summation orders (~1e-7).
HL groups are formed over the global batch (features gathered with their gradients), so the HL loss does not
depend on the number of processes; the LL loss (per image) is scaled so DDP's gradient average is the global one.
"""
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from grepq.config import load_config
from grepq.train.distributed import DistInfo, all_reduce_mean, gather_with_grad
from grepq.train.tasks import HLTask, LLTask
from test_train_ll import make_training_set, tiny_ll_overrides

WORLD = 2


def _configs(clip_file, data):
    hl = ["hl.bn=frozen", "hl.batch_size=8", "hl.group_size=2", f"hl.clip={clip_file}", f"data.root={data}"]
    ll = tiny_ll_overrides(data, "unused", "ll.bn=frozen", "ll.batch_size=4", "ll.versions=all")
    return {
        "hl_paper": (HLTask, load_config("hl_tiny_cpu", hl)),
        "hl_official": (HLTask, load_config("hl_tiny_cpu", hl + ["hl.loss=official", "hl.temperature=0.5",
                                                                "hl.head_activation=relu", "hl.head_trainable=false"])),
        "ll_paper": (LLTask, load_config("ll_tiny_cpu", ll)),
        "ll_official": (LLTask, load_config("ll_tiny_cpu", ll + ["ll.loss=official"])),
    }


def _global_batch(task, n):
    ds = task.build_dataset(task.cfg["data"]["root"])
    return torch.utils.data.default_collate([ds[(0, i)] for i in range(n)])


def _shard(batch, rank, world):
    """This process's part, interleaved as DistributedSampler deals indices (rank, rank + world, ...)."""
    return {k: (v[rank::world] if isinstance(v, torch.Tensor) else v[rank::world]) for k, v in batch.items()}


def _loss_and_grads(cls, cfg, info, rank=0, world=1):
    torch.manual_seed(0)
    task = cls(cfg, info)
    batch = _global_batch(task, cfg[task.name]["batch_size"])
    if world > 1:
        task.wrap_ddp()
        batch = _shard(batch, rank, world)
    task.train_mode()
    out = task.forward(batch)
    out["loss"].backward()
    loss = all_reduce_mean({"loss": float(out["loss"].detach())}, info.device)["loss"]
    grads = {n: p.grad.detach().clone() for n, p in task.model.named_parameters() if p.grad is not None}
    return loss, grads


def _worker(rank, world, init_file, clip_file, data, out_file):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    info = DistInfo(rank, rank, world, torch.device("cpu"), "gloo")
    results = {name: _loss_and_grads(cls, cfg, info, rank, world) for name, (cls, cfg) in _configs(clip_file, data).items()}
    # the gather itself: rank order, and gradients summed over processes
    x = torch.full((2, 3), float(rank + 1), requires_grad=True)
    g = gather_with_grad(x)
    (g * torch.arange(12.0).view(4, 3)).sum().backward()
    results["gather"] = (g.detach(), x.grad.clone())
    if rank == 0:
        torch.save(results, out_file)
    dist.barrier()
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_training_set(tmp_path_factory.mktemp("distdata"), n=8, size=(56, 64))


def test_two_gloo_processes_match_one_process(clip_files, data, tmp_path):
    out_file = tmp_path / "dist.pt"
    mp.spawn(_worker, args=(WORLD, str(tmp_path / "init"), str(clip_files["state_dict"]), str(data), str(out_file)),
             nprocs=WORLD, join=True)
    multi = torch.load(out_file, weights_only=True)
    gathered, grad = multi.pop("gather")
    assert torch.equal(gathered[:2], torch.ones(2, 3)) and torch.equal(gathered[2:], torch.full((2, 3), 2.0))
    assert torch.equal(grad, 2 * torch.arange(6.0).view(2, 3))  # both processes' identical losses, summed
    torch.set_num_threads(1)
    for name, (cls, cfg) in _configs(clip_files["state_dict"], data).items():
        loss1, grads1 = _loss_and_grads(cls, cfg, DistInfo())
        loss2, grads2 = multi[name]
        assert loss2 == pytest.approx(loss1, rel=1e-6), name
        assert grads1.keys() == grads2.keys() and grads1, name
        scale = max(float(g.abs().max()) for g in grads1.values())
        worst = max(float((grads1[k] - grads2[k]).abs().max()) for k in grads1) / scale
        assert worst < 1e-5, f"{name}: gradients differ by {worst:.2e} (relative to the largest)"
        if name == "hl_official":
            assert not any(k.startswith("head.") for k in grads1)  # the frozen head gets no gradient


@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun is not on PATH")
def test_torchrun_two_processes_train_like_one(clip_files, data, tmp_path):
    args = ["--config", "hl_tiny_cpu", "--data", str(data), f"hl.clip={clip_files['state_dict']}", "hl.bn=frozen",
            "run.deterministic=true"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    one = subprocess.run([sys.executable, "-m", "grepq", "train", *args, "--run-dir", str(tmp_path / "one")],
                         env=env, capture_output=True, text=True, timeout=600)
    assert one.returncode == 0, one.stderr
    two = subprocess.run(["torchrun", "--standalone", "--nproc_per_node", str(WORLD), "-m", "grepq", "train", *args,
                          "--run-dir", str(tmp_path / "two")], env=env, capture_output=True, text=True, timeout=600)
    assert two.returncode == 0, two.stderr
    info = json.loads((tmp_path / "two" / "run_info.json").read_text())
    assert info["world_size"] == WORLD and info["backend"] == "gloo"
    steps = lambda d: [r for r in map(json.loads, open(d / "log.jsonl")) if r["type"] == "step"]
    s1, s2 = steps(tmp_path / "one"), steps(tmp_path / "two")
    assert len(s1) == len(s2) == 2
    for a, b in zip(s1, s2):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5) and b["lr"] == a["lr"]
    w1 = torch.load(tmp_path / "one" / "hl_weights.pt", weights_only=True)["state_dict"]
    w2 = torch.load(tmp_path / "two" / "hl_weights.pt", weights_only=True)["state_dict"]
    assert max(float((w1[k] - w2[k]).abs().max()) for k in w1) < 1e-5
