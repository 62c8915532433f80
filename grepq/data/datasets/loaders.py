"""The ten dataset loaders and the generic CSV loader, one function per dataset (docs/method.md §8; files, counts
and polarities in the package docstring)."""
from __future__ import annotations

import glob
import os
import re
from pathlib import Path, PurePath
from typing import Dict, Optional, Tuple

import numpy as np

from .base import DMOS, MOS, POLARITIES, DatasetError, IQADataset, PathLike
from .readers import (
    Listing,
    _cell_text,
    _check_count,
    _check_duplicates,
    _checked,
    _csv_listing,
    _dataset,
    _FolderIndex,
    _listed_dataset,
    _load_mat,
    _locate,
    _mat_scores,
    _mat_strings,
    _mat_vector,
    _missing_error,
    _read_xlsx,
    _require_dir,
    _require_file,
    _root,
    _to_score,
)

#: CLIVE: entries of AllImages_release.mat; the first 7 (t1.bmp .. t7.bmp, in Images/trainingImages/) are the
#: subjects' training images, left out of evaluations (docs/method.md §8; pyiqa's meta_info lists them first).
CLIVE_TOTAL = 1169
CLIVE_NUM_TRAINING = 7
#: LIVE Release 2: the dmos vector is ordered by these folders of img1.bmp .. img<count>.bmp (LIVE R2 readme).
LIVE_FOLDERS: Tuple[Tuple[str, int], ...] = (
    ("jp2k", 227), ("jpeg", 233), ("wn", 174), ("gblur", 174), ("fastfading", 174),
)
LIVE_TOTAL = sum(n for _, n in LIVE_FOLDERS)  # 982 entries, reference copies included
LIVE_COUNT = 779  # distorted images (entries with orgs == 0)

#: Documented image count of each dataset (owners' readme files and papers; CLIVE without its training images).
EXPECTED_COUNTS: Dict[str, int] = {
    "clive": CLIVE_TOTAL - CLIVE_NUM_TRAINING,  # 1162, the set of the paper's tables
    "koniq10k": 10073,  # rows of koniq10k_scores_and_distributions.csv
    "live": LIVE_COUNT,
    "csiq": 866,  # 30 scenes, 6 distortions, 4-5 levels
    "pipal": 23200,  # training part: 200 references x 116 distorted versions (NTIRE 2021)
    "flive": 39810,  # Ying et al., "From Patches to Pictures", CVPR 2020
    "spaq": 11125,  # Fang et al., CVPR 2020
    "tid2013": 3000,  # 25 references x 24 distortions x 5 levels
    "kadid10k": 10125,  # 81 references x 25 distortions x 5 levels
    "agiqa3k": 2982,  # rows of data.csv
}

#: CSIQ: dst_type (lower-cased, without spaces, '_', '-', '/') -> folder under dst_imgs/; folder -> tag in the file
#: name (1600.AWGN.1.png, as in pyiqa's meta_info_CSIQDataset.csv); dst_idx -> folder when dst_type is unknown.
CSIQ_TYPE_TO_FOLDER: Dict[str, str] = {
    "noise": "awgn", "awgn": "awgn", "whitenoise": "awgn", "jpeg": "jpeg", "jpeg2000": "jpeg2000",
    "jp2k": "jpeg2000", "fnoise": "fnoise", "1fnoise": "fnoise", "pinknoise": "fnoise", "blur": "blur",
    "gblur": "blur", "contrast": "contrast",
}
CSIQ_FILE_TAG: Dict[str, str] = {
    "awgn": "AWGN", "jpeg": "JPEG", "jpeg2000": "jpeg2000", "fnoise": "fnoise", "blur": "BLUR", "contrast": "contrast",
}
CSIQ_IDX_TO_FOLDER: Dict[int, str] = {1: "awgn", 2: "jpeg", 3: "jpeg2000", 4: "fnoise", 5: "blur", 6: "contrast"}
#: Folders tried, in order, for the AGIQA-3K images when ``image_dir`` is not given (the name varies by copy).
AGIQA3K_IMAGE_DIRS = ("AGIQA-3K", "AGIQA-3k", "agiqa-3k", "AGIQA3K", "images", "Images", "image", "imgs", ".")


def load_clive(root: PathLike, *, include_training: bool = False, strict_count: bool = True) -> IQADataset:
    """CLIVE: ``Data/AllImages_release.mat`` (1169x1 cell of names) + ``Data/AllMOS_release.mat`` (1x1169); MOS
    0-100, higher is better. The 7 training images are dropped unless ``include_training`` (1162 or 1169 images)."""
    name = "CLIVE"
    root = _root(root, name)
    names_file = _require_file(root / "Data" / "AllImages_release.mat", name, "image-name file")
    mos_file = _require_file(root / "Data" / "AllMOS_release.mat", name, "MOS file")
    names = _mat_strings(_load_mat(names_file, name), "AllImages_release", names_file, name)
    scores = _mat_scores(_load_mat(mos_file, name), "AllMOS_release", mos_file, name)
    if len(names) != len(scores):
        raise DatasetError(f"{name}: {names_file} lists {len(names)} images but {mos_file} holds {len(scores)} "
                           f"scores; expected one score per image")
    _check_duplicates(name, names, [f"entry {i + 1}" for i in range(len(names))], names_file)
    start = 0 if include_training else min(CLIVE_NUM_TRAINING, len(names))
    expected = CLIVE_TOTAL if include_training else EXPECTED_COUNTS["clive"]
    detail = "" if include_training else f" after dropping the {CLIVE_NUM_TRAINING} training images"
    _check_count(name, len(names) - start, expected, strict_count, names_file, detail)
    rels = [("trainingImages/" if i < CLIVE_NUM_TRAINING else "") + names[i] for i in range(start, len(names))]
    paths = _locate(name, rels, root / "Images", names_file)
    return _dataset(name, root, paths, scores[start:], MOS, None, (0.0, 100.0))


def load_koniq10k(root: PathLike, *, resolution: str = "1024x768", score_column: str = "MOS",
                  strict_count: bool = True) -> IQADataset:
    """KonIQ-10k: ``koniq10k_scores_and_distributions.csv``, higher is better: ``score_column`` "MOS" (1-5) or
    "MOS_zscore" (0-100); images in ``1024x768/`` or ``512x384/`` (``resolution``)."""
    name = "KonIQ-10k"
    ranges = {"mos": ("MOS", (1.0, 5.0)), "mos_zscore": ("MOS_zscore", (0.0, 100.0))}
    if score_column.casefold() not in ranges:
        raise DatasetError(f"{name}: score_column must be 'MOS' or 'MOS_zscore', got {score_column!r}")
    column, score_range = ranges[score_column.casefold()]
    if resolution not in ("1024x768", "512x384"):
        raise DatasetError(f"{name}: resolution must be '1024x768' or '512x384', got {resolution!r}")
    root = _root(root, name)
    listing = _csv_listing(_require_file(root / "koniq10k_scores_and_distributions.csv", name, "score file"), name,
                           "image_name", column)
    return _listed_dataset(name, root, listing, root / resolution, MOS, score_range, EXPECTED_COUNTS["koniq10k"],
                           strict_count)


def load_live(root: PathLike, *, realigned: bool = False, strict_count: bool = True) -> IQADataset:
    """LIVE Release 2: ``dmos.mat`` (``dmos``, ``orgs``, 1x982) or, ``realigned``, ``dmos_realigned.mat``
    (``dmos_new``; ``orgs``/``orgs_new``, else ``orgs`` of dmos.mat), and ``refnames_all.mat``; DMOS ~0-100, lower
    is better. Entries follow :data:`LIVE_FOLDERS` (``<folder>/img<k>.bmp``); those with ``orgs == 1`` are the
    references and are dropped (779 left). ``refs`` = ``refnames_all``."""
    name = "LIVE"
    root = _root(root, name)
    source = _require_file(root / ("dmos_realigned.mat" if realigned else "dmos.mat"), name,
                           "realigned DMOS file" if realigned else "DMOS file")
    content = _load_mat(source, name)
    score_var = "dmos_new" if realigned else "dmos"
    scores = _mat_scores(content, score_var, source, name)
    org_var = "orgs_new" if realigned and "orgs" not in content and "orgs_new" in content else "orgs"
    orgs_content, orgs_path = content, source
    if org_var not in content:  # dmos_realigned.mat without orgs: those of dmos.mat
        orgs_path = _require_file(root / "dmos.mat", name, "DMOS file (for orgs)")
        orgs_content = _load_mat(orgs_path, name)
    orgs = _mat_vector(orgs_content, org_var, orgs_path, name)
    refs_path = _require_file(root / "refnames_all.mat", name, "reference-name file")
    refnames = _mat_strings(_load_mat(refs_path, name), "refnames_all", refs_path, name)
    folders = ", ".join(f"{f} {n}" for f, n in LIVE_FOLDERS)
    for what, length, path in ((score_var, len(scores), source), (org_var, len(orgs), orgs_path),
                               ("refnames_all", len(refnames), refs_path)):
        if length != LIVE_TOTAL:  # not relaxed by strict_count: the entry order maps a score to its file
            raise DatasetError(f"{name}: expected {what} in {path} to have {LIVE_TOTAL} entries ({folders}), "
                               f"got {length}")
    if not np.issubdtype(orgs.dtype, np.number) or not np.isin(orgs, (0, 1)).all():
        bad = 0 if not np.issubdtype(orgs.dtype, np.number) else int(np.flatnonzero(~np.isin(orgs, (0, 1)))[0])
        raise DatasetError(f"{name}: expected {org_var} in {orgs_path} to hold 0/1 flags; entry {bad + 1} is "
                           f"{orgs[bad]!r}")
    rels = [f"{folder}/img{k}.bmp" for folder, count in LIVE_FOLDERS for k in range(1, count + 1)]
    keep = [i for i in range(LIVE_TOTAL) if orgs[i] == 0]
    _check_count(name, len(keep), LIVE_COUNT, strict_count, orgs_path, f" with {org_var} == 0 (distorted)")
    paths = _locate(name, [rels[i] for i in keep], root, source)
    return _dataset(name, root, paths, [scores[i] for i in keep], DMOS, [refnames[i] for i in keep],
                    (0.0, 100.0))


def _csiq_folder(dst_type: object, dst_idx: object, source: Path, where: str) -> str:
    key = re.sub(r"[\s_\-/]", "", _cell_text(dst_type).casefold())
    try:
        idx = int(float(_cell_text(dst_idx)))
    except ValueError:
        idx = None
    folder = CSIQ_TYPE_TO_FOLDER.get(key) or CSIQ_IDX_TO_FOLDER.get(idx)
    if folder is None:
        raise DatasetError(f"CSIQ: unknown distortion in {source}, {where}: dst_type {dst_type!r}, dst_idx "
                           f"{dst_idx!r}; expected one of {sorted(set(CSIQ_TYPE_TO_FOLDER))}")
    return folder


def load_csiq(root: PathLike, *, strict_count: bool = True) -> IQADataset:
    """CSIQ: ``csiq.DMOS.xlsx``, sheet ``all_by_image`` (image, dst_idx, dst_type, dst_lev, dmos; the header row
    is searched for); DMOS 0-1, lower is better. Images ``dst_imgs/<folder>/<image>.<TAG>.<lev>.png``
    (:data:`CSIQ_TYPE_TO_FOLDER`, :data:`CSIQ_FILE_TAG`); ``refs`` = the scene (column image)."""
    name = "CSIQ"
    root = _root(root, name)
    source = _require_file(root / "csiq.DMOS.xlsx", name, "DMOS spreadsheet")
    sheet, rows = _read_xlsx(source, name, ["image", "dst_type", "dst_lev", "dmos"], sheet="all_by_image",
                             optional=["dst_idx"])
    listing = Listing(source, [], [], [], [])
    for row_number, r in rows:
        at = f"sheet {sheet!r}, row {row_number}"
        scene = _cell_text(r["image"])
        if not scene:
            raise DatasetError(f"{name}: empty image name in {source}, {at}")
        folder = _csiq_folder(r["dst_type"], r["dst_idx"], source, at)
        level = _cell_text(r["dst_lev"])
        if not re.fullmatch(r"\d+", level):
            raise DatasetError(f"{name}: expected an integer dst_lev in {source}, {at}, got {r['dst_lev']!r}")
        listing.scores.append(_to_score(r["dmos"], source, f"{at}, column dmos"))
        listing.names.append(f"dst_imgs/{folder}/{scene}.{CSIQ_FILE_TAG[folder]}.{int(level)}.png")
        listing.refs.append(scene)
        listing.where.append(at)
    return _listed_dataset(name, root, listing, root, DMOS, (0.0, 1.0), EXPECTED_COUNTS["csiq"], strict_count)


def load_pipal(root: PathLike, *, strict_count: bool = True) -> IQADataset:
    """PIPAL (training part): ``Train_Label/*.txt``, lines ``dist_name,elo``; Elo, higher is better, unbounded.

    Images are searched in every ``Distortion_*/``; ``refs`` = the reference named by the distorted name's prefix
    (``A0001_00_00.bmp`` -> ``A0001.bmp``).
    """
    name = "PIPAL"
    root = _root(root, name)
    label_dir = root / "Train_Label"
    if not label_dir.is_dir():
        raise DatasetError(f"{name}: expected the label folder {label_dir}, which is not a folder")
    label_files = sorted(Path(p) for p in glob.glob(str(label_dir / "*.txt")))
    if not label_files:
        raise DatasetError(f"{name}: expected label files {label_dir}/*.txt, found none")
    listing = Listing(label_dir, [], [], [])
    for label_file in label_files:
        with open(label_file, encoding="utf-8-sig") as handle:
            for line_number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                fields = [f.strip() for f in line.strip().split(",")]
                at = f"line {line_number}"
                if len(fields) != 2 or not fields[0]:
                    raise DatasetError(f"{name}: expected 'dist_name,elo' in {label_file}, {at}, got {line.strip()!r}")
                listing.names.append(fields[0])
                listing.scores.append(_to_score(fields[1], label_file, at))
                listing.where.append(f"{label_file.name} {at}")
    _checked(name, listing, EXPECTED_COUNTS["pipal"], strict_count)
    dist_dirs = sorted(p for p in root.glob("Distortion_*") if p.is_dir())
    if not dist_dirs:
        raise DatasetError(f"{name}: expected the image folders {root}/Distortion_1 .. Distortion_4, found none")
    found: Dict[str, Path] = {}
    for folder in dist_dirs:
        for entry in sorted(os.listdir(folder)):
            if (folder / entry).is_file():
                found.setdefault(entry.casefold(), folder / entry)
    missing = [n for n in listing.names if n.casefold() not in found]
    if missing:
        raise _missing_error(name, missing, len(listing.names), label_dir, ", ".join(str(d) for d in dist_dirs))
    refs = [f"{PurePath(n).stem.split('_')[0]}{PurePath(n).suffix}" for n in listing.names]
    return _dataset(name, root, [found[n.casefold()] for n in listing.names], listing.scores, MOS, refs, None)


def load_flive(root: PathLike, *, image_dir: str = "database", strict_count: bool = True) -> IQADataset:
    """FLIVE (PaQ-2-PiQ): ``labels_image.csv`` (name, mos; in the root, else in ``database/``); MOS 0-100, higher
    is better. Names include a sub-folder (``voc_emotic_ava/AVA__129332.jpg``), relative to ``database/``."""
    name = "FLIVE"
    root = _root(root, name)
    source = root / "labels_image.csv"
    if not source.is_file() and (root / "database" / "labels_image.csv").is_file():
        source = root / "database" / "labels_image.csv"
    _require_file(source, name, "label file labels_image.csv")
    base = root / image_dir
    if not base.is_dir() and image_dir == "database":
        base = source.parent  # the root is the database folder itself
    return _listed_dataset(name, root, _csv_listing(source, name, "name", "mos"), _require_dir(base, name), MOS,
                           (0.0, 100.0), EXPECTED_COUNTS["flive"], strict_count)


def load_spaq(root: PathLike, *, strict_count: bool = True) -> IQADataset:
    """SPAQ: ``Annotations/MOS and Image attribute scores.xlsx`` (Image name, MOS, ...); MOS 0-100, higher is
    better. Images in ``TestImage/``."""
    name = "SPAQ"
    root = _root(root, name)
    source = _require_file(root / "Annotations" / "MOS and Image attribute scores.xlsx", name, "MOS spreadsheet")
    sheet, rows = _read_xlsx(source, name, ["Image name", "MOS"])
    listing = Listing(source, [], [], [])
    for row_number, r in rows:
        at = f"sheet {sheet!r}, row {row_number}"
        image = _cell_text(r["Image name"])
        if not image:
            raise DatasetError(f"{name}: empty image name in {source}, {at}")
        listing.names.append(image)
        listing.scores.append(_to_score(r["MOS"], source, f"{at}, column MOS"))
        listing.where.append(at)
    return _listed_dataset(name, root, listing, root / "TestImage", MOS, (0.0, 100.0), EXPECTED_COUNTS["spaq"],
                           strict_count)


def load_tid2013(root: PathLike, *, strict_count: bool = True) -> IQADataset:
    """TID2013: ``mos_with_names.txt``, lines ``<mos> <name>``; MOS 0-9, higher is better. Images in
    ``distorted_images/`` (matched case-insensitively: the file mixes ``I01_11_1.BMP`` and ``i01_01_1.bmp``);
    ``refs`` = ``I<nn>.BMP`` from the name's ``i<nn>`` prefix."""
    name = "TID2013"
    root = _root(root, name)
    source = _require_file(root / "mos_with_names.txt", name, "MOS file")
    listing = Listing(source, [], [], [], [])
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
            listing.scores.append(_to_score(fields[0], source, at))
            listing.names.append(fields[1])
            listing.refs.append(f"I{match.group(1)}.BMP")
            listing.where.append(at)
    return _listed_dataset(name, root, listing, root / "distorted_images", MOS, (0.0, 9.0),
                           EXPECTED_COUNTS["tid2013"], strict_count)


def load_kadid10k(root: PathLike, *, strict_count: bool = True) -> IQADataset:
    """KADID-10k: ``dmos.csv`` (dist_img, ref_img, dmos, var); images in ``images/``; ``refs`` = ref_img.

    Despite its name ``dmos`` is a degradation-category rating, 1-5 with 5 = imperceptible, so HIGHER IS BETTER
    (polarity "mos"): the KADID-10k paper (Lin et al., QoMEX 2019) and the file itself (I01_01_01.png, the
    mildest blur, 4.57; I01_01_05.png 1.1).
    """
    name = "KADID-10k"
    root = _root(root, name)
    listing = _csv_listing(_require_file(root / "dmos.csv", name, "score file"), name, "dist_img", "dmos", "ref_img")
    return _listed_dataset(name, root, listing, root / "images", MOS, (1.0, 5.0), EXPECTED_COUNTS["kadid10k"],
                           strict_count)


def load_agiqa3k(root: PathLike, *, score: str = "quality", image_dir: Optional[str] = None,
                 strict_count: bool = True) -> IQADataset:
    """AGIQA-3K: ``data.csv``; ``score`` "quality" (mos_quality) or "alignment" (mos_align), 0-5, higher is
    better. Images in ``image_dir``, else the first of :data:`AGIQA3K_IMAGE_DIRS` holding the first image."""
    name = "AGIQA-3K"
    columns = {"quality": "mos_quality", "alignment": "mos_align"}
    if score not in columns:
        raise DatasetError(f"{name}: score must be 'quality' or 'alignment', got {score!r}")
    root = _root(root, name)
    listing = _csv_listing(_require_file(root / "data.csv", name, "score file"), name, "name", columns[score])
    _checked(name, listing, EXPECTED_COUNTS["agiqa3k"], strict_count)  # before looking for the image folder
    if image_dir is not None:
        base = _require_dir(root / image_dir, name)
    else:
        index, names = _FolderIndex(), listing.names
        candidates = [root / d for d in AGIQA3K_IMAGE_DIRS]
        base = next((c for c in candidates if c.is_dir() and names and index.find(c, names[0])), None)
        if base is None:
            raise DatasetError(f"{name}: cannot find the image folder: none of {', '.join(map(str, candidates))} "
                               f"holds {names[0] if names else '(no images listed)'}; pass image_dir=...")
    return _dataset(name, root, _locate(name, listing.names, base, listing.source), listing.scores, MOS, None,
                    (0.0, 5.0))


def load_csv(root: PathLike, *, csv_file: Optional[PathLike] = None, image_column: str = "image",
             score_column: str = "mos", polarity: str = MOS, image_dir: Optional[PathLike] = None,
             ref_column: Optional[str] = None, name: str = "csv",
             score_range: Optional[Tuple[float, float]] = None, expected_count: Optional[int] = None) -> IQADataset:
    """Any dataset described by a CSV file with an image-path column and a score column.

    ``root``: the CSV file, or a folder with ``csv_file`` naming the file in it. Columns are matched
    case-insensitively; ``polarity`` "mos" (higher is better) or "dmos"; ``image_dir``: the folder image paths
    are relative to (relative to the root folder, or absolute; default the CSV's folder); ``ref_column``: optional
    reference-scene ids (a synthetic dataset); ``expected_count``: the number of images, checked when given.
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
    listing = _csv_listing(_require_file(source, name, "score CSV"), name, image_column, score_column, ref_column)
    _checked(name, listing, expected_count, True)
    base = _require_dir(source.parent if image_dir is None else folder / Path(image_dir).expanduser(), name)
    return _dataset(name, folder, _locate(name, listing.names, base, source), listing.scores, polarity,
                    listing.refs, score_range)
