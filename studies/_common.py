"""Shared plumbing of the studies: read study.toml, pick quick or full mode, save outputs.

Each study's ``run.py`` puts this folder on ``sys.path`` and imports it, so every study
reads its parameters, writes its results and sizes its figures the same way.
"""

from __future__ import annotations

import argparse
import copy
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: Committed figures must stay small (the repository carries them).
MAX_FIGURE_BYTES = 150_000


def _merge(base: dict, override: dict) -> dict:
    """Deep merge: tables merge key by key, anything else is replaced."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


@dataclass
class Study:
    """A study's folder, parameters (quick overrides applied) and output places."""

    folder: Path
    params: dict
    quick: bool
    results: Path
    figures: Path
    dpi: int
    started: float = field(default_factory=time.perf_counter)

    def config(self, *tables: dict, **changes):
        """The ``[config]`` table as a GlomConfig, with ``tables`` (e.g. a model's own
        ``[model.config]``) merged over it in order, then fields replaced by ``changes``."""
        import glomsim as gs

        merged = self.params["config"]
        for extra in (*tables, changes):
            merged = _merge(merged, extra)
        return gs.GlomConfig.from_dict(merged)

    def save_figure(self, fig, name: str) -> Path:
        """Save a matplotlib Figure as a small PNG; warn when it exceeds the size budget."""
        path = self.figures / name
        fig.savefig(path, dpi=self.dpi)
        size = path.stat().st_size
        if size > MAX_FIGURE_BYTES:
            print(f"warning: {path.name} is {size / 1000:.0f} kB (budget 150 kB)")
        return path

    def save_results(self, ds, name: str) -> Path:
        """Write a Dataset of measurements as netCDF under results/ (booleans as int8)."""
        ds = ds.copy()
        for var in list(ds.variables):
            if ds[var].dtype == bool:
                ds[var] = ds[var].astype("int8")
        path = self.results / name
        ds.to_netcdf(path, engine="h5netcdf")
        return path

    def elapsed(self) -> float:
        return time.perf_counter() - self.started


def setup(run_file: str, description: str = "") -> Study:
    """Parse ``--quick``, read ``study.toml`` beside ``run_file`` and prepare the outputs.

    In quick mode the ``[quick]`` table is merged over the parameters, and results and
    figures go to ``results/quick/`` (git-ignored), so a smoke test never overwrites the
    committed figures or the full run's results.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--quick", action="store_true", help="tiny version (seconds); figures go to results/"
    )
    args = parser.parse_args()
    folder = Path(run_file).resolve().parent
    with open(folder / "study.toml", "rb") as fh:
        raw = tomllib.load(fh)
    quick_overrides = raw.pop("quick", {})
    params = _merge(raw, quick_overrides) if args.quick else raw
    # quick runs get their own folder, so a smoke test leaves the full results alone
    results = folder / "results" / "quick" if args.quick else folder / "results"
    results.mkdir(parents=True, exist_ok=True)
    figures = results if args.quick else folder
    _one_thread()
    return Study(
        folder=folder,
        params=params,
        quick=args.quick,
        results=results,
        figures=figures,
        dpi=int(params.get("figure_dpi", 90)),
    )


_BLAS_LIMIT = []


def _one_thread():
    """These grids are small: on shared cores, synchronising numba's threads every step
    costs far more than the work (measured: 100 steps of a 12x12 grid took 1.3 s on two
    busy threads and 0.03 s on one), and OpenBLAS's second thread made the eigenvalues of
    analysis.stability 5x slower (1728x1728: 7.4 s vs 1.6 s). Results do not depend on
    the thread count."""
    import numba
    from threadpoolctl import threadpool_limits

    numba.set_num_threads(1)
    _BLAS_LIMIT.append(threadpool_limits(1, user_api="blas"))  # held for the whole run


def table(rows: list[dict], columns: list[str] | None = None, floatfmt: str = ".3g") -> str:
    """A plain-text table of dicts, columns aligned, floats formatted with ``floatfmt``."""
    if not rows:
        return "(no rows)"
    # union of the rows' keys in first-seen order: later rows may add columns
    columns = columns or list(dict.fromkeys(k for r in rows for k in r))

    def cell(v):
        if isinstance(v, float):
            return format(v, floatfmt)
        return str(v)

    body = [[cell(r.get(c, "")) for c in columns] for r in rows]
    widths = [max(len(c), *(len(b[i]) for b in body)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.rjust(w) for v, w in zip(b, widths, strict=True)) for b in body]
    return "\n".join(lines)


def t_interval(x, confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): the two-sided Student t interval of the mean of the finite values
    of ``x`` (any shape); NaN bounds with fewer than two values, all NaN with none."""
    import math

    from scipy.stats import t

    x = np.asarray(x, dtype=np.float64).ravel()
    x = x[np.isfinite(x)]
    if x.size == 0:
        return math.nan, math.nan, math.nan
    mean = float(x.mean())
    if x.size < 2:
        return mean, math.nan, math.nan
    half = float(t.ppf((1 + confidence) / 2, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size))
    return mean, mean - half, mean + half


def fmt_interval(mean, lo=np.nan, hi=np.nan, digits=2, missing="nan") -> str:
    """'mean [low, high]' with ``digits`` decimals; the mean alone when a bound is not
    finite (one value, or none asked), ``missing`` when the mean is not finite."""
    if not np.isfinite(mean):
        return missing
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


# --- island maps: the scheme of analysis.plot.island_maps on panels of several runs ---


def _grid_pairs(grid):
    """(rows, cols, row index, col index) for analysis._maps.draw_map, and the pairs of
    touching columns of a ``grid`` filled row by row."""
    from analysis import _colours

    rows, cols = (int(v) for v in grid)
    yi, xi = np.divmod(np.arange(rows * cols), cols)
    return (rows, cols, yi, xi), _colours.grid_pairs(yi, xi)


def truth_panel(ax, grid, truth, title="ground truth"):
    """Draw one level's true labels (N,) on ``ax`` in the colours of the island maps
    (the background label 0 grey); the title counts the labels."""
    from analysis import _colours
    from analysis._maps import draw_map, n_islands

    shape, pairs = _grid_pairs(grid)
    truth = np.asarray(truth).reshape(-1)
    rgb = _colours.truth_rgb(truth, _colours.colour_truth(truth, pairs))
    draw_map(ax, rgb, shape, shape[2], shape[3])
    ax.set_title(f"{title}: {n_islands(len(np.unique(truth[truth >= 0])), 'label')}", fontsize=8)


def island_panels(axes, grid, truth, runs):
    """Draw the islands of several runs on one scene level, judged against ``truth``.

    ``runs`` is a list of (title, island labels (N,)), one per axes. Colours follow
    :func:`analysis.plot.island_colours` with ``truth``: touching islands differ, the
    background island is grey, an island matching a true label has that label's colour
    (as in :func:`truth_panel`), and an island continuing one of the previous panel's
    keeps its colour (the panels are treated as the steps of one run). Titles add the
    island count and the ARI against ``truth`` (columns with a known label).
    """
    from analysis import _colours, adjusted_rand_index
    from analysis._common import canonical_labels
    from analysis._maps import draw_map, n_islands

    shape, pairs = _grid_pairs(grid)
    truth = np.asarray(truth).reshape(-1)
    labels = np.stack([canonical_labels(np.asarray(lab).reshape(-1)) for _, lab in runs])
    colours = _colours.colour_series(labels, pairs, truth, _colours.colour_truth(truth, pairs))
    known = truth >= 0
    for ax, (title, _), lab, col in zip(axes, runs, labels, colours, strict=True):
        draw_map(ax, _colours.to_rgb(lab, col), shape, shape[2], shape[3])
        ari = adjusted_rand_index(lab[known], truth[known])
        ax.set_title(f"{title}: {n_islands(lab.max() + 1)}\nARI {ari:.2f}", fontsize=8)
