"""``grepq report``: the static HTML page of a scoring run (grepq/eval/report.py), read back with the standard
library's HTML parser — every image, score, link and thumbnail checked — and, where Chromium is installed,
rendered headless to a screenshot."""
import csv
import json
import shlex
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from conftest import photo
from PIL import Image

from grepq.cli import main
from grepq.eval.report import COLUMN_LABELS, format_score, load_scores, write_report

ODD_NAME = 'a&b <c> "q".png'  # characters HTML must escape


class Page(HTMLParser):
    """The parts of the report the tests look at: tags with attributes, text, and the cards in page order."""

    def __init__(self, text: str):
        super().__init__()
        self.tags, self.text, self.cards = [], [], []
        self._in_name = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "figure" and "card" in a.get("class", ""):
            self.cards.append({"id": a.get("id"), "name": "", "text": []})
        self._in_name = tag == "span" and a.get("class") == "name"

    def handle_endtag(self, tag):
        self._in_name = False

    def handle_data(self, data):
        self.text.append(data)
        if self.cards:
            self.cards[-1]["text"].append(data)
            if self._in_name:
                self.cards[-1]["name"] += data

    def links(self):
        return [a[k] for _, a in self.tags for k in ("src", "href") if k in a]


def _save(path: Path, name: str, size=(120, 160)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(photo(name, size)).save(path)


@pytest.fixture()
def toy_run(tmp_path):
    """A run scored in ``tmp/work`` (relative image paths), written to ``tmp/results/scores.csv`` with its
    sidecar: real photographs, two files called coffee.png in different folders, a name with & < > ", a 16-bit
    grey PNG, one missing file, one quality map, one failed image."""
    work = tmp_path / "work"
    _save(work / "photos" / "astronaut.png", "astronaut")
    _save(work / "photos" / "coffee.png", "coffee")
    _save(work / "other" / "coffee.png", "chelsea")
    _save(work / "photos" / ODD_NAME, "rocket")
    grey16 = (np.linspace(0, 65535, 90 * 110).reshape(90, 110)).astype(np.uint16)
    Image.fromarray(grey16).save(work / "photos" / "grey16.png")
    (work / "maps").mkdir()
    Image.fromarray((np.random.default_rng(0).random((30, 40)) * 255).astype(np.uint8)).save(work / "maps" / "a.png")
    rows = [
        {"image": "photos/astronaut.png", "q_low": 0.41, "q_high": 0.52, "q_total": 0.93, "upsampled": 0},
        {"image": "photos/coffee.png", "q_low": 0.61, "q_high": 0.70, "q_total": 1.31, "upsampled": 0},
        {"image": "other/coffee.png", "q_low": 0.2, "q_high": 0.25, "q_total": 0.45, "upsampled": 1},
        {"image": f"photos/{ODD_NAME}", "q_low": 0.5, "q_high": 0.6, "q_total": 1.1, "upsampled": 0},
        {"image": "photos/grey16.png", "q_low": 0.123456, "q_high": 0.1, "q_total": 0.223456, "upsampled": 0},
        {"image": "photos/gone.png", "q_low": 0.3, "q_high": 0.31, "q_total": 0.61, "upsampled": 0},
    ]
    meta = {"grepq_version": "0.1.0", "created": "2024-01-01T00:00:00", "cwd": str(work),
            "command": "grepq score photos other -o ../results/scores.csv",
            "settings": {"pos_embedding": "drop", "chunk_size": 64},
            "weights": {"ll": "ll-fp-123", "hl": "hl-fp-456", "clip_text": "ct-789", "pristine": "pr-000"},
            "regressor": None, "columns": {"q_low": "Q_L (Eq. 6)"},
            "failed": [{"image": "photos/broken<1>.jpg", "reason": "cannot read image: truncated"}],
            "skipped": [{"path": "photos/notes.txt", "reason": "not an image"}], "upsampled": ["other/coffee.png"],
            "maps": {"dir": "maps", "files": {"photos/astronaut.png": {"npy": "maps/a.npy", "png": "maps/a.png"}}}}
    results = tmp_path / "results"
    results.mkdir()
    with open(results / "scores.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    (results / "scores.meta.json").write_text(json.dumps(meta))
    return {"csv": results / "scores.csv", "rows": rows, "meta": meta, "work": work, "tmp": tmp_path}


def _check_links_inside(page: Page, out: Path):
    out = out.resolve()
    links = page.links()
    assert links
    for link in links:
        assert not link.startswith(("/", "file:", "http:", "https:")), link
        target = (out / link).resolve()
        assert target.is_file() and target.is_relative_to(out), link


def test_report_of_a_toy_run(toy_run):
    out = toy_run["tmp"] / "report"
    index = write_report(toy_run["csv"], out, progress=False)
    assert index == out / "index.html"
    raw = index.read_text(encoding="utf-8")
    page = Page(raw)
    text = "".join(page.text)

    # every row is a card, best first by GRepQ_Z (no q_pred), with its file name and every score as printed
    expected = sorted(toy_run["rows"], key=lambda r: -r["q_total"])
    assert [c["name"] for c in page.cards] == [Path(r["image"]).name for r in expected]
    for card, row in zip(page.cards, expected):
        card_text = "".join(card["text"])
        for col in ("q_low", "q_high", "q_total"):
            assert f"{COLUMN_LABELS[col]}{format_score(row[col])}" in card_text.replace("\n", "")
        assert row["image"] in card_text
    assert "sorted by GRepQ_Z (q_total), descending (higher is better): best first" in text

    # escaping: the odd name reaches the text intact and the raw HTML holds it only escaped
    assert ODD_NAME in text and ODD_NAME not in raw and "a&amp;b &lt;c&gt; &quot;q&quot;.png" in raw

    # thumbnails: lazy, sized, inside DIR, one per readable image (two coffee.png -> two files), JPEG <= 256 px
    imgs = [a for t, a in page.tags if t == "img"]
    thumbs = [a for a in imgs if a["src"].startswith("thumbs/")]
    assert len(thumbs) == 5 and len({a["src"] for a in thumbs}) == 5
    for a in imgs:
        assert a.get("loading") == "lazy" and int(a["width"]) > 0 and int(a["height"]) > 0
    for a in thumbs:
        with Image.open(out / a["src"]) as im:
            assert im.format == "JPEG" and max(im.size) <= 256 and im.size == (int(a["width"]), int(a["height"]))
    _check_links_inside(page, out)
    assert "http://" not in raw and "https://" not in raw and "<script" not in raw.lower()

    # the map is copied and shown small on its image's card; the missing file has a placeholder and a warning
    maps = [a for a in imgs if a["src"].startswith("maps/")]
    assert len(maps) == 1 and "astronaut" in maps[0]["alt"]
    assert "image file not found" in text and "image not found: " + str(toy_run["work"] / "photos/gone.png") in text
    # metadata: version, fingerprints, settings, failed and skipped images, upsampled mark
    for s in ("0.1.0", "ll-fp-123", "hl-fp-456", "ct-789", "pr-000", "chunk_size", "photos/broken<1>.jpg",
              "cannot read image: truncated", "photos/notes.txt", "upsampled"):
        assert s in text, s
    assert any(t == "svg" for t, _ in page.tags)  # the histogram


def test_rerun_reuses_thumbnails_and_writes_the_same_page(toy_run):
    out = toy_run["tmp"] / "report"
    index = write_report(toy_run["csv"], out, progress=False)
    first = index.read_bytes()
    stamps = {p: p.stat().st_mtime_ns for p in (out / "thumbs").iterdir()}
    index = write_report(toy_run["csv"], out, progress=False)
    assert index.read_bytes() == first
    assert {p: p.stat().st_mtime_ns for p in (out / "thumbs").iterdir()} == stamps


def test_json_input_q_pred_lower_is_better_and_missing_columns(toy_run):
    rows = [{"image": r["image"], "q_low": r["q_low"], "q_pred": 10 * r["q_total"]} for r in toy_run["rows"]]
    meta = dict(toy_run["meta"], regressor={"file": "p.json", "polarity": "dmos", "label_range": [0, 20]})
    path = toy_run["tmp"] / "results" / "scores.json"
    path.write_text(json.dumps({"meta": meta, "scores": rows}))
    out = toy_run["tmp"] / "report_json"
    page = Page(write_report(path, out, progress=False).read_text())
    text = "".join(page.text)
    assert [c["name"] for c in page.cards] == [Path(r["image"]).name for r in sorted(rows, key=lambda r: r["q_pred"])]
    assert "sorted by q_pred (q_pred), ascending (lower is better): best first" in text
    assert "GRepQ_Z" not in text and "Q_H" not in text
    assert all(format_score(r["q_pred"]) in text for r in rows)
    _check_links_inside(page, out)


def test_csv_without_sidecar_resolves_from_its_folder(tmp_path):
    _save(tmp_path / "imgs" / "x.png", "coffee")
    _save(tmp_path / "imgs" / "y.png", "chelsea")
    (tmp_path / "s.csv").write_text("image,q_low,q_high,q_total,q_pred,upsampled\nimgs/x.png,0.1,0.2,0.3,2,0\n"
                                    "imgs/y.png,0.2,0.3,0.5,5,0\n")
    run = load_scores(tmp_path / "s.csv")
    assert run.base == tmp_path.resolve() and run.columns == ("q_low", "q_high", "q_total", "q_pred")
    page = Page(write_report(tmp_path / "s.csv", tmp_path / "r", progress=False).read_text())
    assert [c["name"] for c in page.cards] == ["y.png", "x.png"]  # no regressor polarity known: higher is better
    assert "No metadata" in "".join(page.text) and "Warnings" not in "".join(page.text)
    (tmp_path / "old.json").write_text(json.dumps([{"image": "imgs/x.png", "q_low": 0.1}]))
    with pytest.raises(ValueError, match="expected the JSON of grepq score"):
        load_scores(tmp_path / "old.json")


def test_cli_end_to_end(toy_run, capsys):
    out = toy_run["tmp"] / "cli_report"
    assert main(["report", str(toy_run["csv"]), "--out", str(out), "--title", "Toy <run>", "--thumb-size", "64",
                 "--no-progress"]) == 0
    assert capsys.readouterr().out.strip() == str(out / "index.html")
    raw = (out / "index.html").read_text()
    assert "<title>Toy &lt;run&gt;</title>" in raw
    for p in (out / "thumbs").iterdir():
        with Image.open(p) as im:
            assert max(im.size) <= 64
    assert main(["report", str(toy_run["tmp"] / "nope.csv"), "--out", str(out)]) == 2
    assert "no scores file" in capsys.readouterr().err


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser")


README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def _readme_line(prefix: str) -> list:
    """The README's command line starting with ``prefix``, split into words."""
    lines = [ln.strip() for ln in README.splitlines() if ln.strip().startswith(prefix)]
    assert lines, f"the README has no command starting with {prefix!r}"
    return shlex.split(lines[0])


def test_readme_report_command_runs_as_written(toy_run, monkeypatch):
    argv = _readme_line("grepq report ")
    monkeypatch.chdir(toy_run["csv"].parent)
    assert main(argv[1:] + ["--no-progress"]) == 0
    out = Path(argv[argv.index("--out") + 1])
    assert len(Page((out / "index.html").read_text()).cards) == len(toy_run["rows"])


@pytest.mark.skipif(_chromium() is None, reason="no Chromium installed (chromium / chromium-browser not on PATH); "
                                                "the HTML is still checked by the tests above")
def test_report_renders_in_headless_chromium(toy_run, tmp_path):
    """The README's Chromium command (its profile, screenshot and page swapped for temporary ones) renders the
    report of the toy run: a screenshot with text and photographs, not a blank page."""
    index = write_report(toy_run["csv"], tmp_path / "report", progress=False)
    shot = tmp_path / "shot.png"
    cmd = [_chromium()]
    for word in _readme_line("chromium --headless")[1:]:
        if word.startswith("--user-data-dir="):
            word = f"--user-data-dir={tmp_path / 'profile'}"
        elif word.startswith("--screenshot="):
            word = f"--screenshot={shot}"
        elif word.startswith("file://"):
            word = index.resolve().as_uri()
        cmd.append(word)
    assert cmd[-1] == index.resolve().as_uri() and "--window-size=1200,900" in cmd
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert shot.is_file(), f"no screenshot; chromium said: {done.stderr[-2000:]}"
    arr = np.asarray(Image.open(shot).convert("RGB"), dtype=np.float64)
    assert arr.shape == (900, 1200, 3)
    assert arr.std() > 20 and len(np.unique(arr.reshape(-1, 3), axis=0)) > 500  # text and photographs, not blank
