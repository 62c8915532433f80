"""Deprecated location: moved to :mod:`grepq.scoring.batching` (decode-ahead and same-size batches of the scorer).

Importing this module warns (DeprecationWarning) and gives the new module itself, so attribute reads and
monkeypatching act on the one implementation. Kept for one release.
"""
import sys
import warnings

from .scoring import batching as _moved

warnings.warn("grepq.batching moved to grepq.scoring.batching; the old path will be removed in the next release",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
