"""proper_loss_bounds: proper losses, surrogate regret bounds and p-norm convergence (Bao & Takatsu).

Paper: "Proper losses regret at least 1/2-order", Han Bao and Asuka Takatsu (arXiv 2407.10417).

* a zoo of proper losses (:mod:`proper_loss_bounds.losses`) with loss, risk, Bayes risk, its gradient
  and Hessian, and the regret as the Bregman divergence of the negative Bayes risk;
* checks and bounds (:mod:`proper_loss_bounds.bounds`): numerical (strict) properness, the
  strong-properness constant in any p-norm, the best regret bound psi(r), the paper's two theorems;
* training losses (:mod:`proper_loss_bounds.modules`): ``ProperLossModule`` on logits through a link.
"""

from proper_loss_bounds.bounds import (
    ProperCheck,
    RegretBound,
    TheoremCheck,
    check_half_order,
    check_nonvacuous_iff_strict,
    check_properness,
    loglog_slope,
    regret_bound,
    strong_properness_constant,
)
from proper_loss_bounds.config import LearningCurveConfig, RegretBoundConfig
from proper_loss_bounds.losses import (
    LOSSES,
    BinaryExponentialLoss,
    BinaryLogisticLoss,
    BrierLoss,
    LogLoss,
    ProperLoss,
    PseudoSphericalLoss,
    SavageLoss,
    SphericalLoss,
    TsallisLoss,
    ZeroOneLoss,
    get_loss,
    quartic_bayes_risk,
    regret_reference,
)
from proper_loss_bounds.modules import ProperLossModule, composite_loss

__version__ = "0.1.0"

__all__ = [
    "ProperLoss", "LogLoss", "BrierLoss", "SphericalLoss", "PseudoSphericalLoss", "TsallisLoss",
    "BinaryLogisticLoss", "BinaryExponentialLoss", "ZeroOneLoss", "SavageLoss", "quartic_bayes_risk",
    "get_loss", "LOSSES", "regret_reference",
    "ProperCheck", "check_properness", "strong_properness_constant", "RegretBound", "regret_bound",
    "loglog_slope", "TheoremCheck", "check_nonvacuous_iff_strict", "check_half_order",
    "ProperLossModule", "composite_loss", "RegretBoundConfig", "LearningCurveConfig",
]
