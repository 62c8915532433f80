"""No absolute path of a machine in the repository: every tracked text file is searched for the work, root and
home folders of a machine (:data:`FORBIDDEN`); a hit fails the test naming file:line. Binary files are skipped."""
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: Written split so that this file does not match itself.
FORBIDDEN = ("/wo" + "rk/", "/ro" + "ot/", "/ho" + "me/")


def tracked_files():
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return [ROOT / p for p in out.stdout.decode().split("\0") if p]


def test_no_machine_paths_in_tracked_text_files():
    files = tracked_files()
    if files is None:
        pytest.skip("not a git checkout")
    hits = []
    for path in files:
        if not path.is_file():  # deleted in the work tree, not yet committed
            continue
        data = path.read_bytes()
        if b"\0" in data[:8192]:  # binary
            continue
        text = data.decode("utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            if any(f in line for f in FORBIDDEN):
                hits.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:120]}")
    assert not hits, "absolute machine paths in tracked files:\n" + "\n".join(hits)
