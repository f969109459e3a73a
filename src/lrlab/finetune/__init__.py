"""Fine-tuning: discriminative learning rates (``lr_mult`` per param group), layer-wise
decay, frozen layers and gradual unfreezing."""

from lrlab.finetune.groups import ParamGroups, ParamInfo, param_groups
from lrlab.finetune.unfreeze import GradualUnfreezer

__all__ = ["GradualUnfreezer", "ParamGroups", "ParamInfo", "param_groups"]
