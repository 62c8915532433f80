"""Markdown tables of measured numbers beside the paper's (Tables 1-4), with the difference Δ = measured − paper.

Each ``tableN(rows)`` takes result rows (:class:`ProtocolResult` objects, or row dicts as in result files) and
returns Markdown: values with 3 decimals, "—" where nothing was measured (never 0); every paper entry is shown, and
every measured row, also where the paper has no number (in Tables 1 and 4 among the paper's rows of its dataset).
Table 1 leaves rows whose ``pair_weight`` is a Table-4 pair weight other than FSIM (LL ablations) to Table 4; Table 4
counts LL rows on KonIQ without a pair weight as FSIM (the default LL model) when no row is labelled "fsim". Rows whose
labelled images were not drawn at random (``selection``, e.g. "k-center") are separate rows labelled so. Captions name
the PLCC shown (the rows' ``plcc_fit``); a value obtained with alpha chosen on the test part (oracle) carries †.
"""
from __future__ import annotations

import json
import math
import os
from typing import Any, Callable, Dict, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from ..data.datasets import table_name
from . import paper_numbers as paper
from .metrics import median_or_nan
from .results import ProtocolResult

__all__ = ["table1", "table2", "table3", "table4", "render_all", "load_rows", "LoadedResults", "MISSING",
           "ORACLE_MARK"]

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
_TABLE4_ONLY = set(paper.TABLE4_PAIR_WEIGHTS) - {"FSIM"}
_REGRESSION_HEADER = ["SRCC (ours)", "SRCC (paper)", "Δ SRCC", "PLCC (ours)", "PLCC fit", "regressor"]
_FEATURE_SETS = ("hl+ll", "hl", "ll")

Measured = Tuple[tuple, Dict[str, Any]]


def _as_rows(rows, protocol: str) -> List[Dict[str, Any]]:
    """The row dicts of ``protocol`` among ProtocolResult objects and row dicts (rows without a protocol kept)."""
    out: List[Dict[str, Any]] = []
    for item in [rows] if isinstance(rows, ProtocolResult) else rows or []:
        if isinstance(item, ProtocolResult):
            out.extend(item.to_rows())
        elif isinstance(item, Mapping):
            out.append(dict(item))
        else:
            raise TypeError(f"rows: expected row dicts or ProtocolResult objects, got {type(item).__name__}")
    return [r for r in out if r.get("protocol", protocol) == protocol]


def _fmt(x: Optional[float]) -> str:
    if x is None:
        return MISSING
    return "nan" if math.isnan(float(x)) else f"{float(x):.3f}"


def _diff(ours: Optional[float], ref: Optional[float]) -> str:
    if ours is None or ref is None or math.isnan(float(ours)):
        return MISSING
    return f"{float(ours) - float(ref):+.3f}"


def _selection_label(r: Mapping[str, Any]) -> str:
    sel = r.get("alpha_selection")
    if sel is None:
        return MISSING
    return f"oracle {ORACLE_MARK}" if sel == "oracle" else str(sel)


def _regression_cells(r: Mapping[str, Any], ref: Optional[float]) -> List[str]:
    """SRCC (ours), SRCC (paper), Δ, PLCC (ours), PLCC fit and regressor of a row or median group."""
    mark = ORACLE_MARK if r.get("alpha_selection") == "oracle" else ""
    srcc, plcc = _fmt(r.get("srcc")), _fmt(r.get("plcc"))
    return [srcc + mark if srcc != MISSING else srcc, _fmt(ref), _diff(r.get("srcc"), ref),
            plcc + mark if plcc != MISSING else plcc, r.get("plcc_fit") or MISSING, r.get("regressor") or MISSING]


def _selection(r: Mapping[str, Any]) -> Optional[str]:
    """How the labelled images were chosen, when not at random (the paper's way)."""
    sel = r.get("selection")
    return None if sel in (None, "random") else str(sel)


def _label(name: str, *notes: Optional[str]) -> str:
    """A row's name with its notes: "LL (ssim, k-center)"."""
    notes = [n for n in notes if n]
    return f"{name} ({', '.join(notes)})" if notes else name


def _fs_label(fs: str, *notes: Optional[str]) -> str:
    return _label({"hl+ll": "HL+LL", "hl": "HL", "ll": "LL"}.get(fs, fs), *notes)


def _in_order(ref: Dict[tuple, float], measured: List[Measured], rank) -> Dict[tuple, Optional[float]]:
    """The paper's entries plus the key of every measurement (its first ``len`` paper-key fields), sorted by
    ``rank(key)``: measured label counts the paper does not report sit among the paper's rows."""
    size = len(next(iter(ref)))
    keys = set(ref) | {k[:size] for k, _ in measured}
    return {k: ref.get(k) for k in sorted(keys, key=rank)}


def _rank(order: Sequence[str], name) -> Tuple[int, str]:
    """Sort key: the position in ``order``, then (names not in it) the name."""
    return (list(order).index(name), "") if name in order else (len(order), str(name))


def _median_groups(rows: List[Dict[str, Any]], key_fn) -> List[Measured]:
    """(key, first row of the group with the median srcc and plcc over its splits and n_splits) per key."""
    groups: Dict[tuple, List[Dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(key_fn(r), []).append(r)
    return [(k, dict(m[0], srcc=median_or_nan([r.get("srcc") for r in m]),
                     plcc=median_or_nan([r.get("plcc") for r in m]), n_splits=len(m)))
            for k, m in groups.items()]


def _md_table(header: Sequence[str], lines: List[Sequence[Any]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out.extend("| " + " | ".join(str(c) for c in line) + " |" for line in lines)
    return "\n".join(out)


def _beside_paper(header: Sequence[str], ref: Dict[tuple, float], measured: List[Measured],
                  key_cells: Callable[[tuple], List[Any]], line: Callable[[tuple, Dict, Optional[float]], list]) -> str:
    """One line per paper entry (each measurement whose key starts with the entry's key, or a line of "—"), then
    every other measurement, sorted by key, without a paper value."""
    lines, used = [], set()
    for pk, value in ref.items():
        found = [i for i, (k, _) in enumerate(measured) if k[:len(pk)] == pk]
        if not found:
            cells = key_cells(pk)
            lines.append(cells + [MISSING, _fmt(value)] + [MISSING] * (len(header) - len(cells) - 2))
        lines.extend(line(*measured[i], value) for i in found)
        used.update(found)
    rest = sorted((m for i, m in enumerate(measured) if i not in used), key=lambda m: tuple(map(str, m[0])))
    lines.extend(line(k, r, None) for k, r in rest)
    return _md_table(header, lines)


def _plcc_caption(rows: Sequence[Mapping[str, Any]]) -> str:
    fits = sorted({str(r["plcc_fit"]) for r in rows if r.get("plcc_fit") is not None})
    if not fits:
        return "PLCC: no measurement."
    parts = [f"`{f}` = {_PLCC_DESCRIPTIONS.get(f, f)}" for f in fits]
    if len(fits) == 1:
        return f"PLCC shown: {parts[0]}."
    return "PLCC shown (see the PLCC fit column): " + "; ".join(parts) + "."


def _captioned(title: str, rows, cv_on: str, table: str) -> str:
    """A regression table (1, 3, 4): its title, the PLCC and alpha-selection notes, then the table."""
    caption = [title, _plcc_caption(rows) + " " + _PAPER_PLCC_NOTE,
               f"α selection: `cv` = cross-validation on {cv_on}, `fixed` = one α, " + _ORACLE_NOTE]
    return "\n".join(caption) + "\n\n" + table + "\n"


def table1(rows) -> str:
    """Table 1: data-efficient SRCC (median over splits) of GRepQ_D beside the paper's: one line per (feature set,
    dataset, label count, regressor, α selection, PLCC fit, pair weight)."""
    rows = [r for r in _as_rows(rows, "data_efficient")
            if paper.table4_pair_weight(r.get("pair_weight")) not in _TABLE4_ONLY]
    measured = _median_groups(rows, lambda r: (
        paper.canonical_feature_set(r.get("feature_set", "all")), table_name(r.get("dataset")), int(r["n_train"]),
        r.get("regressor"), r.get("alpha_selection"), r.get("plcc_fit"), r.get("pair_weight"), _selection(r)))
    ref = {(fs, ds, n): v for fs in _FEATURE_SETS for ds, by_n in paper.TABLE1_SRCC[fs].items()
           for n, v in by_n.items()}
    datasets = list(paper.TABLE2_SRCC)
    ref = _in_order(ref, measured, lambda k: (_rank(_FEATURE_SETS, k[0]), _rank(datasets, k[1]), k[2]))

    def line(k, g, value):
        label = [_fs_label(k[0], k[6], k[7]), k[1], k[2]]
        return label + _regression_cells(g, value) + [_selection_label(g), g["n_splits"]]

    header = ["features", "dataset", "labels"] + _REGRESSION_HEADER + ["α selection", "splits"]
    table = _beside_paper(header, ref, measured, lambda k: [_fs_label(k[0]), k[1], k[2]], line)
    return _captioned("**Table 1 — data-efficient GRepQ_D**: median over splits of SRCC on the test part, "
                      "train on 50/100/200 labels. Δ = ours − paper.", rows, "the training labels", table)


def table2(rows) -> str:
    """Table 2: zero-shot correlations on whole datasets beside the paper's GRepQ_Z SRCC: one line per dataset
    and predictor."""
    rows = _as_rows(rows, "zero_shot")
    measured = [((table_name(r.get("dataset")), r.get("predictor", "GRepQ_Z")), r) for r in rows]
    ref = {(ds, "GRepQ_Z"): v for ds, v in paper.TABLE2_SRCC.items()}

    def line(k, r, value):
        return [k[0] or MISSING, k[1], _fmt(r.get("srcc")), _fmt(value), _diff(r.get("srcc"), value),
                _fmt(r.get("krcc")), _fmt(r.get("plcc_cubic")), _fmt(r.get("plcc_logistic")), r.get("n", MISSING)]

    header = ["dataset", "predictor", "SRCC (ours)", "SRCC (paper)", "Δ SRCC", "KRCC", "PLCC (cubic)",
              "PLCC (logistic)", "images"]
    caption = ["**Table 2 — zero-shot GRepQ_Z = Q_H + Q_L** on whole datasets. Δ = ours − paper; correlations are "
               "polarity-corrected (DMOS negated, so a good predictor is positive).",
               f"PLCC (cubic) = {_PLCC_DESCRIPTIONS['cubic']}; PLCC (logistic) = {_PLCC_DESCRIPTIONS['logistic4']}. "
               + _PAPER_PLCC_NOTE]
    return "\n".join(caption) + "\n\n" + _beside_paper(header, ref, measured, list, line) + "\n"


def table3(rows) -> str:
    """Table 3: cross-dataset SRCC (fit on the whole source, tested on the whole target) beside the paper's (HL+LL):
    one line per source, target and feature set."""
    rows = _as_rows(rows, "cross_dataset")
    measured = [((table_name(r.get("source")), table_name(r.get("dataset")),
                  paper.canonical_feature_set(r.get("feature_set", "all"))), r) for r in rows]
    ref = {(src, tgt, "hl+ll"): v for (src, tgt), v in paper.TABLE3_SRCC.items()}

    def line(k, r, value):
        alpha = r.get("alpha")
        return ([f"{k[0] or MISSING} → {k[1] or MISSING}", _fs_label(k[2])] + _regression_cells(r, value)
                + [MISSING if alpha is None else f"{float(alpha):g}", _selection_label(r)])

    header = ["train → test", "features"] + _REGRESSION_HEADER + ["α", "α selection"]
    table = _beside_paper(header, ref, measured, lambda k: [f"{k[0]} → {k[1]}", _fs_label(k[2])], line)
    return _captioned("**Table 3 — cross-dataset GRepQ_C**: one regressor fit on the whole training dataset, tested "
                      "on the whole test dataset; labels oriented higher = better on both sides. Δ = ours − paper.",
                      rows, "the training dataset", table)


def table4(rows) -> str:
    """Table 4: LL-only data-efficient SRCC on KonIQ by the pair weight of Eq. 1 (the rows' ``pair_weight``)
    beside the paper's."""
    rows = [r for r in _as_rows(rows, "data_efficient") if table_name(r.get("dataset")) == paper.TABLE4_DATASET
            and paper.canonical_feature_set(r.get("feature_set", "all")) == "ll"]
    labelled = [r for r in rows if paper.table4_pair_weight(r.get("pair_weight")) in paper.TABLE4_PAIR_WEIGHTS]
    if not any(paper.table4_pair_weight(r.get("pair_weight")) == "FSIM" for r in labelled):
        labelled += [dict(r, pair_weight="fsim") for r in rows if r.get("pair_weight") is None]
    measured = _median_groups(labelled, lambda r: (
        paper.table4_pair_weight(r.get("pair_weight")), int(r["n_train"]), r.get("regressor"),
        r.get("alpha_selection"), r.get("plcc_fit"), _selection(r)))
    ref = {(pw, n): v for pw, by_n in paper.TABLE4_SRCC.items() for n, v in by_n.items()}
    ref = _in_order(ref, measured, lambda k: (_rank(paper.TABLE4_PAIR_WEIGHTS, k[0]), k[1]))

    def line(k, g, value):
        return [_label(k[0], k[5]), k[1]] + _regression_cells(g, value) + [_selection_label(g), g["n_splits"]]

    header = ["pair weight", "labels"] + _REGRESSION_HEADER + ["α selection", "splits"]
    return _captioned(f"**Table 4 — LL model only, data-efficient on {paper.TABLE4_DATASET}, by the pair weight s of "
                      "Eq. 1** (None = InfoNCE). Median over splits; Δ = ours − paper.", labelled,
                      "the training labels", _beside_paper(header, ref, measured, list, line))


class LoadedResults(NamedTuple):
    """The rows of every result file under a folder, the files read, and the files that could not be read."""

    rows: List[Dict[str, Any]]
    files: List[str]
    unreadable: List[Tuple[str, str]]  # (path, why)


def load_rows(results_dir) -> LoadedResults:
    """Every row of the result JSON files under ``results_dir`` (recursively, by path). A JSON object without a
    "protocol" key is not a result (skipped); a file that is not valid JSON (e.g. truncated) or a result that does
    not follow the schema is listed in ``unreadable``."""
    results_dir = os.fspath(results_dir)
    if not os.path.isdir(results_dir):
        raise FileNotFoundError(f"results_dir: expected a folder of result JSON files, got {results_dir!r}")
    paths = []
    for root, _dirs, files in os.walk(results_dir):
        paths.extend(os.path.join(root, f) for f in files if f.lower().endswith(".json"))
    out = LoadedResults([], [], [])
    for path in sorted(paths):
        try:
            with open(path, "r", encoding="utf-8") as fh:
                doc = json.load(fh)
            if isinstance(doc, dict) and "protocol" in doc:
                out.rows.extend(ProtocolResult.from_dict(doc, origin=path).rows)
                out.files.append(path)
        except (OSError, UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
            out.unreadable.append((path, str(exc)))
    return out


def render_all(results_dir, out_name: str = "tables.md") -> Tuple[str, LoadedResults]:
    """Tables 1-4 from every result JSON under ``results_dir``, written to ``results_dir/out_name``; returns the
    Markdown and what was read. Unreadable files are named in the Markdown's header."""
    loaded = load_rows(results_dir)
    folder = os.fspath(results_dir)
    rel = [os.path.relpath(f, folder) for f in loaded.files]
    head = ["# GRepQ — measured numbers beside the paper's", "",
            f"Generated from {len(rel)} result file(s) in `{folder}`"
            + (": " + ", ".join(f"`{r}`" for r in rel) if rel else "") + ".",
            f"\"{MISSING}\" = not measured (or not in the paper).", ""]
    head += [f"**Not read** (not in the tables): `{os.path.relpath(f, folder)}`: {why}" for f, why in loaded.unreadable]
    if loaded.unreadable:
        head.append("")
    rows = loaded.rows
    text = "\n".join(head) + "\n" + "\n".join([table1(rows), table2(rows), table3(rows), table4(rows)])
    with open(os.path.join(folder, out_name), "w", encoding="utf-8") as fh:
        fh.write(text)
    return text, loaded
