"""Tests of grepq.eval.protocols: regressors, splits, the data-efficient / cross-dataset / zero-shot protocols,
serialisation."""
import dataclasses
import json
import math

import numpy as np
import pytest
from sklearn.linear_model import Ridge
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVR

from grepq.eval import metrics as M
from grepq.eval import protocols as PR
from grepq.eval import regression as RG
from grepq.eval import results as RS
from grepq.eval import splits as SP

ALPHAS = (0.1, 1.0, 10.0, 100.0)
SETTINGS = {f.name for f in dataclasses.fields(RG.RegressionSettings)}


def de(X, y, **kw):
    """data_efficient with its RegressionSettings given as keywords."""
    settings = RG.RegressionSettings(**{k: kw.pop(k) for k in list(kw) if k in SETTINGS})
    return PR.data_efficient(X, y, settings, **kw)


def cross(Xs, ys, Xt, yt, train_polarity="mos", test_polarity="mos", **kw):
    """The result of cross_dataset with its RegressionSettings given as keywords."""
    src, tgt = PR.Labelled(Xs, ys, train_polarity, name="A"), PR.Labelled(Xt, yt, test_polarity, name="B")
    return PR.cross_dataset(src, tgt, RG.RegressionSettings(**kw))[0]


def refit_cv(X, y, settings, folds):
    """(A,) CV MSE scores refitting on each fold's features (the reference of the Gram and scatter-sum paths)."""
    oof = np.empty((len(settings.alphas), y.size))
    for va in folds:
        tr = np.setdiff1d(np.arange(y.size), va)
        oof[:, va] = RG.fit_path(X[tr], y[tr], settings).predict(X[va])
    return -np.mean((oof - y) ** 2, axis=1)


def planted(n=400, p=40, noise=0.3, seed=0, offset=2.0):
    """Features (n, p) with a non-zero mean and scores linear in them plus noise."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p)) * rng.uniform(0.5, 2.0, size=p) + offset
    w = rng.normal(size=p)
    y = X @ w
    y = (y - y.mean()) / y.std() + noise * rng.normal(size=n)
    return X, y


# ---------------------------------------------------------------- regressors

@pytest.mark.parametrize("n,p", [(40, 120), (300, 25)])  # dual (n <= P) and primal (n > P) forms
@pytest.mark.parametrize("standardize", [False, True])
def test_ridge_path_equals_sklearn_ridge_per_alpha(n, p, standardize):
    X, y = planted(n=n, p=p, seed=1)
    Xt, _ = planted(n=30, p=p, seed=2)
    path = RG.fit_path(X, y, RG.RegressionSettings(alphas=ALPHAS, standardize=standardize))
    assert path.coef.shape == (4, p) and path.intercept.shape == (4,)
    pred = path.predict(Xt)
    for i, a in enumerate(ALPHAS):
        if standardize:
            sc = StandardScaler().fit(X)
            ref = Ridge(alpha=a).fit(sc.transform(X), y).predict(sc.transform(Xt))
        else:
            model = Ridge(alpha=a).fit(X, y)
            ref = model.predict(Xt)
            np.testing.assert_allclose(path.coef[i], model.coef_, atol=1e-8)
        np.testing.assert_allclose(pred[i], ref, atol=1e-8)


def test_svr_path_equals_sklearn_linear_svr_with_c_mapping():
    X, y = planted(n=60, p=15, seed=3)
    Xt, _ = planted(n=20, p=15, seed=4)
    path = RG.fit_path(X, y, RG.RegressionSettings(regressor="svr", alphas=(0.1, 1.0, 10.0)))
    ys = (y - y.mean()) / y.std()
    for i, a in enumerate((0.1, 1.0, 10.0)):
        ref = SVR(kernel="linear", C=1.0 / (2.0 * a), epsilon=RG.SVR_EPSILON, tol=1e-6).fit(X, ys)
        ref_pred = ref.predict(Xt) * y.std() + y.mean()
        np.testing.assert_allclose(path.predict(Xt)[i], ref_pred, atol=1e-2 * y.std())


def test_svr_refuses_large_training_sets_everywhere_saying_how_to_proceed():
    n = RG.SVR_MAX_TRAIN + 1
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(n, 3)), rng.normal(size=n)
    how = "at most 2000 .*got 2001.*regressor 'ridge'.*subset"
    with pytest.raises(ValueError, match=how):
        RG.fit_select(X, y, RG.RegressionSettings(regressor="svr"), None)
    with pytest.raises(ValueError, match="at most 2000 source images, got 2001.*regressor 'ridge'"):
        cross(X, y, X[:10], y[:10], regressor="svr")
    big = np.concatenate([X, X[:600]])
    with pytest.raises(ValueError, match="label count.*got 2001"):
        de(big, np.concatenate([y, y[:600]]), n_train=(n,), splits=1, regressor="svr")
    # ridge takes any size (primal solve)
    assert cross(X, y, X[:10], y[:10]).rows[0]["n_train"] == n


def test_gram_cv_equals_feature_space_cv():
    X, y = planted(n=100, p=150, seed=5)  # n < P, the data-efficient regime
    folds = SP.make_folds(100, 5, np.random.default_rng(0), None)
    for reg in ("ridge", "svr"):
        settings = RG.RegressionSettings(regressor=reg, alphas=ALPHAS)
        _, gram = RG.gram_fit(RG.LabelledGram(X), 100, y, settings, folds)
        np.testing.assert_allclose(gram, refit_cv(X, y, settings, folds), rtol=1e-6 if reg == "svr" else 1e-9)


# ---------------------------------------------------------------- splits

def test_image_splits_are_disjoint_and_cover_everything():
    for s in range(3):
        train, test = SP.split_indices(250, s, seed=7)
        assert np.intersect1d(train, test).size == 0
        assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(250))
        assert train.size == 200 and test.size == 50
    a = SP.split_indices(250, 0, seed=7)[1]
    b = SP.split_indices(250, 1, seed=7)[1]
    assert not np.array_equal(a, b)


def test_scene_splits_keep_each_scene_on_one_side():
    rng = np.random.default_rng(0)
    refs = np.array([f"scene{k:02d}" for k in rng.integers(0, 29, size=600)])
    n_scenes = np.unique(refs).size
    for s in range(5):
        train, test = SP.split_indices(600, s, seed=3, refs=refs)
        assert not set(refs[train]) & set(refs[test])
        assert np.array_equal(np.sort(np.concatenate([train, test])), np.arange(600))
        assert len(set(refs[train])) == round(0.8 * n_scenes)


def test_cv_folds_by_scene_do_not_share_scenes():
    groups = np.repeat(np.arange(12), 5)
    folds = SP.make_folds(groups.size, 5, np.random.default_rng(0), groups)
    assert len(folds) == 5
    seen = [set(groups[f]) for f in folds]
    for i in range(5):
        for j in range(i + 1, 5):
            assert not seen[i] & seen[j]
    assert np.array_equal(np.sort(np.concatenate(folds)), np.arange(groups.size))


# ---------------------------------------------------------------- data-efficient protocol

def test_same_seed_gives_identical_rows_and_other_seed_differs():
    X, y = planted(n=300, p=30)
    kw = dict(n_train=(20, 50), splits=3)
    a = de(X, y, seed=11, **kw).to_rows()
    b = de(X, y, seed=11, **kw).to_rows()
    c = de(X, y, seed=12, **kw).to_rows()
    assert a == b
    assert [r["srcc"] for r in a] != [r["srcc"] for r in c]
    assert len(a) == 3 * 2


def test_n_train_respected_and_labels_nested_inside_training_part():
    X, y = planted(n=300, p=30)
    res = de(X, y, n_train=(10, 30, 60), splits=2, keep_indices=True)
    for s, info in res.split_indices.items():
        train = set(info["train"].tolist())
        assert not train & set(info["test"].tolist())
        for n, lab in info["labelled"].items():
            assert lab.size == n and len(set(lab.tolist())) == n
            assert set(lab.tolist()) <= train
        assert set(info["labelled"][10].tolist()) <= set(info["labelled"][30].tolist())
    assert sorted({r["n_train"] for r in res.rows}) == [10, 30, 60]
    assert all(r["n_test"] == 60 for r in res.rows)


def test_scene_wise_protocol_keeps_scenes_apart():
    X, y = planted(n=400, p=20)
    refs = np.arange(400) % 25
    res = de(X, y, refs=refs, n_train=(30,), splits=3, keep_indices=True)
    for info in res.split_indices.values():
        assert not set(refs[info["train"]]) & set(refs[info["test"]])
        assert set(refs[info["labelled"][30]]) <= set(refs[info["train"]])
    assert all(r["train_scenes"] == 20 and r["test_scenes"] == 5 for r in res.rows)


def test_planted_linear_relation_is_recovered():
    X, y = planted(n=500, p=30, noise=0.2)
    for reg in ("ridge", "svr"):
        # (libsvm needs millions of iterations for C = 5 when n > P; the large-C end is left out here)
        res = de(X, y, n_train=(100,), splits=3, regressor=reg, alphas=(1.0, 10.0, 100.0))
        med = res.medians[0]
        assert med["n_train"] == 100 and med["n_splits"] == 3
        assert med["srcc"] > 0.9 and med["plcc"] > 0.9 and med["krcc"] > 0.7


def test_protocol_matches_naive_sklearn_refit():
    X, y = planted(n=300, p=50, noise=1.0)
    res = de(X, y, n_train=(40,), splits=2, alphas=10.0, keep_indices=True)
    for row in res.rows:
        info = res.split_indices[row["split"]]
        lab, test = info["labelled"][40], info["test"]
        pred = Ridge(alpha=10.0).fit(X[lab], y[lab]).predict(X[test])
        assert row["alpha_selection"] == "fixed"
        assert row["srcc"] == pytest.approx(M.srcc(pred, y[test]), abs=1e-10)
        assert row["plcc"] == pytest.approx(M.plcc(pred, y[test]), abs=1e-10)


def test_oracle_is_labelled_and_never_below_cv():
    X, y = planted(n=300, p=60, noise=1.0)
    kw = dict(n_train=(30, 60), splits=4, seed=5)
    cv = de(X, y, alpha_selection="cv", **kw)
    oracle = de(X, y, alpha_selection="oracle", **kw)
    assert all(r["alpha_selection"] == "oracle" for r in oracle.rows)
    assert all(m["alpha_selection"] == "oracle" for m in oracle.medians)
    assert all(r["alpha_selection"] == "cv" and r["cv_criterion"] == "mse" for r in cv.rows)
    for rc, ro in zip(cv.rows, oracle.rows):
        assert (rc["split"], rc["n_train"]) == (ro["split"], ro["n_train"])
        assert ro["srcc"] >= rc["srcc"] - 1e-12
    assert oracle.to_dict()["settings"]["alpha_selection"] == "oracle"


def test_feature_sets_give_one_row_each_and_standardize_works():
    X, y = planted(n=300, p=30)
    sets = {"hl": slice(0, 20), "ll": slice(20, 30), "hl+ll": slice(0, 30), "odd": np.arange(1, 30, 2)}
    res = de(X, y, n_train=(40,), splits=2, feature_sets=sets, standardize=True,
                            cv_criterion="srcc", plcc_fit="cubic")
    assert [r["feature_set"] for r in res.rows] == list(sets) * 2
    assert all(r["plcc_fit"] == "cubic" and r["standardize"] for r in res.rows)
    assert res.medians[2]["srcc"] > res.medians[1]["srcc"]  # all columns beat a third of them
    with pytest.raises(ValueError, match="reaches column 40"):
        de(X, y, n_train=(40,), splits=1, feature_sets={"x": slice(0, 40)})


def test_bad_inputs_raise_clear_errors():
    X, y = planted(n=100, p=10)
    with pytest.raises(ValueError, match="exceeds the 80 training images"):
        de(X, y, n_train=(90,), splits=1)
    Xn = X.copy()
    Xn[3, 4] = np.nan
    with pytest.raises(ValueError, match="1 non-finite"):
        de(Xn, y, splits=1, n_train=(20,))
    with pytest.raises(ValueError, match="expected 100 values"):
        de(X, y[:-1], splits=1, n_train=(20,))
    with pytest.raises(ValueError, match="regressor"):
        de(X, y, splits=1, n_train=(20,), regressor="lasso")
    with pytest.raises(ValueError, match="exactly one alpha"):
        de(X, y, splits=1, n_train=(20,), alpha_selection="fixed")
    with pytest.raises(ValueError, match="alphas"):
        de(X, y, splits=1, n_train=(20,), alphas=(0.0, 1.0))


# ---------------------------------------------------------------- cross-dataset

def test_cross_dataset_handles_polarity():
    Xs, ys = planted(n=200, p=20, seed=8, noise=0.2)
    rng = np.random.default_rng(9)
    Xt = Xs + 0.05 * rng.normal(size=Xs.shape)
    yt = ys.copy()
    mos_mos = cross(Xs, ys, Xt, yt).rows[0]
    dmos_mos = cross(Xs, -ys, Xt, yt, train_polarity="dmos").rows[0]
    mos_dmos = cross(Xs, ys, Xt, 5 - yt, test_polarity="dmos").rows[0]
    for row in (mos_mos, dmos_mos, mos_dmos):
        assert row["srcc"] > 0.9
    assert dmos_mos["srcc"] == pytest.approx(mos_mos["srcc"], abs=1e-12)
    assert mos_dmos["srcc"] == pytest.approx(mos_mos["srcc"], abs=1e-12)
    assert dmos_mos["train_polarity"] == "dmos" and mos_dmos["test_polarity"] == "dmos"


def test_cross_dataset_large_source_cv_matches_feature_space_cv():
    Xs, ys = planted(n=300, p=12, seed=10, noise=1.0)  # n > P: primal path with per-fold sums
    Xt, yt = planted(n=80, p=12, seed=10, noise=1.0)
    folds = SP.make_folds(300, 5, np.random.default_rng([0, 0]), None)
    alphas = (0.1, 10.0, 1000.0, 30000.0)
    settings = RG.RegressionSettings(alphas=alphas)
    _, fast = RG.fit_select(Xs, ys, settings, folds)
    # reference: a primal refit on each fold's features
    direct = refit_cv(Xs, ys, settings, folds)
    np.testing.assert_allclose(fast, direct, rtol=1e-8)
    row = cross(Xs, ys, Xt, yt, alphas=alphas).rows[0]
    assert row["alpha"] == float(alphas[int(np.flatnonzero(direct == direct.max())[-1])])
    assert row["n_train"] == 300 and row["n_test"] == 80


def test_cross_dataset_oracle_labelled():
    Xs, ys = planted(n=150, p=20, seed=11)
    Xt, yt = planted(n=60, p=20, seed=11)
    res = cross(Xs, ys, Xt, yt, alpha_selection="oracle", regressor="svr")
    assert res.rows[0]["alpha_selection"] == "oracle" and res.rows[0]["regressor"] == "svr"


# ---------------------------------------------------------------- zero-shot and serialisation

def test_zero_shot_correlations_rows_and_polarity():
    rng = np.random.default_rng(12)
    q = rng.normal(size=120)
    dmos = -q + 0.2 * rng.normal(size=120)
    res = PR.zero_shot_correlations({"GRepQ_Z": q, "Q_H": q + rng.normal(size=120)}, dmos, "dmos", dataset="LIVE")
    assert [r["predictor"] for r in res.rows] == ["GRepQ_Z", "Q_H"]
    z = res.rows[0]
    assert z["srcc"] > 0.9 and z["plcc_cubic"] > 0.9 and z["polarity"] == "dmos" and z["n"] == 120
    assert res.rows[1]["srcc"] < z["srcc"]


def test_json_and_csv_round_trip(tmp_path):
    X, y = planted(n=200, p=10)
    res = de(X, y, n_train=(20,), splits=2, dataset="KonIQ", pair_weight="ssim")
    res.rows[0]["plcc"] = float("nan")  # an undefined correlation must survive as null -> NaN
    path = res.save_json(tmp_path / "out" / "de.json")
    text = open(path).read()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))
    doc = json.loads(text)
    assert doc["protocol"] == "data_efficient" and doc["dataset"] == "KonIQ"
    assert all(r["pair_weight"] == "ssim" for r in doc["rows"])
    assert doc["schema"] == RS.RESULT_SCHEMA and doc["rows"][0]["plcc"] is None and len(doc["medians"]) == 1
    back = RS.load_result(path)
    assert math.isnan(back.rows[0]["plcc"])
    assert back.rows[1]["srcc"] == res.rows[1]["srcc"]
    csv_path = res.save_csv(tmp_path / "de.csv")
    lines = open(csv_path).read().splitlines()
    assert lines[0].startswith("protocol,dataset,split,n_test,n_train,alpha,srcc,plcc,krcc")
    assert len(lines) == 3


def test_load_result_rejects_non_results(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"protocol": "fewshot", "rows": []}))
    with pytest.raises(ValueError, match="bad.json"):
        RS.load_result(bad)
