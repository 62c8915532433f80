"""grepq's version (the package's ``grepq.__version__``) and the git revision of its source, in a module of its own so
that every layer can read them without importing the package's scoring API."""
import subprocess
from pathlib import Path

__version__ = "0.1.0"


def git_revision() -> str:
    """The git commit of the grepq source tree, with ``-dirty`` for uncommitted changes; "unknown" outside a
    checkout."""
    here = Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if rev.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
        return rev.stdout.strip() + ("-dirty" if dirty.returncode == 0 and dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
