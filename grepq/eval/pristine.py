"""Deprecated location: moved to :mod:`grepq.scoring.pristine` (the method's scoring lives in ``grepq/scoring/``).

Importing this module warns (DeprecationWarning) and gives the new module itself, so attribute reads and
monkeypatching act on the one implementation. Kept for one release.
"""
import sys
import warnings

from ..scoring import pristine as _moved

warnings.warn("grepq.eval.pristine moved to grepq.scoring.pristine; the old path will be removed in the next release",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
