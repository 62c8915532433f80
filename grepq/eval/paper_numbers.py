"""The paper's GRepQ numbers (Srinath et al., WACV 2024), as data. docs/method.md §9.

All values are SRCC, transcribed from ``seeds/paper.txt`` (the WACV paper). The paper gives PLCC only in its
supplementary material ("The results with respect to Pearson's linear correlation coefficient (PLCC) are
given in the supplementary", section 4.2), which this project does not have: there are no paper PLCC values, so
reports print "—" rather than invent numbers.

Dataset names are the table names of the dataset registry (:func:`grepq.data.datasets.table_name`).
Feature-set names are canonical: "hl+ll", "hl", "ll" (see :func:`canonical_feature_set`).
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

from ..data.datasets.registry import TABLE_NAMES, table_name

__all__ = [
    "DATASETS",
    "LABEL_COUNTS",
    "TABLE1_SRCC",
    "TABLE2_SRCC",
    "TABLE3_SRCC",
    "TABLE4_SRCC",
    "SIMILARITY_MEASURES",
    "TABLE4_DATASET",
    "canonical_feature_set",
    "canonical_similarity",
    "paper_srcc",
]

#: The dataset names used in every grepq table (the registry's table names, grepq.data.datasets).
DATASETS = tuple(TABLE_NAMES.values())

#: Label counts of Table 1 and Table 4 (paper section 4.2).
LABEL_COUNTS = (50, 100, 200)

def canonical_feature_set(name: Optional[str]) -> Optional[str]:
    """Canonical feature-set name: "hl+ll" (also "ll+hl", "all", "concat"), "hl", "ll"; others unchanged.

    "all" is the data-efficient protocol's default feature set: the whole feature array, which in grepq is
    [HL 1024 | LL 128] (docs/method.md §5), i.e. the paper's GRepQ_D (HL + LL).
    """
    if name is None:
        return None
    key = str(name).strip().lower().replace(" ", "").replace("_", "+")
    if key in ("hl+ll", "ll+hl", "all", "concat", "both"):
        return "hl+ll"
    if key in ("hl", "high", "highlevel", "high-level"):
        return "hl"
    if key in ("ll", "low", "lowlevel", "low-level"):
        return "ll"
    return str(name).strip()


# ---------------------------------------------------------------------------------------------------------
# Table 1: data-efficient SRCC of GRepQ_D, median of 10 splits, 50/100/200 labels (paper Table 1).
# ---------------------------------------------------------------------------------------------------------
TABLE1_SRCC: Dict[str, Dict[str, Dict[int, float]]] = {
    "ll": {  # GRepQ_D (LL)
        "CLIVE": {50: 0.531, 100: 0.565, 200: 0.613},
        "KonIQ": {50: 0.620, 100: 0.647, 200: 0.679},
        "CSIQ": {50: 0.794, 100: 0.805, 200: 0.832},
        "LIVE": {50: 0.866, 100: 0.880, 200: 0.886},
        "PIPAL": {50: 0.395, 100: 0.410, 200: 0.431},
    },
    "hl": {  # GRepQ_D (HL)
        "CLIVE": {50: 0.740, 100: 0.770, 200: 0.796},
        "KonIQ": {50: 0.794, 100: 0.813, 200: 0.843},
        "CSIQ": {50: 0.869, 100: 0.905, 200: 0.932},
        "LIVE": {50: 0.904, 100: 0.927, 200: 0.944},
        "PIPAL": {50: 0.410, 100: 0.415, 200: 0.427},
    },
    "hl+ll": {  # GRepQ_D (HL + LL) — docs/method.md §9
        "CLIVE": {50: 0.760, 100: 0.791, 200: 0.822},
        "KonIQ": {50: 0.812, 100: 0.836, 200: 0.855},
        "CSIQ": {50: 0.878, 100: 0.914, 200: 0.941},
        "LIVE": {50: 0.926, 100: 0.937, 200: 0.953},
        "PIPAL": {50: 0.489, 100: 0.518, 200: 0.548},
    },
}

# ---------------------------------------------------------------------------------------------------------
# Table 2: zero-shot SRCC of GRepQ_Z on whole datasets (paper Table 2).
# ---------------------------------------------------------------------------------------------------------
TABLE2_SRCC: Dict[str, float] = {
    "CLIVE": 0.740,
    "KonIQ": 0.768,
    "CSIQ": 0.693,
    "LIVE": 0.741,
    "PIPAL": 0.436,
}

# ---------------------------------------------------------------------------------------------------------
# Table 3: cross-dataset SRCC of GRepQ_C, (train, test) -> SRCC (paper Table 3).
# ---------------------------------------------------------------------------------------------------------
TABLE3_SRCC: Dict[Tuple[str, str], float] = {
    ("FLIVE", "CLIVE"): 0.774,
    ("FLIVE", "KonIQ"): 0.815,
    ("KonIQ", "CLIVE"): 0.774,
    ("CLIVE", "KonIQ"): 0.792,
    ("LIVE", "CSIQ"): 0.770,
    ("CSIQ", "LIVE"): 0.893,
}

# ---------------------------------------------------------------------------------------------------------
# Table 4: LL model only, data-efficient SRCC on KonIQ, by the similarity measure of Eq. 1 (paper Table 4).
# ("None" = InfoNCE, s = 0.) The FSIM row equals Table 1's GRepQ_D (LL) KonIQ row.
# ---------------------------------------------------------------------------------------------------------
SIMILARITY_MEASURES = ("None", "SSIM", "MS-SSIM", "GMSD", "LPIPS", "FSIM")
TABLE4_DATASET = "KonIQ"
TABLE4_SRCC: Dict[str, Dict[int, float]] = {
    "None": {50: 0.381, 100: 0.413, 200: 0.452},
    "SSIM": {50: 0.533, 100: 0.558, 200: 0.590},
    "MS-SSIM": {50: 0.527, 100: 0.561, 200: 0.575},
    "GMSD": {50: 0.544, 100: 0.570, 200: 0.583},
    "LPIPS": {50: 0.578, 100: 0.605, 200: 0.629},
    "FSIM": {50: 0.620, 100: 0.647, 200: 0.679},
}

_SIMILARITY_ALIASES = {
    "none": "None", "infonce": "None", "": "None",
    "ssim": "SSIM",
    "ms-ssim": "MS-SSIM", "msssim": "MS-SSIM", "ms_ssim": "MS-SSIM",
    "gmsd": "GMSD",
    "lpips": "LPIPS",
    "fsim": "FSIM",
}


def canonical_similarity(name: Optional[str]) -> Optional[str]:
    """Canonical similarity-measure name of Table 4 ("ms_ssim" -> "MS-SSIM", "infonce" -> "None");
    unknown names unchanged, None stays None."""
    if name is None:
        return None
    key = str(name).strip().lower()
    return _SIMILARITY_ALIASES.get(key, _SIMILARITY_ALIASES.get(key.replace("_", "-"), str(name).strip()))


def paper_srcc(table: int, *keys) -> Optional[float]:
    """Look up a paper SRCC, or None when the paper has no such number.

    ``paper_srcc(1, feature_set, dataset, n)``, ``paper_srcc(2, dataset)``, ``paper_srcc(3, source, target)``,
    ``paper_srcc(4, similarity, n)``. Names are canonicalised first.
    """
    if table == 1:
        fs, ds, n = keys
        return TABLE1_SRCC.get(canonical_feature_set(fs), {}).get(table_name(ds), {}).get(int(n))
    if table == 2:
        (ds,) = keys
        return TABLE2_SRCC.get(table_name(ds))
    if table == 3:
        src, tgt = keys
        return TABLE3_SRCC.get((table_name(src), table_name(tgt)))
    if table == 4:
        sim, n = keys
        return TABLE4_SRCC.get(canonical_similarity(sim), {}).get(int(n))
    raise ValueError(f"table: expected 1, 2, 3 or 4, got {table!r}")
