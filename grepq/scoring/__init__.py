"""The method's zero-shot scoring (paper §3.4, docs/method.md §4): what turns trained models into Q_L, Q_H and GRepQ_Z.

- :mod:`grepq.scoring.settings`: the scoring constants (R = 96, stride, k1, k2, the covariance stabiliser) and
  :class:`ScoringSettings`, the validated options of a scorer (light: no torch import, so the CLI parsers use it);
- :mod:`grepq.scoring.zero_shot`: the patch grid, the LL patch features, the MVG fit and the NIQE-style distance
  (Eq. 5), Q_L (Eq. 6), the HL whole-image embedding (Eq. 2 is :func:`grepq.models.high_level.pseudo_quality`);
- :mod:`grepq.scoring.pristine`: pristine-patch selection and the official HDF5 format;
- :mod:`grepq.scoring.cache`: the on-disk cache of the constants every scorer computes the same way (the pristine
  statistics μ_p, Σ_p and the prompt embeddings), keyed by content fingerprints.

:class:`grepq.GRepQ` (``grepq/api.py``) wires these around the models.
"""
