"""Result records of the evaluation protocols: :class:`ProtocolResult`, its JSON/CSV files and medians.

JSON schema (``RESULT_SCHEMA`` = "grepq-eval-result", version 1), read by :mod:`grepq.eval.tables`::

    {"schema": "grepq-eval-result", "schema_version": 1,
     "protocol": "data_efficient" | "cross_dataset" | "zero_shot",
     "dataset": target dataset name or null,   "source": source dataset (cross_dataset) or null,
     "variant": free label or null (e.g. the LL model's similarity measure, Table 4),
     "settings": {...every parameter of the run...},
     "rows": [{...}, ...],  "medians": [{...}, ...] (data_efficient)}

NaN (an undefined correlation) is written as ``null`` and read back as NaN.
"""
from __future__ import annotations

import csv
import json
import math
import os
from collections import OrderedDict
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

_SPLIT_LEVEL_KEYS = ("split", "alpha", "srcc", "plcc", "krcc", "n_test", "train_scenes", "test_scenes",
                     "cv_score", "seconds")


def median_rows(rows: Sequence[Mapping[str, Any]]) -> List[Dict[str, Any]]:
    """Median over splits: one row per combination of the non-split keys (dataset, feature_set, n_train,
    regressor, alpha_selection, ...), with median ``srcc``, ``plcc``, ``krcc``, ``n_splits`` and the
    most frequent ``alpha`` (``alpha_mode``). NaN correlations are ignored (NaN when every split is NaN).
    """
    groups: "OrderedDict[tuple, List[Mapping[str, Any]]]" = OrderedDict()
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


def _hashable(v):
    if isinstance(v, list):
        return tuple(v)
    if isinstance(v, dict):
        return tuple(sorted(v.items()))
    return v


def json_clean(obj):
    """NaN/inf -> None, numpy scalars/arrays -> Python, slices -> "start:stop" strings, paths -> strings."""
    if isinstance(obj, dict):
        return {str(k): json_clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_clean(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return json_clean(obj.tolist())
    if isinstance(obj, slice):
        return f"{'' if obj.start is None else obj.start}:{'' if obj.stop is None else obj.stop}"
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        f = float(obj)
        return f if math.isfinite(f) else None
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, PurePath):
        return str(obj)
    return obj


_FLOAT_FIELDS = ("srcc", "plcc", "krcc", "plcc_raw", "plcc_cubic", "plcc_logistic")


def _restore_nan(row: Dict[str, Any]) -> Dict[str, Any]:
    out = dict(row)
    for k in _FLOAT_FIELDS:
        if k in out and out[k] is None:
            out[k] = float("nan")
    return out


@dataclass
class ProtocolResult:
    """Result of one protocol run on one (target) dataset.

    Attributes:
        protocol: "data_efficient" | "cross_dataset" | "zero_shot".
        dataset: target dataset name (or None).
        rows: one dict per split, label count and feature set (data_efficient), per feature set
            (cross_dataset) or per predictor (zero_shot). Every row repeats ``protocol`` and ``dataset``.
        settings: the parameters of the run.
        source: training dataset (cross_dataset).
        variant: free label (e.g. the LL similarity measure, Table 4).
        split_indices: only with ``keep_indices=True``: {split: {"train", "test", "labelled": {n: idx}}};
            not serialised.
    """

    protocol: str
    dataset: Optional[str]
    rows: List[Dict[str, Any]]
    settings: Dict[str, Any] = field(default_factory=dict)
    source: Optional[str] = None
    variant: Optional[str] = None
    split_indices: Optional[Dict[int, Dict[str, Any]]] = None

    @property
    def medians(self) -> List[Dict[str, Any]]:
        """Median over splits per n_train (and feature set, regressor, ...); see :func:`median_rows`."""
        return median_rows(self.rows) if self.protocol == "data_efficient" else [dict(r) for r in self.rows]

    def to_rows(self) -> List[Dict[str, Any]]:
        """Copies of the per-split / per-run rows."""
        return [dict(r) for r in self.rows]

    def to_dict(self) -> Dict[str, Any]:
        """The JSON document of the module doc (NaN kept as float here; ``save_json`` writes null)."""
        d = {
            "schema": RESULT_SCHEMA,
            "schema_version": RESULT_SCHEMA_VERSION,
            "protocol": self.protocol,
            "dataset": self.dataset,
            "source": self.source,
            "variant": self.variant,
            "settings": self.settings,
            "rows": self.to_rows(),
        }
        if self.protocol == "data_efficient":
            d["medians"] = self.medians
        return d

    def save_json(self, path) -> str:
        """Write the result as JSON (schema in the module doc); returns the path."""
        path = os.fspath(path)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(json_clean(self.to_dict()), fh, indent=1, allow_nan=False)
            fh.write("\n")
        return path

    def save_csv(self, path) -> str:
        """Write the rows as CSV (one line per row, union of the keys as header; NaN as empty)."""
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
        """Build a result from a JSON document (as written by :meth:`save_json`)."""
        if not isinstance(d, Mapping):
            raise ValueError(f"{origin}: expected a JSON object, got {type(d).__name__}")
        protocol = d.get("protocol")
        if protocol not in PROTOCOLS:
            raise ValueError(f"{origin}: expected 'protocol' in {PROTOCOLS}, got {protocol!r}")
        rows = d.get("rows")
        if not isinstance(rows, list) or not all(isinstance(r, Mapping) for r in rows):
            raise ValueError(f"{origin}: expected 'rows' to be a list of objects, got {type(rows).__name__}")
        dataset = d.get("dataset")
        out_rows = []
        for r in rows:
            r = _restore_nan(dict(r))
            r.setdefault("protocol", protocol)
            if dataset is not None:
                r.setdefault("dataset", dataset)
            if d.get("source") is not None:
                r.setdefault("source", d.get("source"))
            if d.get("variant") is not None:
                r.setdefault("variant", d.get("variant"))
            out_rows.append(r)
        return cls(protocol=protocol, dataset=dataset, rows=out_rows, settings=dict(d.get("settings") or {}),
                   source=d.get("source"), variant=d.get("variant"))


def load_result(path) -> ProtocolResult:
    """Read a result JSON written by :meth:`ProtocolResult.save_json`."""
    path = os.fspath(path)
    with open(path, "r", encoding="utf-8") as fh:
        try:
            d = json.load(fh)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: expected a JSON result file, got invalid JSON ({exc})") from exc
    return ProtocolResult.from_dict(d, origin=path)


