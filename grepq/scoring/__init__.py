"""Zero-shot scoring (paper §3.3, docs/method.md §4): what turns trained models into Q_L, Q_H and GRepQ_Z.

``settings`` (constants and :class:`ScoringSettings`, no torch), ``zero_shot`` (patch grid, LL patch features, MVG
fit, Eq. 5-7, HL embedding), ``pristine`` (pristine-patch selection, official HDF5), ``cache`` (on-disk cache of
μ_p, Σ_p and the prompt embeddings), ``batching`` (decoding ahead, same-size batches). :class:`grepq.GRepQ`
(``grepq/api.py``) wires them around the models.
"""
