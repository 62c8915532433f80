"""No absolute path of a machine in the repository: every tracked text file is searched for the work, root and
home folders of a machine (:data:`FORBIDDEN`); a hit fails the test naming file:line. Binary files are skipped."""
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Written split so that this file does not match itself.
FORBIDDEN = ("/wo" + "rk/", "/ro" + "ot/", "/ho" + "me/")


#: Folders a copy of the repository holds that are not the repository's (used where git cannot list its files).
NOT_OURS = {".git", ".venv", "venv", "build", "dist", "__pycache__", ".pytest_cache", ".ruff_cache", "grepq_demo"}


def tracked_files():
    """The files git tracks; in a copy without git (an sdist, an unpacked archive), every file outside NOT_OURS."""
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z"], capture_output=True, timeout=60)
        if out.returncode == 0:
            return [ROOT / p for p in out.stdout.decode().split("\0") if p]
    except (OSError, subprocess.SubprocessError):
        pass
    return [p for p in ROOT.rglob("*") if p.is_file() and not NOT_OURS & set(p.relative_to(ROOT).parts)
            and not p.relative_to(ROOT).parts[0].endswith(".egg-info")]


def test_no_machine_paths_in_tracked_text_files():
    files = tracked_files()
    assert files, f"no files found under {ROOT}"
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
