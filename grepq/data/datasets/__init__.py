"""Evaluation datasets, read from the files exactly as their owners distribute them (docs/method.md §8).

Every loader takes the folder the dataset was unpacked into and returns an :class:`IQADataset`:
absolute image paths, one float64 score per image, the score polarity and, for the synthetic datasets
(LIVE, CSIQ, PIPAL, TID2013, KADID-10k), the reference scene of every image so that splits can keep a
scene on one side only (docs/method.md §5).

Dataset (count, polarity): score file -> image folder

* CLIVE (1162, or 1169 with its 7 training images; MOS): ``Data/AllImages_release.mat`` +
  ``Data/AllMOS_release.mat`` -> ``Images/`` (training images in ``Images/trainingImages/``)
* KonIQ-10k (10073; MOS): ``koniq10k_scores_and_distributions.csv`` -> ``1024x768/`` or ``512x384/``
* LIVE Release 2 (779; DMOS): ``dmos.mat`` or ``dmos_realigned.mat`` + ``refnames_all.mat`` ->
  ``jp2k/ jpeg/ wn/ gblur/ fastfading/``
* CSIQ (866; DMOS): ``csiq.DMOS.xlsx``, sheet ``all_by_image`` -> ``dst_imgs/<type>/``
* PIPAL (23200; Elo, higher is better): ``Train_Label/*.txt`` (``name,elo``) -> ``Distortion_*/``
* FLIVE (39810; MOS): ``labels_image.csv`` (name, mos) -> ``database/``
* SPAQ (11125; MOS): ``Annotations/MOS and Image attribute scores.xlsx`` -> ``TestImage/``
* TID2013 (3000; MOS): ``mos_with_names.txt`` (``mos name``) -> ``distorted_images/``
* KADID-10k (10125; MOS despite the column name): ``dmos.csv`` -> ``images/``
* AGIQA-3K (2982; MOS): ``data.csv`` -> its image folder (found, or ``image_dir=``)
* any CSV (MOS or DMOS, configurable): an image column and a score column

Every loader checks that each score is a finite number, that no image is listed twice, that the count is the
documented one (``strict_count=False`` accepts a partial copy) and that every image exists (matched
case-insensitively: TID2013 lists ``I01_11_1.BMP`` and ``i01_01_1.bmp``); each failure is a :class:`DatasetError`
naming the file and the row. ``load_dataset(name, root, **options)`` picks a loader by name or alias.
"""
from __future__ import annotations

from .base import DMOS, MOS, POLARITIES, DatasetError, IQADataset, PathLike
from .loaders import (
    CLIVE_NUM_TRAINING,
    CLIVE_TOTAL,
    EXPECTED_COUNTS,
    LIVE_COUNT,
    LIVE_FOLDERS,
    LIVE_TOTAL,
    load_agiqa3k,
    load_clive,
    load_csiq,
    load_csv,
    load_flive,
    load_kadid10k,
    load_koniq10k,
    load_live,
    load_pipal,
    load_spaq,
    load_tid2013,
)
from .registry import ALIASES, DATASETS, TABLE_NAMES, load_dataset, loader_name, table_name

__all__ = [
    "DatasetError", "IQADataset", "MOS", "DMOS", "POLARITIES", "PathLike",
    "load_clive", "load_koniq10k", "load_live", "load_csiq", "load_pipal", "load_flive", "load_spaq",
    "load_tid2013", "load_kadid10k", "load_agiqa3k", "load_csv",
    "DATASETS", "ALIASES", "EXPECTED_COUNTS", "TABLE_NAMES", "loader_name", "table_name", "load_dataset",
    "CLIVE_TOTAL", "CLIVE_NUM_TRAINING", "LIVE_FOLDERS", "LIVE_TOTAL", "LIVE_COUNT",
]
