"""PNG plots of evaluation results (matplotlib's Agg canvas: no display, no pyplot state). Each function writes one
PNG (parent folders created) and returns its path."""
from __future__ import annotations

import os
from typing import Any, Dict, List, Optional

import numpy as np
from matplotlib import rcParams
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..data.datasets import table_name
from . import metrics as M
from . import paper_numbers
from .regression import check_features
from .results import ProtocolResult

__all__ = ["plot_srcc_vs_labels", "plot_scatter", "plot_embedding", "EMBEDDING_METHODS"]

EMBEDDING_METHODS = ("pca", "tsne")
#: Default t-SNE perplexity (sklearn's default).
TSNE_PERPLEXITY = 30.0
_DPI = 120


def _new_figure(width: float = 6.0, height: float = 4.5):
    fig = Figure(figsize=(width, height), dpi=_DPI)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(1, 1, 1)


def _save(fig: Figure, path) -> str:
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, format="png")
    return path


def _rows_of(rows) -> List[Dict[str, Any]]:
    out: List[Dict[str, Any]] = []
    for item in [rows] if isinstance(rows, ProtocolResult) else rows:
        out.extend(item.to_rows() if isinstance(item, ProtocolResult) else [dict(item)])
    return out


def plot_srcc_vs_labels(rows, path, *, title: Optional[str] = None, show_paper: bool = True) -> str:
    """Median SRCC against the number of labels, one line per dataset (and feature set), the paper's Table 1 dashed
    in the same colour. ``rows``: data-efficient rows (dataset, n_train, srcc; optional feature_set,
    alpha_selection) or ProtocolResult objects, per split or medians."""
    rows = [r for r in _rows_of(rows) if r.get("protocol", "data_efficient") == "data_efficient"]
    if not rows:
        raise ValueError("plot_srcc_vs_labels: expected data-efficient rows (dataset, n_train, srcc), got none")
    groups: Dict[tuple, Dict[int, List[float]]] = {}
    for r in rows:
        if "n_train" not in r or "srcc" not in r:
            raise ValueError(f"plot_srcc_vs_labels: expected keys n_train and srcc in every row, got {sorted(r)}")
        key = (table_name(r.get("dataset")) or "?",
               paper_numbers.canonical_feature_set(r.get("feature_set", "all")),
               r.get("alpha_selection"), None if r.get("selection") in (None, "random") else r["selection"])
        groups.setdefault(key, {}).setdefault(int(r["n_train"]), []).append(r["srcc"])
    fig, ax = _new_figure()
    colours: Dict[str, Any] = {}
    cycle = [c["color"] for c in rcParams["axes.prop_cycle"]]
    multi_fs = len({k[1] for k in groups}) > 1
    linestyles = {"hl+ll": "-", "hl": "-.", "ll": ":"}
    drawn = set()
    for (ds, fs, sel, chosen), by_n in groups.items():
        colour = colours.setdefault(ds, cycle[len(colours) % len(cycle)])
        ns = sorted(by_n)
        med = [M.median_or_nan(by_n[n]) for n in ns]
        label = (ds + (f" {fs.upper()}" if multi_fs else "") + (" (oracle α)" if sel == "oracle" else "")
                 + (f" ({chosen})" if chosen else ""))
        ax.plot(ns, med, marker="^" if chosen else "o", color=colour, linestyle=linestyles.get(fs, "-"), label=label)
        paper = paper_numbers.TABLE1_SRCC.get(fs, {}).get(ds)
        if show_paper and paper and (ds, fs) not in drawn:
            drawn.add((ds, fs))
            pn = sorted(paper)
            ax.plot(pn, [paper[n] for n in pn], linestyle="--", marker="s", markerfacecolor="none",
                    color=colour, alpha=0.7, label=f"{ds}{' ' + fs.upper() if multi_fs else ''} (paper)")
    ax.set_xlabel("number of training labels")
    ax.set_ylabel("median SRCC on the test part")
    ax.set_title(title or "Data-efficient SRCC against labels (dashed: paper Table 1)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    return _save(fig, path)


def plot_scatter(pred, mos, path, title: Optional[str] = None, *, xlabel: str = "predicted score",
                 ylabel: str = "MOS") -> str:
    """Predicted scores (N,) against subjective scores (N,), with the official code's cubic fit score -> MOS and
    SRCC / PLCC (cubic) in the legend."""
    p, m = M.check_pair(pred, mos, M.MIN_SAMPLES["none"])
    fig, ax = _new_figure(5.0, 4.5)
    ax.scatter(p, m, s=6, alpha=0.5, color="tab:blue", edgecolors="none")
    label = f"SRCC {M.srcc(p, m):.3f}"
    if p.size >= M.MIN_SAMPLES["cubic"] and np.ptp(p) > 0:
        coef = np.polyfit(p, m, M.CUBIC_DEGREE)
        xs = np.linspace(p.min(), p.max(), 200)
        ax.plot(xs, np.polyval(coef, xs), color="tab:red", linewidth=1.5,
                label=f"cubic fit; {label}, PLCC {M.plcc(p, m, 'cubic'):.3f}")
    else:
        ax.plot([], [], " ", label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_embedding(features, labels, path, *, method: str = "pca", seed: int = 0, title: Optional[str] = None,
                   perplexity: float = TSNE_PERPLEXITY) -> str:
    """2-D embedding of features (N, D) coloured by their labels (N,) (str, int, or bool: True "good", False "bad"),
    like the paper's Fig. 3. ``method``: "pca" (default: deterministic, linear, so it shows what a linear regressor
    can separate) or "tsne" (the paper's; sklearn TSNE, PCA init, ``random_state=seed``, perplexity below N)."""
    X = check_features(features)
    lab = np.asarray(labels)
    if lab.shape != (X.shape[0],):
        raise ValueError(f"labels: expected {X.shape[0]} labels (one per feature row), got shape {lab.shape}")
    if X.shape[0] < 3:
        raise ValueError(f"features: expected at least 3 rows to embed, got {X.shape[0]}")
    if method not in EMBEDDING_METHODS:
        raise ValueError(f"method: expected one of {EMBEDDING_METHODS}, got {method!r}")
    if lab.dtype == bool:
        lab = np.where(lab, "good", "bad")
    if method == "pca":
        Xc = X - X.mean(axis=0)
        _, sv, vt = np.linalg.svd(Xc, full_matrices=False)
        Y = Xc @ vt[:2].T
        if Y.shape[1] < 2:
            Y = np.column_stack([Y, np.zeros(X.shape[0])])
        var = sv ** 2
        frac = var[:2] / var.sum() if var.sum() > 0 else np.zeros(2)
        axes = [f"PC{i + 1} ({100 * f:.1f} % var.)" for i, f in enumerate(frac)] + ["PC2"]
    else:
        from sklearn.manifold import TSNE

        Y = TSNE(n_components=2, perplexity=min(float(perplexity), X.shape[0] - 1.0), init="pca",
                 random_state=int(seed)).fit_transform(X)
        axes = ["t-SNE 1", "t-SNE 2"]
    fig, ax = _new_figure(5.0, 4.5)
    fixed = {"bad": "tab:blue", "good": "tab:orange"}  # as in the paper's Fig. 3
    cycle = [c["color"] for c in rcParams["axes.prop_cycle"]]
    for i, c in enumerate(sorted(set(lab.tolist()), key=str)):
        sel = lab == c
        ax.scatter(Y[sel, 0], Y[sel, 1], s=8, alpha=0.7, color=fixed.get(str(c), cycle[i % len(cycle)]),
                   label=f"{c} ({int(sel.sum())})", edgecolors="none")
    ax.set_xlabel(axes[0])
    ax.set_ylabel(axes[1])
    ax.set_title(title or f"Feature embedding ({method.upper()})")
    ax.legend(fontsize=8)
    return _save(fig, path)
