"""grepq: the reference implementation of GRepQ (Srinath et al., WACV 2024).

Quick start::

    from grepq import GRepQ
    scorer = GRepQ.from_files(ll_weights="low_level_model_weights.tar", hl_weights="high_level_model_weights.pth",
                              clip_weights="RN50.pt", pristine="pristine_patches_096_0.75_0.80.hdf5")
    rows = scorer.score(["photo.jpg", "folder/"])   # [ScoreRow(image, q_low, q_high, q_total), ...]
"""
from .version import __version__

__all__ = ["GRepQ", "ScoreRow", "ScoringSettings", "__version__"]


def __getattr__(name):  # import torch-heavy parts on first use
    if name in ("GRepQ", "ScoreRow", "ScoringSettings"):
        from . import api
        return getattr(api, name)
    raise AttributeError(f"module 'grepq' has no attribute {name!r}")
