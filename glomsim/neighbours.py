"""Neighbour lists (CSR) of each level's attention neighbourhood."""

from __future__ import annotations

import numpy as np

from .config import Attention


def neighbour_csr(positions: np.ndarray, att: Attention) -> tuple[np.ndarray, np.ndarray]:
    """(indptr, indices) of the closed ball |pos_i - pos_j| <= radius, sorted by j.

    Self is left out when ``include_self`` is False, except for the ``glom_pytorch``
    kernel, whose "self excluded" keeps j = i with a fixed score. Membership uses the
    same formula as :func:`glomsim.reference.neighbourhood`, so both agree exactly.
    """
    from scipy.spatial import cKDTree

    n = positions.shape[0]
    drop_self = (not att.include_self) and att.kernel != "glom_pytorch"
    if np.isinf(att.radius):
        cols = np.arange(n, dtype=np.int64)
        rows = [cols[cols != i] if drop_self else cols for i in range(n)]
    else:
        tree = cKDTree(positions)
        cand = tree.query_ball_point(positions, r=att.radius * (1 + 1e-9) + 1e-12)
        rows = []
        for i, js in enumerate(cand):
            js = np.asarray(sorted(js), dtype=np.int64)
            diff = positions[i] - positions[js]
            keep = np.sqrt((diff**2).sum(-1)) <= att.radius
            if drop_self:
                keep &= js != i
            rows.append(js[keep])
    counts = np.array([len(r) for r in rows], dtype=np.int64)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    indices = np.concatenate(rows) if n else np.zeros(0, dtype=np.int64)
    return indptr, indices.astype(np.int64)
