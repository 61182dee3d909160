"""What a run records, as a value (diffrax's SaveAt): every k-th state, or summaries only.

A recorder value (``EveryKth``, ``SummariesOnly``) says what to keep; ``start`` gives the
storage of one run, which says where each step writes and what was kept."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["EveryKth", "SummariesOnly", "sum_squares"]


def sum_squares(x) -> np.ndarray:
    """Sum of squares over (column, feature) per level, accumulated in float64 by one
    buffered pass (no float64 copy of the state): (L,) or (M, L)."""
    return np.einsum("...nd,...nd->...", x, x, dtype=np.float64)


class _Storage:
    """States of one run: E[t] computed in place in the records ``out`` (``ring`` None),
    or in a ring of the last d + 1 states (slot t % (d + 1) holds E[t]) whose kept ones
    are copied out. Copying every step had cost ~15% of an ensemble's run."""

    needs_change = False

    def __init__(self, state0, records: int, delay: int, direct: bool):
        self.d = delay
        self.ring = None
        if not direct:
            self.ring = np.empty((delay + 1,) + state0.shape, dtype=state0.dtype)
            self.ring[0] = state0
        self.out = np.empty((records,) + state0.shape, dtype=state0.dtype)
        self.out[0] = state0

    def slots(self, t: int):
        """(E[t-1], E[t-d], where E[t] goes)."""
        d = self.d
        if self.ring is None:
            return self.out[t - 1], self.out[max(t - d, 0)], self.out[t]
        ring = self.ring
        return ring[(t - 1) % (d + 1)], ring[max(t - d, 0) % (d + 1)], ring[t % (d + 1)]


@dataclass(frozen=True)
class EveryKth:
    """Keep E[0], every ``every``-th state and the last (``record_every``)."""

    every: int = 1

    def start(self, state0, steps: int, delay: int) -> _EveryKthRun:
        return _EveryKthRun(self.every, state0, steps, delay)


class _EveryKthRun(_Storage):
    in_numba = True  # run_steps records this way itself

    def __init__(self, every, state0, steps, delay):
        records = len(range(0, steps + 1, every)) + (steps % every != 0)
        super().__init__(state0, records, delay, direct=every == 1)
        self.every = every
        self.steps = steps
        self.n = 1
        self.times = [0]

    def after(self, t, new, change, settled) -> None:
        if t % self.every == 0 or t == self.steps or settled:
            if self.ring is not None:
                self.out[self.n] = new
            self.n += 1
            self.times.append(t)

    def after_numba(self, last: int) -> None:
        """What ``run_steps`` kept through step ``last``."""
        every, steps = self.every, self.steps
        self.times = [0] + [t for t in range(1, last + 1) if t % every == 0 or t == steps]
        self.n = len(self.times)

    def kept(self, upto: int):
        """(states, times, summaries) kept through step ``upto``."""
        return self.out[: self.n], self.times, None

    def describe(self, upto: int) -> str:
        return f"{self.n} recorded steps up to step {self.times[-1]}"


@dataclass(frozen=True)
class SummariesOnly:
    """Keep E[0] and the last state, and summarise every step: ``rms(step, level)`` (RMS
    over column and feature of E_t) and ``change(step, level)`` (RMS of E_t - E_{t-1},
    NaN at step 0), both float64, so memory is O(steps x levels) plus a constant."""

    def start(self, state0, steps: int, delay: int) -> _SummariesRun:
        return _SummariesRun(state0, steps, delay)


class _SummariesRun(_Storage):
    in_numba = False
    needs_change = True

    def __init__(self, state0, steps, delay):
        super().__init__(state0, 1 + (steps > 0), delay, direct=False)
        lead = state0.shape[:-2]  # (L,) or (M, L)
        self.size = state0.shape[-2] * state0.shape[-1]  # entries per level
        self.rms = np.empty((steps + 1,) + lead, dtype=np.float64)
        self.change = np.empty((steps + 1,) + lead, dtype=np.float64)
        self.rms[0] = np.sqrt(sum_squares(state0) / self.size)
        self.change[0] = np.nan  # E_0 has no predecessor

    def after(self, t, new, change, settled) -> None:
        self.change[t] = change
        self.rms[t] = np.sqrt(sum_squares(new) / self.size)

    def kept(self, upto: int):
        if upto > 0:
            self.out[1] = self.ring[upto % (self.d + 1)]
        sums = {"rms": self.rms[: upto + 1], "change": self.change[: upto + 1]}
        return self.out[: 1 + (upto > 0)], [0, upto] if upto > 0 else [0], sums

    def describe(self, upto: int) -> str:
        return f"the summaries of steps 0-{upto} and the state at step {upto}"
