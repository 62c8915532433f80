"""Training of the LL (QACL) and HL (GCL) models, docs/method.md §2-3: ``train(cfg)`` runs a configuration of
:func:`grepq.train.schema.load_train_config` (``grepq train`` is its command line, also under torchrun)."""
from .engine import NonFiniteLossError, TrainResult, lr_factor, train

__all__ = ["train", "TrainResult", "NonFiniteLossError", "lr_factor"]
