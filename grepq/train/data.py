"""Deprecated location of the training data (kept for one release).

The training-set layout is :mod:`grepq.data.layout`, the fragment sampler :mod:`grepq.data.fragments` and the
LL/HL training datasets :mod:`grepq.data.training_set`; FSIM per pair is :func:`grepq.data.fsim.fsim_matrix_piq`.
Importing this module warns and re-exports them under their old names.
"""
from __future__ import annotations

import warnings

from ..data.fragments import (FLIP_P, FRAGMENT_GRID, FRAGMENT_PATCH, bilinear_resize, fragment_index, fragment_offsets,
                              fragment_views, sample_fragments, sample_generator, sample_seed, upsample_min_side)
from ..data.fsim import fsim_matrix_piq
from ..data.layout import (FSIM_DIAGONAL_TOL, FSIM_FILE, REF_TAG, VERSIONS_FILE, DataError, data_fingerprint,
                           folder_versions, list_image_folders, read_similarity)
from ..data.training_set import PAIR_MEASURES, EpochSampler, HLTrainingDataset, LLTrainingDataset, hl_preprocess

warnings.warn("grepq.train.data is deprecated: import from grepq.data.training_set (datasets, EpochSampler), "
              "grepq.data.fragments (fragment sampler) and grepq.data.layout (folder layout)",
              DeprecationWarning, stacklevel=2)

__all__ = [
    "DataError", "FRAGMENT_GRID", "FRAGMENT_PATCH", "FLIP_P", "REF_TAG", "FSIM_FILE", "VERSIONS_FILE",
    "sample_seed", "sample_generator", "list_image_folders", "folder_versions", "data_fingerprint",
    "upsample_min_side", "bilinear_resize", "fragment_offsets", "fragment_index", "sample_fragments", "fragment_views",
    "fsim_matrix_piq", "read_similarity", "LLTrainingDataset", "HLTrainingDataset", "EpochSampler",
    "hl_preprocess", "PAIR_MEASURES", "FSIM_DIAGONAL_TOL",
]
