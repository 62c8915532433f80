"""Training of the low-level (QACL) and high-level (GCL) models: one engine, two small tasks (docs/method.md §2-3).

``grepq.train.train(cfg)`` runs a configuration from :func:`grepq.train.schema.load_train_config`; ``grepq train`` and
``scripts/train.py`` are its command lines (also under ``torchrun``).
"""
from .engine import NonFiniteLossError, TrainResult, lr_factor, train

__all__ = ["train", "TrainResult", "NonFiniteLossError", "lr_factor"]
