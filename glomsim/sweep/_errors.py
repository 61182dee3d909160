"""What a sweep reports when it cannot, or did not, do everything it was asked.

- :class:`StoreLocked` (raised before any work): another sweep writes the store.
- :class:`SweepIncomplete` (raised at the end): runs are still pending; the store keeps
  everything done so far, and running the sweep again resumes the rest.
- :class:`SweepRunsFailed` (warned at the end): the sweep is complete, but some runs
  failed; their ``error`` says why.
- :class:`SweepDamaged` (warned by ``open_sweep`` and on resume): recorded runs whose
  chunks are missing or cut short; they read as pending and a resume redoes them.

The command line turns the first into exit code 2 and the next two into exit code 1,
each on one line.
"""

from __future__ import annotations

__all__ = ["StoreLocked", "SweepIncomplete", "SweepWarning", "SweepRunsFailed", "SweepDamaged"]

#: Runs named in a message; the counts say how many there are in all.
FIRST_FEW = 3


class StoreLocked(RuntimeError):
    """Another sweep holds the store's lock; ``holder`` says who (host, pid, since)."""

    def __init__(self, message, *, holder=None):
        super().__init__(message)
        self.holder = holder


class SweepIncomplete(RuntimeError):
    """Runs are still pending after the sweep's retries: their workers were lost.

    ``dataset`` is the store as it is (:func:`~glomsim.sweep.open_sweep`), ``pending``
    and ``failed`` the run indices (C order over the run dims) in each state.
    """

    def __init__(self, message, *, dataset=None, pending=(), failed=()):
        super().__init__(message)
        self.dataset = dataset
        self.pending = tuple(pending)
        self.failed = tuple(failed)


class SweepWarning(UserWarning):
    """The base of the warnings a sweep gives about its runs."""


class SweepRunsFailed(SweepWarning):
    """The sweep finished, but some (or all) of its runs failed."""


class SweepDamaged(SweepWarning):
    """Recorded runs whose data in the store is missing or cut short."""


for _cls in (StoreLocked, SweepIncomplete, SweepWarning, SweepRunsFailed, SweepDamaged):
    # shown as glomsim.sweep.X in tracebacks and warnings, where users import them from
    _cls.__module__ = "glomsim.sweep"
