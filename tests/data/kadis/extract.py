"""Rebuild this folder from the full KADIS reference set (not needed to run the tests).

    python tests/data/kadis/extract.py /path/to/kadis_reference

The full set (195 PNGs, 6.4 MB: the unmodified KADIS-700k generator run under GNU Octave on three
192x128 BSDS500 crops; its README and manifest.json say how) is reduced to what the tests need:
the three inputs as they are, every output of a deterministic type subsampled every STRIDE-th row and
column (row 0 and column 0 included, so borders are covered) in one PNG mosaic, and a JSON with each
entry's type, level, parameter, recorded random draw (motion angle, noise variance) and statistics.
"""
import json
import shutil
import sys
from pathlib import Path

import numpy as np
from PIL import Image

STRIDE = 6
HERE = Path(__file__).resolve().parent
KEEP = ("input", "kadis_id", "kadis_name", "kadis_function", "level", "parameter", "output", "deterministic",
        "pixels_sha256", "stats", "random")


def main(src: Path) -> None:
    manifest = json.loads((src / "manifest.json").read_text())
    (HERE / "inputs").mkdir(exist_ok=True)
    for item in manifest["inputs"]:
        shutil.copyfile(src / item["file"], HERE / item["file"])
    rows, entries = [], []
    for e in manifest["entries"]:
        entry = {k: e[k] for k in KEEP if k in e}
        if e["kadis_id"] not in (11, 12):  # noise types are compared by statistics only
            entry["mosaic_index"] = len(rows)
            rows.append(np.asarray(Image.open(src / e["output"]).convert("RGB"))[::STRIDE, ::STRIDE])
        entries.append(entry)
    Image.fromarray(np.concatenate(rows, axis=0)).save(HERE / "outputs_subsampled.png", optimize=True)
    out = {"description": "subset of the KADIS-700k reference outputs (see README.md)", "stride": STRIDE,
           "crop_shape": list(rows[0].shape), "source": manifest["source"], "versions": manifest["versions"],
           "seeding": manifest["seeding"], "stats_definition": manifest["stats_definition"],
           "shims": [{k: s[k] for k in ("file", "emulates", "may_differ_from_matlab")} for s in manifest["shims"]],
           "skipped": manifest["skipped"], "inputs": manifest["inputs"], "entries": entries}
    (HERE / "reference.json").write_text(json.dumps(out, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
