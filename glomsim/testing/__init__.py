"""Public hypothesis strategies and invariant checks for GLOM update rules.

Researchers use these to property-test the built-in rule or a rule of their own
(``simulate(..., rule=...)``)::

    from hypothesis import given
    import glomsim.testing as gt

    @given(gt.consensus_cases())
    def test_my_rule_is_convex(case):
        gt.check_convex_combination(case, rule=my_rule)

Every check raises ``AssertionError`` with a message saying what failed, and returns
nothing on success.
"""

from __future__ import annotations

from .checks import (
    Case,
    check_consensus_fixed_point,
    check_convex_combination,
    check_finite_and_deterministic,
    check_permutation_equivariance,
    run_one_step,
)
from .strategies import (
    attentions,
    configs,
    consensus_cases,
    frames_for,
    mixes,
    states,
    weights_for,
    with_activations,
)

__all__ = [
    "Case",
    "attentions",
    "mixes",
    "configs",
    "weights_for",
    "states",
    "frames_for",
    "consensus_cases",
    "with_activations",
    "run_one_step",
    "check_convex_combination",
    "check_permutation_equivariance",
    "check_consensus_fixed_point",
    "check_finite_and_deterministic",
]
