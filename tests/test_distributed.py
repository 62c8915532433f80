"""Two gloo processes on the CPU give the single-process loss, gradients and optimiser step on the same global batch.

BatchNorm runs as the presets set it (``bn: global``): with several processes each one holds part of the batch and
the statistics are all-reduced (grepq's CrossProcessBatchNorm on the CPU; SyncBatchNorm on CUDA, which cannot be
tested here), so the only differences left are float summation orders (~1e-7). ``bn: train`` (each process its own
statistics, the official multi-GPU behaviour) is shown to differ. HL groups are formed over the global batch
(features gathered with their gradients); the LL loss (per image) is scaled so DDP's gradient average is the global one.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from test_train_ll import make_training_set, tiny_ll_overrides
from test_train_resume import KILL_AFTER_STEP, assert_same_run

from grepq.parallel import DistInfo
from grepq.train.batchnorm import CrossProcessBatchNorm, convert_cross_process_batchnorm
from grepq.train.distributed import all_reduce_mean, gather_with_grad
from grepq.train.schema import load_train_config
from grepq.train.tasks import HLTask, LLTask

WORLD = 2
# the presets' BatchNorm mode, read from the presets themselves
HL_BN = load_train_config("hl_paper")["hl"]["bn"]
LL_BN = load_train_config("ll_paper")["ll"]["bn"]


def _configs(clip_file, data):
    hl = [f"hl.bn={HL_BN}", "hl.batch_size=8", "hl.group_size=2", f"hl.clip={clip_file}", f"data.root={data}"]
    ll = tiny_ll_overrides(data, "unused", f"ll.bn={LL_BN}", "ll.batch_size=4", "ll.versions=all")
    return {
        "hl_paper": (HLTask, load_train_config("hl_tiny_cpu", hl)),
        "hl_official": (HLTask, load_train_config("hl_tiny_cpu", hl + ["hl.loss=official", "hl.temperature=0.5",
                                                                "hl.head_activation=relu", "hl.head_trainable=false"])),
        "ll_paper": (LLTask, load_train_config("ll_tiny_cpu", ll)),
        "ll_official": (LLTask, load_train_config("ll_tiny_cpu", ll + ["ll.loss=official"])),
        "hl_bn_train": (HLTask, load_train_config("hl_tiny_cpu", hl + ["hl.bn=train"])),  # shown to differ
    }


def _global_batch(task, n):
    ds = task.build_dataset(task.cfg["data"]["root"])
    return torch.utils.data.default_collate([ds[(0, i)] for i in range(n)])


def _shard(batch, rank, world):
    """This process's part, interleaved as DistributedSampler deals indices (rank, rank + world, ...)."""
    return {k: (v[rank::world] if isinstance(v, torch.Tensor) else v[rank::world]) for k, v in batch.items()}


def _loss_and_grads(cls, cfg, info, rank=0, world=1):
    """The loss, the gradients and the state after one optimiser step (weights and BatchNorm buffers)."""
    torch.manual_seed(0)
    task = cls(cfg, info)
    batch = _global_batch(task, cfg[task.name]["batch_size"])
    if world > 1:
        task.wrap_ddp()
        batch = _shard(batch, rank, world)
    optimizer = task.make_optimizer()
    before = {k: v.clone() for k, v in task.model.state_dict().items() if k.endswith("running_mean")}
    task.train_mode()
    out = task.forward(batch)
    out["loss"].backward()
    loss = all_reduce_mean({"loss": float(out["loss"].detach())}, info.device)["loss"]
    grads = {n: p.grad.detach().clone() for n, p in task.model.named_parameters() if p.grad is not None}
    optimizer.step()
    state = {k: v.detach().clone() for k, v in task.model.state_dict().items()}
    bn_moved = any(not torch.equal(state[k], v) for k, v in before.items())
    return loss, grads, state, bn_moved


def _batchnorm_case(rank=0, world=1):
    """A BatchNorm2d (momentum 0.1) and a cumulative one (momentum None) in channels_last, two training steps then
    eval: outputs, input gradients, parameter gradients (summed over processes) and running statistics."""
    torch.manual_seed(0)
    layers = torch.nn.Sequential(torch.nn.BatchNorm2d(3), torch.nn.Conv2d(3, 3, 1),
                                 torch.nn.BatchNorm2d(3, momentum=None))
    with torch.no_grad():
        for p in layers.parameters():
            p.uniform_(0.5, 1.5)
    x = torch.randn(2, 8, 3, 5, 4) * 3 + 1
    w = torch.randn(2, 8, 3, 5, 4)
    if world > 1:
        layers = convert_cross_process_batchnorm(layers)
        assert isinstance(layers[0], CrossProcessBatchNorm) and isinstance(layers[2], CrossProcessBatchNorm)
        x, w = x[:, rank::world], w[:, rank::world]
    out, xgrads = [], []
    for i in range(2):
        xi = x[i].contiguous(memory_format=torch.channels_last).requires_grad_(True)
        y = layers(xi)
        (y * w[i]).sum().backward()
        out.append(y.detach())
        xgrads.append(xi.grad)
    grads = {n: p.grad.clone() for n, p in layers.named_parameters()}
    if world > 1:
        for g in grads.values():
            dist.all_reduce(g)
    layers.eval()
    out.append(layers(x[0]).detach())
    return out, xgrads, grads, {k: v.clone() for k, v in layers.state_dict().items()}


def _worker(rank, world, init_file, clip_file, data, out_file):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    info = DistInfo(rank, rank, world, torch.device("cpu"), "gloo")
    results = {name: _loss_and_grads(cls, cfg, info, rank, world)
               for name, (cls, cfg) in _configs(clip_file, data).items()}
    # the gather itself: rank order, and gradients summed over processes
    x = torch.full((2, 3), float(rank + 1), requires_grad=True)
    g = gather_with_grad(x)
    (g * torch.arange(12.0).view(4, 3)).sum().backward()
    results["gather"] = (g.detach(), x.grad.clone())
    results["batchnorm"] = [gather(t) for t in _batchnorm_case(rank, world)]
    if rank == 0:
        torch.save(results, out_file)
    dist.barrier()
    dist.destroy_process_group()


def gather(obj):
    """Per-process tensors along dim 0 (lists of them, dicts of them: summed parameter gradients are kept)."""
    if isinstance(obj, list):
        return [gather(o) for o in obj]
    if isinstance(obj, dict):
        return obj
    parts = [torch.empty_like(obj) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, obj.contiguous())
    # undo the interleaved split rank::world
    full = torch.empty((obj.shape[0] * len(parts),) + obj.shape[1:], dtype=obj.dtype)
    for r, p in enumerate(parts):
        full[r::len(parts)] = p
    return full


def _check_one_step(name, lr, grads, state1, state2, scale):
    """After one Adam(W) step from the same weights: the first step moves each weight by about lr * sign(gradient),
    so weights whose gradient is at rounding level (|g| < 1e-5 of the largest: e.g. biases followed by BatchNorm)
    may move either way (at most 2 lr apart); every other weight within 1e-3 lr; buffers (BatchNorm running
    statistics) within 1e-5 relative."""
    assert state1.keys() == state2.keys()
    for k in state1:
        a, b = state1[k].double(), state2[k].double()
        if k in grads:
            noise = grads[k].abs() <= 1e-5 * scale
            diff = (a - b).abs()
            assert float(torch.where(noise, 0.0, diff).max()) < 1e-3 * lr, f"{name}: {k} after one step"
            assert float(diff.max()) <= 2.01 * lr, f"{name}: {k} after one step"
        else:
            assert _relative(b, a) < 1e-5, f"{name}: {k} after one step"


def _relative(a, b):
    return float((a - b).abs().max()) / max(float(b.abs().max()), 1e-12)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_training_set(tmp_path_factory.mktemp("distdata"), n=8, size=(56, 64))


def test_two_gloo_processes_match_one_process(clip_files, data, tmp_path):
    assert HL_BN == LL_BN == "global"
    out_file = tmp_path / "dist.pt"
    mp.spawn(_worker, args=(WORLD, str(tmp_path / "init"), str(clip_files["state_dict"]), str(data), str(out_file)),
             nprocs=WORLD, join=True)
    multi = torch.load(out_file, weights_only=True)
    gathered, grad = multi.pop("gather")
    assert torch.equal(gathered[:2], torch.ones(2, 3)) and torch.equal(gathered[2:], torch.full((2, 3), 2.0))
    assert torch.equal(grad, 2 * torch.arange(6.0).view(2, 3))  # both processes' identical losses, summed
    torch.set_num_threads(1)
    # the BatchNorm layer alone: forward, backward, running statistics, eval
    (out2, xg2, g2, st2), (out1, xg1, g1, st1) = multi.pop("batchnorm"), _batchnorm_case()
    for a, b in zip(out2 + xg2, out1 + xg1):
        assert _relative(a, b) < 1e-5
    scale = max(float(g.abs().max()) for g in g1.values())  # (the biases before a BatchNorm have gradient 0)
    assert g1.keys() == g2.keys() and all(float((g2[k] - g1[k]).abs().max()) < 1e-6 * scale for k in g1)
    assert st1.keys() == st2.keys() and all(_relative(st2[k].float(), st1[k].float()) < 1e-6 for k in st1)
    assert int(st2["2.num_batches_tracked"]) == 2
    for name, (cls, cfg) in _configs(clip_files["state_dict"], data).items():
        loss1, grads1, state1, moved1 = _loss_and_grads(cls, cfg, DistInfo())
        loss2, grads2, state2, moved2 = multi[name]
        worst = max(_relative(grads2[k], grads1[k]) for k in grads1)
        if name == "hl_bn_train":  # each process normalises its 4 images: another computation
            assert abs(loss2 - loss1) > 1e-4 * abs(loss1) and worst > 1e-3
            continue
        assert loss2 == pytest.approx(loss1, rel=1e-5), name
        assert grads1.keys() == grads2.keys() and grads1, name
        scale = max(float(g.abs().max()) for g in grads1.values())
        worst = max(float((grads1[k] - grads2[k]).abs().max()) for k in grads1) / scale
        assert worst < 1e-5, f"{name}: gradients differ by {worst:.2e} (relative to the largest)"
        _check_one_step(name, cfg[cfg["task"]]["lr"], grads1, state1, state2, scale)
        assert moved1 and moved2, name  # batch statistics were used and tracked
        if name == "hl_official":
            assert not any(k.startswith("head.") for k in grads1)  # the frozen head gets no gradient


@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun is not on PATH")
def test_torchrun_two_processes_train_like_one(clip_files, data, tmp_path):
    args = ["--config", "hl_tiny_cpu", "--data", str(data), f"hl.clip={clip_files['state_dict']}", f"hl.bn={HL_BN}",
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
    def steps(d):
        return [r for r in map(json.loads, open(d / "log.jsonl")) if r["type"] == "step"]
    s1, s2 = steps(tmp_path / "one"), steps(tmp_path / "two")
    assert len(s1) == len(s2) == 2
    for a, b in zip(s1, s2):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5) and b["lr"] == a["lr"]
    w1 = torch.load(tmp_path / "one" / "hl_weights.pt", weights_only=True)["state_dict"]
    w2 = torch.load(tmp_path / "two" / "hl_weights.pt", weights_only=True)["state_dict"]
    # Adam moves each weight by about lr * sign(gradient) per step: a weight whose gradient is at rounding level
    # (attnpool.k_proj.bias has gradient 0: the softmax ignores a shift of every key) may move either way; every
    # BatchNorm running statistic and all but a few weights agree to float32 rounding
    lr, steps = 1e-4, len(s1)
    assert load_train_config("hl_tiny_cpu")["hl"]["lr"] == lr
    diff = torch.cat([(w1[k] - w2[k]).abs().flatten() for k in w1 if w1[k].is_floating_point()])
    assert float(diff.max()) <= 2.01 * steps * lr
    assert int((diff > 1e-5).sum()) <= 1e-3 * diff.numel(), int((diff > 1e-5).sum())
    for k in w1:
        if "running_" in k:
            assert _relative(w2[k], w1[k]) < 1e-5, k


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch_two(args, code=None):
    """Two training processes as torchrun starts them (RANK, WORLD_SIZE, MASTER_ADDR/PORT); their exit codes."""
    port = _free_port()
    cmd = [sys.executable, "-c", code] if code else [sys.executable, "-m", "grepq"]
    procs = [subprocess.Popen(cmd + args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              env=dict(os.environ, RANK=str(r), LOCAL_RANK=str(r), WORLD_SIZE=str(WORLD),
                                       MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), OMP_NUM_THREADS="1"))
             for r in range(WORLD)]
    try:
        return [p.wait(timeout=600) for p in procs], [p.stderr.read() for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()


def test_two_process_run_killed_mid_epoch_resumes_exactly(data, tmp_path):
    """A 2-process gloo LL run (the preset's bn: global) killed by SIGKILL on both processes two steps past its last
    checkpoint, across an epoch boundary, then restarted: the same weights, optimiser state and log as the
    uninterrupted 2-process run."""
    def args(run_dir):  # 8 folders, global batch 4 -> 2 steps per epoch, 6 steps; checkpoints at 3 and 6
        return ["train", "--config", "ll_tiny_cpu", *tiny_ll_overrides(data, run_dir), "ll.batch_size=4",
                "ll.epochs=3", "run.checkpoint_every=3", "run.log_every=1", "run.deterministic=true"]
    full, killed = tmp_path / "full", tmp_path / "killed"
    codes, errs = _launch_two(args(full))
    assert codes == [0, 0], errs
    codes, errs = _launch_two(args(killed), KILL_AFTER_STEP.replace("STEP", "5"))
    assert codes == [-signal.SIGKILL] * WORLD, errs
    ckpt = torch.load(killed / "checkpoint.pth", weights_only=True)
    assert ckpt["state"]["step"] == 3 and ckpt["state"]["epoch"] == 1 and ckpt["world_size"] == WORLD
    codes, errs = _launch_two(args(killed))
    assert codes == [0, 0], errs
    assert_same_run(full, killed)
    info = json.loads((killed / "run_info.json").read_text())
    assert info["world_size"] == WORLD and info["resumed_from_step"] == 3 and info["final_step"] == 6


def test_backend_override(monkeypatch):
    """GREPQ_DIST_BACKEND picks the backend (gloo lets several processes share one GPU); unset: nccl for CUDA,
    gloo otherwise; anything else is an error."""
    from grepq.parallel import BACKEND_ENV, dist_backend

    monkeypatch.delenv(BACKEND_ENV, raising=False)
    assert dist_backend(torch.device("cpu")) == "gloo" and dist_backend(torch.device("cuda:0")) == "nccl"
    monkeypatch.setenv(BACKEND_ENV, "gloo")
    assert dist_backend(torch.device("cuda:0")) == "gloo"
    monkeypatch.setenv(BACKEND_ENV, "nccl")
    assert dist_backend(torch.device("cuda:1")) == "nccl"
    with pytest.raises(ValueError, match="needs CUDA"):
        dist_backend(torch.device("cpu"))
    monkeypatch.setenv(BACKEND_ENV, "mpi")
    with pytest.raises(ValueError, match="expected 'gloo' or 'nccl'"):
        dist_backend(torch.device("cpu"))
