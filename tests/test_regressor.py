"""Regressor files (grepq.eval.regressor): a fitted, saved and reloaded regressor predicts what the data-efficient
protocol's regressor predicts for the same training split; fingerprints enforced; corrupt files refused."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from grepq.eval import protocols as PR
from grepq.eval.regression import LabelledGram, RegressionSettings, choose_alpha, fit_select, gram_fit
from grepq.eval.regressor import Regressor, RegressorFileError, WeightMismatchError, fit_regressor
from grepq.eval.splits import labelled_folds
from grepq.scoring.settings import ScoringSettings


def planted(n=150, p=30, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p)) + 1.5
    y = X @ rng.normal(size=p) * 0.2 + rng.normal(size=n) * 0.5 + 3.0
    return X, y


@pytest.mark.parametrize("regressor,standardize", [("ridge", False), ("svr", False), ("ridge", True)])
def test_saved_regressor_predicts_what_the_protocol_predicts(tmp_path, regressor, standardize):
    X, y = planted()
    n = 40
    settings = RegressionSettings(regressor=regressor, standardize=standardize, seed=3, n_train=(n,), splits=1)
    res = PR.data_efficient(X, y, settings, keep_indices=True)
    idx = res.split_indices[0]
    lab, test = idx["labelled"][n], idx["test"]
    # the protocol's own regressor for this split, from the same functions it runs
    folds = labelled_folds(n, settings.cv_folds, settings.seed, 0)
    if standardize:
        path, cv = fit_select(X[lab], y[lab], settings, folds)
    else:
        path, cv = gram_fit(LabelledGram(X[lab]), n, y[lab], settings, folds)
    best = choose_alpha(settings, cv)
    protocol_pred = path.predict(X[test])[best]

    reg = fit_regressor(X[lab], y[lab], settings, feature_set="hl", polarity="mos")
    reg.save(tmp_path / "r.json")
    loaded = Regressor.load(tmp_path / "r.json")
    pred = loaded.predict(X[test])
    np.testing.assert_allclose(pred, protocol_pred, rtol=0, atol=1e-10)
    assert loaded.info["alpha"] == res.rows[0]["alpha"]
    from grepq.eval import metrics as M
    assert M.srcc(pred, y[test]) == pytest.approx(res.rows[0]["srcc"], abs=1e-12)
    assert loaded.info["labels"]["n"] == n and loaded.info["labels"]["polarity"] == "mos"
    assert loaded.info["settings"]["alphas"] == [0.1, 1.0, 10.0, 100.0]
    assert -1 <= loaded.info["cv"]["srcc"] <= 1


class FakeScorer:
    def __init__(self, fp, pos="drop", components=("ll", "hl")):
        self._fp = fp
        self.settings = ScoringSettings(components=components, amp="off")
        self.hl = type("HL", (), {"pos_embedding": pos})() if "hl" in components else None
        self.ll = object() if "ll" in components else None

    def fingerprints(self):
        return dict(self._fp)


def _reg(fp):
    X, y = planted(60, 10)
    return fit_regressor(X, y, feature_set="hl+ll", feature_dims={"hl": 6, "ll": 4}, fingerprints=fp,
                         feature_settings={"pos_embedding": "drop", "amp": "off"})


def test_fingerprints_enforced():
    fp = {"ll": "a" * 16, "hl": "b" * 16, "clip_text": "c" * 16, "pristine": "d" * 16}
    reg = _reg(fp)
    reg.check_scorer(FakeScorer(fp))
    # pristine patches and prompts change the zero-shot scores, not the features: accepted
    reg.check_scorer(FakeScorer(dict(fp, pristine="e" * 16, clip_text="f" * 16)))
    other = dict(fp, hl="9" * 16)
    with pytest.raises(WeightMismatchError) as e:
        reg.check_scorer(FakeScorer(other))
    assert "b" * 16 in str(e.value) and "9" * 16 in str(e.value)
    with pytest.raises(WeightMismatchError, match="pos_embedding"):
        reg.check_scorer(FakeScorer(fp, pos="keep"))
    with pytest.warns(UserWarning, match="9" * 16):
        reg.check_scorer(FakeScorer(other), allow_mismatch=True)


def test_a_missing_component_is_named_not_blamed_on_the_weights():
    fp = {"ll": "a" * 16, "hl": "b" * 16}
    reg = _reg(fp)  # hl+ll features
    with pytest.raises(RegressorFileError, match="hl\\+ll features, which need the hl component"):
        reg.check_scorer(FakeScorer(fp, components=("ll",)), allow_mismatch=True)
    with pytest.raises(RegressorFileError, match="need the ll component"):
        reg.check_scorer(FakeScorer(fp, components=("hl",)))


def test_constant_labels_refused_and_clamped_folds_said():
    X, y = planted(40, 5)
    with pytest.raises(ValueError, match="all 40 labels are 2.5"):
        fit_regressor(X, np.full(40, 2.5), feature_set="hl")
    with pytest.warns(UserWarning, match="--cv-folds 8 is more than the 6 labelled images: using 6 folds"):
        reg = fit_regressor(X[:6], y[:6], RegressionSettings(cv_folds=8), feature_set="hl")
    assert reg.info["cv"]["folds"] == 6


def test_corrupt_or_edited_files_are_refused(tmp_path):
    reg = _reg({})
    path = tmp_path / "r.json"
    reg.save(path)
    doc = json.loads(path.read_text())
    doc["coef"][0] += 1e-9
    (tmp_path / "edited.json").write_text(json.dumps(doc))
    with pytest.raises(RegressorFileError, match="edited.json.*checksum"):
        Regressor.load(tmp_path / "edited.json")
    (tmp_path / "cut.json").write_text(path.read_text()[:200])
    with pytest.raises(RegressorFileError, match="cut.json"):
        Regressor.load(tmp_path / "cut.json")
    (tmp_path / "other.json").write_text(json.dumps({"schema": "grepq-eval-result"}))
    with pytest.raises(RegressorFileError, match="other.json.*grepq-regressor"):
        Regressor.load(tmp_path / "other.json")
    with pytest.raises(RegressorFileError, match="nope.json"):
        Regressor.load(tmp_path / "nope.json")
    doc = json.loads(path.read_text())
    doc["schema_version"] = 99
    (tmp_path / "future.json").write_text(json.dumps(doc))
    with pytest.raises(RegressorFileError, match="schema_version"):
        Regressor.load(tmp_path / "future.json")


def test_file_loads_in_a_fresh_process_without_torch(tmp_path):
    reg = _reg({})
    reg.save(tmp_path / "r.json")
    X = np.random.default_rng(1).normal(size=(5, 10))
    np.save(tmp_path / "x.npy", X)
    code = ("import sys, numpy as np; from grepq.eval.regressor import Regressor; "
            f"r = Regressor.load({str(tmp_path / 'r.json')!r}); "
            f"print(repr(r.predict(np.load({str(tmp_path / 'x.npy')!r})).tolist())); "
            "assert 'torch' not in sys.modules")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ),
                         check=True).stdout
    assert eval(out) == reg.predict(X).tolist()


def test_too_few_labels_warns_and_oracle_refused():
    X, y = planted(20, 5)
    with pytest.warns(UserWarning, match="20 labelled images for 5"):
        fit_regressor(X, y, feature_set="hl")
    with pytest.raises(ValueError, match="oracle"):
        fit_regressor(X, y, RegressionSettings(alpha_selection="oracle"), feature_set="hl")
