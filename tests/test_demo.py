"""``grepq demo`` with a tiny time budget: the whole pipeline runs offline and writes its report.
(CI also runs the README's ``grepq demo`` with its default budget.)"""
import re

from grepq.cli import main


def test_demo_end_to_end_small_budget(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("GREPQ_CLIP_WEIGHTS", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no CLIP cache: the report must say how to enable the HL model
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--minutes", "0.05", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "SRCC with MS-SSIM" in printed and "--clip-weights" in printed
    report = (out / "report.md").read_text()
    row = re.search(r"zero-shot Q_L, SRCC with MS-SSIM \| (-?[0-9.]+) \| (-?[0-9.]+) \| ([-+][0-9.]+)", report)
    assert row, report
    untrained, trained, diff = map(float, row.groups())
    assert abs((trained - untrained) - diff) < 2e-3
    assert "10 labels" in report and "20 labels" in report
    assert (out / "q_low_vs_msssim.png").stat().st_size > 1000
    assert (out / "training_loss.png").stat().st_size > 1000
    assert (out / "run_ll" / "ll_weights.pt").is_file()
    # 4 held-out photographs x 2 unseen distortion types x 5 levels
    assert len(list((out / "heldout").glob("*.png"))) == 40
    assert not (set(p.name.split("_")[0] for p in (out / "heldout").glob("*.png")) &
                set(p.name for p in (out / "train_set").iterdir()))


def test_demo_check_fails_when_training_did_not_help(tmp_path, capsys, monkeypatch):
    """``grepq demo --check`` exits 1 naming both numbers when the trained model does not beat the untrained one
    (equal, worse or NaN) and 0 when it does; without --check the exit status is 0 either way."""
    import grepq.demo as demo
    results = {}

    def fake_run_demo(out, **kw):
        return demo.DemoResult(tmp_path, results["trained"], results["untrained"], {"trained": {}, "untrained": {}},
                               1.0, 3, report=tmp_path / "report.md")
    monkeypatch.setattr(demo, "run_demo", fake_run_demo)
    for trained, untrained, code in ((0.61, 0.40, 0), (0.40, 0.40, 1), (0.35, 0.40, 1), (float("nan"), 0.4, 1)):
        results.update(trained=trained, untrained=untrained)
        assert main(["demo", "--out", str(tmp_path), "--check"]) == code, (trained, untrained)
        err = capsys.readouterr().err
        assert ("FAILED" in err and f"{untrained:.3f} (untrained)" in err) == (code == 1)
        assert main(["demo", "--out", str(tmp_path)]) == 0
