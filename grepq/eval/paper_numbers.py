"""The paper's SRCC numbers (Srinath et al., WACV 2024, Tables 1-4), as data: docs/method.md §9.

The paper gives PLCC only in its supplementary material (paper §4.2), which grepq does not have: tables print "—".
Datasets are the registry's table names (:func:`grepq.data.datasets.table_name`); feature sets "hl+ll", "hl", "ll".
"""
from __future__ import annotations

from typing import Dict, Optional, Tuple

from ..data.datasets.registry import table_name

__all__ = ["LABEL_COUNTS", "TABLE1_SRCC", "TABLE2_SRCC", "TABLE3_SRCC", "TABLE4_SRCC", "TABLE4_PAIR_WEIGHTS",
           "TABLE4_DATASET", "canonical_feature_set", "table4_pair_weight", "paper_srcc"]

#: Label counts of Tables 1 and 4 (paper §4.2).
LABEL_COUNTS = (50, 100, 200)
#: The datasets of Tables 1 and 2, in the paper's column order.
_COLUMNS = ("CLIVE", "KonIQ", "CSIQ", "LIVE", "PIPAL")


def _per_dataset(row: str) -> Dict[str, Dict[int, float]]:
    """A row as the paper prints it (each dataset at 50 / 100 / 200 labels) -> {dataset: {labels: SRCC}}."""
    v = [float(x) for x in row.split()]
    return {ds: dict(zip(LABEL_COUNTS, v[3 * i:3 * i + 3])) for i, ds in enumerate(_COLUMNS)}


#: Table 1: data-efficient SRCC of GRepQ_D, median of 10 splits: feature set -> dataset -> labels -> SRCC.
TABLE1_SRCC: Dict[str, Dict[str, Dict[int, float]]] = {
    fs: _per_dataset(row) for fs, row in (
        ("ll", "0.531 0.565 0.613  0.620 0.647 0.679  0.794 0.805 0.832  0.866 0.880 0.886  0.395 0.410 0.431"),
        ("hl", "0.740 0.770 0.796  0.794 0.813 0.843  0.869 0.905 0.932  0.904 0.927 0.944  0.410 0.415 0.427"),
        ("hl+ll", "0.760 0.791 0.822  0.812 0.836 0.855  0.878 0.914 0.941  0.926 0.937 0.953  0.489 0.518 0.548"),
    )
}

#: Table 2: zero-shot SRCC of GRepQ_Z on whole datasets.
TABLE2_SRCC: Dict[str, float] = dict(zip(_COLUMNS, (0.740, 0.768, 0.693, 0.741, 0.436)))

#: Table 3: cross-dataset SRCC of GRepQ_C, (train, test) -> SRCC.
TABLE3_SRCC: Dict[Tuple[str, str], float] = {
    ("FLIVE", "CLIVE"): 0.774, ("FLIVE", "KonIQ"): 0.815, ("KonIQ", "CLIVE"): 0.774,
    ("CLIVE", "KonIQ"): 0.792, ("LIVE", "CSIQ"): 0.770, ("CSIQ", "LIVE"): 0.893,
}

#: Table 4: LL model only, data-efficient SRCC on KonIQ, by the pair weight s of Eq. 1 ("None" = InfoNCE, s = 0).
#: Its FSIM row is Table 1's LL KonIQ row.
TABLE4_DATASET = "KonIQ"
TABLE4_SRCC: Dict[str, Dict[int, float]] = {
    name: dict(zip(LABEL_COUNTS, values)) for name, values in (
        ("None", (0.381, 0.413, 0.452)),
        ("SSIM", (0.533, 0.558, 0.590)),
        ("MS-SSIM", (0.527, 0.561, 0.575)),
        ("GMSD", (0.544, 0.570, 0.583)),
        ("LPIPS", (0.578, 0.605, 0.629)),
        ("FSIM", (0.620, 0.647, 0.679)),
    )
}
TABLE4_PAIR_WEIGHTS = tuple(TABLE4_SRCC)
_PAIR_WEIGHT_NAMES = dict({n.lower(): n for n in TABLE4_PAIR_WEIGHTS}, infonce="None", msssim="MS-SSIM", **{"": "None"})


def canonical_feature_set(name: Optional[str]) -> Optional[str]:
    """"hl+ll" for the whole [HL 1024 | LL 128] array ("hl+ll", "ll+hl", "all": the protocols' default), "hl", "ll"
    (any case); other names unchanged, None stays None."""
    if name is None:
        return None
    key = str(name).strip().lower()
    if key in ("hl+ll", "ll+hl", "all"):
        return "hl+ll"
    return key if key in ("hl", "ll") else str(name).strip()


def table4_pair_weight(name: Optional[str]) -> Optional[str]:
    """The Table-4 row of a pair weight ("ms_ssim" -> "MS-SSIM", "none" -> "None"); unknown names unchanged, None
    stays None."""
    if name is None:
        return None
    key = str(name).strip().lower().replace("_", "-")
    return _PAIR_WEIGHT_NAMES.get(key, str(name).strip())


def paper_srcc(table: int, *keys) -> Optional[float]:
    """A paper SRCC, or None where the paper has none: ``paper_srcc(1, feature_set, dataset, n)``,
    ``paper_srcc(2, dataset)``, ``paper_srcc(3, source, target)``, ``paper_srcc(4, pair_weight, n)``."""
    if table == 1:
        fs, ds, n = keys
        return TABLE1_SRCC.get(canonical_feature_set(fs), {}).get(table_name(ds), {}).get(int(n))
    if table == 2:
        return TABLE2_SRCC.get(table_name(keys[0]))
    if table == 3:
        return TABLE3_SRCC.get((table_name(keys[0]), table_name(keys[1])))
    if table == 4:
        return TABLE4_SRCC.get(table4_pair_weight(keys[0]), {}).get(int(keys[1]))
    raise ValueError(f"table: expected 1, 2, 3 or 4, got {table!r}")
