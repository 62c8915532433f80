"""Tests of grepq.eval.tables, grepq.eval.paper_numbers and grepq.eval.plots."""
import json
import os

import numpy as np
import pytest

from grepq.eval import paper_numbers, plots
from grepq.eval import protocols as PR
from grepq.eval import tables as T
from grepq.eval.regression import RegressionSettings as RS

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _data(n=250, p=24, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    y = X @ rng.normal(size=p) + 0.5 * rng.normal(size=n)
    return X, y


def _line(md: str, *cells) -> str:
    """The first table line whose leading cells are ``cells``."""
    prefix = "| " + " | ".join(str(c) for c in cells) + " |"
    hits = [ln for ln in md.splitlines() if ln.startswith(prefix)]
    assert hits, f"no line starting with {prefix!r} in\n{md}"
    return hits[0]


def _cells(line: str):
    return [c.strip() for c in line.strip().strip("|").split("|")]


# ---------------------------------------------------------------- paper numbers

# The paper's rows, typed from its text (Srinath et al., WACV 2024; the project's copy is seeds/paper.txt), in the
# paper's own column order, independently of grepq/eval/paper_numbers.py which the test below checks against them.
# Table 1 (SRCC, median of 10 splits): CLIVE, KonIQ, CSIQ, LIVE, PIPAL, each at 50 / 100 / 200 labels.
PAPER_TABLE1 = {
    "ll": "0.531 0.565 0.613 0.620 0.647 0.679 0.794 0.805 0.832 0.866 0.880 0.886 0.395 0.410 0.431",
    "hl": "0.740 0.770 0.796 0.794 0.813 0.843 0.869 0.905 0.932 0.904 0.927 0.944 0.410 0.415 0.427",
    "hl+ll": "0.760 0.791 0.822 0.812 0.836 0.855 0.878 0.914 0.941 0.926 0.937 0.953 0.489 0.518 0.548",
}
PAPER_TABLE1_COLUMNS = ("CLIVE", "KonIQ", "CSIQ", "LIVE", "PIPAL")
# Table 2 (zero-shot GRepQ_Z): CLIVE KonIQ CSIQ LIVE PIPAL.
PAPER_TABLE2 = "0.740 0.768 0.693 0.741 0.436"
# Table 3 (GRepQ_C): training FLIVE, FLIVE, KonIQ, CLIVE, LIVE, CSIQ; testing CLIVE, KonIQ, CLIVE, KonIQ, CSIQ, LIVE.
PAPER_TABLE3 = "0.774 0.815 0.774 0.792 0.770 0.893"
PAPER_TABLE3_PAIRS = (("FLIVE", "CLIVE"), ("FLIVE", "KonIQ"), ("KonIQ", "CLIVE"), ("CLIVE", "KonIQ"),
                      ("LIVE", "CSIQ"), ("CSIQ", "LIVE"))
# Table 4 (LL model, KonIQ, by similarity measure): 50 / 100 / 200 labels.
PAPER_TABLE4 = {
    "None": "0.381 0.413 0.452",
    "SSIM": "0.533 0.558 0.590",
    "MS-SSIM": "0.527 0.561 0.575",
    "GMSD": "0.544 0.570 0.583",
    "LPIPS": "0.578 0.605 0.629",
    "FSIM": "0.620 0.647 0.679",
}


def _numbers(row: str):
    return [float(v) for v in row.split()]


def test_paper_numbers_equal_the_paper_tables_typed_from_its_text():
    expected1 = {}
    for feats, row in PAPER_TABLE1.items():
        values = _numbers(row)
        expected1[feats] = {d: dict(zip((50, 100, 200), values[3 * i:3 * i + 3]))
                            for i, d in enumerate(PAPER_TABLE1_COLUMNS)}
    assert paper_numbers.TABLE1_SRCC == expected1
    assert paper_numbers.TABLE2_SRCC == dict(zip(PAPER_TABLE1_COLUMNS, _numbers(PAPER_TABLE2)))
    assert paper_numbers.TABLE3_SRCC == dict(zip(PAPER_TABLE3_PAIRS, _numbers(PAPER_TABLE3)))
    assert paper_numbers.TABLE4_SRCC == {m: dict(zip((50, 100, 200), _numbers(r))) for m, r in PAPER_TABLE4.items()}
    assert paper_numbers.TABLE4_DATASET == "KonIQ"


def test_paper_srcc_looks_up_the_paper_values_by_any_name():
    assert paper_numbers.paper_srcc(1, "all", "koniq-10k", 100) == 0.836  # Table 1, HL + LL, KonIQ, 100
    assert paper_numbers.paper_srcc(3, "flive", "KonIQ10k") == 0.815  # Table 3, FLIVE -> KonIQ
    assert paper_numbers.paper_srcc(4, "ms_ssim", 50) == 0.527  # Table 4, MS-SSIM, 50
    assert paper_numbers.paper_srcc(2, "SPAQ") is None


# ---------------------------------------------------------------- tables

def test_table1_shows_measured_beside_paper_and_dash_for_missing():
    X, y = _data()
    res = PR.data_efficient(X, y, RS(n_train=(50, 100), splits=3), dataset="koniq10k")
    md = T.table1([res])
    med = {m["n_train"]: m["srcc"] for m in res.medians}
    cells = _cells(_line(md, "HL+LL", "KonIQ", 50))
    assert cells[3] == f"{med[50]:.3f}" and cells[4] == "0.812"
    assert cells[5] == f"{med[50] - 0.812:+.3f}"
    assert cells[7] == "none" and cells[9] == "cv" and cells[10] == "3"
    # label count 200 of KonIQ and every other dataset were not measured
    missing = _cells(_line(md, "HL+LL", "KonIQ", 200))
    assert missing[3] == T.MISSING and missing[4] == "0.855" and missing[5] == T.MISSING
    assert _cells(_line(md, "HL+LL", "CLIVE", 50))[3] == T.MISSING
    assert "0.000" not in md
    assert "raw Pearson" in md  # caption names the PLCC shown


def test_table1_marks_oracle_and_names_cubic_plcc():
    X, y = _data()
    settings = RS(n_train=(50,), splits=2, alpha_selection="oracle", plcc_fit="cubic")
    rows = PR.data_efficient(X, y, settings, dataset="CSIQ").to_rows()
    md = T.table1(rows)
    cells = _cells(_line(md, "HL+LL", "CSIQ", 50))
    assert cells[3].endswith(T.ORACLE_MARK) and cells[9] == f"oracle {T.ORACLE_MARK}"
    assert "cubic polynomial" in md and "oracle" in md


def test_table2_and_table3():
    rng = np.random.default_rng(1)
    q = rng.normal(size=60)
    zs = PR.zero_shot_correlations(q, -q + 0.3 * rng.normal(size=60), "dmos", dataset="LIVE")
    md2 = T.table2(zs.to_rows())
    cells = _cells(_line(md2, "LIVE", "GRepQ_Z"))
    assert cells[2] == f"{zs.rows[0]['srcc']:.3f}" and cells[3] == "0.741"
    assert _cells(_line(md2, "PIPAL", "GRepQ_Z"))[2] == T.MISSING
    assert "cubic" in md2

    Xs, ys = _data(seed=2)
    cross, _ = PR.cross_dataset(PR.Labelled(Xs, ys, name="LIVE"),
                                PR.Labelled(Xs[:100], -ys[:100], "dmos", name="CSIQ"), RS(alpha_selection="oracle"))
    md3 = T.table3([cross])
    cells = _cells(_line(md3, "LIVE → CSIQ", "HL+LL"))
    assert cells[3] == "0.770" and cells[2].endswith(T.ORACLE_MARK)
    assert _cells(_line(md3, "FLIVE → CLIVE", "HL+LL"))[2] == T.MISSING


def test_table4_uses_variants_and_falls_back_to_unlabelled_ll_rows():
    X, y = _data()
    ll = {"ll": slice(0, 8)}
    ssim = PR.data_efficient(X, y, RS(n_train=(50,), splits=2), dataset="KonIQ", feature_sets=ll, pair_weight="ssim")
    main = PR.data_efficient(X, y, RS(n_train=(50,), splits=2), dataset="KonIQ", feature_sets=ll)
    md = T.table4([ssim, main])
    assert _cells(_line(md, "SSIM", 50))[2] == f"{ssim.medians[0]['srcc']:.3f}"
    assert _cells(_line(md, "FSIM", 50))[2] == f"{main.medians[0]['srcc']:.3f}"
    assert _cells(_line(md, "LPIPS", 50))[2] == T.MISSING
    assert _cells(_line(md, "None", 200))[3] == "0.452"
    # the SSIM ablation is not a Table 1 result
    assert "ssim" not in T.table1([ssim, main]).lower()


def test_render_all_reads_results_and_writes_tables_md(tmp_path):
    X, y = _data()
    PR.data_efficient(X, y, RS(n_train=(50,), splits=2), dataset="CLIVE").save_json(tmp_path / "de.json")
    rng = np.random.default_rng(3)
    q = rng.normal(size=40)
    PR.zero_shot_correlations(q, q + rng.normal(size=40), "mos", dataset="KonIQ").save_json(
        tmp_path / "sub" / "zs.json")
    (tmp_path / "config.json").write_text(json.dumps({"lr": 1e-4}))  # not a result: skipped
    md, loaded = T.render_all(tmp_path)
    assert (tmp_path / "tables.md").read_text() == md and not loaded.unreadable
    for title in ("Table 1", "Table 2", "Table 3", "Table 4"):
        assert title in md
    assert "2 result file(s)" in md
    assert _cells(_line(md, "HL+LL", "CLIVE", 50))[3] != T.MISSING
    assert _cells(_line(md, "KonIQ", "GRepQ_Z"))[2] != T.MISSING


def test_unreadable_result_files_are_named_and_the_command_fails(tmp_path, capsys):
    from grepq.cli import main
    X, y = _data()
    PR.data_efficient(X, y, RS(n_train=(50,), splits=2), dataset="CLIVE").save_json(tmp_path / "de.json")
    text = (tmp_path / "de.json").read_text()
    (tmp_path / "cut.json").write_text(text[:len(text) // 2])  # a run killed while writing
    (tmp_path / "broken.json").write_text(json.dumps({"protocol": "data_efficient", "rows": 3}))
    md, loaded = T.render_all(tmp_path)
    assert [os.path.basename(p) for p, _ in loaded.unreadable] == ["broken.json", "cut.json"]
    assert "1 result file(s)" in md and "**Not read** (not in the tables): `cut.json`" in md
    assert main(["tables", str(tmp_path), "--no-plots"]) == 1
    err = capsys.readouterr().err
    assert "cut.json is not in the tables" in err and "broken.json is not in the tables: " in err
    (tmp_path / "cut.json").unlink()
    (tmp_path / "broken.json").unlink()
    assert main(["tables", str(tmp_path), "--no-plots"]) == 0
    (tmp_path / "de.json").unlink()
    assert main(["tables", str(tmp_path), "--no-plots"]) == 1
    assert "no result file in" in capsys.readouterr().err


def _rows(n_train, srcc, **labels):
    """Toy data-efficient rows of two splits (as result files hold them)."""
    return [dict({"protocol": "data_efficient", "dataset": "CLIVE", "feature_set": "hl+ll", "n_train": n,
                  "split": s, "srcc": v + 0.01 * s, "plcc": v, "plcc_fit": "none", "regressor": "ridge",
                  "alpha_selection": "cv"}, **labels) for n, v in zip(n_train, srcc) for s in range(2)]


def test_table1_shows_label_counts_the_paper_does_not_report_among_its_rows():
    md = T.table1(_rows((10, 20), (0.5, 0.6)))
    lines = [ln for ln in md.splitlines() if ln.startswith("| HL+LL | CLIVE |")]
    assert [_cells(ln)[2] for ln in lines] == ["10", "20", "50", "100", "200"]
    ten = _cells(lines[0])
    assert ten[3] == "0.505" and ten[4] == T.MISSING and ten[5] == T.MISSING and ten[10] == "2"


def test_rows_of_another_selection_rule_are_separate_rows():
    rows = _rows((50,), (0.5,)) + _rows((50,), (0.3,), selection="k-center") + _rows((50,), (0.9,), selection="random")
    md = T.table1(rows)
    plain, kcenter = _cells(_line(md, "HL+LL", "CLIVE", 50)), _cells(_line(md, "HL+LL (k-center)", "CLIVE", 50))
    assert plain[3] == "0.705" and plain[10] == "4"  # random (the default) and unlabelled rows are one setting
    assert kcenter[3] == "0.305" and kcenter[10] == "2" and kcenter[4] == "0.760"
    ll = [dict(r, dataset="KonIQ", feature_set="ll", pair_weight="ssim") for r in rows]
    md4 = T.table4(ll)
    assert _cells(_line(md4, "SSIM (k-center)", 50))[2] == "0.305" and _cells(_line(md4, "SSIM", 50))[9] == "4"


def test_tables_command_has_a_description_and_help_for_every_option():
    from grepq.cli import build_parser
    sub = next(a for a in build_parser("tables")._actions if a.dest == "command").choices["tables"]
    assert sub.description and "Tables 1-4" in sub.description
    assert all(a.help for a in sub._actions)


# ---------------------------------------------------------------- plots

def _is_png(path):
    with open(path, "rb") as fh:
        head = fh.read(8)
    return head == PNG_MAGIC


def test_plots_write_non_empty_pngs(tmp_path):
    X, y = _data()
    res = PR.data_efficient(X, y, RS(n_train=(50, 100), splits=2), dataset="CLIVE",
                            feature_sets={"hl+ll": slice(0, 24), "ll": slice(16, 24)})
    p1 = plots.plot_srcc_vs_labels(res.rows, tmp_path / "labels.png")
    p2 = plots.plot_scatter(X @ np.ones(24), y, tmp_path / "sub" / "scatter.png", "CLIVE")
    good = y > np.median(y)
    p3 = plots.plot_embedding(X, good, tmp_path / "pca.png")
    p4 = plots.plot_embedding(X[:60], good[:60], tmp_path / "tsne.png", method="tsne")
    for p in (p1, p2, p3, p4):
        assert _is_png(p)
        assert os.path.getsize(p) > 2000
    assert p2 == str(tmp_path / "sub" / "scatter.png")
    with pytest.raises(ValueError, match="labels"):
        plots.plot_embedding(X, good[:-1], tmp_path / "x.png")
