"""The dataset registry: loader names (:func:`loader_name`), aliases, table names (:func:`table_name`), documented
counts and :func:`load_dataset`."""
from __future__ import annotations

import inspect
import re
from typing import Callable, Dict, Optional

from .base import DatasetError, IQADataset, PathLike
from .loaders import (
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

# ---------------------------------------------------------------------------------------------------------
# Registry
# ---------------------------------------------------------------------------------------------------------
#: Canonical dataset name -> loader function ``loader(root, **options) -> IQADataset``.
DATASETS: Dict[str, Callable[..., IQADataset]] = {
    "clive": load_clive,
    "koniq10k": load_koniq10k,
    "live": load_live,
    "csiq": load_csiq,
    "pipal": load_pipal,
    "flive": load_flive,
    "spaq": load_spaq,
    "tid2013": load_tid2013,
    "kadid10k": load_kadid10k,
    "agiqa3k": load_agiqa3k,
    "csv": load_csv,
}

#: Other accepted names (compared lower-cased, without spaces, '-' and '_') -> canonical name.
ALIASES: Dict[str, str] = {
    "livec": "clive", "livechallenge": "clive", "liveinthewild": "clive", "livewild": "clive",
    "koniq": "koniq10k", "koniq10": "koniq10k",
    "liver2": "live", "live2": "live", "liveiqa": "live", "liverelease2": "live", "challengedb": "clive",
    "tid": "tid2013",
    "kadid": "kadid10k",
    "agiqa": "agiqa3k",
    "paq2piq": "flive", "livefb": "flive",
}

#: Loader name -> the name grepq's tables print (and the paper uses). The "csv" loader has none: a CSV dataset is
#: shown under its own name.
TABLE_NAMES: Dict[str, str] = {
    "clive": "CLIVE", "koniq10k": "KonIQ", "csiq": "CSIQ", "live": "LIVE", "pipal": "PIPAL", "flive": "FLIVE",
    "spaq": "SPAQ", "tid2013": "TID2013", "kadid10k": "KADID-10k", "agiqa3k": "AGIQA-3K",
}


def table_name(name: Optional[str]) -> Optional[str]:
    """The table name of a dataset ("koniq-10k" -> "KonIQ", "livec" -> "CLIVE", "KonIQ" -> "KonIQ"). Names that are
    not a registered dataset (a CSV dataset's own name) are returned stripped but otherwise unchanged; None stays
    None."""
    if name is None:
        return None
    text = str(name).strip()
    if text in TABLE_NAMES.values():
        return text
    try:
        return TABLE_NAMES.get(loader_name(text), text)
    except DatasetError:
        return text


def loader_name(name: str) -> str:
    """The registry's loader name for ``name`` (case-insensitive, aliases accepted: "KonIQ-10k" -> "koniq10k"), the key
    of :data:`DATASETS`; a DatasetError listing the valid names otherwise. :func:`table_name` gives the name tables
    print."""
    key = re.sub(r"[\s_\-]", "", str(name).casefold())
    key = ALIASES.get(key, key)
    if key not in DATASETS:
        aliases = ", ".join(f"{a}->{c}" for a, c in sorted(ALIASES.items()))
        raise DatasetError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)} (aliases: {aliases})")
    return key


def load_dataset(dataset: str, root: PathLike, /, *, limit: Optional[int] = None, **options: object) -> IQADataset:
    """Load the dataset named ``dataset`` from ``root`` with the loader's keyword ``options``; ``limit`` keeps the
    first N images. ``dataset`` and ``root`` are positional-only, so a loader option may be called ``name`` (the CSV
    loader's).

    The count check applies to the whole score file; ``limit`` is applied after it.
    """
    key = loader_name(dataset)
    loader = DATASETS[key]
    allowed = [p for p in inspect.signature(loader).parameters if p != "root"]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise DatasetError(f"unknown option(s) {unknown} for dataset {key!r}; valid options: {allowed}")
    dataset = loader(root, **options)
    return dataset if limit is None else dataset.head(limit)
