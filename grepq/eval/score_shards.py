"""The rows of ``grepq score`` (:func:`score_items`, :func:`row_dict`) and its runs over several processes or jobs
(shares: :mod:`grepq.parallel`).

Each share is scored into ``OUT.shard-<i>-of-<n>.jsonl`` next to ``--output OUT``: a header line (the feature cache
key of the weights, settings and image list; the run's metadata) and one line per image, appended every few images.
A killed share resumes from its part (a torn last line is dropped; failed images are tried again); a part of other
weights, settings or images is started again, with a warning. The merge puts the parts' rows in input order.
"""
from __future__ import annotations

import glob
import json
import logging
import os
import re
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from PIL import Image
from tqdm import tqdm

from ..api import ScoreRow
from ..data.io import expand_inputs
from ..parallel import Shard, ShardError
from ..scoring.zero_shot import patch_grid
from .features import cache_key

__all__ = ["score_items", "image_upsampled", "row_dict", "score_share", "score_part_path", "merge_score_parts",
           "SCORE_SAVE_EVERY"]

log = logging.getLogger("grepq")

#: A share appends its part every this many images (rounded up to a multiple of the batch size).
SCORE_SAVE_EVERY = 64
#: Bumped when the part format changes.
SCORE_PART_FORMAT = 2
_PART_RE = re.compile(r"\.shard-(\d+)-of-(\d+)\.jsonl$")


def score_items(inputs: Sequence[str], recursive: bool = False) -> Tuple[List[str], List[Dict[str, str]]]:
    """The images ``grepq score INPUTS`` scores, in order, and what it skipped ({"path", "reason"}): folders expanded
    (sorted; subfolders only when ``recursive``); a missing path stays in place (it becomes a failed row)."""
    items: List[str] = []
    skipped: List[Dict[str, str]] = []
    for x in inputs:
        images, skips = expand_inputs([x], recursive=recursive)
        if Path(x).is_dir() and not recursive:
            skips += [(str(d), "a subfolder (add --recursive)") for d in sorted(Path(x).iterdir()) if d.is_dir()]
        for p, why in skips:
            if why == "no such file or folder":
                items.append(str(p))
            else:
                skipped.append({"path": str(p), "reason": why})
        items.extend(str(p) for p in images)
    return items, skipped


def image_upsampled(image: str, settings) -> int:
    """1 if Q_L or Q_H scores ``image`` upsampled (fewer than two patches, or under CLIP's 32 px), from its size."""
    with Image.open(image) as im:
        w, h = im.size
    nh, nw = patch_grid(h, w, settings.patch_size, settings.patch_stride)
    return int(("ll" in settings.components and nh * nw < 2) or ("hl" in settings.components and min(h, w) < 32))


def row_dict(row: ScoreRow, settings) -> dict:
    """A row of ``grepq score``: the :class:`ScoreRow` fields, ``upsampled`` as 0/1 (0 when the image failed)."""
    return dict(row.as_dict(), upsampled=0 if row.error else int(row.upsampled))


def score_part_path(output: os.PathLike, shard: Shard) -> Path:
    """``OUT.shard-<i>-of-<n>.jsonl`` next to ``OUT``."""
    out = Path(output)
    return out.with_name(f"{out.name}.shard-{shard.tag}.jsonl")


def _read_part(path: Path) -> Tuple[Optional[dict], Dict[int, dict], int]:
    """(header, rows by index, bytes of complete lines) of a part file; a torn last line is not counted."""
    lines = path.read_bytes().split(b"\n")
    try:
        header = json.loads(lines[0]) if len(lines) > 1 else None
    except ValueError:
        return None, {}, 0
    rows: Dict[int, dict] = {}
    good = len(lines[0]) + 1 if header is not None else 0
    for line in lines[1:-1]:  # the piece after the last newline is incomplete (or empty)
        try:
            row = json.loads(line)
        except ValueError:
            break
        rows[int(row["index"])] = row  # a later line for the same image (a retry) wins
        good += len(line) + 1
    return header, rows, good


def _open_part(path: Path, header: dict) -> Tuple[Dict[int, dict], object]:
    """Rows already in ``path`` when it was written for ``header`` (its metadata aside), and the file opened for
    appending."""
    rows: Dict[int, dict] = {}
    if path.exists():
        old, rows, good = _read_part(path)
        if old is not None and dict(old, meta=None) == dict(header, meta=None):
            with open(path, "r+b") as f:
                f.truncate(good)
        else:
            log.warning("%s was written for other weights, settings or images; starting this share again", path)
            rows = {}
    if not rows:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(header, sort_keys=True) + "\n")
    return rows, open(path, "a")


def score_share(scorer, items: Sequence[str], shard: Shard, output: os.PathLike, meta: dict,
                save_every: int = SCORE_SAVE_EVERY) -> List[dict]:
    """Score this shard's share of ``items`` (:func:`score_items`) into its part file (with the run's ``meta``),
    appended every ``save_every`` images; images already there are not scored again (failed ones are). Returns the
    share's :func:`row_dict` rows in input order."""
    key, _ = cache_key(scorer, items)
    header = {"format": SCORE_PART_FORMAT, "key": key, "images": len(items), "shard": [shard.index, shard.count],
              "meta": meta}
    rows, f = _open_part(score_part_path(output, shard), header)
    share = shard.share(len(items))
    todo = [i for i in share if i not in rows or rows[i].get("error")]
    step = -(-max(save_every, 1) // scorer.batch_size) * scorer.batch_size
    bar = tqdm(total=len(share), initial=len(share) - len(todo), desc=f"scoring [shard {shard}]", file=sys.stderr,
               disable=not scorer.settings.progress or len(share) < 2)
    try:
        with f:
            for s in range(0, len(todo), step):
                chunk = todo[s:s + step]
                got = scorer.score([items[i] for i in chunk], on_error="record", progress=False)  # one bar: the share's
                if len(got) != len(chunk):
                    raise RuntimeError(f"scoring {len(chunk)} files gave {len(got)} rows (did files change?)")
                for i, row in zip(chunk, got):
                    rows[i] = dict(row_dict(row, scorer.settings), index=i)
                    f.write(json.dumps(rows[i]) + "\n")
                f.flush()
                bar.update(len(chunk))
    finally:
        bar.close()
    return [rows[i] for i in share]


def merge_score_parts(output: os.PathLike) -> Tuple[List[dict], List[Path], dict]:
    """The rows of every part ``OUT.shard-<i>-of-<n>.jsonl`` of ``output`` in input order, the part files and the
    run's metadata (shard 0's).

    Raises :class:`ShardError` when a part is missing or unfinished, or the parts come from different runs."""
    out = Path(output)
    found = {}
    for p in out.parent.glob(f"{glob.escape(out.name)}.shard-*-of-*.jsonl"):
        m = _PART_RE.search(p.name)
        if m:
            found[(int(m.group(1)), int(m.group(2)))] = p
    counts = sorted({n for _, n in found})
    if not counts:
        raise ShardError(f"no part files {out.name}.shard-<i>-of-<n>.jsonl in {out.parent}: run the shards first")
    if len(counts) > 1:
        raise ShardError(f"part files of different shard counts {counts} next to {out}: remove the stale ones")
    n = counts[0]
    missing = [i for i in range(n) if (i, n) not in found]
    if missing:
        raise ShardError(f"missing the parts of shard(s) {', '.join(f'{i}/{n}' for i in missing)} of {out}")
    paths = [found[(i, n)] for i in range(n)]
    parts = [_read_part(p)[:2] for p in paths]
    for i, (path, (header, _)) in enumerate(zip(paths, parts)):
        if not isinstance(header, dict) or header.get("format") != SCORE_PART_FORMAT or header.get("shard") != [i, n]:
            raise ShardError(f"{path}: not a part file of shard {i}/{n} written by this grepq version")
    if len({(h["key"], h["images"]) for h, _ in parts}) > 1:
        raise ShardError(f"the parts of {out} were written with different weights, settings or images")
    rows: Dict[int, dict] = {}
    for i, (path, (header, got)) in enumerate(zip(paths, parts)):
        share = Shard(i, n).share(header["images"])
        done = [j for j in share if j in got]
        if len(done) < len(share):
            raise ShardError(f"shard {i}/{n} has scored {len(done)} of its {len(share)} images ({path}): "
                             "run it again, it resumes")
        rows.update({j: got[j] for j in share})
    return [rows[j] for j in range(len(rows))], paths, parts[0][0]["meta"]
