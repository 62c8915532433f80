"""Generic readers and checks shared by the dataset loaders: CSV, XLSX and MATLAB score files, score
parsing, duplicate and count checks, case-insensitive image lookup. Every failure is a
:class:`~grepq.data.datasets.base.DatasetError` naming the file."""
from __future__ import annotations

import csv
import math
import os
from pathlib import Path, PurePath
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from tqdm import tqdm

from .base import DatasetError, IQADataset, PathLike

_MAX_LISTED = 5
#: Show a progress bar when locating at least this many images.
_PROGRESS_MIN = 2000
#: Rows searched for a header in a spreadsheet.
_HEADER_SEARCH_ROWS = 50


# ---------------------------------------------------------------------------------------------------------
# Shared checks and readers
# ---------------------------------------------------------------------------------------------------------
def _root(root: PathLike, dataset: str) -> Path:
    path = Path(root).expanduser().absolute()
    if not path.is_dir():
        raise DatasetError(f"{dataset}: expected the dataset folder {path}, which is not a folder")
    return path


def _require_file(path: Path, dataset: str, what: str) -> Path:
    if not path.is_file():
        raise DatasetError(f"{dataset}: expected the {what} at {path}, which does not exist")
    return path


def _to_score(value: object, source: Path, where: str) -> float:
    """A finite float from a score cell, else a DatasetError naming the file, the place and the value."""
    if value is None:
        raise DatasetError(f"missing score in {source}, {where}: got an empty cell")
    if isinstance(value, bool):
        raise DatasetError(f"non-numeric score in {source}, {where}: got {value!r}")
    if isinstance(value, str):
        text = value.strip()
    else:
        text = value
    try:
        number = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise DatasetError(f"non-numeric score in {source}, {where}: got {value!r}") from None
    if not math.isfinite(number):
        raise DatasetError(f"score is not a finite number in {source}, {where}: got {value!r}")
    return number


def _check_duplicates(dataset: str, names: Sequence[str], where: Sequence[str], source: Path) -> None:
    """Error if a name is listed twice (compared case-insensitively, as on the owners' file systems)."""
    first: Dict[str, int] = {}
    dups: List[str] = []
    for i, name in enumerate(names):
        key = name.casefold()
        if key in first:
            dups.append(f"{name!r} ({where[first[key]]} and {where[i]})")
        else:
            first[key] = i
    if dups:
        listed = "; ".join(dups[:_MAX_LISTED])
        more = f" and {len(dups) - _MAX_LISTED} more" if len(dups) > _MAX_LISTED else ""
        raise DatasetError(f"{dataset}: {len(dups)} duplicate entr{'y' if len(dups) == 1 else 'ies'} in "
                           f"{source}: {listed}{more}")


def _check_count(dataset: str, n: int, expected: Optional[int], strict_count: bool, source: Path,
                 detail: str = "") -> None:
    if expected is None or n == expected or not strict_count:
        return
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
                entries = os.listdir(folder)
            except OSError:
                self._listings[folder] = None
            else:
                table: Dict[str, str] = {}
                for entry in sorted(entries):
                    table.setdefault(entry.casefold(), entry)
                self._listings[folder] = table
        return self._listings[folder]

    def find(self, base: Path, rel: str) -> Optional[Path]:
        direct = base / rel
        if direct.is_file():
            return direct
        current = base
        for part in PurePath(rel).parts:
            listing = self._listing(current)
            if listing is None:
                return None
            actual = listing.get(part.casefold())
            if actual is None:
                return None
            current = current / actual
        return current if current.is_file() else None


def _missing_error(dataset: str, missing: Sequence[str], total: int, source: Path, where: str) -> DatasetError:
    listed = ", ".join(missing[:_MAX_LISTED])
    more = f", ... ({len(missing) - _MAX_LISTED} more)" if len(missing) > _MAX_LISTED else ""
    return DatasetError(f"{dataset}: {len(missing)} of {total} images listed in {source} are missing under "
                        f"{where}: {listed}{more}")


def _locate(dataset: str, rels: Sequence[str], base: Path, source: Path) -> List[Path]:
    """Absolute paths of ``rels`` (relative to ``base``); a DatasetError if any is missing."""
    index = _FolderIndex()
    paths: List[Path] = []
    missing: List[str] = []
    bar = tqdm(rels, desc=f"{dataset}: locating images", unit="img", leave=False,
               disable=True if len(rels) < _PROGRESS_MIN else None)
    for rel in bar:
        hit = index.find(base, rel)
        if hit is None:
            missing.append(rel)
        else:
            paths.append(hit)
    if missing:
        raise _missing_error(dataset, missing, len(rels), source, str(base))
    return paths


def _read_csv(path: Path, dataset: str, columns: Sequence[str]) -> List[Tuple[int, Dict[str, str]]]:
    """Rows of a CSV file as (line number, {column: text}) for the named columns (header matched case-insensitively)."""
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise DatasetError(f"{dataset}: {path} is empty; expected a header row with columns {list(columns)}")
        position = {}
        for i, name in enumerate(header):
            position.setdefault(name.strip().casefold(), i)
        missing = [c for c in columns if c.casefold() not in position]
        if missing:
            raise DatasetError(f"{dataset}: {path} has no column {', '.join(repr(c) for c in missing)}; "
                               f"expected columns {list(columns)}, got header {header}")
        rows: List[Tuple[int, Dict[str, str]]] = []
        for record in reader:
            if not record or all(not cell.strip() for cell in record):
                continue
            values = {}
            for c in columns:
                i = position[c.casefold()]
                values[c] = record[i].strip() if i < len(record) else ""
            rows.append((reader.line_num, values))
    return rows


def _cell_text(value: object) -> str:
    """Spreadsheet cell as a name: integral numbers without '.0' (CSIQ's scene '1600' is stored as a number)."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _read_xlsx(path: Path, dataset: str, columns: Sequence[str], sheet: Optional[str] = None,
               optional: Sequence[str] = ()) -> Tuple[str, List[Tuple[int, Dict[str, object]]]]:
    """Rows of a spreadsheet below its header row, as (Excel row number, {column: value}).

    The header is the first row (of the first 50) holding every name in ``columns`` (case-insensitive); it need
    not be on row 1 nor start in column A. Columns in ``optional`` are returned when present (else None).
    Returns (sheet title, rows).
    """
    try:
        import openpyxl
    except ImportError as exc:  # pragma: no cover - openpyxl is a dependency
        raise DatasetError(f"{dataset}: reading {path} needs the openpyxl package") from exc
    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise DatasetError(f"{dataset}: cannot read the spreadsheet {path}: {type(exc).__name__}: {exc}") from None
    try:
        if sheet is None:
            ws = book.worksheets[0]
        else:
            names = {n.strip().casefold(): n for n in book.sheetnames}
            if sheet.casefold() not in names:
                raise DatasetError(f"{dataset}: {path} has no sheet {sheet!r}; its sheets are {book.sheetnames}")
            ws = book[names[sheet.casefold()]]
        ws.reset_dimensions()  # some writers record wrong dimensions; read every row
        wanted = [c.casefold() for c in columns]
        position: Optional[Dict[str, int]] = None
        rows: List[Tuple[int, Dict[str, object]]] = []
        for row_number, row in enumerate(ws.iter_rows(min_row=1, min_col=1, values_only=True), start=1):
            if position is None:
                if row_number > _HEADER_SEARCH_ROWS:
                    break
                cells = [_cell_text(v).casefold() for v in row]
                if all(w in cells for w in wanted):
                    position = {}
                    for c in list(columns) + list(optional):
                        if c.casefold() in cells:
                            position[c] = cells.index(c.casefold())
                continue
            values = {c: (row[i] if i < len(row) else None) for c, i in position.items()}
            for c in optional:
                values.setdefault(c, None)
            if all(values[c] is None or (isinstance(values[c], str) and not values[c].strip()) for c in columns):
                continue  # an empty row
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


def _mat_var(content: Dict[str, np.ndarray], var: str, path: Path, dataset: str) -> np.ndarray:
    if var not in content:
        raise DatasetError(f"{dataset}: {path} has no variable {var!r}; its variables are {sorted(content)}")
    return content[var]


def _mat_vector(arr: np.ndarray, path: Path, var: str, dataset: str) -> np.ndarray:
    """A 1 x N or N x 1 MATLAB array as a flat (N,) array."""
    arr = np.asarray(arr)
    if arr.ndim != 2 or min(arr.shape) > 1:
        raise DatasetError(f"{dataset}: expected {var} in {path} to be a 1xN or Nx1 array, got shape {arr.shape}")
    return arr.reshape(-1)


def _mat_strings(arr: np.ndarray, path: Path, var: str, dataset: str) -> List[str]:
    """A MATLAB cell array of strings (as loaded by scipy: object array of 1-element char arrays) as a list."""
    out = []
    for i, item in enumerate(_mat_vector(arr, path, var, dataset)):
        value = item
        while isinstance(value, np.ndarray):
            if value.size != 1:
                raise DatasetError(f"{dataset}: expected {var} in {path} to be a cell array of file names; "
                                   f"entry {i + 1} is an array of shape {value.shape}")
            value = value.reshape(-1)[0]
        if not isinstance(value, str) or not value.strip():
            raise DatasetError(f"{dataset}: expected {var} in {path} to hold file names; entry {i + 1} is {value!r}")
        out.append(value.strip())
    return out


def _mat_scores(arr: np.ndarray, path: Path, var: str, dataset: str) -> List[float]:
    values = _mat_vector(arr, path, var, dataset)
    return [_to_score(v.item() if isinstance(v, np.generic) else v, path, f"{var} entry {i + 1}")
            for i, v in enumerate(values)]


def _dataset(name: str, root: Path, paths: List[Path], scores: Sequence[float], polarity: str,
             refs: Optional[List[str]], score_range: Optional[Tuple[float, float]]) -> IQADataset:
    return IQADataset(name=name, root=root, paths=paths, scores=np.asarray(scores, dtype=np.float64),
                      polarity=polarity, refs=refs, score_range=score_range)




def _listed_dataset(name: str, root: Path, source: Path, names: Sequence[str], where: Sequence[str],
                    scores: Sequence[float], *, expected: Optional[int], strict_count: bool, image_dir: Path,
                    polarity: str, refs: Optional[List[str]] = None,
                    score_range: Optional[Tuple[float, float]] = None) -> IQADataset:
    """The common end of a loader that lists its images in one score file ``source``: no image twice, the
    documented count (``expected``), every image found under ``image_dir`` (case-insensitively); ``where[i]`` names
    the row or line of ``names[i]`` for the error messages."""
    _check_duplicates(name, names, where, source)
    _check_count(name, len(names), expected, strict_count, source)
    paths = _locate(name, names, image_dir, source)
    return _dataset(name, root, paths, scores, polarity, refs, score_range)
