"""Exact resume: a run killed with SIGKILL and resumed ends with the same bits as an uninterrupted run (weights,
optimiser state, log.jsonl) wherever the kill lands — at a random instant after a first checkpoint, in the middle of
an epoch between two checkpoints, or while checkpoint.pth is being written (the two-process case is in
tests/test_distributed.py); a run directory of another configuration or other data is refused with the differing
keys named.

The precise kills run the training in a subprocess whose driver (``KILL_AFTER_STEP`` / ``KILL_IN_CHECKPOINT_WRITE``)
wraps one function and sends SIGKILL to its own process at the chosen instant: no hook in grepq itself."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from test_train_ll import make_training_set, tiny_ll_overrides

from grepq.config import ConfigError
from grepq.train import train
from grepq.train.checkpoint import load_checkpoint
from grepq.train.schema import load_train_config

# 8 folders, batch 2 -> 4 steps per epoch, 3 epochs = 12 steps; a checkpoint every 4 steps.

# one torch thread per test (tests/conftest.py): faster on shared cores, and the same rounding as a
# torchrun process
pytestmark = pytest.mark.usefixtures("one_thread")

RUN = ["ll.epochs=3", "run.checkpoint_every=4", "run.deterministic=true", "data.num_workers=0"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_training_set(tmp_path_factory.mktemp("resumedata"), n=8, size=(56, 64))


def command(data, run_dir):
    return [sys.executable, "-m", "grepq", "train", "--config", "ll_tiny_cpu", *tiny_ll_overrides(data, run_dir), *RUN]


def weights(run_dir):
    return torch.load(run_dir / "ll_weights.pt", weights_only=True)["state_dict"]


def log_without_times(run_dir):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in map(json.loads, open(run_dir / "log.jsonl"))]


def test_sigkill_then_resume_is_bit_identical(data, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    full, killed = tmp_path / "full", tmp_path / "killed"
    subprocess.run(command(data, full), check=True, env=env, capture_output=True, timeout=600)

    proc = subprocess.Popen(command(data, killed), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (killed / "checkpoint.pth").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL, "the run finished before it could be killed"
    assert not (killed / "ll_weights.pt").exists()
    stopped_at = load_checkpoint(killed / "checkpoint.pth")["state"]["step"]
    assert 4 <= stopped_at < 12

    out = subprocess.run(command(data, killed), env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    a, b = weights(full), weights(killed)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert log_without_times(full) == log_without_times(killed)
    info = json.loads((killed / "run_info.json").read_text())
    assert info["resumed_from_step"] == stopped_at and info["finished"] and info["final_step"] == 12
    assert info["world_size"] == 1 and info["git_revision"]


#: ``python -c`` driver: the grepq CLI, killed by SIGKILL right after log.jsonl received the line of step STEP.
KILL_AFTER_STEP = """
import os, signal, sys
from grepq.train import logging as L
write = L.RunLogger.write
def killing_write(self, record):
    write(self, record)
    if record.get("type") == "step" and record.get("step") == STEP:
        os.kill(os.getpid(), signal.SIGKILL)
L.RunLogger.write = killing_write
from grepq.cli import main
sys.exit(main(sys.argv[1:]))
"""

#: ``python -c`` driver: killed while writing checkpoint.pth for the COUNT-th time: half of the temporary file is
#: on disk (grepq.utils.atomic_write writes it, then renames it), the rename has not happened.
KILL_IN_CHECKPOINT_WRITE = """
import os, signal, sys
replace, calls = os.replace, []
def killing_replace(src, dst, *a, **k):
    if os.path.basename(str(dst)) == "checkpoint.pth":
        calls.append(dst)
        if len(calls) == COUNT:
            with open(src, "r+b") as f:
                f.truncate(os.path.getsize(src) // 2)
            os.kill(os.getpid(), signal.SIGKILL)
    return replace(src, dst, *a, **k)
os.replace = killing_replace
from grepq.cli import main
sys.exit(main(sys.argv[1:]))
"""

# 8 folders, batch 2 -> 4 steps per epoch, 2 epochs = 8 steps; a checkpoint every 3 steps (3, 6 and the end), so
# checkpoints fall inside epochs, and a log line every step.
PRECISE = ["ll.epochs=2", "run.checkpoint_every=3", "run.log_every=1", "run.deterministic=true"]


def run_killed(driver: str, data, run_dir, **marks):
    code = driver
    for k, v in marks.items():
        code = code.replace(k, str(v))
    args = ["train", "--config", "ll_tiny_cpu", *tiny_ll_overrides(data, run_dir), *PRECISE]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr


def assert_same_run(a, b):
    """Two run directories hold the same final weights, checkpoint (model, optimiser, schedule, position) and log."""
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    ca, cb = load_checkpoint(a / "checkpoint.pth"), load_checkpoint(b / "checkpoint.pth")
    assert ca["state"] == cb["state"] and ca["scheduler"] == cb["scheduler"]
    oa, ob = ca["optimizer"], cb["optimizer"]
    assert oa["param_groups"] == ob["param_groups"] and oa["state"].keys() == ob["state"].keys()
    for i in oa["state"]:
        assert all(torch.equal(torch.as_tensor(oa["state"][i][k]), torch.as_tensor(ob["state"][i][k]))
                   for k in oa["state"][i])
    la, lb = log_without_times(a), log_without_times(b)
    assert la == lb
    steps = [r["step"] for r in lb if r["type"] == "step"]
    assert steps == list(range(1, len(steps) + 1))  # no line missing, none twice
    assert not list(b.glob(".*.tmp*"))  # no temporary file left behind


@pytest.fixture(scope="module")
def uninterrupted(data, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("uninterrupted") / "run"
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(load_train_config("ll_tiny_cpu", tiny_ll_overrides(data, run_dir, *PRECISE)))
    finally:
        torch.set_num_threads(n)
    return run_dir


def test_killed_mid_epoch_between_checkpoints_resumes_exactly(data, uninterrupted, tmp_path):
    run_dir = tmp_path / "run"
    run_killed(KILL_AFTER_STEP, data, run_dir, STEP=5)  # step 5 = epoch 1, batch 1; last checkpoint: step 3
    ckpt = load_checkpoint(run_dir / "checkpoint.pth")
    assert ckpt["state"]["step"] == 3 and ckpt["state"]["epoch"] == 0 and ckpt["state"]["batch_in_epoch"] == 3
    logged = [r for r in map(json.loads, open(run_dir / "log.jsonl"))]
    assert [r.get("step") for r in logged if r["type"] == "step"] == [1, 2, 3, 4, 5]  # 4 and 5 are past it
    assert any(r["type"] == "epoch" and r["epoch"] == 0 for r in logged)
    result = train(load_train_config("ll_tiny_cpu", tiny_ll_overrides(data, run_dir, *PRECISE)))
    assert result.finished and result.step == 8
    assert_same_run(uninterrupted, run_dir)
    assert json.loads((run_dir / "run_info.json").read_text())["resumed_from_step"] == 3


def test_killed_while_writing_the_checkpoint_resumes_exactly(data, uninterrupted, tmp_path):
    run_dir = tmp_path / "run"
    run_killed(KILL_IN_CHECKPOINT_WRITE, data, run_dir, COUNT=2)  # the checkpoint of step 6, half written
    assert load_checkpoint(run_dir / "checkpoint.pth")["state"]["step"] == 3  # the previous one, intact
    (tmp,) = run_dir.glob(".checkpoint.pth.tmp*")  # the half-written file, never renamed
    with pytest.raises(Exception):
        torch.load(tmp, weights_only=True)
    result = train(load_train_config("ll_tiny_cpu", tiny_ll_overrides(data, run_dir, *PRECISE)))
    assert result.finished and result.step == 8
    assert_same_run(uninterrupted, run_dir)


def test_hl_stop_and_resume_matches_an_uninterrupted_run(clip_files, data, tmp_path):
    base = ["hl.batch_size=4", "hl.group_size=2", "hl.bn=train", f"hl.clip={clip_files['state_dict']}",
            f"data.root={data}", "run.deterministic=true"]
    train(load_train_config("hl_tiny_cpu", base + [f"run.dir={tmp_path / 'a'}"]))
    train(load_train_config("hl_tiny_cpu", base + [f"run.dir={tmp_path / 'b'}", "run.max_steps=3"]))
    # hl_tiny_cpu logs every step: the uninterrupted run's step-3 loss is what the stopped run's epoch sum must hold
    # (epoch 1 has run one batch, step 3), to the bit
    step3 = [r for r in log_without_times(tmp_path / "a") if r["type"] == "step" and r["step"] == 3]
    assert len(step3) == 1 and step3[0]["epoch"] == 1
    assert load_checkpoint(tmp_path / "b" / "checkpoint.pth")["state"] == {
        "step": 3, "epoch": 1, "batch_in_epoch": 1, "epoch_loss_sum": step3[0]["loss"], "epoch_loss_count": 1}
    result = train(load_train_config("hl_tiny_cpu", base + [f"run.dir={tmp_path / 'b'}"]))
    assert result.finished and result.step == 4
    # the resumed run's log (step and epoch records, the epoch mean loss included) is the uninterrupted run's
    assert log_without_times(tmp_path / "b") == log_without_times(tmp_path / "a")
    a = torch.load(tmp_path / "a" / "hl_weights.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "b" / "hl_weights.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)  # BatchNorm running statistics included


def test_a_run_directory_of_another_config_or_data_is_refused(clip_files, data, tmp_path):
    base = [f"hl.clip={clip_files['state_dict']}", f"data.root={data}", f"run.dir={tmp_path / 'r'}"]
    train(load_train_config("hl_tiny_cpu", base + ["run.max_steps=1"]))
    with pytest.raises(ConfigError, match=r"different configuration.*hl\.lr: 0\.0001 in the run, 0\.001 now.*seed"):
        train(load_train_config("hl_tiny_cpu", base + ["hl.lr=1e-3", "seed=4"]))
    with pytest.raises(ConfigError, match=r"hl\.epochs"):
        train(load_train_config("hl_tiny_cpu", base + ["hl.epochs=5"]))   # the schedule length may not change
    other = make_training_set(tmp_path / "other", n=9, size=(40, 40))  # data.root may move, the data may not change
    with pytest.raises(ConfigError, match=r"trained on 8 image folders.*the 9 under"):
        train(load_train_config("hl_tiny_cpu", [base[0], f"data.root={other}", base[2]]))
    ckpt = torch.load(tmp_path / "r" / "checkpoint.pth", weights_only=True)
    ckpt["world_size"] = 2
    torch.save(ckpt, tmp_path / "r" / "checkpoint.pth")
    with pytest.raises(ConfigError, match="used 2 processes, now 1"):
        train(load_train_config("hl_tiny_cpu", base))
    # allowed to differ: where and how to run, logging, when to stop
    ckpt["world_size"] = 1
    torch.save(ckpt, tmp_path / "r" / "checkpoint.pth")
    result = train(load_train_config("hl_tiny_cpu",
                                     base + ["run.log_every=5", "data.num_workers=1", "run.max_steps=2"]))
    assert result.step == 2


def test_a_run_with_another_bn_is_refused_naming_the_key(data, tmp_path):
    """A run directory holding a run with bn: train does not resume under bn: global (the key is named)."""
    base = tiny_ll_overrides(data, tmp_path / "old", "ll.epochs=1")
    train(load_train_config("ll_tiny_cpu", base + ["ll.bn=train", "run.max_steps=2"]))
    with pytest.raises(ConfigError, match=r"ll\.bn: 'train' in the run, 'global' now"):
        train(load_train_config("ll_tiny_cpu", base))


def test_reading_a_log_skips_only_a_torn_last_line(tmp_path):
    from grepq.train.logging import read_log

    log = tmp_path / "log.jsonl"
    log.write_text('{"type": "step", "step": 1}\n{"type": "st')  # killed mid-write
    assert read_log(log) == [{"type": "step", "step": 1}]
    log.write_text('{"type": "step", "step": 1}\nnot json\n{"type": "step", "step": 2}\n')
    with pytest.raises(ValueError, match=r"log\.jsonl, line 2: not a JSON record"):
        read_log(log)
    log.write_text('{"type": "step", "step": 1}\nnot json\n')  # a whole last line is no torn write
    with pytest.raises(ValueError, match="line 2"):
        read_log(log)
