"""Deprecated location: moved to :mod:`grepq.data.io` (image reading is part of the data layer, ``grepq/data/``).

Importing this module warns (DeprecationWarning) and gives the new module itself, so attribute reads and
monkeypatching act on the one implementation. Kept for one release.
"""
import sys
import warnings

from .data import io as _moved

warnings.warn("grepq.io moved to grepq.data.io; the old path will be removed in the next release",
              DeprecationWarning, stacklevel=2)
sys.modules[__name__] = _moved
