"""Readers and checks shared by the dataset loaders (CSV, XLSX, MATLAB score files; duplicates, counts, image
lookup). Every failure is a :class:`~grepq.data.datasets.base.DatasetError` naming the file."""
from __future__ import annotations

import csv
import math
import os
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from tqdm import tqdm

from .base import DatasetError, IQADataset, PathLike

_MAX_LISTED = 5  # names an error message lists
_PROGRESS_MIN = 2000  # a progress bar when locating at least this many images
_HEADER_SEARCH_ROWS = 50  # rows searched for a spreadsheet's header


@dataclass
class Listing:
    """What a score file lists: image names (relative to the image folder), their scores, where each one is
    listed ("line 4", for error messages) and, for synthetic datasets, the reference scene of each."""

    source: Path
    names: List[str]
    scores: List[float]
    where: List[str]
    refs: Optional[List[str]] = None


def _root(root: PathLike, dataset: str) -> Path:
    path = Path(root).expanduser().absolute()
    if not path.is_dir():
        raise DatasetError(f"{dataset}: expected the dataset folder {path}, which is not a folder")
    return path


def _require_file(path: Path, dataset: str, what: str) -> Path:
    if not path.is_file():
        raise DatasetError(f"{dataset}: expected the {what} at {path}, which does not exist")
    return path


def _require_dir(path: Path, dataset: str) -> Path:
    if not path.is_dir():
        raise DatasetError(f"{dataset}: expected the image folder {path}, which is not a folder")
    return path


def _to_score(value: object, source: Path, where: str) -> float:
    """A finite float from a score cell, else a DatasetError naming the file, the place and the value."""
    if value is None:
        raise DatasetError(f"missing score in {source}, {where}: got an empty cell")
    try:
        number = float(value.strip() if isinstance(value, str) else value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = None
    if number is None or isinstance(value, bool):
        raise DatasetError(f"non-numeric score in {source}, {where}: got {value!r}")
    if not math.isfinite(number):
        raise DatasetError(f"score is not a finite number in {source}, {where}: got {value!r}")
    return number


def _check_duplicates(dataset: str, names: Sequence[str], where: Sequence[str], source: Path) -> None:
    """Error if a name is listed twice (compared case-insensitively, as on the owners' file systems)."""
    first: Dict[str, int] = {}
    dups: List[str] = []
    for i, name in enumerate(names):
        j = first.setdefault(name.casefold(), i)
        if j != i:
            dups.append(f"{name!r} ({where[j]} and {where[i]})")
    if dups:
        more = f" and {len(dups) - _MAX_LISTED} more" if len(dups) > _MAX_LISTED else ""
        raise DatasetError(f"{dataset}: {len(dups)} duplicate entr{'y' if len(dups) == 1 else 'ies'} in "
                           f"{source}: {'; '.join(dups[:_MAX_LISTED])}{more}")


def _check_count(dataset: str, n: int, expected: Optional[int], strict_count: bool, source: Path,
                 detail: str = "") -> None:
    if expected is not None and n != expected and strict_count:
        raise DatasetError(f"{dataset}: {source} lists {n} images{detail}, expected {expected} (the count of the "
                           f"dataset as its owners distribute it); pass strict_count=False to load a partial or "
                           f"modified copy")


class _FolderIndex:
    """Finds files by relative name, exactly or else case-insensitively, listing each folder once."""

    def __init__(self) -> None:
        self._listings: Dict[Path, Optional[Dict[str, str]]] = {}

    def _listing(self, folder: Path) -> Optional[Dict[str, str]]:
        if folder not in self._listings:
            try:
                entries = sorted(os.listdir(folder))
            except OSError:
                self._listings[folder] = None
            else:
                table: Dict[str, str] = {}
                for entry in entries:
                    table.setdefault(entry.casefold(), entry)
                self._listings[folder] = table
        return self._listings[folder]

    def find(self, base: Path, rel: str) -> Optional[Path]:
        if (base / rel).is_file():
            return base / rel
        current = base
        for part in PurePath(rel).parts:
            actual = (self._listing(current) or {}).get(part.casefold())
            if actual is None:
                return None
            current = current / actual
        return current if current.is_file() else None


def _missing_error(dataset: str, missing: Sequence[str], total: int, source: Path, where: str) -> DatasetError:
    more = f", ... ({len(missing) - _MAX_LISTED} more)" if len(missing) > _MAX_LISTED else ""
    return DatasetError(f"{dataset}: {len(missing)} of {total} images listed in {source} are missing under "
                        f"{where}: {', '.join(missing[:_MAX_LISTED])}{more}")


def _locate(dataset: str, rels: Sequence[str], base: Path, source: Path) -> List[Path]:
    """Absolute paths of ``rels`` (relative to ``base``); a DatasetError if any is missing."""
    index = _FolderIndex()
    found = [index.find(base, rel) for rel in tqdm(rels, desc=f"{dataset}: locating images", unit="img",
                                                   leave=False, disable=True if len(rels) < _PROGRESS_MIN else None)]
    missing = [rel for rel, hit in zip(rels, found) if hit is None]
    if missing:
        raise _missing_error(dataset, missing, len(rels), source, str(base))
    return found


def _read_csv(path: Path, dataset: str, columns: Sequence[str]) -> List[Tuple[int, Dict[str, str]]]:
    """Rows of a CSV file as (line number, {column: text}) for the named columns (header matched case-insensitively)."""
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise DatasetError(f"{dataset}: {path} is empty; expected a header row with columns {list(columns)}")
        position: Dict[str, int] = {}
        for i, name in enumerate(header):
            position.setdefault(name.strip().casefold(), i)
        missing = [c for c in columns if c.casefold() not in position]
        if missing:
            raise DatasetError(f"{dataset}: {path} has no column {', '.join(repr(c) for c in missing)}; "
                               f"expected columns {list(columns)}, got header {header}")
        rows = []
        for record in reader:
            if any(cell.strip() for cell in record):
                cells = [position[c.casefold()] for c in columns]
                rows.append((reader.line_num, {c: record[i].strip() if i < len(record) else ""
                                               for c, i in zip(columns, cells)}))
    return rows


def _csv_listing(source: Path, dataset: str, image_column: str, score_column: str,
                 ref_column: Optional[str] = None) -> Listing:
    """The :class:`Listing` of a CSV score file: one image, score (and reference) column, lines as places."""
    rows = _read_csv(source, dataset, [image_column, score_column] + ([ref_column] if ref_column else []))
    empty = [line for line, r in rows if not r[image_column]]
    if empty:
        raise DatasetError(f"{dataset}: empty image path in {source}, line {empty[0]}")
    scores = [_to_score(r[score_column], source, f"line {line}, column {score_column}") for line, r in rows]
    return Listing(source, [r[image_column] for _, r in rows], scores, [f"line {line}" for line, _ in rows],
                   [r[ref_column] for _, r in rows] if ref_column else None)


def _cell_text(value: object) -> str:
    """Spreadsheet cell as a name: integral numbers without '.0' (CSIQ's scene '1600' is stored as a number)."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _read_xlsx(path: Path, dataset: str, columns: Sequence[str], sheet: Optional[str] = None,
               optional: Sequence[str] = ()) -> Tuple[str, List[Tuple[int, Dict[str, object]]]]:
    """(sheet title, rows below the header as (Excel row number, {column: value})) of a spreadsheet.

    The header is the first row (of the first 50) holding every name of ``columns`` (case-insensitive), anywhere
    in the row; columns of ``optional`` are returned when present (else None). Empty rows are skipped.
    """
    import openpyxl

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise DatasetError(f"{dataset}: cannot read the spreadsheet {path}: {type(exc).__name__}: {exc}") from None
    try:
        ws = book.worksheets[0]
        if sheet is not None:
            names = {n.strip().casefold(): n for n in book.sheetnames}
            if sheet.casefold() not in names:
                raise DatasetError(f"{dataset}: {path} has no sheet {sheet!r}; its sheets are {book.sheetnames}")
            ws = book[names[sheet.casefold()]]
        ws.reset_dimensions()  # some writers record wrong dimensions; read every row
        position: Optional[Dict[str, int]] = None
        rows: List[Tuple[int, Dict[str, object]]] = []
        for row_number, row in enumerate(ws.iter_rows(min_row=1, min_col=1, values_only=True), start=1):
            if position is None:
                cells = [_cell_text(v).casefold() for v in row]
                if all(c.casefold() in cells for c in columns):
                    position = {c: cells.index(c.casefold()) for c in [*columns, *optional] if c.casefold() in cells}
                elif row_number >= _HEADER_SEARCH_ROWS:
                    break
                continue
            values = {c: (row[position[c]] if c in position and position[c] < len(row) else None)
                      for c in [*columns, *optional]}
            if any(values[c] is not None and not (isinstance(values[c], str) and not values[c].strip())
                   for c in columns):
                rows.append((row_number, values))
        if position is None:
            raise DatasetError(f"{dataset}: no header row with columns {list(columns)} in the first "
                               f"{_HEADER_SEARCH_ROWS} rows of sheet {ws.title!r} of {path}")
        return ws.title, rows
    finally:
        book.close()


def _load_mat(path: Path, dataset: str) -> Dict[str, np.ndarray]:
    """The variables of a MATLAB .mat file (v5 format, as the LIVE lab distributes them)."""
    import scipy.io

    try:
        content = scipy.io.loadmat(str(path))
    except NotImplementedError:
        raise DatasetError(f"{dataset}: {path} is a MATLAB v7.3 (HDF5) file; expected the v5 .mat file the "
                           f"dataset is distributed with") from None
    except (OSError, ValueError, TypeError) as exc:
        raise DatasetError(f"{dataset}: cannot read the MATLAB file {path}: {type(exc).__name__}: {exc}") from None
    return {k: v for k, v in content.items() if not k.startswith("__")}


def _mat_vector(content: Dict[str, np.ndarray], var: str, path: Path, dataset: str) -> np.ndarray:
    """Variable ``var`` of a loaded .mat file, a 1 x N or N x 1 array, as a flat (N,) array."""
    if var not in content:
        raise DatasetError(f"{dataset}: {path} has no variable {var!r}; its variables are {sorted(content)}")
    arr = np.asarray(content[var])
    if arr.ndim != 2 or min(arr.shape) > 1:
        raise DatasetError(f"{dataset}: expected {var} in {path} to be a 1xN or Nx1 array, got shape {arr.shape}")
    return arr.reshape(-1)


def _mat_strings(content: Dict[str, np.ndarray], var: str, path: Path, dataset: str) -> List[str]:
    """A MATLAB cell array of strings (scipy: an object array of 1-element char arrays) as a list."""
    out = []
    for i, value in enumerate(_mat_vector(content, var, path, dataset)):
        while isinstance(value, np.ndarray):
            if value.size != 1:
                raise DatasetError(f"{dataset}: expected {var} in {path} to be a cell array of file names; "
                                   f"entry {i + 1} is an array of shape {value.shape}")
            value = value.reshape(-1)[0]
        if not isinstance(value, str) or not value.strip():
            raise DatasetError(f"{dataset}: expected {var} in {path} to hold file names; entry {i + 1} is {value!r}")
        out.append(value.strip())
    return out


def _mat_scores(content: Dict[str, np.ndarray], var: str, path: Path, dataset: str) -> List[float]:
    return [_to_score(v.item() if isinstance(v, np.generic) else v, path, f"{var} entry {i + 1}")
            for i, v in enumerate(_mat_vector(content, var, path, dataset))]


def _dataset(name: str, root: Path, paths: List[Path], scores: Sequence[float], polarity: str,
             refs: Optional[List[str]], score_range: Optional[Tuple[float, float]]) -> IQADataset:
    return IQADataset(name=name, root=root, paths=paths, scores=np.asarray(scores, dtype=np.float64),
                      polarity=polarity, refs=refs, score_range=score_range)


def _checked(name: str, listing: Listing, expected: Optional[int], strict_count: bool, detail: str = "") -> None:
    """No image listed twice, and the documented count (``expected``) unless ``strict_count`` is False."""
    _check_duplicates(name, listing.names, listing.where, listing.source)
    _check_count(name, len(listing.names), expected, strict_count, listing.source, detail)


def _listed_dataset(name: str, root: Path, listing: Listing, image_dir: Path, polarity: str,
                    score_range: Optional[Tuple[float, float]], expected: Optional[int],
                    strict_count: bool) -> IQADataset:
    """The common end of a loader whose score file lists its images: checked (:func:`_checked`), every image
    found under ``image_dir`` (case-insensitively)."""
    _checked(name, listing, expected, strict_count)
    paths = _locate(name, listing.names, image_dir, listing.source)
    return _dataset(name, root, paths, listing.scores, polarity, listing.refs, score_range)
