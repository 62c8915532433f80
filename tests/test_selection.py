"""Greedy k-center selection of the images to label (grepq.eval.selection): known answers on toy features."""
import numpy as np
import pytest
from scipy.spatial.distance import cdist

from grepq.eval.selection import SELECTION_RULES, coverage_radius, k_center_greedy, select_subset
from grepq.eval.splits import split_indices

BLOB_SIZES = (120, 40, 15, 4, 1)


def blobs(seed=0, dim=8, sizes=BLOB_SIZES):
    """Five well-separated Gaussian blobs of different sizes (centres >= 40 apart, std 1), shuffled; columns with
    different scales (x 1 ... x 1000) so standardisation matters. Returns (features, blob label of each row)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 60, (len(sizes), dim))
    while cdist(centres, centres)[np.triu_indices(len(sizes), 1)].min() < 40:
        centres = rng.normal(0, 60, (len(sizes), dim))
    labels = np.repeat(np.arange(len(sizes)), sizes)
    x = centres[labels] + rng.normal(0, 1, (labels.size, dim))
    order = rng.permutation(labels.size)
    scales = np.logspace(0, 3, dim)
    return (x[order] * scales).astype(np.float32), labels[order]


def brute_force(x, budget, first=None, initial=()):
    """The rule written the slow way: full distance matrix of the standardised rows."""
    std = x.std(axis=0)
    z = (x - x.mean(axis=0)) / np.where(std > 0, std, 1)
    dist = cdist(z, z)
    centres = list(initial) if initial else [first]
    chosen = [] if initial else [first]
    while len(chosen) < budget:
        d = dist[:, centres].min(axis=1)
        d[centres] = -1
        pick = int(np.argmax(d))
        centres.append(pick)
        chosen.append(pick)
    return chosen


def test_hand_computed_1d_example():
    x = np.array([[0.0], [1.0], [2.0], [10.0], [11.0]])
    # seed 11 draws index 0 (default_rng(11).integers(0, 5) == 0). Distances to {0}: 1, 2, 10, 11 -> 11 (index 4);
    # to {0, 11}: 1, 2, 1 -> 2 (index 2); to {0, 2, 11}: 1 (point 1) and 1 (point 10), a tie -> lowest index 1;
    # then 10 (index 3). Standardising a single column rescales all distances alike: same order.
    assert np.random.default_rng(11).integers(0, 5) == 0
    for standardize in (True, False):
        assert k_center_greedy(x, 5, seed=11, standardize=standardize).tolist() == [0, 4, 2, 1, 3]
    # seed 0 draws index 4 (point 11): farthest is 0, then 2, then the tie 1 / 10 -> 1, then 10
    assert k_center_greedy(x, 5, seed=0).tolist() == [4, 0, 2, 1, 3]
    # point 0 already labelled: it is a centre, never selected
    assert k_center_greedy(x, 4, initial=[0], seed=123).tolist() == [4, 2, 1, 3]
    assert k_center_greedy(x, 0).tolist() == []


def test_one_image_per_cluster_before_any_second():
    x, lab = blobs()
    for seed in range(6):
        sel = k_center_greedy(x, 12, seed=seed)
        assert sorted(lab[sel[:5]].tolist()) == [0, 1, 2, 3, 4], seed
        assert len(set(sel.tolist())) == 12
    # standardised selection ignores per-column units and offsets
    rng = np.random.default_rng(5)
    rescaled = x.astype(np.float64) * rng.uniform(0.01, 100, x.shape[1]) + rng.normal(0, 50, x.shape[1])
    assert k_center_greedy(rescaled, 12, seed=3).tolist() == k_center_greedy(x, 12, seed=3).tolist()


def test_standardisation_lets_small_unit_columns_count():
    """Like HL (1024 columns) beside LL (128): a part in small units next to one large structureless column."""
    x, lab = blobs(dim=16)
    x = x / np.abs(x).max() * 0.01                                           # the clusters, in small units
    feats = np.hstack([x, np.random.default_rng(0).uniform(0, 100, (x.shape[0], 1))])
    covered = [sorted(lab[k_center_greedy(feats, 5, seed=s, standardize=st)]) == [0, 1, 2, 3, 4]
               for st in (True, False) for s in range(10)]
    assert sum(covered[:10]) == 10 and sum(covered[10:]) == 0                # standardised: always; raw: never


def test_deterministic_seeded_and_nested():
    x, lab = blobs(seed=1)
    a = k_center_greedy(x, 20, seed=7)
    assert a.tolist() == k_center_greedy(x, 20, seed=7).tolist()
    assert a[0] == np.random.default_rng(7).integers(0, x.shape[0])         # one documented draw
    assert a.tolist() == k_center_greedy(x, 20, seed=np.random.default_rng(7)).tolist()
    b = k_center_greedy(x, 20, seed=8)
    assert a[0] != b[0]                                                      # another seed, another first centre
    assert sorted(lab[b[:5]].tolist()) == [0, 1, 2, 3, 4]                    # ... same coverage
    for n in (1, 5, 13):                                                     # 50 ⊂ 100 ⊂ 200, as the protocol needs
        assert k_center_greedy(x, n, seed=7).tolist() == a[:n].tolist()


def test_matches_brute_force_and_blocks_do_not_matter():
    x = np.random.default_rng(3).normal(size=(57, 6)) * np.array([1, 10, 100, 0.1, 1, 5])
    x[:, 4] = 2.5                                                            # a constant column: left at 0
    first = int(np.random.default_rng(0).integers(0, 57))
    expect = brute_force(x, 25, first=first)
    for block_rows in (1, 7, 4096):
        assert k_center_greedy(x, 25, seed=0, block_rows=block_rows).tolist() == expect
    assert k_center_greedy(x, 10, initial=[3, 40]).tolist() == brute_force(x, 10, initial=[3, 40])


def test_labelled_images_are_centres_and_never_selected():
    x, lab = blobs(seed=2)
    in_blob1 = np.flatnonzero(lab == 1)
    initial = [int(in_blob1[0])]
    sel = k_center_greedy(x, 30, initial=initial, seed=0)
    assert initial[0] not in sel
    # blob 1 counts as covered: the first four picks are the four other blobs
    assert sorted(lab[sel[:4]].tolist()) == [0, 2, 3, 4]
    # the one-image blob (label 4) already labelled: it is never picked, every image of the others can be
    single = int(np.flatnonzero(lab == 4)[0])
    sel = k_center_greedy(x, x.shape[0] - 1, initial=[single])
    assert single not in sel and sorted(sel.tolist()) == sorted(set(range(x.shape[0])) - {single})
    assert sorted(lab[sel[:4]].tolist()) == [0, 1, 2, 3]


def test_select_subset_reads_only_the_pool():
    x, lab = blobs(seed=4)
    x = x.astype(np.float64)
    pool = np.flatnonzero(lab != 0)[::-1].copy()                            # blob 0 (the big one) is "test"
    x_nan = x.copy()
    x_nan[lab == 0] = np.nan                                                 # never read: no NaN error
    sel = select_subset(x_nan, pool, 10, "k-center", 5)
    assert np.isin(sel, pool).all() and len(set(sel.tolist())) == 10
    assert sorted(lab[sel[:4]].tolist()) == [1, 2, 3, 4]
    # the same as k_center_greedy on the pool's rows (standardised over the pool only)
    assert sel.tolist() == pool[k_center_greedy(x[pool], 10, seed=5)].tolist()
    labelled = pool[:3]
    sel2 = select_subset(x_nan, pool, 10, "k-center", 5, labelled=labelled)
    assert not np.isin(sel2, labelled).any() and np.isin(sel2, pool).all()


def test_random_rule_is_the_protocols_rule_bit_for_bit():
    x, _ = blobs()
    assert SELECTION_RULES == ("random", "k-center")
    for s in range(3):
        train, _test = split_indices(x.shape[0], s, seed=0)
        for n in (5, 50):
            got = select_subset(x, train, n, "random", [0, s])
            assert got.dtype == train.dtype and np.array_equal(got, train[:n])
    train, _test = split_indices(x.shape[0], 0, seed=0)
    assert np.array_equal(select_subset(x, train, 5, "random", labelled=train[1:3]), train[[0, 3, 4, 5, 6]])


def test_errors_name_the_numbers():
    x, _ = blobs()
    n = x.shape[0]
    with pytest.raises(ValueError, match=f"budget {n + 1} exceeds the {n} candidate images"):
        k_center_greedy(x, n + 1)
    with pytest.raises(ValueError, match=rf"budget {n} exceeds the {n - 2} candidate images \({n} rows, 2 of"):
        k_center_greedy(x, n, initial=[0, 1])
    bad = x.copy()
    bad[3, 2] = np.nan
    bad[7, 0] = np.inf
    with pytest.raises(ValueError, match="2 non-finite"):
        k_center_greedy(bad, 3)
    with pytest.raises(ValueError, match="2 non-finite"):
        k_center_greedy(bad, 3, standardize=False)
    with pytest.raises(ValueError, match="pool: expected a non-empty"):
        select_subset(x, [], 3, "k-center")
    with pytest.raises(ValueError, match=r"n=6 exceeds the 5 candidate images of the pool \(5 in the pool"):
        select_subset(x, np.arange(5), 6, "random")
    with pytest.raises(ValueError, match="rule"):
        select_subset(x, np.arange(5), 2, "farthest")
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 180\)"):
        select_subset(x, [0, 180], 1, "k-center")
    with pytest.raises(ValueError, match="repeated"):
        k_center_greedy(x, 2, initial=[4, 4])
    with pytest.raises(ValueError, match="2-D"):
        k_center_greedy(x[0], 1)


def test_k_center_covers_better_than_random():
    """The objective it approximates: the largest distance from an image to its nearest selected image."""
    x, _ = blobs(seed=6)
    kc = k_center_greedy(x, 10, seed=0)
    rnd = np.random.default_rng(0).permutation(x.shape[0])[:10]
    assert coverage_radius(x, kc) < coverage_radius(x, rnd)
    assert coverage_radius(x, kc) <= 2 * coverage_radius(x, k_center_greedy(x, 10, seed=1)) + 1e-9
