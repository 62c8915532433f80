"""Content fingerprints: equal for equal values whatever the container, different for any changed tensor."""
import torch
from conftest import make_ll

from grepq.api import GRepQ
from grepq.fingerprint import tensors_fingerprint
from grepq.models.high_level import HighLevelModel
from grepq.models.low_level import save_low_level


def test_fingerprint_depends_on_values_not_container(tmp_path):
    a = {"w": torch.arange(6.0).reshape(2, 3), "b": torch.ones(3)}
    b = {"b": torch.ones(3).clone(), "w": torch.arange(6.0).reshape(2, 3).t().contiguous().t()}
    assert tensors_fingerprint(a) == tensors_fingerprint(b)
    c = dict(a, w=a["w"].clone())
    c["w"][1, 2] += 1e-6
    assert tensors_fingerprint(a) != tensors_fingerprint(c)
    assert tensors_fingerprint({"w": a["w"].double()}) != tensors_fingerprint({"w": a["w"]})
    assert tensors_fingerprint({"x": torch.ones(2, dtype=torch.bfloat16)})  # no numpy bfloat16 needed
    assert tensors_fingerprint(None) is None


def test_scorer_fingerprints_same_weights_same_print_any_format(tmp_path, small_clip, pristine_patches):
    ll = make_ll(0)
    official = save_low_level(ll, tmp_path / "ll.tar", fmt="official")
    ours = save_low_level(ll, tmp_path / "ll.pt", fmt="grepq")
    hl = HighLevelModel(small_clip)
    fa = GRepQ.from_files(ll_weights=official, hl_weights=hl, pristine=pristine_patches, progress=False).fingerprints()
    fb = GRepQ.from_files(ll_weights=ours, hl_weights=hl, pristine=pristine_patches, progress=False).fingerprints()
    assert fa == fb and all(isinstance(v, str) and len(v) == 16 for v in fa.values())
    fc = GRepQ.from_files(ll_weights=make_ll(1), hl_weights=hl, pristine=pristine_patches,
                          progress=False).fingerprints()
    assert fc["ll"] != fa["ll"] and fc["hl"] == fa["hl"] and fc["pristine"] == fa["pristine"]
    fd = GRepQ.from_files(ll_weights=ll, pristine=pristine_patches[:-1], components=("ll",),
                          progress=False).fingerprints()
    assert fd["pristine"] != fa["pristine"] and fd["hl"] is None and fd["clip_text"] is None
