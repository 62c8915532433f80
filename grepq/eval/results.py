"""Result records of the evaluation protocols: :class:`ProtocolResult`, its JSON/CSV files and medians.

JSON (``RESULT_SCHEMA`` "grepq-eval-result", version 1), read by :mod:`grepq.eval.tables`::

    {"schema": "grepq-eval-result", "schema_version": 1, "protocol": "data_efficient" | "cross_dataset" | "zero_shot",
     "dataset": target or null, "source": source (cross_dataset) or null,
     "pair_weight": the LL model's pair weight of Eq. 1 (Table 4) or null,
     "settings": {...}, "rows": [{...}, ...], "medians": [{...}, ...] (data_efficient)}

NaN (an undefined correlation) is written as ``null`` and read back as NaN.
"""
from __future__ import annotations

import csv
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from . import metrics as M

__all__ = ["RESULT_SCHEMA", "RESULT_SCHEMA_VERSION", "PROTOCOLS", "ProtocolResult", "load_result", "median_rows",
           "json_clean"]

RESULT_SCHEMA = "grepq-eval-result"
RESULT_SCHEMA_VERSION = 1
PROTOCOLS = ("data_efficient", "cross_dataset", "zero_shot")
#: Keys that differ between the splits of one setting (not part of the median's group).
_SPLIT_LEVEL_KEYS = ("split", "alpha", "srcc", "plcc", "krcc", "n_test", "train_scenes", "test_scenes",
                     "cv_score", "seconds")
_FLOAT_FIELDS = ("srcc", "plcc", "krcc", "plcc_raw", "plcc_cubic", "plcc_logistic")
#: Result-level labels every row carries too.
_LABELS = ("dataset", "source", "pair_weight")


def _hashable(v):
    if isinstance(v, list):
        return tuple(v)
    if isinstance(v, dict):
        return tuple(sorted(v.items()))
    return v


def median_rows(rows: Sequence[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    """Median over splits: one row per combination of the other keys (dataset, feature_set, n_train, ...) with
    the median ``srcc``, ``plcc``, ``krcc`` (NaN splits ignored), ``n_splits`` and the most frequent ``alpha_mode``."""
    groups: Dict[tuple, List[Mapping[str, Any]]] = {}
    for row in rows:
        key = tuple(sorted((k, _hashable(v)) for k, v in row.items() if k not in _SPLIT_LEVEL_KEYS))
        groups.setdefault(key, []).append(row)
    out = []
    for key, members in groups.items():
        summary = dict(key)
        for metric in ("srcc", "plcc", "krcc"):
            summary[metric] = M.median_or_nan([r.get(metric) for r in members])
        summary["n_splits"] = len(members)
        alphas = [r.get("alpha") for r in members if r.get("alpha") is not None]
        if alphas:
            vals, counts = np.unique(np.asarray(alphas, dtype=float), return_counts=True)
            summary["alpha_mode"] = float(vals[np.argmax(counts)])
        out.append(summary)
    return out


def json_clean(obj):
    """NaN/inf -> None, numpy scalars/arrays -> Python, slices -> "start:stop", paths -> strings."""
    if isinstance(obj, dict):
        return {str(k): json_clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_clean(obj.tolist())
    if isinstance(obj, slice):
        return f"{'' if obj.start is None else obj.start}:{'' if obj.stop is None else obj.stop}"
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, PurePath):
        return str(obj)
    return obj


@dataclass
class ProtocolResult:
    """One protocol run on one (target) dataset.

    ``rows``: one dict per split, label count and feature set (data_efficient), per feature set (cross_dataset)
    or per predictor (zero_shot); each repeats ``protocol`` and the labels ``dataset``, ``source``, ``pair_weight``.
    ``split_indices`` (only with ``keep_indices=True``): {split: {"train", "test", "labelled": {n: idx}}}, not saved.
    """

    protocol: str
    dataset: Optional[str]
    rows: List[Dict[str, Any]]
    settings: Dict[str, Any] = field(default_factory=dict)
    source: Optional[str] = None
    pair_weight: Optional[str] = None
    split_indices: Optional[Dict[int, Dict[str, Any]]] = None

    @property
    def medians(self) -> List[Dict[str, Any]]:
        """Median over splits (:func:`median_rows`) for data_efficient; the rows otherwise."""
        return median_rows(self.rows) if self.protocol == "data_efficient" else self.to_rows()

    def to_rows(self) -> List[Dict[str, Any]]:
        """Copies of the rows."""
        return [dict(r) for r in self.rows]

    def to_dict(self) -> Dict[str, Any]:
        """The JSON document of the module doc (NaN still float; :meth:`save_json` writes null)."""
        d = {"schema": RESULT_SCHEMA, "schema_version": RESULT_SCHEMA_VERSION, "protocol": self.protocol,
             "dataset": self.dataset, "source": self.source, "pair_weight": self.pair_weight,
             "settings": self.settings, "rows": self.to_rows()}
        if self.protocol == "data_efficient":
            d["medians"] = self.medians
        return d

    def save_json(self, path) -> str:
        """Write the result as JSON; returns the path."""
        path = os.fspath(path)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(json_clean(self.to_dict()), fh, indent=1, allow_nan=False)
            fh.write("\n")
        return path

    def save_csv(self, path) -> str:
        """Write the rows as CSV (header: the union of the keys; NaN as empty); returns the path."""
        path = os.fspath(path)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        keys: List[str] = []
        for r in self.rows:
            keys.extend(k for k in r if k not in keys)
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=keys)
            writer.writeheader()
            for r in self.rows:
                writer.writerow({k: ("" if v is None else v) for k, v in json_clean(r).items()})
        return path

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], origin: str = "<dict>") -> "ProtocolResult":
        """A result from its JSON document; a document that does not follow the schema raises ValueError
        naming ``origin``."""
        if not isinstance(d, Mapping):
            raise ValueError(f"{origin}: expected a JSON object, got {type(d).__name__}")
        if d.get("protocol") not in PROTOCOLS:
            raise ValueError(f"{origin}: expected 'protocol' in {PROTOCOLS}, got {d.get('protocol')!r}")
        rows = d.get("rows")
        if not isinstance(rows, list) or not all(isinstance(r, Mapping) for r in rows):
            raise ValueError(f"{origin}: expected 'rows' to be a list of objects, got {type(rows).__name__}")
        labels = {k: d.get(k) for k in ("protocol",) + _LABELS if d.get(k) is not None}
        out_rows = []
        for r in rows:
            r = {k: float("nan") if k in _FLOAT_FIELDS and v is None else v for k, v in r.items()}
            out_rows.append(r | {k: v for k, v in labels.items() if k not in r})
        return cls(protocol=d["protocol"], dataset=d.get("dataset"), rows=out_rows,
                   settings=dict(d.get("settings") or {}), source=d.get("source"), pair_weight=d.get("pair_weight"))


def load_result(path) -> ProtocolResult:
    """Read a result JSON written by :meth:`ProtocolResult.save_json`; invalid JSON raises ValueError naming it."""
    path = os.fspath(path)
    with open(path, "r", encoding="utf-8") as fh:
        try:
            d = json.load(fh)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: expected a JSON result file, got invalid JSON ({exc})") from exc
    return ProtocolResult.from_dict(d, origin=path)
