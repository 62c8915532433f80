"""QACL (Eq. 1) and GCL (Eq. 3) against small cases written out term by term from the equations, and the
official forms against a transcription of their formulas as the official code evaluates them (docs/method.md §2-3)."""
import math

import pytest
import torch
import torch.nn.functional as F

from grepq.losses import gcl, group_size_from_divisor, pseudo_label_groups, pseudo_quality, qacl


def unit(v):
    n = math.sqrt(sum(x * x for x in v))
    return [x / n for x in v]


def dot(a, b):
    return sum(x * y for x, y in zip(a, b))


def qacl_paper_by_hand(anchor, positive, sim, tau):
    """Eq. 1 with plain Python floats: sum over images i and versions j."""
    total = 0.0
    for i in range(len(anchor)):
        z = [unit(v) for v in anchor[i]]
        zp = [unit(v) for v in positive[i]]
        d = len(z)
        for j in range(d):
            pos = math.exp(dot(z[j], zp[j]) / tau)
            num = pos + sum(sim[i][j][k] * math.exp(dot(z[j], z[k]) / tau) for k in range(d) if k != j)
            den = pos + sum(math.exp(dot(z[j], z[k]) / tau) for k in range(d) if k != j)
            total += -math.log(num / den)
    return total


def qacl_official_by_hand(anchor, positive, sim, tau):
    """The official cross-view form: rows and columns of exp(A·Pᵀ/τ) weighted by α = 2 − 2/(1+s²), averaged."""
    rows, cols = [], []
    for i in range(len(anchor)):
        a = [unit(v) for v in anchor[i]]
        p = [unit(v) for v in positive[i]]
        d = len(a)
        e = [[math.exp(dot(a[j], p[k]) / tau) for k in range(d)] for j in range(d)]
        al = [[2 - 2 / (1 + sim[i][j][k] ** 2) for k in range(d)] for j in range(d)]
        for j in range(d):
            rows.append(-math.log(sum(al[j][k] * e[j][k] for k in range(d)) / sum(e[j])))
        for k in range(d):
            cols.append(-math.log(sum(al[j][k] * e[j][k] for j in range(d)) / sum(e[j][k] for j in range(d))))
    return sum(rows) / len(rows) + sum(cols) / len(cols)


ANCHOR = [[[1.0, 0.0], [0.6, 0.8], [0.0, 2.0]], [[0.5, 0.5], [-1.0, 0.2], [0.3, -0.9]]]
POSITIVE = [[[0.9, 0.1], [0.5, 1.0], [0.1, 1.0]], [[0.4, 0.6], [-0.8, 0.1], [0.2, -1.0]]]
SIM = [[[1.0, 0.9, 0.2], [0.9, 1.0, 0.5], [0.2, 0.5, 1.0]], [[1.0, 0.3, 0.7], [0.3, 1.0, 0.0], [0.7, 0.0, 1.0]]]


@pytest.mark.parametrize("tau", [0.5, 0.1])
def test_qacl_paper_matches_eq1_by_hand(tau):
    got = qacl(torch.tensor(ANCHOR, dtype=torch.float64), torch.tensor(POSITIVE, dtype=torch.float64),
               torch.tensor(SIM, dtype=torch.float64), tau, "paper")
    assert got.item() == pytest.approx(qacl_paper_by_hand(ANCHOR, POSITIVE, SIM, tau), rel=1e-12)


@pytest.mark.parametrize("tau", [0.5, 0.2])
def test_qacl_official_matches_official_form(tau):
    got = qacl(torch.tensor(ANCHOR, dtype=torch.float64), torch.tensor(POSITIVE, dtype=torch.float64),
               torch.tensor(SIM, dtype=torch.float64), tau, "official")
    assert got.item() == pytest.approx(qacl_official_by_hand(ANCHOR, POSITIVE, SIM, tau), rel=1e-12)


def official_qacl_tensor_form(fi, fa, tau, s):
    """The official tensor computation, step by step (norm floor 1e-8, bmm, α, exp, sums over -1 and -2)."""
    ni = torch.max(torch.linalg.norm(fi, dim=-1), torch.full(fi.shape[:2], 1e-8))
    na = torch.max(torch.linalg.norm(fa, dim=-1), torch.full(fa.shape[:2], 1e-8))
    d = torch.bmm(fi / ni[..., None], (fa / na[..., None]).transpose(1, 2)) / tau
    alpha = 2.0 - 2.0 / (1 + s ** 2)
    pos, neg = alpha * torch.exp(d), torch.exp(d)
    return (-torch.log(pos.sum(-1) / neg.sum(-1))).mean() + (-torch.log(pos.sum(-2) / neg.sum(-2))).mean()


def test_qacl_official_equals_official_tensor_code_fp32():
    g = torch.Generator().manual_seed(0)
    fi, fa = torch.randn(8, 9, 128, generator=g), torch.randn(8, 9, 128, generator=g)
    s = torch.rand(8, 9, 9, generator=g)
    s = (s + s.transpose(1, 2)) / 2
    s[:, range(9), range(9)] = 1.0
    ours = qacl(fi, fa, s, 0.5, "official")
    theirs = official_qacl_tensor_form(fi, fa, 0.5, s)
    assert abs(ours.item() - theirs.item()) < 1e-6


def test_qacl_with_zero_pair_weights_is_infonce():
    """Table 4's "None" row: s ≡ 0 leaves only the positive pair in the numerator."""
    g = torch.Generator().manual_seed(1)
    a, p = torch.randn(2, 4, 8, generator=g), torch.randn(2, 4, 8, generator=g)
    got = qacl(a, p, torch.zeros(2, 4, 4), 0.5, "paper")
    za, zp = F.normalize(a, dim=-1), F.normalize(p, dim=-1)
    expect = 0.0
    for i in range(2):
        for j in range(4):
            logits = torch.cat([(za[i, j] @ zp[i, j])[None],
                                torch.stack([za[i, j] @ za[i, k] for k in range(4) if k != j])]) / 0.5
            expect += -torch.log_softmax(logits, 0)[0]
    assert got.item() == pytest.approx(expect.item(), rel=1e-6)


def test_qacl_pair_weights_one_give_zero_loss():
    a = torch.randn(3, 5, 16)
    assert qacl(a, a.clone(), torch.ones(3, 5, 5), 0.5, "paper").item() == pytest.approx(0.0, abs=1e-6)


def test_qacl_gradients_flow_and_bad_input_raises():
    a = torch.randn(2, 3, 4, requires_grad=True)
    p = torch.randn(2, 3, 4, requires_grad=True)
    qacl(a, p, torch.rand(2, 3, 3), 0.5).backward()
    assert a.grad.abs().sum() > 0 and p.grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"pair_weight must be \(B, D, D\)"):
        qacl(a, p, torch.rand(2, 3, 4))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        qacl(a, p, torch.full((2, 3, 3), 1.5))
    with pytest.raises(ValueError, match="variant"):
        qacl(a, p, torch.rand(2, 3, 3), 0.5, "mine")


GOOD = [[1.0, 0.2], [0.8, 0.4], [0.9, -0.1]]
BAD = [[-0.5, 1.0], [0.1, 0.9], [-0.3, -0.8]]


def gcl_paper_by_hand(good, bad, tau):
    g = [unit(v) for v in good]
    b = [unit(v) for v in bad]
    total = 0.0
    for own, other in ((g, b), (b, g)):
        for i, zi in enumerate(own):
            num = sum(math.exp(dot(zi, zj) / tau) for j, zj in enumerate(own) if j != i)
            den = num + sum(math.exp(dot(zi, zj) / tau) for zj in other)
            total += -math.log(num / den)
    return total


def gcl_official_by_hand(good, bad, tau):
    g = [unit(v) for v in good]
    b = [unit(v) for v in bad]
    m = len(g)
    terms = []
    for own, other in ((b, g), (g, b)):
        for i, zi in enumerate(own):
            pos = sum(dot(zi, zj) for j, zj in enumerate(own) if j != i) / (m - 1)
            num = math.exp(pos / tau)
            terms.append(-math.log(num / (num + sum(math.exp(dot(zi, zj) / tau) for zj in other))))
    return sum(terms) / (2 * m)


@pytest.mark.parametrize("tau", [0.1, 0.5])
def test_gcl_paper_matches_eq3_by_hand(tau):
    got = gcl(torch.tensor(BAD, dtype=torch.float64), torch.tensor(GOOD, dtype=torch.float64), tau, "paper")
    assert got.item() == pytest.approx(gcl_paper_by_hand(GOOD, BAD, tau), rel=1e-12)


@pytest.mark.parametrize("tau", [0.1, 0.5])
def test_gcl_official_matches_official_form(tau):
    got = gcl(torch.tensor(BAD, dtype=torch.float64), torch.tensor(GOOD, dtype=torch.float64), tau, "official")
    assert got.item() == pytest.approx(gcl_official_by_hand(GOOD, BAD, tau), rel=1e-12)


def official_gcl_tensor_form(emb_i, emb_j, tau):
    """The official GroupContrastiveLoss computation: one (2M, 2M) cosine matrix, masks, mean positives."""
    m = emb_i.shape[0]
    neg_mask = (~torch.eye(2 * m, dtype=bool)).float()
    neg_mask[:m, :m] = 0
    neg_mask[m:, m:] = 0
    pos_mask = (~torch.eye(m, dtype=bool)).float()
    r = torch.cat([F.normalize(emb_i, dim=1), F.normalize(emb_j, dim=1)])
    sim = F.cosine_similarity(r.unsqueeze(1), r.unsqueeze(0), dim=2)
    sij = (sim[:m, :m] * pos_mask).sum(1) / (m - 1)
    sji = (sim[m:, m:] * pos_mask).sum(1) / (m - 1)
    num = torch.exp(torch.cat([sij, sji]) / tau)
    den = neg_mask * torch.exp(sim / tau)
    return torch.sum(-torch.log(num / (num + den.sum(1)))) / (2 * m)


def test_gcl_official_equals_official_tensor_code_fp32():
    g = torch.Generator().manual_seed(0)
    bad, good = torch.randn(16, 128, generator=g), torch.randn(16, 128, generator=g)
    for tau in (0.5, 0.1):
        assert abs(gcl(bad, good, tau, "official").item() - official_gcl_tensor_form(bad, good, tau).item()) < 1e-6
        # the official code calls it with the groups in either order; the value is the same
        assert abs(gcl(good, bad, tau, "official").item() - official_gcl_tensor_form(bad, good, tau).item()) < 1e-6


def test_pseudo_label_grouping_eq2():
    cos_good = torch.tensor([0.30, 0.10, 0.25, 0.20, 0.05, 0.40])
    cos_bad = torch.tensor([0.10, 0.30, 0.25, 0.10, 0.35, 0.00])
    q = pseudo_quality(cos_good, cos_bad, k2=10.0)
    expect = [1 / (1 + math.exp(10 * (b - g))) for g, b in zip(cos_good.tolist(), cos_bad.tolist())]
    assert q.tolist() == pytest.approx(expect, rel=1e-6)
    bad_idx, good_idx = pseudo_label_groups(q, 2)
    assert sorted(bad_idx.tolist()) == [1, 4]     # the two lowest Q_H
    assert sorted(good_idx.tolist()) == [0, 5]    # the two highest
    with pytest.raises(ValueError, match="2M <= N"):
        pseudo_label_groups(q, 4)


def test_group_size_presets():
    assert group_size_from_divisor(128, 8) == 16   # paper: k = 8
    assert group_size_from_divisor(128, 32) == 4   # official config: N / 32
    assert group_size_from_divisor(128, 16) == 8   # authors' issue answer: M = 8


def test_eq2_is_one_function(small_clip, monkeypatch):
    """The pseudo_quality tested above is the function HighLevelModel (zero-shot Q_H, HL pseudo-labels) runs."""
    from grepq.models import high_level as hlm
    assert pseudo_quality is hlm.pseudo_quality
    hl = hlm.HighLevelModel(small_clip)
    calls = []
    monkeypatch.setattr(hlm, "pseudo_quality", lambda g, b, k2: calls.append(k2) or torch.zeros_like(g))
    hl.quality_from_embedding(torch.randn(3, hl.embed_dim))
    assert calls == [10.0]
