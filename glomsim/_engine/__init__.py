"""The engine: plans (the kernels' grouped arguments and buffers, pooled between runs),
the integration loop with its recorders, and the custom-rule path on the same numba
contributions as the built-in rule.

The small internal API that entry points, tests and benchmarks use:

- :class:`Plan` (``glomsim._engine.plan``): everything fixed for a run; ``step``, ``run``.
- :func:`planned`, :func:`forget_plans`, :func:`idle_plans`: the pool of idle plans.
- :func:`integrate` with a recorder value :class:`EveryKth` or :class:`SummariesOnly`;
  it raises :class:`Diverged`.
"""

from .loop import Diverged, Result, integrate
from .plan import Plan
from .pool import forget_plans, idle_plans, planned
from .recorders import EveryKth, SummariesOnly

__all__ = ["Plan", "planned", "forget_plans", "idle_plans", "integrate", "Diverged",
           "Result", "EveryKth", "SummariesOnly"]  # fmt: skip
