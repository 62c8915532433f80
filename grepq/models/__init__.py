"""The two models: low-level (``low_level.py``: ResNet18 + MLP head, method.md §2) and high-level (``high_level.py``:
CLIP's image encoder + head, docs/method.md §3; Eq. 2 is ``high_level.pseudo_quality``).

Only torch-free constants live here, so that the command-line parsers can read them without importing torch.
"""

#: CLIP attention-pool positional embedding modes (docs/method.md §4; see :mod:`grepq.models.high_level`).
POS_EMBEDDING_MODES = ("drop", "interpolate", "keep")
