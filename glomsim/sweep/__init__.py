"""Parameter sweeps on Dask: a spec of axes over config fields, results in one Zarr store.

A sweep runs one simulation per cell of (sweep axes..., seed[, member]): a *run*. Each run
writes its own region of one Zarr store and is marked done only after that write, so a
sweep killed at any moment resumes where it stopped, with nothing lost or duplicated and
results bit-identical to an uninterrupted run (every run's randomness comes from its seed
and member index alone). ``docs/sweeps.md`` is the user guide.

The package re-exports its parts, one job each: :mod:`~glomsim.sweep.spec` (the spec
language: :class:`SweepSpec`, :class:`Axis`, :func:`load_spec`),
:mod:`~glomsim.sweep.runs` (what the workers do: prepare, simulate and measure runs),
:mod:`~glomsim.sweep.execute` (the Dask driver, :func:`run`) and
:mod:`~glomsim.sweep.store` (the Zarr layout; :func:`open_sweep` reads it back),
:mod:`~glomsim.sweep.refine` (adaptive sweeps, ``[refine]``) and
:mod:`~glomsim.sweep.critical` (:func:`critical`, the crossing they locate). What a
sweep says when it cannot do everything (:class:`StoreLocked`, :class:`SweepIncomplete`,
:class:`SweepRunsFailed`, :class:`SweepDamaged`) is :mod:`~glomsim.sweep._errors`. The
command line is :mod:`glomsim.cli.sweep`.

Examples
--------
>>> import tempfile, os
>>> from glomsim.sweep import load_spec, run
>>> spec = load_spec({
...     "sweep": {"seeds": 2},
...     "base": {"levels": 2, "dim": 4, "grid": [4, 4], "steps": 3},
...     "axes": {"beta": {"path": "attention.beta", "values": [0.0, 2.0]}},
...     "scene": {"n_objects": 1, "parts_per_object": 1, "textures_per_part": 1},
... })
>>> ds = run(spec, os.path.join(tempfile.mkdtemp(), "s.zarr"), client="sync", progress=False)
>>> ds.island_count.sel(beta=2.0).dims
('seed', 'level')
>>> int((ds.status == 1).sum())
4
"""

from __future__ import annotations

from ._errors import StoreLocked, SweepDamaged, SweepIncomplete, SweepRunsFailed, SweepWarning
from .critical import critical
from .execute import run
from .refine import open_sweep
from .runs import run_batch, simulate_run, simulate_runs
from .spec import MODES, Axis, SpecError, SweepSpec, load_spec
from .store import summary_text

__all__ = [
    "Axis",
    "SweepSpec",
    "load_spec",
    "run",
    "open_sweep",
    "critical",
    "MODES",
    "SpecError",
    "summary_text",
    "simulate_run",
    "simulate_runs",
    "run_batch",
    "StoreLocked",
    "SweepIncomplete",
    "SweepWarning",
    "SweepRunsFailed",
    "SweepDamaged",
]
