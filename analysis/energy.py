"""Interaction energy of the dot kernel: a diagnostic of clustering and metastable plateaus.

For a level whose attention kernel is ``dot`` with inverse temperature beta::

    energy[t, l] = sum over i and j in nbhd_l(i) of exp(beta <x_i, x_j>)

(the pairs the level attends over: all pairs with radius inf, j = i included when
``include_self``). Up to the factor ``1 / (2 beta N^2)`` this is the interaction energy
``E_beta`` of Geshkovski, Letrouit, Polyanskiy and Rigollet, "A mathematical perspective on
Transformers" (arXiv 2312.10794), which increases along their continuous-time unnormalised
self-attention dynamics on the sphere; long flat stretches of it mark metastable
configurations, and it reaches its maximum ``pairs * exp(beta)`` at a single cluster of
unit vectors. The softmax-normalised update glomsim runs is not exactly a gradient flow of
it, so read it as a diagnostic, not a Lyapunov function.

Only the dot kernel has this energy; :func:`energy` raises a ValueError naming the level and
its kernel otherwise (select dot levels with ``level=``).
"""

from __future__ import annotations

import math

import numpy as np

from glomsim.variables import annotate, check_dataset

from ._common import add_history

__all__ = ["energy"]

#: Rows of the Gram matrix computed at once: bounds memory at ROW_BLOCK * N floats.
ROW_BLOCK = 1024
_LOG_MAX = math.log(np.finfo(np.float64).max)


def _log_energy(x, beta, mask):
    """log sum_{(i, j) allowed} exp(beta <x_i, x_j>) over the last two axes (..., N, D)."""
    lead = x.shape[:-2]
    n = x.shape[-2]
    flat = np.asarray(x, dtype=np.float64).reshape((-1,) + x.shape[-2:])
    out = np.empty(flat.shape[0])
    for b, xb in enumerate(flat):
        top, total = -np.inf, 0.0
        for r0 in range(0, n, ROW_BLOCK):
            r1 = min(n, r0 + ROW_BLOCK)
            s = beta * (xb[r0:r1] @ xb.T)
            if mask is not None:
                s = np.where(mask[r0:r1], s, -np.inf)
            m = s.max() if s.size else -np.inf
            if m == -np.inf:
                continue
            # running log-sum-exp: rescale what was summed so far to the new maximum
            new_top = max(top, m)
            total = total * math.exp(top - new_top) + float(np.exp(s - new_top).sum())
            top = new_top
        out[b] = top + math.log(total) if total > 0 else -np.inf
    return out.reshape(lead)


def energy(ds, *, level=None):
    """Interaction energy ``sum_ij exp(beta <x_i, x_j>)`` per time and level (dot kernel).

    Parameters
    ----------
    ds : xarray.Dataset
        A simulation with ``embedding(time, level, column, feature)`` and the
        ``glomsim_config`` attribute (beta, radius and include_self come from each
        level's attention config); may be dask-backed.
    level : int or sequence of int, optional
        Levels to measure (values of the ``level`` coordinate); default all. Every
        selected level must use the dot kernel.

    Returns
    -------
    xarray.Dataset
        ``log_energy(time, level)`` (computed stably, log-sum-exp), ``energy(time, level)``
        (``exp(log_energy)``; inf beyond float64 range), ``pairs(level)`` (the number of
        (i, j) terms) and ``beta(level)``; ``ds``'s attrs plus a history line.

    Raises
    ------
    ValueError
        If a selected level's kernel is not ``dot`` (naming the level and the kernel), or
        if ``ds`` has no ``glomsim_config``.

    Examples
    --------
    >>> import glomsim as gs
    >>> from analysis import energy
    >>> cfg = gs.GlomConfig(levels=1, dim=3, grid=(1, 4), steps=2, normalize="l2",
    ...                     mix=gs.Mix(bottom_up=0, top_down=0), dtype="float64",
    ...                     attention=gs.Attention(kernel="dot", beta=2.0))
    >>> init = np.tile([0.0, 0.0, 1.0], (1, 4, 1))  # one cluster of unit vectors
    >>> out = energy(gs.simulate(cfg, gs.identity_weights(cfg), init=init))
    >>> float(out.log_energy[-1, 0]) == math.log(16) + 2.0
    True
    """
    import xarray as xr

    import glomsim as gs
    from glomsim.neighbours import within_radius

    check_dataset(ds, ["embedding"], "energy")
    cfg = gs.GlomConfig.from_dataset(ds)
    all_levels = [int(v) for v in ds["level"].values]
    if level is None:
        chosen = all_levels
    else:
        chosen = [level] if np.ndim(level) == 0 else list(level)
        bad = [
            v
            for v in chosen
            if isinstance(v, bool)
            or not isinstance(v, (int, np.integer))
            or int(v) not in all_levels
        ]
        if bad or not chosen:
            raise ValueError(
                f"energy: level={level!r} must be one or more of the dataset's levels {all_levels}"
            )
        chosen = [int(v) for v in chosen]
    for lv in chosen:
        att = cfg.attention_at(lv)
        if att.kernel != "dot":
            raise ValueError(
                f"energy: level {lv} uses attention.kernel={att.kernel!r}; the energy "
                "sum_ij exp(beta <x_i, x_j>) is defined for the kernel 'dot' only (allowed: "
                "'dot'); pick dot levels with level=[...]"
            )

    positions = cfg.position_array()
    n = cfg.n_columns
    pieces, pairs, betas = [], [], []
    for lv in chosen:
        att = cfg.attention_at(lv)
        mask = None
        if not (math.isinf(att.radius) and att.include_self):
            mask = within_radius(positions, att.radius)
            if not att.include_self:
                np.fill_diagonal(mask, False)
        pairs.append(n * n if mask is None else int(mask.sum()))
        betas.append(att.beta)
        x = ds["embedding"].sel(level=lv)
        pieces.append(
            xr.apply_ufunc(
                _log_energy,
                x,
                input_core_dims=[["column", "feature"]],
                kwargs={"beta": att.beta, "mask": mask},
                dask="parallelized",
                output_dtypes=[np.float64],
                dask_gufunc_kwargs={"allow_rechunk": True},
            )
        )
    log_e = xr.concat(pieces, dim="level").transpose("time", "level").compute()
    values = log_e.values
    with np.errstate(over="ignore"):
        en = np.where(values > _LOG_MAX, np.inf, np.exp(np.minimum(values, _LOG_MAX)))
    out = xr.Dataset(
        {
            "log_energy": (("time", "level"), values),
            "energy": (("time", "level"), en),
            "pairs": (("level",), np.asarray(pairs, dtype=np.int64)),
            "beta": (("level",), np.asarray(betas, dtype=np.float64)),
        },
        coords={"time": ds["time"].copy(), "level": ds["level"].sel(level=chosen).copy()},
    )
    annotate(out, "energy")
    return add_history(out, ds.attrs, "energy", {"level": level})
