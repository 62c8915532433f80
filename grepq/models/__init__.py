"""The two models: ``low_level.py`` (ResNet18 + MLP head, docs/method.md §2) and ``high_level.py`` (CLIP's image
encoder + head, §3; Eq. 2 is ``pseudo_quality``). Only torch-free constants here, for the command-line parsers."""

#: CLIP attention-pool positional embedding modes (docs/method.md §4; see :mod:`grepq.models.high_level`).
POS_EMBEDDING_MODES = ("drop", "interpolate", "keep")
