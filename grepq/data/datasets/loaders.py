"""The ten dataset loaders and the generic CSV loader, one function per dataset (docs/method.md §8).

Each reads the files exactly as the dataset's owners distribute them; see the package docstring.
"""
from __future__ import annotations

import glob
import os
import re
from pathlib import Path, PurePath
from typing import Dict, List, Optional, Tuple

import numpy as np

from .base import DMOS, MOS, POLARITIES, DatasetError, IQADataset, PathLike
from .readers import (
    _cell_text,
    _check_count,
    _check_duplicates,
    _dataset,
    _FolderIndex,
    _listed_dataset,
    _load_mat,
    _locate,
    _mat_scores,
    _mat_strings,
    _mat_var,
    _mat_vector,
    _missing_error,
    _read_csv,
    _read_xlsx,
    _require_file,
    _root,
    _to_score,
)

# ---------------------------------------------------------------------------------------------------------
# Documented image counts (docs/method.md §8 and the owners' readme files / papers).
# ---------------------------------------------------------------------------------------------------------
#: CLIVE: entries in AllImages_release.mat / AllMOS_release.mat (LIVE In the Wild Challenge release).
CLIVE_TOTAL = 1169
#: CLIVE: the first 7 entries (t1.bmp .. t7.bmp) are the subjects' training images, stored in
#: Images/trainingImages/, and are left out of evaluations (docs/method.md §8; pyiqa meta_info_LIVEChallengeDataset.csv
#: lists t1.bmp..t7.bmp first).
CLIVE_NUM_TRAINING = 7
CLIVE_COUNT = CLIVE_TOTAL - CLIVE_NUM_TRAINING  # 1162, the set of the paper's tables
#: KonIQ-10k: rows of koniq10k_scores_and_distributions.csv.
KONIQ_COUNT = 10073
#: LIVE Release 2: the dmos vector is ordered by these folders, each holding img1.bmp .. img<count>.bmp
#: (LIVE R2 readme; the same order in pyiqa scripts/process_live.py).
LIVE_FOLDERS: Tuple[Tuple[str, int], ...] = (
    ("jp2k", 227), ("jpeg", 233), ("wn", 174), ("gblur", 174), ("fastfading", 174),
)
LIVE_TOTAL = sum(n for _, n in LIVE_FOLDERS)  # 982 entries, reference copies included
LIVE_COUNT = 779  # distorted images (entries with orgs == 0)
#: CSIQ: distorted images (30 scenes, 6 distortions, 4-5 levels).
CSIQ_COUNT = 866
#: PIPAL: training part, 200 reference images x 116 distorted versions (PIPAL paper / NTIRE 2021).
PIPAL_COUNT = 23200
#: FLIVE: pictures in the database (Ying et al., "From Patches to Pictures", CVPR 2020).
FLIVE_COUNT = 39810
#: SPAQ: smartphone photographs (Fang et al., CVPR 2020).
SPAQ_COUNT = 11125
#: TID2013: 25 references x 24 distortions x 5 levels.
TID2013_COUNT = 3000
#: KADID-10k: 81 references x 25 distortions x 5 levels.
KADID_COUNT = 10125
#: AGIQA-3K: AI-generated images in data.csv.
AGIQA3K_COUNT = 2982

#: Documented count of each canonical dataset name (CLIVE without its 7 training images).
EXPECTED_COUNTS: Dict[str, int] = {
    "clive": CLIVE_COUNT, "koniq10k": KONIQ_COUNT, "live": LIVE_COUNT, "csiq": CSIQ_COUNT,
    "pipal": PIPAL_COUNT, "flive": FLIVE_COUNT, "spaq": SPAQ_COUNT, "tid2013": TID2013_COUNT,
    "kadid10k": KADID_COUNT, "agiqa3k": AGIQA3K_COUNT,
}

# CSIQ: distortion names in the xlsx (dst_type) -> folder under dst_imgs/, and folder -> the tag in the file
# name (1600.AWGN.1.png, 1600.JPEG.1.png, 1600.jpeg2000.1.png, 1600.fnoise.1.png, 1600.BLUR.1.png,
# 1600.contrast.1.png: the names in pyiqa's meta_info_CSIQDataset.csv). Keys are compared lower-cased with
# spaces, '_', '-' and '/' removed, so "jpeg 2000" and "f noise" match too.
CSIQ_TYPE_TO_FOLDER: Dict[str, str] = {
    "noise": "awgn", "awgn": "awgn", "whitenoise": "awgn",
    "jpeg": "jpeg",
    "jpeg2000": "jpeg2000", "jp2k": "jpeg2000",
    "fnoise": "fnoise", "1fnoise": "fnoise", "pinknoise": "fnoise",
    "blur": "blur", "gblur": "blur",
    "contrast": "contrast",
}
CSIQ_FILE_TAG: Dict[str, str] = {
    "awgn": "AWGN", "jpeg": "JPEG", "jpeg2000": "jpeg2000", "fnoise": "fnoise", "blur": "BLUR",
    "contrast": "contrast",
}
# CSIQ dst_idx numbering (used when dst_type is not recognised): 1 noise ... 6 contrast, the order of the
# xlsx and of public CSIQ loaders.
CSIQ_IDX_TO_FOLDER: Dict[int, str] = {1: "awgn", 2: "jpeg", 3: "jpeg2000", 4: "fnoise", 5: "blur", 6: "contrast"}

#: How many missing file names an error message lists.
# ---------------------------------------------------------------------------------------------------------
# Loaders
# ---------------------------------------------------------------------------------------------------------
def load_clive(root: PathLike, *, include_training: bool = False, strict_count: bool = True) -> IQADataset:
    """LIVE In the Wild Image Quality Challenge (CLIVE): MOS 0-100, higher is better.

    Reads ``Data/AllImages_release.mat`` (variable ``AllImages_release``, a 1169x1 cell array of file names)
    and ``Data/AllMOS_release.mat`` (``AllMOS_release``, 1x1169). The first 7 entries are the subjects'
    training images, stored in ``Images/trainingImages/``; they are dropped by default (1162 images), kept with
    ``include_training=True`` (1169). The other images are in ``Images/``.
    """
    name = "CLIVE"
    root = _root(root, name)
    names_file = _require_file(root / "Data" / "AllImages_release.mat", name, "image-name file")
    mos_file = _require_file(root / "Data" / "AllMOS_release.mat", name, "MOS file")
    names = _mat_strings(_mat_var(_load_mat(names_file, name), "AllImages_release", names_file, name),
                         names_file, "AllImages_release", name)
    scores = _mat_scores(_mat_var(_load_mat(mos_file, name), "AllMOS_release", mos_file, name),
                         mos_file, "AllMOS_release", name)
    if len(names) != len(scores):
        raise DatasetError(f"{name}: {names_file} lists {len(names)} images but {mos_file} holds {len(scores)} "
                           f"scores; expected one score per image")
    _check_duplicates(name, names, [f"entry {i + 1}" for i in range(len(names))], names_file)
    start = 0 if include_training else min(CLIVE_NUM_TRAINING, len(names))
    keep = range(start, len(names))
    expected = CLIVE_TOTAL if include_training else CLIVE_COUNT
    detail = "" if include_training else f" after dropping the {CLIVE_NUM_TRAINING} training images"
    _check_count(name, len(keep), expected, strict_count, names_file, detail)
    rels = [("trainingImages/" if i < CLIVE_NUM_TRAINING else "") + names[i] for i in keep]
    paths = _locate(name, rels, root / "Images", names_file)
    return _dataset(name, root, paths, [scores[i] for i in keep], MOS, None, (0.0, 100.0))


def load_koniq10k(root: PathLike, *, resolution: str = "1024x768", score_column: str = "MOS",
                  strict_count: bool = True) -> IQADataset:
    """KonIQ-10k: ``koniq10k_scores_and_distributions.csv``, higher is better.

    Columns (as distributed): image_name, c1..c5, c_total, MOS, SD, MOS_zscore. ``score_column="MOS"`` (default,
    1-5) or ``"MOS_zscore"`` (rescaled z-scores, 0-100). Images in ``1024x768/`` (default) or ``512x384/``
    (``resolution="512x384"``).
    """
    name = "KonIQ-10k"
    ranges = {"mos": ("MOS", (1.0, 5.0)), "mos_zscore": ("MOS_zscore", (0.0, 100.0))}
    if score_column.casefold() not in ranges:
        raise DatasetError(f"{name}: score_column must be 'MOS' or 'MOS_zscore', got {score_column!r}")
    column, score_range = ranges[score_column.casefold()]
    if resolution not in ("1024x768", "512x384"):
        raise DatasetError(f"{name}: resolution must be '1024x768' or '512x384', got {resolution!r}")
    root = _root(root, name)
    source = _require_file(root / "koniq10k_scores_and_distributions.csv", name, "score file")
    rows = _read_csv(source, name, ["image_name", column])
    names = [r["image_name"] for _, r in rows]
    where = [f"line {line}" for line, _ in rows]
    scores = [_to_score(r[column], source, f"line {line}, column {column}") for line, r in rows]
    return _listed_dataset(name, root, source, names, where, scores, expected=KONIQ_COUNT, strict_count=strict_count,
                           image_dir=root / resolution, polarity=MOS, score_range=score_range)


def load_live(root: PathLike, *, realigned: bool = False, strict_count: bool = True) -> IQADataset:
    """LIVE Image Quality Assessment Database, Release 2: DMOS, lower is better.

    Reads ``dmos.mat`` (variables ``dmos`` and ``orgs``, 1x982) or, with ``realigned=True``,
    ``dmos_realigned.mat`` (``dmos_new``; ``orgs``/``orgs_new``, else ``orgs`` from ``dmos.mat``), and
    ``refnames_all.mat`` (``refnames_all``, the reference image of every entry). The 982 entries are ordered
    jp2k (227), jpeg (233), wn, gblur, fastfading (174 each), files ``<folder>/img<k>.bmp``. Entries with
    ``orgs == 1`` are the undistorted references and are dropped, leaving 779. ``refs`` = ``refnames_all``.
    DMOS is nominally 0-100 (a few values fall slightly outside).
    """
    name = "LIVE"
    root = _root(root, name)
    if realigned:
        source = _require_file(root / "dmos_realigned.mat", name, "realigned DMOS file")
        content = _load_mat(source, name)
        score_var = "dmos_new"
        scores_raw = _mat_var(content, score_var, source, name)
        org_var = next((v for v in ("orgs", "orgs_new") if v in content), None)
        if org_var is not None:
            orgs_raw, orgs_path = content[org_var], source
        else:
            org_var = "orgs"
            orgs_path = _require_file(root / "dmos.mat", name, "DMOS file (for orgs)")
            orgs_raw = _mat_var(_load_mat(orgs_path, name), org_var, orgs_path, name)
    else:
        source = _require_file(root / "dmos.mat", name, "DMOS file")
        content = _load_mat(source, name)
        score_var, org_var, orgs_path = "dmos", "orgs", source
        scores_raw = _mat_var(content, score_var, source, name)
        orgs_raw = _mat_var(content, org_var, source, name)
    refs_path = _require_file(root / "refnames_all.mat", name, "reference-name file")
    refnames = _mat_strings(_mat_var(_load_mat(refs_path, name), "refnames_all", refs_path, name),
                            refs_path, "refnames_all", name)
    scores = _mat_scores(scores_raw, source, score_var, name)
    orgs = _mat_vector(orgs_raw, orgs_path, org_var, name)
    folders = ", ".join(f"{f} {n}" for f, n in LIVE_FOLDERS)
    for what, length, path in ((score_var, len(scores), source), (org_var, len(orgs), orgs_path),
                               ("refnames_all", len(refnames), refs_path)):
        if length != LIVE_TOTAL:
            # Not relaxed by strict_count: the entry order is what maps a score to its image file.
            raise DatasetError(f"{name}: expected {what} in {path} to have {LIVE_TOTAL} entries ({folders}), "
                               f"got {length}")
    if not np.issubdtype(orgs.dtype, np.number) or not np.isin(orgs, (0, 1)).all():
        bad = 0 if not np.issubdtype(orgs.dtype, np.number) else int(np.flatnonzero(~np.isin(orgs, (0, 1)))[0])
        raise DatasetError(f"{name}: expected {org_var} in {orgs_path} to hold 0/1 flags; entry {bad + 1} is "
                           f"{orgs[bad]!r}")
    rels: List[str] = []
    for folder, count in LIVE_FOLDERS:
        rels.extend(f"{folder}/img{k}.bmp" for k in range(1, count + 1))
    keep = [i for i in range(LIVE_TOTAL) if orgs[i] == 0]
    _check_count(name, len(keep), LIVE_COUNT, strict_count, orgs_path, f" with {org_var} == 0 (distorted)")
    paths = _locate(name, [rels[i] for i in keep], root, source)
    return _dataset(name, root, paths, [scores[i] for i in keep], DMOS, [refnames[i] for i in keep],
                    (0.0, 100.0))


def _csiq_folder(dst_type: object, dst_idx: object, source: Path, where: str) -> str:
    key = re.sub(r"[\s_\-/]", "", _cell_text(dst_type).casefold())
    if key in CSIQ_TYPE_TO_FOLDER:
        return CSIQ_TYPE_TO_FOLDER[key]
    try:
        idx = int(float(_cell_text(dst_idx)))
    except ValueError:
        idx = None
    if idx in CSIQ_IDX_TO_FOLDER:
        return CSIQ_IDX_TO_FOLDER[idx]
    raise DatasetError(f"CSIQ: unknown distortion in {source}, {where}: dst_type {dst_type!r}, dst_idx {dst_idx!r}; "
                       f"expected one of {sorted(set(CSIQ_TYPE_TO_FOLDER))}")


def load_csiq(root: PathLike, *, strict_count: bool = True) -> IQADataset:
    """CSIQ: ``csiq.DMOS.xlsx``, sheet ``all_by_image``; DMOS 0-1, lower is better.

    Columns image, dst_idx, dst_type, dst_lev, dmos (and dmos_std); the header row is searched for, as it is not
    on row 1 of the distributed file. Images ``dst_imgs/<folder>/<image>.<TAG>.<lev>.png`` with dst_type
    noise -> awgn/AWGN, jpeg -> jpeg/JPEG, jpeg 2000 -> jpeg2000/jpeg2000, f noise -> fnoise/fnoise,
    blur -> blur/BLUR, contrast -> contrast/contrast. ``refs`` = the scene name (column image).
    """
    name = "CSIQ"
    root = _root(root, name)
    source = _require_file(root / "csiq.DMOS.xlsx", name, "DMOS spreadsheet")
    sheet, rows = _read_xlsx(source, name, ["image", "dst_type", "dst_lev", "dmos"], sheet="all_by_image",
                             optional=["dst_idx"])
    rels, scores, refs, where = [], [], [], []
    for row_number, r in rows:
        at = f"sheet {sheet!r}, row {row_number}"
        scene = _cell_text(r["image"])
        if not scene:
            raise DatasetError(f"{name}: empty image name in {source}, {at}")
        folder = _csiq_folder(r["dst_type"], r["dst_idx"], source, at)
        level_text = _cell_text(r["dst_lev"])
        if not re.fullmatch(r"\d+", level_text):
            raise DatasetError(f"{name}: expected an integer dst_lev in {source}, {at}, got {r['dst_lev']!r}")
        scores.append(_to_score(r["dmos"], source, f"{at}, column dmos"))
        rels.append(f"dst_imgs/{folder}/{scene}.{CSIQ_FILE_TAG[folder]}.{int(level_text)}.png")
        refs.append(scene)
        where.append(at)
    return _listed_dataset(name, root, source, rels, where, scores, expected=CSIQ_COUNT, strict_count=strict_count,
                           image_dir=root, polarity=DMOS, refs=refs, score_range=(0.0, 1.0))


def load_pipal(root: PathLike, *, strict_count: bool = True) -> IQADataset:
    """PIPAL (training part): ``Train_Label/*.txt``, lines ``dist_name,elo``; Elo score, higher is better.

    Distorted images are searched in every ``Distortion_*/`` folder. ``refs`` = the reference image in
    ``Train_Ref/``, named after the distorted name's prefix (``A0001_00_00.bmp`` -> ``A0001.bmp``).
    Elo scores have no fixed range (about 900-1850 in practice): ``score_range`` is None.
    """
    name = "PIPAL"
    root = _root(root, name)
    label_dir = root / "Train_Label"
    if not label_dir.is_dir():
        raise DatasetError(f"{name}: expected the label folder {label_dir}, which is not a folder")
    label_files = sorted(Path(p) for p in glob.glob(str(label_dir / "*.txt")))
    if not label_files:
        raise DatasetError(f"{name}: expected label files {label_dir}/*.txt, found none")
    names, scores, where, sources = [], [], [], []
    for label_file in label_files:
        with open(label_file, encoding="utf-8-sig") as handle:
            for line_number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                fields = [f.strip() for f in line.strip().split(",")]
                at = f"line {line_number}"
                if len(fields) != 2 or not fields[0]:
                    raise DatasetError(f"{name}: expected 'dist_name,elo' in {label_file}, {at}, got {line.strip()!r}")
                names.append(fields[0])
                scores.append(_to_score(fields[1], label_file, at))
                where.append(f"{label_file.name} {at}")
                sources.append(label_file)
    _check_duplicates(name, names, where, label_dir)
    _check_count(name, len(names), PIPAL_COUNT, strict_count, label_dir)
    dist_dirs = sorted(p for p in root.glob("Distortion_*") if p.is_dir())
    if not dist_dirs:
        raise DatasetError(f"{name}: expected the image folders {root}/Distortion_1 .. Distortion_4, found none")
    found: Dict[str, Path] = {}
    for folder in dist_dirs:
        for entry in sorted(os.listdir(folder)):
            if (folder / entry).is_file():
                found.setdefault(entry.casefold(), folder / entry)
    missing = [n for n in names if n.casefold() not in found]
    if missing:
        raise _missing_error(name, missing, len(names), label_dir, ", ".join(str(d) for d in dist_dirs))
    paths = [found[n.casefold()] for n in names]
    refs = [f"{PurePath(n).stem.split('_')[0]}{PurePath(n).suffix}" for n in names]
    return _dataset(name, root, paths, scores, MOS, refs, None)


def load_flive(root: PathLike, *, image_dir: str = "database", strict_count: bool = True) -> IQADataset:
    """FLIVE (PaQ-2-PiQ pictures): ``labels_image.csv`` (columns name, mos); MOS 0-100, higher is better.

    Names include a sub-folder (``voc_emotic_ava/AVA__129332.jpg``) and are relative to ``database/``.
    ``labels_image.csv`` is looked for in the root, then in ``database/``.
    """
    name = "FLIVE"
    root = _root(root, name)
    source = root / "labels_image.csv"
    if not source.is_file() and (root / "database" / "labels_image.csv").is_file():
        source = root / "database" / "labels_image.csv"
    _require_file(source, name, "label file labels_image.csv")
    base = root / image_dir
    if not base.is_dir():
        if image_dir != "database":
            raise DatasetError(f"{name}: expected the image folder {base}, which is not a folder")
        base = source.parent  # the root is the database folder itself
    rows = _read_csv(source, name, ["name", "mos"])
    names = [r["name"] for _, r in rows]
    scores = [_to_score(r["mos"], source, f"line {line}, column mos") for line, r in rows]
    return _listed_dataset(name, root, source, names, [f"line {line}" for line, _ in rows], scores,
                           expected=FLIVE_COUNT, strict_count=strict_count, image_dir=base, polarity=MOS,
                           score_range=(0.0, 100.0))


def load_spaq(root: PathLike, *, strict_count: bool = True) -> IQADataset:
    """SPAQ: ``Annotations/MOS and Image attribute scores.xlsx`` (columns Image name, MOS, ...); MOS 0-100, higher
    is better. Images in ``TestImage/``."""
    name = "SPAQ"
    root = _root(root, name)
    source = _require_file(root / "Annotations" / "MOS and Image attribute scores.xlsx", name, "MOS spreadsheet")
    sheet, rows = _read_xlsx(source, name, ["Image name", "MOS"])
    names, scores, where = [], [], []
    for row_number, r in rows:
        at = f"sheet {sheet!r}, row {row_number}"
        image = _cell_text(r["Image name"])
        if not image:
            raise DatasetError(f"{name}: empty image name in {source}, {at}")
        names.append(image)
        scores.append(_to_score(r["MOS"], source, f"{at}, column MOS"))
        where.append(at)
    return _listed_dataset(name, root, source, names, where, scores, expected=SPAQ_COUNT, strict_count=strict_count,
                           image_dir=root / "TestImage", polarity=MOS, score_range=(0.0, 100.0))


def load_tid2013(root: PathLike, *, strict_count: bool = True) -> IQADataset:
    """TID2013: ``mos_with_names.txt``, lines ``<mos> <name>`` (``5.51429 i01_01_1.bmp``); MOS 0-9, higher is better.

    Images in ``distorted_images/`` (matched case-insensitively: the file mixes ``I01_11_1.BMP`` and
    ``i01_01_1.bmp``). ``refs`` = the reference image ``I<nn>.BMP`` of ``reference_images/`` from the name's
    ``i<nn>`` prefix (upper-cased; on disk the 25th is ``i25.bmp``).
    """
    name = "TID2013"
    root = _root(root, name)
    source = _require_file(root / "mos_with_names.txt", name, "MOS file")
    names, scores, refs, where = [], [], [], []
    with open(source, encoding="utf-8-sig") as handle:
        for line_number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            at = f"line {line_number}"
            fields = line.split()
            if len(fields) != 2:
                raise DatasetError(f"{name}: expected '<mos> <image name>' in {source}, {at}, got {line.strip()!r}")
            match = re.match(r"^[iI](\d{2})_", fields[1])
            if match is None:
                raise DatasetError(f"{name}: expected an image name like i01_01_1.bmp in {source}, {at}, "
                                   f"got {fields[1]!r}")
            scores.append(_to_score(fields[0], source, at))
            names.append(fields[1])
            refs.append(f"I{match.group(1)}.BMP")
            where.append(at)
    return _listed_dataset(name, root, source, names, where, scores, expected=TID2013_COUNT,
                           strict_count=strict_count, image_dir=root / "distorted_images", polarity=MOS, refs=refs,
                           score_range=(0.0, 9.0))


def load_kadid10k(root: PathLike, *, strict_count: bool = True) -> IQADataset:
    """KADID-10k: ``dmos.csv`` (columns dist_img, ref_img, dmos, var); images in ``images/``; ``refs`` = ref_img.

    Despite its name the ``dmos`` column is a degradation-category rating averaged over subjects, 1-5 with 5 =
    imperceptible degradation, so HIGHER IS BETTER and the polarity is "mos". Source: the KADID-10k paper
    (Lin et al., QoMEX 2019, DCR scale) and the file itself, e.g. I01_01_01.png (mildest blur) 4.57 and
    I01_01_05.png (strongest) 1.1 (as copied in pyiqa's meta_info_KADID10kDataset.csv).
    """
    name = "KADID-10k"
    root = _root(root, name)
    source = _require_file(root / "dmos.csv", name, "score file")
    rows = _read_csv(source, name, ["dist_img", "ref_img", "dmos"])
    names = [r["dist_img"] for _, r in rows]
    refs = [r["ref_img"] for _, r in rows]
    scores = [_to_score(r["dmos"], source, f"line {line}, column dmos") for line, r in rows]
    _check_duplicates(name, names, [f"line {line}" for line, _ in rows], source)
    _check_count(name, len(names), KADID_COUNT, strict_count, source)
    paths = _locate(name, names, root / "images", source)
    # "dmos" here is higher-is-better (see the docstring: DCR scale, 5 = imperceptible), hence MOS polarity.
    return _dataset(name, root, paths, scores, MOS, refs, (1.0, 5.0))


#: Folders tried, in order, for the AGIQA-3K images when ``image_dir`` is not given (the download unpacks to
#: a folder whose name varies between copies).
AGIQA3K_IMAGE_DIRS = ("AGIQA-3K", "AGIQA-3k", "agiqa-3k", "AGIQA3K", "images", "Images", "image", "imgs", ".")


def load_agiqa3k(root: PathLike, *, score: str = "quality", image_dir: Optional[str] = None,
                 strict_count: bool = True) -> IQADataset:
    """AGIQA-3K: ``data.csv`` (name, prompt, adj1, adj2, style, mos_quality, std_quality, mos_align, std_align).

    ``score="quality"`` (default, column mos_quality) or ``"alignment"`` (mos_align); both higher is better,
    nominally 0-5. Images: ``image_dir`` if given, else the first folder of :data:`AGIQA3K_IMAGE_DIRS` that holds
    the first listed image.
    """
    name = "AGIQA-3K"
    columns = {"quality": "mos_quality", "alignment": "mos_align"}
    if score not in columns:
        raise DatasetError(f"{name}: score must be 'quality' or 'alignment', got {score!r}")
    column = columns[score]
    root = _root(root, name)
    source = _require_file(root / "data.csv", name, "score file")
    rows = _read_csv(source, name, ["name", column])
    names = [r["name"] for _, r in rows]
    scores = [_to_score(r[column], source, f"line {line}, column {column}") for line, r in rows]
    _check_duplicates(name, names, [f"line {line}" for line, _ in rows], source)
    _check_count(name, len(names), AGIQA3K_COUNT, strict_count, source)
    if image_dir is not None:
        base = root / image_dir
        if not base.is_dir():
            raise DatasetError(f"{name}: expected the image folder {base}, which is not a folder")
    else:
        index = _FolderIndex()
        candidates = [root / d for d in AGIQA3K_IMAGE_DIRS]
        base = next((c for c in candidates if c.is_dir() and names and index.find(c, names[0])), None)
        if base is None:
            tried = ", ".join(str(c) for c in candidates)
            first = names[0] if names else "(no images listed)"
            raise DatasetError(f"{name}: cannot find the image folder: none of {tried} holds {first}; "
                               f"pass image_dir=...")
    paths = _locate(name, names, base, source)
    return _dataset(name, root, paths, scores, MOS, None, (0.0, 5.0))


def load_csv(root: PathLike, *, csv_file: Optional[PathLike] = None, image_column: str = "image",
             score_column: str = "mos", polarity: str = MOS, image_dir: Optional[PathLike] = None,
             ref_column: Optional[str] = None, name: str = "csv",
             score_range: Optional[Tuple[float, float]] = None, expected_count: Optional[int] = None,
             strict_count: bool = True) -> IQADataset:
    """Any dataset described by a CSV file with an image-path column and a score column.

    Args:
        root: the CSV file itself, or a folder (then ``csv_file`` names the file, relative to it or absolute).
        image_column / score_column: the column names (matched case-insensitively).
        polarity: "mos" (higher is better) or "dmos" (lower is better).
        image_dir: folder the image paths are relative to (relative to the root folder, or absolute); default
            the folder of the CSV file. Absolute image paths are used as they are.
        ref_column: optional column of reference-scene ids (makes the dataset synthetic).
        name: display name. score_range: nominal (low, high), if known.
        expected_count: checked like the documented counts of the other loaders (None: no check).
    """
    if polarity not in POLARITIES:
        raise DatasetError(f"{name}: polarity must be one of {POLARITIES}, got {polarity!r}")
    given = Path(root).expanduser().absolute()
    if given.is_file():
        source, folder = given, given.parent
    else:
        folder = _root(given, name)
        if csv_file is None:
            raise DatasetError(f"{name}: {folder} is a folder; expected csv_file=... naming the score CSV")
        source = folder / Path(csv_file).expanduser()
    _require_file(source, name, "score CSV")
    columns = [image_column, score_column] + ([ref_column] if ref_column else [])
    rows = _read_csv(source, name, columns)
    names = [r[image_column] for _, r in rows]
    empty = [line for line, r in rows if not r[image_column]]
    if empty:
        raise DatasetError(f"{name}: empty image path in {source}, line {empty[0]}")
    scores = [_to_score(r[score_column], source, f"line {line}, column {score_column}") for line, r in rows]
    refs = [r[ref_column] for _, r in rows] if ref_column else None
    _check_duplicates(name, names, [f"line {line}" for line, _ in rows], source)
    _check_count(name, len(names), expected_count, strict_count, source)
    base = source.parent if image_dir is None else folder / Path(image_dir).expanduser()
    if not base.is_dir():
        raise DatasetError(f"{name}: expected the image folder {base}, which is not a folder")
    paths = _locate(name, names, base, source)
    return _dataset(name, folder, paths, scores, polarity, refs, score_range)


