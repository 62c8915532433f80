"""Markdown tables of measured numbers beside the paper's (Tables 1-4 of the paper), with the difference.

Each ``tableN(rows)`` takes result rows — the dicts of :meth:`ProtocolResult.to_rows`, rows read back from
result JSON files, or :class:`ProtocolResult` objects — and returns a Markdown string. Measured values are
shown with 3 decimals; a number nobody measured is "—" (never 0); the difference is measured − paper.

* Table 1 (data-efficient, protocol "data_efficient"): median over splits of SRCC and PLCC per feature
  set, dataset and label count. Rows whose ``variant`` is a Table-4 similarity measure other than FSIM
  (LL ablations) are left to Table 4; other variants appear as separate rows.
* Table 2 (zero-shot, protocol "zero_shot"): one line per dataset and predictor; paper values for GRepQ_Z.
* Table 3 (cross-dataset, protocol "cross_dataset"): one line per source, target and feature set; paper
  values for HL+LL.
* Table 4 (LL only on KonIQ by similarity measure, protocol "data_efficient", feature set "ll"): the
  measure is the result's ``variant`` ("none", "ssim", "ms-ssim", "gmsd", "lpips", "fsim"); LL rows on KonIQ
  without a variant count as FSIM (the default LL model) when no row is labelled "fsim".

Every caption says which PLCC is shown (the rows' ``plcc_fit``) and every value obtained with the alpha
chosen on the test part (``alpha_selection == "oracle"``) carries a dagger (†).

:func:`render_all` reads every result JSON under a folder (schema: :mod:`grepq.eval.protocols`; files
without a "protocol" key are skipped) and writes ``tables.md`` there.
"""
from __future__ import annotations

import json
import math
import os
from collections import OrderedDict
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from ..data.datasets import table_name
from . import paper_numbers
from .metrics import median_or_nan
from .results import ProtocolResult

__all__ = ["table1", "table2", "table3", "table4", "render_all", "load_rows", "MISSING", "ORACLE_MARK"]

#: What a table shows where there is no number.
MISSING = "—"
#: Mark of a value obtained with alpha chosen on the test part.
ORACLE_MARK = "†"

_PLCC_DESCRIPTIONS = {
    "none": "raw Pearson correlation (no fitted mapping)",
    "cubic": "Pearson after the cubic polynomial fit score→MOS of the official GRepQ zero-shot code",
    "logistic4": "Pearson after the VQEG 4-parameter logistic fit",
}
_ORACLE_NOTE = (f"{ORACLE_MARK} α chosen by the best SRCC on the test part (oracle): optimistic, "
                "not comparable to a selection on training labels.")
_PAPER_PLCC_NOTE = "The paper reports PLCC only in its supplementary material, so there is no paper PLCC here."


# ---------------------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------------------


def _as_rows(rows) -> List[Dict[str, Any]]:
    """Flatten ProtocolResult objects / lists of rows into a list of row dicts."""
    if rows is None:
        return []
    if isinstance(rows, ProtocolResult):
        return [_with_defaults(r, rows) for r in rows.rows]
    if isinstance(rows, Mapping):
        raise TypeError("rows: expected a sequence of row dicts or ProtocolResult objects, got one dict")
    out: List[Dict[str, Any]] = []
    for item in rows:
        if isinstance(item, ProtocolResult):
            out.extend(_with_defaults(r, item) for r in item.rows)
        elif isinstance(item, Mapping):
            out.append(dict(item))
        else:
            raise TypeError(f"rows: expected row dicts or ProtocolResult objects, got {type(item).__name__}")
    return out


def _with_defaults(row: Mapping[str, Any], res: ProtocolResult) -> Dict[str, Any]:
    r = dict(row)
    r.setdefault("protocol", res.protocol)
    if res.dataset is not None:
        r.setdefault("dataset", res.dataset)
    if res.source is not None:
        r.setdefault("source", res.source)
    if res.variant is not None:
        r.setdefault("variant", res.variant)
    return r


def _of_protocol(rows: List[Dict[str, Any]], protocol: str) -> List[Dict[str, Any]]:
    # rows without a "protocol" key are accepted as belonging to the table they are given to
    return [r for r in rows if r.get("protocol", protocol) == protocol]


def _fmt(x: Optional[float]) -> str:
    if x is None:
        return MISSING
    x = float(x)
    if math.isnan(x):
        return "nan"
    return f"{x:.3f}"


def _diff(ours: Optional[float], paper: Optional[float]) -> str:
    if ours is None or paper is None or math.isnan(float(ours)):
        return MISSING
    return f"{float(ours) - float(paper):+.3f}"


def _mark(value: str, oracle: bool) -> str:
    return f"{value}{ORACLE_MARK}" if oracle and value not in (MISSING,) else value


def _selection_label(sel: Optional[str]) -> str:
    if sel is None:
        return MISSING
    return f"oracle {ORACLE_MARK}" if sel == "oracle" else str(sel)


def _plcc_caption(rows: Sequence[Mapping[str, Any]], default: Optional[str] = None) -> str:
    fits = sorted({str(r.get("plcc_fit", default)) for r in rows if r.get("plcc_fit", default) is not None})
    if not fits:
        return "PLCC: no measurement."
    parts = [f"`{f}` = {_PLCC_DESCRIPTIONS.get(f, f)}" for f in fits]
    if len(fits) == 1:
        return f"PLCC shown: {parts[0]}."
    return "PLCC shown (see the PLCC fit column): " + "; ".join(parts) + "."


def _md_table(header: Sequence[str], lines: Iterable[Sequence[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out.extend("| " + " | ".join(str(c) for c in line) + " |" for line in lines)
    return "\n".join(out)


def _median_groups(rows: List[Dict[str, Any]], key_fn) -> "OrderedDict[tuple, Dict[str, Any]]":
    groups: "OrderedDict[tuple, List[Dict[str, Any]]]" = OrderedDict()
    for r in rows:
        groups.setdefault(key_fn(r), []).append(r)
    out: "OrderedDict[tuple, Dict[str, Any]]" = OrderedDict()
    for key, members in groups.items():
        out[key] = {
            "srcc": median_or_nan([m.get("srcc") for m in members]),
            "plcc": median_or_nan([m.get("plcc") for m in members]),
            "n_splits": len(members),
        }
    return out


# ---------------------------------------------------------------------------------------------------------
# Table 1
# ---------------------------------------------------------------------------------------------------------

_TABLE4_ONLY = {s for s in paper_numbers.SIMILARITY_MEASURES if s != "FSIM"}


def _captioned(title: str, rows, cv_on: str, header: Sequence[str], lines) -> str:
    """A regression table (1 or 3): its title, the PLCC and alpha-selection notes, then the Markdown table."""
    caption = [
        title,
        _plcc_caption(rows) + " " + _PAPER_PLCC_NOTE,
        f"α selection: `cv` = cross-validation on {cv_on}, `fixed` = one α, " + _ORACLE_NOTE,
    ]
    return "\n".join(caption) + "\n\n" + _md_table(header, lines) + "\n"


def table1(rows) -> str:
    """Table 1: data-efficient SRCC (median over splits) of GRepQ_D beside the paper's.

    Args:
        rows: data-efficient rows (keys dataset, n_train, feature_set, srcc, plcc, plcc_fit, regressor,
            alpha_selection, split, optional variant) or ProtocolResult objects.

    Returns:
        Markdown: caption and one line per (feature set, dataset, label count, regressor, α selection,
        PLCC fit, variant); every paper entry appears, "—" where not measured.
    """
    rows = [r for r in _of_protocol(_as_rows(rows), "data_efficient")
            if paper_numbers.canonical_similarity(r.get("pair_weight")) not in _TABLE4_ONLY
            or r.get("pair_weight") is None]

    def key(r):
        return (paper_numbers.canonical_feature_set(r.get("feature_set", "all")),
                table_name(r.get("dataset")),
                int(r["n_train"]), r.get("regressor"), r.get("alpha_selection"), r.get("plcc_fit"),
                r.get("pair_weight"))

    groups = _median_groups(rows, key)
    header = ["features", "dataset", "labels", "SRCC (ours)", "SRCC (paper)", "Δ SRCC", "PLCC (ours)",
              "PLCC fit", "regressor", "α selection", "splits"]
    lines = []
    used = set()
    fs_order = ["hl+ll", "hl", "ll"]
    for fs in fs_order:
        for ds, by_n in paper_numbers.TABLE1_SRCC[fs].items():
            for n, paper in by_n.items():
                found = [k for k in groups if k[0] == fs and k[1] == ds and k[2] == n]
                if not found:
                    lines.append([_fs_label(fs, None), ds, n, MISSING, _fmt(paper), MISSING, MISSING, MISSING,
                                  MISSING, MISSING, MISSING])
                for k in found:
                    used.add(k)
                    lines.append(_table1_line(k, groups[k], paper))
    extra = sorted((k for k in groups if k not in used), key=lambda k: tuple(str(x) for x in k))
    for k in extra:
        lines.append(_table1_line(k, groups[k], paper_numbers.paper_srcc(1, k[0], k[1], k[2])))
    return _captioned("**Table 1 — data-efficient GRepQ_D**: median over splits of SRCC on the test part, "
                      "train on 50/100/200 labels. Δ = ours − paper.", rows, "the training labels", header, lines)


def _fs_label(fs: str, variant: Optional[str]) -> str:
    label = {"hl+ll": "HL+LL", "hl": "HL", "ll": "LL"}.get(fs, fs)
    return f"{label} ({variant})" if variant else label


def _table1_line(k, g, paper) -> List[Any]:
    fs, ds, n, reg, sel, fit, variant = k
    oracle = sel == "oracle"
    return [_fs_label(fs, variant), ds, n, _mark(_fmt(g["srcc"]), oracle), _fmt(paper), _diff(g["srcc"], paper),
            _mark(_fmt(g["plcc"]), oracle), fit or MISSING, reg or MISSING, _selection_label(sel), g["n_splits"]]


# ---------------------------------------------------------------------------------------------------------
# Table 2
# ---------------------------------------------------------------------------------------------------------


def table2(rows) -> str:
    """Table 2: zero-shot correlations on whole datasets beside the paper's GRepQ_Z SRCC.

    Args:
        rows: zero-shot rows (keys dataset, predictor, srcc, krcc, plcc_cubic, plcc_logistic, n) or
            ProtocolResult objects.

    Returns:
        Markdown; every paper dataset appears (GRepQ_Z), "—" where not measured.
    """
    rows = _of_protocol(_as_rows(rows), "zero_shot")
    header = ["dataset", "predictor", "SRCC (ours)", "SRCC (paper)", "Δ SRCC", "KRCC", "PLCC (cubic)",
              "PLCC (logistic)", "images"]
    lines = []
    used = set()
    for ds, paper in paper_numbers.TABLE2_SRCC.items():
        found = [i for i, r in enumerate(rows) if table_name(r.get("dataset")) == ds
                 and r.get("predictor", "GRepQ_Z") == "GRepQ_Z"]
        if not found:
            lines.append([ds, "GRepQ_Z", MISSING, _fmt(paper), MISSING, MISSING, MISSING, MISSING, MISSING])
        for i in found:
            used.add(i)
            lines.append(_table2_line(rows[i], paper))
    rest = [i for i in range(len(rows)) if i not in used]
    rest.sort(key=lambda i: (str(table_name(rows[i].get("dataset"))), str(rows[i].get("predictor"))))
    for i in rest:
        r = rows[i]
        paper = paper_numbers.paper_srcc(2, r.get("dataset")) if r.get("predictor", "GRepQ_Z") == "GRepQ_Z" else None
        lines.append(_table2_line(r, paper))
    caption = [
        "**Table 2 — zero-shot GRepQ_Z = Q_H + Q_L** on whole datasets. Δ = ours − paper; correlations are "
        "polarity-corrected (DMOS negated, so a good predictor is positive).",
        f"PLCC (cubic) = {_PLCC_DESCRIPTIONS['cubic']}; PLCC (logistic) = {_PLCC_DESCRIPTIONS['logistic4']}. "
        + _PAPER_PLCC_NOTE,
    ]
    return "\n".join(caption) + "\n\n" + _md_table(header, lines) + "\n"


def _table2_line(r: Mapping[str, Any], paper: Optional[float]) -> List[Any]:
    return [table_name(r.get("dataset")) or MISSING, r.get("predictor", "GRepQ_Z"), _fmt(r.get("srcc")),
            _fmt(paper), _diff(r.get("srcc"), paper), _fmt(r.get("krcc")), _fmt(r.get("plcc_cubic")),
            _fmt(r.get("plcc_logistic")), r.get("n", MISSING)]


# ---------------------------------------------------------------------------------------------------------
# Table 3
# ---------------------------------------------------------------------------------------------------------


def table3(rows) -> str:
    """Table 3: cross-dataset SRCC (fit on the whole source, test on the whole target) beside the paper's.

    Args:
        rows: cross-dataset rows (keys source, dataset, feature_set, srcc, plcc, plcc_fit, regressor, alpha,
            alpha_selection) or ProtocolResult objects.

    Returns:
        Markdown; every paper pair appears (HL+LL), "—" where not measured.
    """
    rows = _of_protocol(_as_rows(rows), "cross_dataset")

    def pair(r) -> Tuple[Optional[str], Optional[str]]:
        return table_name(r.get("source")), table_name(r.get("dataset"))

    header = ["train → test", "features", "SRCC (ours)", "SRCC (paper)", "Δ SRCC", "PLCC (ours)", "PLCC fit",
              "regressor", "α", "α selection"]
    lines = []
    used = set()
    for (src, tgt), paper in paper_numbers.TABLE3_SRCC.items():
        found = [i for i, r in enumerate(rows) if pair(r) == (src, tgt)
                 and paper_numbers.canonical_feature_set(r.get("feature_set", "all")) == "hl+ll"]
        if not found:
            lines.append([f"{src} → {tgt}", "HL+LL", MISSING, _fmt(paper), MISSING, MISSING, MISSING, MISSING,
                          MISSING, MISSING])
        for i in found:
            used.add(i)
            lines.append(_table3_line(rows[i], paper))
    rest = sorted((i for i in range(len(rows)) if i not in used), key=lambda i: tuple(map(str, pair(rows[i]))))
    for i in rest:
        r = rows[i]
        fs = paper_numbers.canonical_feature_set(r.get("feature_set", "all"))
        lines.append(_table3_line(r, paper_numbers.paper_srcc(3, *pair(r)) if fs == "hl+ll" else None))
    return _captioned("**Table 3 — cross-dataset GRepQ_C**: one regressor fit on the whole training dataset, tested "
                      "on the whole test dataset; labels oriented higher = better on both sides. Δ = ours − paper.",
                      rows, "the training dataset", header, lines)


def _table3_line(r: Mapping[str, Any], paper: Optional[float]) -> List[Any]:
    oracle = r.get("alpha_selection") == "oracle"
    src = table_name(r.get("source")) or MISSING
    tgt = table_name(r.get("dataset")) or MISSING
    fs = _fs_label(paper_numbers.canonical_feature_set(r.get("feature_set", "all")), None)
    alpha = r.get("alpha")
    return [f"{src} → {tgt}", fs, _mark(_fmt(r.get("srcc")), oracle), _fmt(paper), _diff(r.get("srcc"), paper),
            _mark(_fmt(r.get("plcc")), oracle), r.get("plcc_fit") or MISSING, r.get("regressor") or MISSING,
            MISSING if alpha is None else f"{float(alpha):g}", _selection_label(r.get("alpha_selection"))]


# ---------------------------------------------------------------------------------------------------------
# Table 4
# ---------------------------------------------------------------------------------------------------------


def table4(rows) -> str:
    """Table 4: LL-only data-efficient SRCC on KonIQ by the similarity measure of Eq. 1, beside the paper's.

    Args:
        rows: data-efficient rows; used are those on KonIQ with feature set "ll" whose ``variant`` names a
            similarity measure (rows without a variant count as FSIM unless FSIM rows are labelled).

    Returns:
        Markdown; every paper entry appears, "—" where not measured.
    """
    rows = [r for r in _of_protocol(_as_rows(rows), "data_efficient")
            if table_name(r.get("dataset")) == paper_numbers.TABLE4_DATASET
            and paper_numbers.canonical_feature_set(r.get("feature_set", "all")) == "ll"]
    labelled = [r for r in rows
                if paper_numbers.canonical_similarity(r.get("pair_weight")) in paper_numbers.SIMILARITY_MEASURES
                and r.get("pair_weight") is not None]
    has_fsim = any(paper_numbers.canonical_similarity(r.get("pair_weight")) == "FSIM" for r in labelled)
    if not has_fsim:
        labelled += [dict(r, pair_weight="fsim") for r in rows if r.get("pair_weight") is None]

    def key(r):
        return (paper_numbers.canonical_similarity(r.get("pair_weight")), int(r["n_train"]), r.get("regressor"),
                r.get("alpha_selection"), r.get("plcc_fit"))

    groups = _median_groups(labelled, key)
    header = ["similarity", "labels", "SRCC (ours)", "SRCC (paper)", "Δ SRCC", "PLCC (ours)", "PLCC fit",
              "regressor", "α selection", "splits"]
    lines = []
    for sim, by_n in paper_numbers.TABLE4_SRCC.items():
        for n, paper in by_n.items():
            found = [k for k in groups if k[0] == sim and k[1] == n]
            if not found:
                lines.append([sim, n, MISSING, _fmt(paper), MISSING, MISSING, MISSING, MISSING, MISSING, MISSING])
            lines.extend(_table4_line(k, groups[k], paper) for k in found)
    # measured rows the paper has no entry for (another label count or measure): shown, never dropped
    extra = [k for k in groups if paper_numbers.paper_srcc(4, k[0], k[1]) is None]
    lines.extend(_table4_line(k, groups[k], None) for k in sorted(extra, key=lambda k: tuple(map(str, k))))
    caption = [
        f"**Table 4 — LL model only, data-efficient on {paper_numbers.TABLE4_DATASET}, by the similarity measure s of "
        "Eq. 1** (None = InfoNCE). Median over splits; Δ = ours − paper.",
        _plcc_caption(labelled) + " " + _PAPER_PLCC_NOTE,
        "α selection: `cv` = cross-validation on the training labels, `fixed` = one α, " + _ORACLE_NOTE,
    ]
    return "\n".join(caption) + "\n\n" + _md_table(header, lines) + "\n"


def _table4_line(k, g, paper) -> List[Any]:
    sim, n, reg, sel, fit = k
    oracle = sel == "oracle"
    return [sim, n, _mark(_fmt(g["srcc"]), oracle), _fmt(paper), _diff(g["srcc"], paper),
            _mark(_fmt(g["plcc"]), oracle), fit or MISSING, reg or MISSING, _selection_label(sel), g["n_splits"]]


# ---------------------------------------------------------------------------------------------------------
# All tables from a results folder
# ---------------------------------------------------------------------------------------------------------


def load_rows(results_dir) -> Tuple[List[Dict[str, Any]], List[str]]:
    """Read every result JSON under ``results_dir`` (recursively, sorted by path).

    A JSON object with a "protocol" key is a result (schema of :mod:`grepq.eval.protocols`); other JSON
    files are skipped. A result file that does not follow the schema raises ValueError naming the file.

    Returns:
        (rows, files): all rows (each with protocol, dataset, source, variant filled in), and the files read.
    """
    results_dir = os.fspath(results_dir)
    if not os.path.isdir(results_dir):
        raise FileNotFoundError(f"results_dir: expected a folder of result JSON files, got {results_dir!r}")
    paths = []
    for root, _dirs, files in os.walk(results_dir):
        paths.extend(os.path.join(root, f) for f in files if f.lower().endswith(".json"))
    rows: List[Dict[str, Any]] = []
    used: List[str] = []
    for path in sorted(paths):
        with open(path, "r", encoding="utf-8") as fh:
            try:
                doc = json.load(fh)
            except json.JSONDecodeError:
                continue  # not a result file
        if not isinstance(doc, dict) or "protocol" not in doc:
            continue
        res = ProtocolResult.from_dict(doc, origin=path)
        rows.extend(_with_defaults(r, res) for r in res.rows)
        used.append(path)
    return rows, used


def render_all(results_dir, out_name: str = "tables.md") -> str:
    """Render Tables 1-4 from every result JSON under ``results_dir`` and write ``results_dir/out_name``.

    Returns:
        The Markdown text written.
    """
    rows, files = load_rows(results_dir)
    rel = [os.path.relpath(f, os.fspath(results_dir)) for f in files]
    head = ["# GRepQ — measured numbers beside the paper's", "",
            f"Generated from {len(files)} result file(s) in `{os.fspath(results_dir)}`"
            + (": " + ", ".join(f"`{r}`" for r in rel) if rel else "") + ".",
            f"\"{MISSING}\" = not measured (or not in the paper).", ""]
    text = "\n".join(head) + "\n" + "\n".join([table1(rows), table2(rows), table3(rows), table4(rows)])
    with open(os.path.join(os.fspath(results_dir), out_name), "w", encoding="utf-8") as fh:
        fh.write(text)
    return text
