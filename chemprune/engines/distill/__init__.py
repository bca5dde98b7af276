"""Knowledge distillation for any pair of ``torch.nn.Module``s.

Loss terms (:mod:`.soft_target`: temperature-scaled KL mixed with gold labels; :mod:`.features`:
MSE / cosine between intermediate features, with a learned projection when widths differ)
subclass :class:`DistillLoss` and live in :data:`DISTILL_LOSSES`; :class:`FeatureCapture`
records submodule outputs by forward hooks; :class:`TeacherCache` keeps teacher outputs per
example for later epochs; the :class:`Distiller` engine owns the training
step. OpenNMT-py models are distilled through a loss hook in its own trainer
(:mod:`reaction_nmt.distill`).
"""

from chemprune.engines.distill.base import (
    DISTILL_LOSSES,
    DistillLoss,
    check_temperature,
    check_weight,
    register_distill_loss,
)
from chemprune.engines.distill.cache import TeacherCache
from chemprune.engines.distill.capture import FeatureCapture, first_tensor
from chemprune.engines.distill.engine import Distiller, call_model
from chemprune.engines.distill.features import (
    CosineFeatureLoss,
    DiscriminantFeatureLoss,
    FeatureLoss,
    MSEFeatureLoss,
)
from chemprune.engines.distill.soft_target import SoftTargetLoss, soft_target_kl

__all__ = [
    "DISTILL_LOSSES", "DistillLoss", "register_distill_loss", "check_temperature", "check_weight",
    "SoftTargetLoss", "soft_target_kl",
    "FeatureLoss", "MSEFeatureLoss", "CosineFeatureLoss", "DiscriminantFeatureLoss",
    "FeatureCapture", "first_tensor", "TeacherCache",
    "Distiller", "call_model",
]  # fmt: skip
