"""Deprecated location: moved to :mod:`grepq.scoring.zero_shot` (the method's scoring lives in ``grepq/scoring/``).

Importing this module warns (DeprecationWarning) and gives the new module itself, so attribute reads and
monkeypatching act on the one implementation. Kept for one release.
"""
import sys
import warnings

from ..scoring import zero_shot as _moved

warnings.warn("grepq.eval.zero_shot moved to grepq.scoring.zero_shot; the old path will be removed in the next release",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
