"""GRepQ's losses: QACL (paper Eq. 1) and GCL (paper Eq. 3), each in the paper's and the official code's form."""
from .gcl import GCL_VARIANTS, gcl, group_size_from_divisor, pseudo_label_groups, pseudo_quality
from .qacl import QACL_VARIANTS, qacl, qacl_weight

__all__ = [
    "qacl", "qacl_weight", "QACL_VARIANTS",
    "gcl", "GCL_VARIANTS", "pseudo_quality", "pseudo_label_groups", "group_size_from_divisor",
]
