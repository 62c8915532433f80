"""A static HTML report of a ``grepq score`` run: ``grepq report SCORES --out DIR``.

``DIR/index.html`` opens from disk with no server and no network (inline CSS, no script, no external resource):
every scored image as a JPEG thumbnail (``DIR/thumbs/``, longest side ``thumb_size``, ``loading="lazy"`` with its
width and height, so 10,000 images open), sorted best first by q_pred when the run has it, else GRepQ_Z
(q_total), with Q_L, Q_H, GRepQ_Z and q_pred beside each; the quality-map PNG of an image when the run saved one
(copied to ``DIR/maps/``); an inline SVG histogram of the sorting score; and the run's metadata (grepq version,
weight fingerprints, settings, failed and skipped images). Every link is relative and points inside ``DIR``, so the
folder can be moved or zipped. A missing or unreadable image gets a placeholder and a warning. Thumbnails are named
by the source file's path, size and modification time, so a second run reuses them (resumable) and two inputs
called ``a.jpg`` in different folders do not collide (a changed file gets a new thumbnail; old ones stay until
``DIR/thumbs/`` is deleted). Thumbnails show the pixels in stored order, as grepq scores them (EXIF orientation is
ignored, :mod:`grepq.data.io`).

Input (:func:`load_scores`): the CSV of ``grepq score`` (``image,q_low,q_high,q_total[,q_pred],upsampled``) with
its sidecar ``<stem>.meta.json`` (optional), or its JSON (``{"meta": {...}, "scores": [...]}``). Relative image
paths are resolved against the metadata's ``cwd`` (the folder ``grepq score`` ran in), else the scores file's folder.
"""
from __future__ import annotations

import csv
import hashlib
import html
import json
import logging
import math
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union
from urllib.parse import quote

import numpy as np
from PIL import Image

__all__ = ["SCORE_COLUMNS", "COLUMN_LABELS", "ScoreRun", "load_scores", "format_score", "sort_column",
           "higher_is_better", "write_report"]

log = logging.getLogger(__name__)

#: The score columns a run may have, in the order the report shows them.
SCORE_COLUMNS = ("q_low", "q_high", "q_total", "q_pred")
#: The paper's names of the columns.
COLUMN_LABELS = {"q_low": "Q_L", "q_high": "Q_H", "q_total": "GRepQ_Z", "q_pred": "q_pred"}
_SORT_PREFERENCE = ("q_pred", "q_total", "q_high", "q_low")
PathLike = Union[str, os.PathLike]


@dataclass
class ScoreRun:
    """The rows and metadata of one scores file. ``rows``: dicts with ``image`` (str, as given to grepq score),
    the present score columns (float or None) and ``upsampled`` (bool or None); ``columns``: the score columns
    present; ``base``: the folder relative image paths are resolved against."""

    source: Path
    rows: List[Dict[str, Any]]
    meta: Dict[str, Any]
    columns: Tuple[str, ...]
    base: Path

    def resolve(self, image: str) -> Path:
        """The file of an ``image`` entry (absolute, or relative to :attr:`base`)."""
        p = Path(image).expanduser()
        return p if p.is_absolute() else self.base / p


def _number(value: Any, where: str) -> Optional[float]:
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: expected a number, got {value!r}") from None


def _flag(value: Any) -> Optional[bool]:
    if value is None or value == "":
        return None
    return str(value).strip().lower() in ("1", "true", "yes")


def _clean_rows(raw: Sequence[Dict[str, Any]], source: Path) -> Tuple[List[Dict[str, Any]], Tuple[str, ...]]:
    rows, present = [], set()
    for i, r in enumerate(raw):
        if not isinstance(r, dict) or not r.get("image"):
            raise ValueError(f"{source}: row {i + 1} has no 'image'")
        row = {"image": str(r["image"]), "upsampled": _flag(r.get("upsampled"))}
        for c in SCORE_COLUMNS:
            if c in r:
                row[c] = _number(r[c], f"{source}: row {i + 1}, column {c}")
                present.add(c)
        rows.append(row)
    return rows, tuple(c for c in SCORE_COLUMNS if c in present)


def _read_csv(path: Path) -> Tuple[List[Dict[str, Any]], Dict[str, Any]]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        raw = list(reader)
    if "image" not in (reader.fieldnames or []):
        raise ValueError(f"{path}: expected a CSV with a header line naming an 'image' column")
    meta: Dict[str, Any] = {}
    sidecar = path.with_name(path.stem + ".meta.json")
    if sidecar.is_file():
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
        if not isinstance(meta, dict):
            raise ValueError(f"{sidecar}: expected a JSON object")
    return raw, meta


def load_scores(path: PathLike) -> ScoreRun:
    """Read a scores CSV (with its optional ``<stem>.meta.json``) or JSON of ``grepq score``; ValueError if it is
    neither, FileNotFoundError if it is missing."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no scores file {path}")
    if path.suffix.lower() == ".json":
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or "scores" not in data:
            raise ValueError(f"{path}: expected the JSON of grepq score, {{'meta': ..., 'scores': [...]}}")
        raw, meta = data["scores"], data.get("meta") or {}
    else:
        raw, meta = _read_csv(path)
    rows, columns = _clean_rows(raw, path)
    cwd = meta.get("cwd")
    base = Path(cwd) if cwd else path.resolve().parent
    return ScoreRun(path, rows, meta, columns, base)


def sort_column(run: ScoreRun) -> Optional[str]:
    """The column the report sorts by: q_pred when present, else q_total (else q_high, q_low)."""
    return next((c for c in _SORT_PREFERENCE if c in run.columns), None)


def higher_is_better(run: ScoreRun, column: str) -> bool:
    """Whether a higher value of ``column`` means better quality (q_pred: the regressor's polarity)."""
    if column != "q_pred":
        return True  # Q_L (Eq. 6), Q_H (Eq. 2) and their sum grow with quality
    return (run.meta.get("regressor") or {}).get("polarity", "mos") != "dmos"


def format_score(value: Optional[float]) -> str:
    """A score as the report prints it: 4 decimals; an absent or NaN value as a dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "\u2013"
    return f"{value:.4f}"


# ------------------------------------------------------------------------------------------------- files

def _unique_name(src: Path, suffix: str, extra: str = "") -> str:
    """A file name for a copy/derivative of ``src``: readable stem plus a hash of its path, size and mtime."""
    st = src.stat()
    key = f"{src.resolve()}|{st.st_size}|{st.st_mtime_ns}|{extra}"
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", src.stem).strip("._")[:40] or "image"
    return f"{stem}-{hashlib.sha1(key.encode('utf-8', 'surrogateescape')).hexdigest()[:12]}{suffix}"


def _rgb(img: Image.Image) -> Image.Image:
    """8-bit RGB of any PIL mode; 16-bit grey as value / 65535 and float grey clipped to [0, 1], as
    :mod:`grepq.data.io` reads them."""
    if img.mode.startswith("I") or img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        arr = np.clip(arr / 65535 if img.mode != "F" else arr, 0, 1)
        img = Image.fromarray(np.round(arr * 255).astype(np.uint8))
    return img.convert("RGB")


def _thumbnail(src: Path, thumbs: Path, size: int) -> Tuple[str, int, int]:
    """Make (or reuse) the JPEG thumbnail of ``src``: its file name in ``thumbs`` and its width and height."""
    name = _unique_name(src, ".jpg", f"thumb{size}")
    dest = thumbs / name
    if not dest.is_file():
        with Image.open(src) as img:
            img.draft("RGB", (size, size))
            img = _rgb(img)
            img.thumbnail((size, size), Image.Resampling.LANCZOS)
            tmp = dest.with_suffix(".tmp")
            img.save(tmp, "JPEG", quality=85)
        os.replace(tmp, dest)
    with Image.open(dest) as img:
        return name, img.width, img.height


def _map_file(run: ScoreRun, image: str) -> Optional[Path]:
    maps = run.meta.get("maps") or {}
    entry = (maps.get("files") or {}).get(image) or {}
    png = entry.get("png") if isinstance(entry, dict) else None
    if not png:
        return None
    p = Path(png).expanduser()
    candidates = [p] if p.is_absolute() else [run.base / p]
    if not p.is_absolute() and maps.get("dir"):
        candidates.append(run.resolve(maps["dir"]) / p.name)
    return next((c for c in candidates if c.is_file()), candidates[0])


def _copy_map(src: Path, maps_dir: Path) -> Tuple[str, int, int]:
    name = _unique_name(src, ".png")
    dest = maps_dir / name
    if not dest.is_file():
        tmp = dest.with_suffix(".tmp")
        shutil.copyfile(src, tmp)
        os.replace(tmp, dest)
    with Image.open(dest) as img:
        return name, img.width, img.height


# ------------------------------------------------------------------------------------------------- HTML

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222;background:#fafafa}
h1{font-size:1.5em;margin:0 0 .3em}h2{font-size:1.15em;margin:1.2em 0 .4em}
code,.path{font-family:ui-monospace,monospace;font-size:.85em;overflow-wrap:anywhere}
.warn{background:#fff4e5;border:1px solid #f0b36b;padding:.5em 1em;border-radius:4px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(%(col)dpx,1fr));gap:12px}
.card{background:#fff;border:1px solid #ddd;border-radius:6px;padding:8px;margin:0}
.card>img,.ph{display:block;margin:0 auto;max-width:100%%;height:auto}
.ph{width:%(size)dpx;height:%(ph)dpx;background:#eee;color:#a33;display:flex;align-items:center;
justify-content:center;text-align:center}
.rank{font-weight:bold;color:#666}.name{font-weight:bold;overflow-wrap:anywhere}.path{color:#777;display:block}
table{border-collapse:collapse}td,th{padding:1px 6px;text-align:left;vertical-align:top}
.scores td{text-align:right;font-variant-numeric:tabular-nums}.sort{background:#e8f0fe}
.map img{border:1px solid #ccc;margin-top:4px}.badge{background:#eee;border-radius:3px;padding:0 4px;font-size:.8em}
details{margin:.5em 0;flex:1 1 300px}summary{cursor:pointer;font-weight:bold}
.top{display:flex;flex-wrap:wrap;gap:2em;align-items:flex-start}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _kv_table(items: Dict[str, Any]) -> str:
    cells = "".join(f"<tr><th>{_e(k)}</th><td><code>{_e(json.dumps(v) if isinstance(v, (dict, list)) else v)}"
                    f"</code></td></tr>" for k, v in items.items())
    return f"<table>{cells}</table>"


def _histogram_svg(values: List[float], label: str) -> str:
    """An inline SVG histogram of ``values``."""
    if not values:
        return "<p>No scores to plot.</p>"
    lo, hi = min(values), max(values)
    n_bins = max(5, min(40, int(math.sqrt(len(values)) * 2)))
    width = (hi - lo) / n_bins or 1.0
    counts = [0] * n_bins
    for v in values:
        counts[min(n_bins - 1, int((v - lo) / width))] += 1
    w, h, pad = 520, 170, 30
    bw = (w - 2 * pad) / n_bins
    top = max(counts)
    bars = []
    for i, c in enumerate(counts):
        bh = (h - 2 * pad) * c / top
        a, b = lo + i * width, lo + (i + 1) * width
        bars.append(f'<rect x="{pad + i * bw:.1f}" y="{h - pad - bh:.1f}" width="{max(bw - 1, 1):.1f}" '
                    f'height="{bh:.1f}" fill="#4a78c2"><title>{_e(format_score(a))} to {_e(format_score(b))}: '
                    f'{c}</title></rect>')
    return (f'<svg width="{w}" height="{h}" role="img" '
            f'aria-label="histogram of {_e(label)}" style="background:#fff;border:1px solid #ddd">'
            + "".join(bars)
            + f'<line x1="{pad}" y1="{h - pad}" x2="{w - pad}" y2="{h - pad}" stroke="#333"/>'
            f'<text x="{pad}" y="{h - 10}" font-size="11">{_e(format_score(lo))}</text>'
            f'<text x="{w - pad}" y="{h - 10}" font-size="11" text-anchor="end">{_e(format_score(hi))}</text>'
            f'<text x="{w / 2}" y="{h - 10}" font-size="11" text-anchor="middle">{_e(label)}</text>'
            f'<text x="{pad}" y="{pad - 8}" font-size="11">max {top} images per bin</text></svg>')


def _card(rank: int, row: Dict[str, Any], run: ScoreRun, sort_by: Optional[str], thumb: Optional[Tuple[str, int, int]],
          problem: Optional[str], mapped: Optional[Tuple[str, int, int]], upsampled: bool) -> str:
    image = row["image"]
    name = Path(image).name or image
    if thumb is not None:
        src, tw, th = thumb
        picture = (f'<img src="thumbs/{quote(src)}" width="{tw}" height="{th}" loading="lazy" '
                   f'alt="{_e(name)}">')
    else:
        picture = f'<div class="ph" role="img" aria-label="{_e(problem)}">{_e(problem)}</div>'
    marked = ' class="sort"'
    cells = "".join(f"<tr{marked if c == sort_by else ''}><th>{COLUMN_LABELS[c]}</th>"
                    f"<td>{_e(format_score(row.get(c)))}</td></tr>" for c in run.columns)
    extra = ' <span class="badge">upsampled</span>' if upsampled else ""
    if mapped is not None:
        src, mw, mh = mapped
        scale = min(1.0, 96 / max(mw, mh))
        extra += (f'<a class="map" href="maps/{quote(src)}" title="quality map"><img src="maps/{quote(src)}" '
                  f'width="{max(1, round(mw * scale))}" height="{max(1, round(mh * scale))}" loading="lazy" '
                  f'alt="quality map of {_e(name)}"></a>')
    return (f'<figure class="card" id="r{rank}"><div class="rank">#{rank}</div>{picture}'
            f'<figcaption><span class="name">{_e(name)}</span><span class="path">{_e(image)}</span>'
            f'</figcaption><table class="scores">{cells}</table>{extra}</figure>')


def _meta_section(run: ScoreRun) -> str:
    meta = run.meta
    parts = []
    if not any(k in meta for k in ("grepq_version", "weights", "settings")):
        parts.append(f"<p>No metadata: neither <code>{_e(run.source.stem)}.meta.json</code> beside the scores nor "
                     f"a 'meta' object in them (grepq version, weights and settings unknown).</p>")
    parts.append(_kv_table({k: meta[k] for k in ("grepq_version", "created", "cwd", "command") if k in meta}))
    for key, title in (("weights", "Weight fingerprints"), ("settings", "Settings"), ("regressor", "Regressor"),
                       ("columns", "Columns")):
        if isinstance(meta.get(key), dict) and meta[key]:
            parts.append(f"<h3>{title}</h3>{_kv_table(meta[key])}")
    for key, title, path_key in (("skipped", "Skipped inputs", "path"), ("upsampled", "Upsampled images", None)):
        items = meta.get(key) or []
        if items:
            lis = "".join(f"<li><code>{_e(i.get(path_key) if isinstance(i, dict) else i)}</code>"
                          + (f": {_e(i.get('reason', ''))}" if isinstance(i, dict) else "") + "</li>" for i in items)
            parts.append(f"<h3>{title} ({len(items)})</h3><ul>{lis}</ul>")
    return "".join(parts)


def _cards(run: ScoreRun, order: List[Dict[str, Any]], out: Path, sort_by: Optional[str], thumb_size: int,
           progress: bool) -> Tuple[List[str], List[str]]:
    """The HTML cards of the rows in ``order`` (thumbnails and maps written into ``out``) and the warnings."""
    from tqdm import tqdm
    thumbs, maps_dir = out / "thumbs", out / "maps"
    upsampled = set(run.meta.get("upsampled") or [])
    warnings_, cards = [], []
    for rank, row in enumerate(tqdm(order, desc="thumbnails", unit="image", disable=not progress), start=1):
        src = run.resolve(row["image"])
        thumb = problem = mapped = None
        if not src.is_file():
            problem = "image file not found"
            warnings_.append(f"image not found: {src}")
        else:
            try:
                thumb = _thumbnail(src, thumbs, thumb_size)
            except Exception as exc:  # noqa: BLE001 -- any undecodable file: a placeholder, never a crash
                problem = "image cannot be read"
                warnings_.append(f"cannot read image {src}: {exc}")
        map_src = _map_file(run, row["image"])
        if map_src is not None:
            if map_src.is_file():
                maps_dir.mkdir(exist_ok=True)
                mapped = _copy_map(map_src, maps_dir)
            else:
                warnings_.append(f"quality map not found: {map_src}")
        cards.append(_card(rank, row, run, sort_by, thumb, problem, mapped,
                           bool(row.get("upsampled")) or row["image"] in upsampled))
    return cards, warnings_


def write_report(scores: PathLike, out_dir: PathLike, *, title: Optional[str] = None, thumb_size: int = 256,
                 progress: bool = True) -> Path:
    """Write the HTML report of a scores file (CSV with optional ``.meta.json``, or JSON) into ``out_dir``.

    Returns the path of ``out_dir/index.html``. Thumbnails go to ``out_dir/thumbs/`` (existing ones are reused),
    quality maps to ``out_dir/maps/``. Missing or unreadable images are warned about (logging) and listed in the
    page. Raises FileNotFoundError / ValueError for a missing or malformed scores file.
    """
    if thumb_size < 16:
        raise ValueError(f"thumb_size: expected at least 16 pixels, got {thumb_size}")
    run = load_scores(scores)
    out = Path(out_dir)
    (out / "thumbs").mkdir(parents=True, exist_ok=True)
    sort_by = sort_column(run)
    descending = higher_is_better(run, sort_by) if sort_by else True

    def key(item):
        v = item[1].get(sort_by) if sort_by else None
        missing = v is None or math.isnan(v)
        return (missing, 0.0 if missing else (-v if descending else v), item[0])

    order = [r for _, r in sorted(enumerate(run.rows), key=key)]
    cards, warnings_ = _cards(run, order, out, sort_by, thumb_size, progress)
    for w in warnings_:
        log.warning("grepq report: %s", w)

    from .. import __version__
    title = title or f"GRepQ scores: {run.source.name}"
    if sort_by:
        direction = "descending (higher is better): best first" if descending else \
            "ascending (lower is better): best first"
        sort_text = (f"sorted by <b>{COLUMN_LABELS[sort_by]}</b> (<code>{sort_by}</code>), {direction}. "
                     + ("q_pred is on the regressor's labels' scale. " if sort_by == "q_pred" else ""))
    else:
        sort_text = "in the file's order (no score column). "
    failed = run.meta.get("failed") or []
    warn_items = [f"<li>failed: <code>{_e(f.get('image') if isinstance(f, dict) else f)}</code>"
                  + (f": {_e(f.get('reason', ''))}" if isinstance(f, dict) else "") + "</li>" for f in failed]
    warn_items += [f"<li>{_e(w)}</li>" for w in warnings_]
    warn_html = (f'<section class="warn" id="warnings"><h2>Warnings ({len(warn_items)})</h2><ul>'
                 f'{"".join(warn_items)}</ul></section>') if warn_items else ""
    values = [r[sort_by] for r in run.rows if sort_by and r.get(sort_by) is not None and not math.isnan(r[sort_by])]
    label = f"{COLUMN_LABELS[sort_by]} ({sort_by})" if sort_by else ""
    css = _CSS % {"col": max(thumb_size + 18, 180), "size": thumb_size, "ph": thumb_size * 3 // 4}
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_e(title)}</title><style>{css}</style></head><body>\n"
            f"<header><h1>{_e(title)}</h1><p>{len(run.rows)} images {sort_text}Columns: "
            + ", ".join(f"{COLUMN_LABELS[c]} (<code>{c}</code>)" for c in run.columns)
            + f".</p><p>Scores: <code>{_e(run.source)}</code>; scored by grepq "
            f"{_e(run.meta.get('grepq_version', 'unknown version'))}; report by grepq {_e(__version__)}.</p>"
            f"</header>\n{warn_html}\n"
            f'<div class="top"><div><h2>Histogram</h2>{_histogram_svg(values, label)}</div>'
            f"<details><summary>Run metadata (grepq version, weights, settings, skipped inputs)</summary>"
            f"{_meta_section(run)}</details></div>\n"
            f'<h2>Images</h2><main class="grid">\n' + "\n".join(cards) + "\n</main></body></html>\n")
    index = out / "index.html"
    tmp = out / "index.html.tmp"
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, index)
    return index
