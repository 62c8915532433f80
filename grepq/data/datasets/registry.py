"""The dataset registry: loader names (:func:`loader_name`), aliases, table names (:func:`table_name`), documented
counts and :func:`load_dataset`."""
from __future__ import annotations

import inspect
import re
from typing import Callable, Dict, Optional

from . import loaders
from .base import DatasetError, IQADataset, PathLike

#: Canonical dataset name -> loader function ``loader(root, **options) -> IQADataset``.
DATASETS: Dict[str, Callable[..., IQADataset]] = {
    "clive": loaders.load_clive, "koniq10k": loaders.load_koniq10k, "live": loaders.load_live,
    "csiq": loaders.load_csiq, "pipal": loaders.load_pipal, "flive": loaders.load_flive, "spaq": loaders.load_spaq,
    "tid2013": loaders.load_tid2013, "kadid10k": loaders.load_kadid10k, "agiqa3k": loaders.load_agiqa3k,
    "csv": loaders.load_csv,
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
    """The name tables print ("koniq-10k" -> "KonIQ", "livec" -> "CLIVE"); other names (a CSV dataset's) stripped,
    None stays None."""
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
    """The key of :data:`DATASETS` for ``name`` (case-insensitive, aliases: "KonIQ-10k" -> "koniq10k"); a DatasetError
    listing the valid names otherwise."""
    key = re.sub(r"[\s_\-]", "", str(name).casefold())
    key = ALIASES.get(key, key)
    if key not in DATASETS:
        aliases = ", ".join(f"{a}->{c}" for a, c in sorted(ALIASES.items()))
        raise DatasetError(f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)} (aliases: {aliases})")
    return key


def load_dataset(dataset: str, root: PathLike, /, *, limit: Optional[int] = None, **options: object) -> IQADataset:
    """Load the dataset named ``dataset`` from ``root`` with the loader's keyword ``options``; ``limit`` keeps the
    first N images, after the count check (positional-only arguments: a loader option may be called ``name``)."""
    key = loader_name(dataset)
    loader = DATASETS[key]
    allowed = [p for p in inspect.signature(loader).parameters if p != "root"]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise DatasetError(f"unknown option(s) {unknown} for dataset {key!r}; valid options: {allowed}")
    dataset = loader(root, **options)
    return dataset if limit is None else dataset.head(limit)
