"""GRepQ_D you can keep: a linear quality predictor fit on your own labels (``grepq fit``), saved to a small JSON
file and applied by ``grepq score --regressor FILE`` or :meth:`Regressor.predict`. Alpha is chosen as the
data-efficient protocol does (:func:`grepq.eval.regression.fit_select`).

The file (schema "grepq-regressor", version 1) is plain JSON, read with ``json`` only (loading never executes code):
``coef`` [P] and ``intercept`` (q_pred = features . coef + intercept; standardisation folded in), ``feature_set``
and ``feature_dims`` ({"hl": E, "ll": 128}, in column order), ``regressor``, ``alpha``, ``settings``
(:class:`RegressionSettings`), ``standardization``, ``labels`` (polarity, n, min, max, mean, oriented_from), ``cv``
(srcc, plcc, folds, criterion, scores), ``source``, ``fingerprints`` (:meth:`grepq.GRepQ.fingerprints`),
``feature_settings``, ``grepq_version``, ``created`` and a SHA-256 ``checksum`` of the rest.

``q_pred`` is on the labels' scale and direction (``labels.polarity``; a cross-dataset source regressor is trained
on labels turned "higher = better" first: ``oriented_from``). Features of other weights than the file's
fingerprints are refused (:meth:`Regressor.check_scorer`); only the fingerprints the feature set depends on count.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import logging
import math
import os
import warnings
from dataclasses import dataclass, field, replace
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..utils import atomic_write
from ..version import __version__
from . import metrics as M
from .features import FEATURE_SETS
from .regression import Fit, GramPath, RegressionSettings, choose_alpha, fit_select
from .results import json_clean
from .splits import labelled_folds, scene_codes

__all__ = ["Regressor", "RegressorFileError", "WeightMismatchError", "REGRESSOR_SCHEMA", "REGRESSOR_VERSION",
           "fit_regressor", "build_regressor", "scorer_feature_settings", "label_info", "predict_images"]

log = logging.getLogger(__name__)

REGRESSOR_SCHEMA = "grepq-regressor"
REGRESSOR_VERSION = 1
#: Scorer settings that change the features (HL: the positional-embedding mode; both: mixed precision).
_FEATURE_SETTING_KEYS = ("pos_embedding", "amp")
#: LL feature size (the LL model's head output, docs/method.md §2).
LL_DIM = 128
#: Fewer labelled images per CV fold than this triggers a warning in ``fit_regressor``.
MIN_FOLD_SIZE = 10


class RegressorFileError(ValueError):
    """A regressor file that cannot be used (corrupt, edited, wrong schema or version); names the file."""


class WeightMismatchError(ValueError):
    """Features would come from other weights than the regressor was fit on."""


def _checksum(body: Dict[str, Any]) -> str:
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class Regressor:
    """A fitted linear quality predictor: ``q_pred = features (M, P) @ coef (P,) + intercept``.

    ``info`` holds everything else of the file (module doc): settings, labels, source, fingerprints, cv, ...
    """

    coef: np.ndarray
    intercept: float
    feature_set: str
    feature_dims: Dict[str, int]
    info: Dict[str, Any] = field(default_factory=dict)

    @property
    def polarity(self) -> str:
        """"mos" (q_pred higher = better) or "dmos" (lower = better)."""
        return self.info.get("labels", {}).get("polarity", "mos")

    @property
    def fingerprints(self) -> Dict[str, Optional[str]]:
        return dict(self.info.get("fingerprints") or {})

    def predict(self, features) -> np.ndarray:
        """q_pred (M,) for features (M, P) of this regressor's feature set (or a :class:`FeatureSet`)."""
        if hasattr(features, "matrix"):
            features = features.matrix(self.feature_set)
        X = np.asarray(features, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.coef.shape[0]:
            raise ValueError(f"features: expected shape (M, {self.coef.shape[0]}) ({self.feature_set} features "
                             f"{self.feature_dims}), got {tuple(X.shape)}")
        return X @ self.coef + self.intercept

    def describe(self) -> str:
        """One line: kind, alpha, feature set, labels and polarity."""
        lab = self.info.get("labels", {})
        better = "higher" if self.polarity == "mos" else "lower"
        return (f"{self.info.get('regressor')} alpha={self.info.get('alpha')} on {self.feature_set} features, "
                f"{lab.get('n')} labels in [{lab.get('min')}, {lab.get('max')}] ({self.polarity}: {better} is better)")

    # ---------------------------------------------------------------------------------------------- weights
    def check_scorer(self, scorer, allow_mismatch: bool = False) -> None:
        """Refuse a scorer that does not compute a component of this regressor's feature set
        (:class:`RegressorFileError`), or whose weights or feature settings differ from the ones the regressor was
        fit on (:class:`WeightMismatchError`, both fingerprints named; ``allow_mismatch`` warns instead)."""
        missing = [p for p in FEATURE_SETS[self.feature_set] if getattr(scorer, p) is None]
        if missing:
            raise RegressorFileError(
                f"the regressor predicts from {self.feature_set} features, which need the {' and '.join(missing)} "
                f"component; this scorer computes only {', '.join(scorer.settings.components)}: add "
                f"{' and '.join(missing)} to --components")
        problems = _mismatches(self, scorer.fingerprints(), scorer_feature_settings(scorer))
        if not problems:
            return
        msg = ("the regressor was fit on features of other weights/settings than this scorer's: "
               + "; ".join(problems))
        if not allow_mismatch:
            raise WeightMismatchError(msg + " (pass --allow-weight-mismatch / allow_mismatch=True to predict anyway)")
        warnings.warn(msg + "; predicting anyway (allow_mismatch)", stacklevel=2)

    # ----------------------------------------------------------------------------------------------- files
    def to_dict(self) -> Dict[str, Any]:
        """The JSON document (module doc), checksum included."""
        body = dict(self.info)
        body.update({"schema": REGRESSOR_SCHEMA, "schema_version": REGRESSOR_VERSION,
                     "feature_set": self.feature_set, "feature_dims": dict(self.feature_dims),
                     "coef": [float(c) for c in self.coef], "intercept": float(self.intercept)})
        body = json_clean(body)
        body["checksum"] = _checksum(body)
        return body

    def save(self, path) -> str:
        """Write the regressor file (atomically); returns the path."""
        path = os.fspath(path)
        with atomic_write(path) as tmp, open(tmp, "w", encoding="utf-8") as fh:
            json.dump(self.to_dict(), fh, indent=1, allow_nan=False)
            fh.write("\n")
        return path

    @classmethod
    def load(cls, path) -> "Regressor":
        """Read a regressor file (JSON only; never executes code). Corrupt, edited or foreign files raise a
        :class:`RegressorFileError` naming the file."""
        path = os.fspath(path)
        try:
            with open(path, "r", encoding="utf-8") as fh:
                doc = json.load(fh, parse_constant=_reject_constant)
        except FileNotFoundError:
            raise RegressorFileError(f"{path}: no such regressor file") from None
        except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as exc:
            raise RegressorFileError(f"{path}: expected a grepq regressor file (JSON), got unreadable "
                                     f"content ({exc})") from None
        return cls.from_dict(doc, origin=path)

    @classmethod
    def from_dict(cls, doc: Any, origin: str = "<dict>") -> "Regressor":
        """Validate a regressor document (schema, version, checksum, shapes) and build the regressor."""
        def bad(what: str) -> RegressorFileError:
            return RegressorFileError(f"{origin}: {what}")
        if not isinstance(doc, dict) or doc.get("schema") != REGRESSOR_SCHEMA:
            raise bad(f"expected a JSON object with schema {REGRESSOR_SCHEMA!r} (written by grepq fit)")
        if doc.get("schema_version") != REGRESSOR_VERSION:
            raise bad(f"expected schema_version {REGRESSOR_VERSION}, got {doc.get('schema_version')!r} "
                      f"(written by grepq {doc.get('grepq_version')}; this is grepq {__version__})")
        body = {k: v for k, v in doc.items() if k != "checksum"}
        if doc.get("checksum") != _checksum(body):
            raise bad("checksum mismatch: the file is corrupt or was edited after grepq wrote it "
                      "(re-run grepq fit to make a new one)")
        return cls._from_body(body, bad)

    @classmethod
    def _from_body(cls, body: Dict[str, Any], bad) -> "Regressor":
        fset = body.get("feature_set")
        if fset not in FEATURE_SETS:
            raise bad(f"expected feature_set in {list(FEATURE_SETS)}, got {fset!r}")
        dims = body.get("feature_dims")
        if not isinstance(dims, dict) or any(not isinstance(dims.get(k), int) for k in FEATURE_SETS[fset]):
            raise bad(f"expected feature_dims with integer sizes of {FEATURE_SETS[fset]}, got {dims!r}")
        coef = np.asarray(body.get("coef"), dtype=np.float64)
        if coef.ndim != 1 or coef.size != sum(dims[k] for k in FEATURE_SETS[fset]) or not np.all(np.isfinite(coef)):
            raise bad(f"expected {sum(dims[k] for k in FEATURE_SETS[fset])} finite coefficients, "
                      f"got shape {coef.shape}")
        intercept = body.get("intercept")
        if not isinstance(intercept, (int, float)) or not math.isfinite(intercept):
            raise bad(f"expected a finite intercept, got {intercept!r}")
        if body.get("labels", {}).get("polarity") not in ("mos", "dmos"):
            raise bad("expected labels.polarity 'mos' or 'dmos'")
        info = {k: v for k, v in body.items()
                if k not in ("coef", "intercept", "feature_set", "feature_dims", "schema", "schema_version")}
        return cls(coef=coef, intercept=float(intercept), feature_set=fset,
                   feature_dims={k: int(dims[k]) for k in FEATURE_SETS[fset]}, info=info)


def _reject_constant(name: str):
    raise ValueError(f"non-finite number {name}")


def scorer_feature_settings(scorer) -> Dict[str, Any]:
    hl = scorer.hl
    return {"components": list(scorer.settings.components),
            "pos_embedding": hl.pos_embedding if hl is not None else None, "amp": scorer.settings.amp}


def _mismatches(reg: Regressor, fps: Dict[str, Optional[str]], settings: Dict[str, Any]) -> List[str]:
    problems = []
    for part in FEATURE_SETS[reg.feature_set]:
        mine, theirs = reg.fingerprints.get(part), fps.get(part)
        if mine != theirs:
            problems.append(f"{part} weights: regressor {mine}, scorer {theirs}")
    saved = reg.info.get("feature_settings") or {}
    for key in _FEATURE_SETTING_KEYS:
        if key == "pos_embedding" and "hl" not in FEATURE_SETS[reg.feature_set]:
            continue
        if key in saved and saved[key] != settings.get(key):
            problems.append(f"{key}: regressor {saved[key]!r}, scorer {settings.get(key)!r}")
    return problems


# --------------------------------------------------------------------------------------------------------------
# Fitting
# --------------------------------------------------------------------------------------------------------------


def label_info(y: np.ndarray, polarity: str, oriented_from: Optional[str] = None) -> Dict[str, Any]:
    return {"polarity": polarity, "n": int(y.size), "min": float(y.min()), "max": float(y.max()),
            "mean": float(y.mean()), "oriented_from": oriented_from}


def _cv_estimate(X, y, settings, folds, alpha: float) -> Dict[str, float]:
    """SRCC and PLCC of the pooled out-of-fold predictions of the chosen alpha (optimistic: alpha was chosen
    on the same folds)."""
    fixed = replace(settings, alphas=(alpha,), alpha_selection="fixed")
    oof = np.empty(y.size)
    for va in folds:
        tr = np.setdiff1d(np.arange(y.size), va, assume_unique=True)
        path, _ = fit_select(X[tr], y[tr], fixed)
        oof[va] = path.predict(X[va])[0]
    return {"srcc": M.srcc(oof, y), "plcc": M.plcc(oof, y, "none")}


def fit_regressor(X, y, settings=None, *, feature_set: str = "hl+ll", feature_dims: Optional[Dict[str, int]] = None,
                  polarity: str = "mos", refs=None, source: Optional[Dict[str, Any]] = None,
                  fingerprints: Optional[Dict[str, Any]] = None,
                  feature_settings: Optional[Dict[str, Any]] = None) -> Regressor:
    """A :class:`Regressor` on features X (n, P) and labels y (n,), alpha by ``settings.alpha_selection`` ("cv":
    the data-efficient protocol's folds of split 0, by scene with ``refs``; "fixed"; "oracle" is refused: it needs
    test labels). On the labelled images of split 0 it chooses the protocol's alpha and predicts what the
    protocol's regressor predicts."""
    settings = settings or RegressionSettings()
    if settings.alpha_selection == "oracle":
        raise ValueError("alpha_selection 'oracle' needs test labels; a regressor file uses 'cv' or 'fixed'")
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    n = y.size
    if n and np.ptp(y) == 0:
        raise ValueError(f"labels: all {n} labels are {y[0]:g}; a regressor cannot learn quality from constant "
                         f"labels (check the score column)")
    folds = None
    if settings.alpha_selection == "cv":
        groups = None if refs is None else scene_codes(refs, n)
        folds = labelled_folds(n, settings.cv_folds, settings.seed, 0, groups)
        if len(folds) < settings.cv_folds:
            what = f"{n} labelled images" if groups is None else f"labelled images of {len(folds)} scenes"
            warnings.warn(f"--cv-folds {settings.cv_folds} is more than the {what}: using {len(folds)} folds",
                          stacklevel=2)
        if n // len(folds) < MIN_FOLD_SIZE:
            warnings.warn(f"only {n} labelled images for {len(folds)} cross-validation folds (about "
                          f"{n // len(folds)} per fold, fewer than {MIN_FOLD_SIZE}): the alpha choice and the CV "
                          f"estimate are noisy; label more images or pass fewer folds", stacklevel=2)
    path, cv = fit_select(X, y, settings, folds)
    fit = Fit(path=path.linear() if isinstance(path, GramPath) else path, best=choose_alpha(settings, cv), cv=cv,
              folds=folds)
    return build_regressor(fit, settings, X, y, feature_set=feature_set, feature_dims=feature_dims,
                           labels=label_info(y, polarity), source=source, fingerprints=fingerprints,
                           feature_settings=feature_settings)


def build_regressor(fit: Fit, settings, X, y, *, feature_set: str, feature_dims=None, labels: Dict[str, Any],
                    source=None, fingerprints=None, feature_settings=None) -> Regressor:
    """A :class:`Regressor` from the chosen alpha of ``fit`` on training features X (n, P) and labels y (n,) (for
    the standardisation record and the CV estimate)."""
    alpha = settings.alphas[fit.best]
    scale = (X.std(axis=0) if settings.standardize else np.ones(X.shape[1]))
    cv_info = None
    if fit.cv is not None:
        cv_info = dict(_cv_estimate(X, y, settings, fit.folds, alpha), folds=len(fit.folds),
                       criterion=settings.cv_criterion, scores=[float(s) for s in fit.cv])
    info = {"grepq_version": __version__, "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
            "regressor": settings.regressor, "alpha": alpha, "settings": settings.to_dict(),
            "standardization": {"standardize": settings.standardize, "mean": X.mean(axis=0),
                                "scale": np.where(scale > 0, scale, 1.0)},
            "labels": labels, "cv": cv_info, "source": source or {"kind": "arrays"},
            "fingerprints": fingerprints or {}, "feature_settings": feature_settings or {}}
    if feature_dims is None:  # [HL | LL] with the LL model's 128-d head output (docs/method.md §2)
        parts = FEATURE_SETS[feature_set]
        feature_dims = {parts[0]: X.shape[1]} if len(parts) == 1 else {"hl": X.shape[1] - LL_DIM, "ll": LL_DIM}
    return Regressor(coef=fit.path.coef[fit.best].copy(), intercept=float(fit.path.intercept[fit.best]),
                     feature_set=feature_set, feature_dims=feature_dims, info=info)


def predict_images(scorer, regressor: Regressor, paths: Sequence, *, cache_dir=None, allow_mismatch: bool = False,
                   progress: bool = True) -> Tuple[List[dict], List[Tuple[str, str]]]:
    """Score image files/folders with ``scorer`` and predict ``q_pred`` with ``regressor``.

    Returns (rows, failed): rows are dicts image, q_low, q_high, q_total, q_pred (in input order; folders
    expanded, sorted); failed lists (path, reason) of images that could not be read or scored and of inputs
    that do not exist. Weights are checked first (:meth:`Regressor.check_scorer`).
    """
    from ..data.io import expand_inputs  # torch: a regressor file loads without it
    from ..scoring.zero_shot import total_quality
    from .features import extract_features

    regressor.check_scorer(scorer, allow_mismatch)
    images, skipped = expand_inputs(list(paths))
    failed = [(p, why) for p, why in skipped if why == "no such file or folder"]
    for p, why in skipped:
        if why != "no such file or folder":
            log.warning("skipped %s: %s", p, why)
    fs = extract_features(scorer, images, cache_dir=cache_dir, name="score", progress=progress, on_error="record")
    q_pred = regressor.predict(fs.matrix(regressor.feature_set))
    bad = {p for p, _ in fs.failed}
    failed.extend(fs.failed)
    rows = []
    for i, p in enumerate(fs.names):
        if p in bad:
            continue
        q_low = None if fs.q_low is None else float(fs.q_low[i])
        q_high = None if fs.q_high is None else float(fs.q_high[i])
        rows.append({"image": p, "q_low": q_low, "q_high": q_high, "q_total": total_quality(q_low, q_high),
                     "q_pred": float(q_pred[i])})
    return rows, failed
