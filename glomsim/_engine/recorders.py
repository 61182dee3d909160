"""What a run records, as a value (diffrax's SaveAt): every k-th state, or summaries only.

A recorder value (``EveryKth``, ``SummariesOnly``) says what to keep; ``start`` gives the
storage of one run, which says where each step writes and what was kept. Every run
records the RMS change and the RMS size of every step, ``change(step, level)`` and
``rms(step, level)``, thinned ones included (the step's kernel sums them as it writes
the new rows).

Steps are counted from the run's start: local step s is the step ``t0 + s`` of a run
that continues another from its step t0 (t0 = 0 for a fresh run); the times kept are
the steps' own indices."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._kernels.gemm import aligned_empty

__all__ = ["EveryKth", "SummariesOnly", "sum_squares"]


def sum_squares(x) -> np.ndarray:
    """Sum of squares over (column, feature) per level, accumulated in float64 by one
    buffered pass (no float64 copy of the state): (L,) or (M, L)."""
    return np.einsum("...nd,...nd->...", x, x, dtype=np.float64)


class _Storage:
    """States of one run: E[t] computed in place in the records ``out`` (``ring`` None),
    or in a ring of the last d + 1 states (slot s % (d + 1) holds local step s) whose
    kept ones are copied out. Copying every step had cost ~15% of an ensemble's run.
    The delay reads the steps before the start from ``history`` (history[j] is local step
    -1 - j: E[0] again for a fresh run). ``change`` and ``rms`` (steps + 1, ...) hold the
    RMS change (NaN at the start) and the RMS size of every step."""

    summaries_only = False

    def __init__(self, start, records: int, delay: int, direct: bool, steps: int):
        state0 = start.state0
        self.d = delay
        self.t0 = start.t0
        self.steps = steps
        self.ring = None
        if not direct:
            self.ring = aligned_empty((delay + 1,) + state0.shape, state0.dtype)
            self.ring[0] = state0
        self.out = aligned_empty((records,) + state0.shape, state0.dtype)
        self.out[0] = state0
        # a real array, not a broadcast view: the in-numba run takes C-contiguous states
        self.history = np.ascontiguousarray(start.history, dtype=state0.dtype)
        self.change = np.empty((steps + 1,) + state0.shape[:-2], dtype=np.float64)
        self.change[0] = np.nan  # the start has no predecessor in this run
        self.rms = np.empty_like(self.change)
        # from the recorded copy, not the start as given: a broadcast view and an array
        # of the same values are summed in different orders
        size = state0.shape[-2] * state0.shape[-1]
        self.rms[0] = np.sqrt(sum_squares(self.out[0]) / size)

    def prefault(self) -> None:
        """Fault in the pages of the records after the start now, one write of a zero
        byte per 4 KiB page (their values are garbage until written): faulting fresh
        memory inside the parallel step left one thread waiting on the other's page
        faults. A 100-step run of the 32x32 dim-128 config recording every step took
        7.05-7.86 instead of 6.01-6.11 ms a step (two threads); the pages themselves cost
        0.12 ms per 2.6 MB state here, zeroed by the kernel. Only for runs that will
        write all their records (no settling test)."""
        rest = self.out[1:]
        if rest.size:
            rest.reshape(-1).view(np.uint8)[::4096] = 0

    def slots(self, t: int):
        """(E[t-1], E[t-d], where E[t] goes) of local step t."""
        return self.state(t - 1), self.state(t - self.d), self.state(t)

    def state(self, s: int):
        """Local step s's state (s >= -(d - 1); the ring holds the last d + 1 only)."""
        if s < 0:
            return self.history[-1 - s]
        if self.ring is None:
            return self.out[s]
        return self.ring[s % (self.d + 1)]

    def delay_history(self, upto: int):
        """E[upto - 1], ..., E[upto - d + 1] (local steps), which a run continuing from
        local step ``upto`` needs besides its state: (d - 1, ...), or None for d = 1."""
        if self.d == 1:
            return None
        return np.stack([self.state(upto - lag) for lag in range(1, self.d)])

    def summaries(self, upto: int) -> dict:
        return {"rms": self.rms[: upto + 1], "change": self.change[: upto + 1]}

    def after(self, t, new, change, rms, settled) -> None:
        self.change[t] = change
        self.rms[t] = rms


@dataclass(frozen=True)
class EveryKth:
    """Keep E[0], every state whose step is a multiple of ``every``, and the last
    (``record_every``)."""

    every: int = 1

    def start(self, start, steps: int, delay: int) -> _EveryKthRun:
        return _EveryKthRun(self.every, start, steps, delay)


class _EveryKthRun(_Storage):
    in_numba = True  # run_steps records this way itself

    def __init__(self, every, start, steps, delay):
        t0 = start.t0
        kept = [t for t in range(t0 + 1, t0 + steps + 1) if t % every == 0 or t == t0 + steps]
        super().__init__(start, 1 + len(kept), delay, every == 1, steps)
        self.every = every
        self.n = 1
        self.times = [t0]

    def after(self, t, new, change, rms, settled) -> None:
        super().after(t, new, change, rms, settled)
        step = self.t0 + t
        if step % self.every == 0 or t == self.steps or settled:
            if self.ring is not None:
                self.out[self.n] = new
            self.n += 1
            self.times.append(step)

    def after_numba(self, last: int) -> None:
        """What ``run_steps`` kept through local step ``last``."""
        every, t0 = self.every, self.t0
        self.times = [t0] + [t0 + s for s in range(1, last + 1)
                             if (t0 + s) % every == 0 or s == self.steps]  # fmt: skip
        self.n = len(self.times)

    def kept(self, upto: int):
        """(states, times, summaries, delay history) kept through local step ``upto``;
        the state of ``upto`` itself is kept too (a run that failed after it keeps its
        last finite state, however thinned)."""
        if self.times[-1] != self.t0 + upto:  # a free slot: the last step's is not used
            self.out[self.n] = self.state(upto)
            self.n += 1
            self.times.append(self.t0 + upto)
        return self.out[: self.n], self.times, self.summaries(upto), self._history(upto)

    def _history(self, upto):
        times = set(self.times)
        if all(max(self.t0 + upto - lag, 0) in times for lag in range(1, self.d)):
            return None  # the records hold what a continued run needs
        return self.delay_history(upto)

    def describe(self, upto: int) -> str:
        return f"{self.n} recorded steps up to step {self.times[-1]}"


@dataclass(frozen=True)
class SummariesOnly:
    """Keep E[0] and the last state, and summarise every step: ``rms(step, level)`` (RMS
    over column and feature of E_t) and ``change(step, level)`` (RMS of E_t - E_{t-1},
    NaN at step 0), both float64, so memory is O(steps x levels) plus a constant."""

    def start(self, start, steps: int, delay: int) -> _SummariesRun:
        return _SummariesRun(start, steps, delay)


class _SummariesRun(_Storage):
    # run_steps keeps the last state itself when no step is a multiple of ``every``: it
    # then copies only the last into out[1]. Stepping from Python instead had cost ~15%
    # of a small config's step (0.143-0.148 against 0.123-0.129 ms, 500 steps of 8x8)
    in_numba = True
    summaries_only = True

    def __init__(self, start, steps, delay):
        super().__init__(start, 1 + (steps > 0), delay, False, steps)
        self.every = start.t0 + steps + 1  # beyond the run's last step

    def after_numba(self, last: int) -> None:
        """Nothing to note: :meth:`kept` reads the ring and the summaries."""

    def kept(self, upto: int):
        if upto > 0:
            self.out[1] = self.ring[upto % (self.d + 1)]
        times = [self.t0, self.t0 + upto] if upto > 0 else [self.t0]
        return self.out[: 1 + (upto > 0)], times, self.summaries(upto), self.delay_history(upto)

    def describe(self, upto: int) -> str:
        return f"the summaries of steps {self.t0}-{self.t0 + upto} and the state at step {self.t0 + upto}"
