"""The kernels' grouped arguments: named tuples of arrays and scalars, which numba passes
as one typed value each (one signature per kernel per dtype, as with positional ones).

Kernels unpack them into locals before their parallel loops, so those loops see plain
arrays, exactly as when each came as its own argument. :func:`glomsim._engine.tables`
builds them from a config; tests build small ones directly.
"""

from __future__ import annotations

from collections import namedtuple

__all__ = ["Nets", "AttentionTables", "Maths", "Norm", "Split", "Scratch", "Buffers",
           "StepTasks", "Schedule", "Record", "Span"]  # fmt: skip

#: The nets of every level, stacked along a leading member axis of length M or 1 (shared),
#: hidden layer cut into S chunks, each packed for the products (``_engine.nets.pack_net``:
#: w1 (M, L, S, P1, D, W), b1 (M, L, S, Hp), w2 (M, L, S, P2, Hp, W), Hp = P1 W the
#: padded hidden units of a chunk, P2 W >= D), b2 (M, L, D); positional codes ``pos`` (M
#: or 1, N, D); ``identity``: the nets are exact identities (their arrays are then
#: placeholders); ``act`` (2,): the activation ids of the bottom-up and the top-down nets.
Nets = namedtuple(
    "Nets", "bu_w1 bu_b1 bu_w2 bu_b2 td_w1 td_b1 td_w2 td_b2 pos identity act"
)  # fmt: skip

#: Attention per level: kernel ids (L,), self excluded (L,), parameter rows (L, P) (slots
#: in :mod:`.ids`), dense (global) path (L,); CSR neighbour lists ``indptr`` (L, N+1)
#: into the concatenated ``indices`` of all levels, and the longest list ``max_k``.
AttentionTables = namedtuple(
    "AttentionTables", "kernels self_excl params dense indptr indices max_k"
)

#: Constants of the state's dtype: ``fast`` selects float32's vectorised polynomials
#: (erf, exp) with coefficients ``poly`` (see :data:`.nets.POLY_F32`); ``gelu`` = [0.5,
#: 1/sqrt(2), 1].
Maths = namedtuple("Maths", "fast poly gelu")

#: Normalisation after combining: its id (:mod:`.ids`) and layernorm's epsilon.
Norm = namedtuple("Norm", "id eps")

#: The work split (sizes only, never the thread count): rows per net task ``block``,
#: rows per attention task ``rows``, members per net task ``group``, members per chunk
#: of an in-numba run ``chunk``.
Split = namedtuple("Split", "block rows group chunk")

#: Per-thread scratch (T, ...), T = numba's largest thread count: net inputs, hidden
#: units and outputs (group x block rows; hidden units and outputs padded to whole
#: panels, Hp and P2 W), attention (rows, D; padded to whole panels, P_D W, where a level
#: is dense), dense scores (rows, P_N W).
Scratch = namedtuple("Scratch", "x h y att scores")

#: Buffers of a run: net outputs ``netbuf`` (2, S, L, M, N, D); row norms, squared norms
#: and key scales (M, L, N); the states of dense levels packed for global attention's
#: products (``attention.pack_rows``): ``keys`` (M, L, P_N, D, W) and ``values`` (M, L,
#: P_D, N, W), placeholders of shape (1, 1, 1, 1, 1) without a dense level, P_N W and
#: P_D W the columns and features padded to whole panels, zeros past N and D; a
#: non-finite flag per (level, member, block) task; the first
#: failing (member, level) of an in-numba run ``where`` (2,); the scratch; and, when
#: ``keep_att``, every level's attention contribution ``att_out`` (L, M, N, D) (the
#: custom-rule path reads it); ``change_sums`` (2, L * M * blocks) float64: each (level,
#: member, block) task's sums of squares of E_t - E_{t-1} and of E_t over its rows.
Buffers = namedtuple(
    "Buffers",
    "netbuf norms sqnorms inv_norms keys values nonfinite where scratch att_out keep_att "
    "change_sums",
)

#: One step's mixing weights (L, 4) in the state's dtype, its net tasks (T, 5), and
#: whether level 0's bottom-up output is already in ``netbuf`` from an earlier step.
StepTasks = namedtuple("StepTasks", "mix tasks bu0_ready")

#: Every step's mixing weights (S+1, L, 4), their net tasks concatenated with offsets
#: ``task_ptr``, and whether each table runs level 0's bottom-up net (see
#: :func:`.step.run_steps`).
Schedule = namedtuple("Schedule", "mixes tasks task_ptr runs_bu0")

#: What an in-numba run records: the records ``out`` (R, M, L, N, D), a ring of the last
#: states (delay + 1, M, L, N, D) when ``every`` > 1 (a placeholder otherwise), the
#: states before the start that the top-down delay reads, ``history`` (delay - 1, M, L, N,
#: D) = E[t0 - 1], E[t0 - 2], ..., and the RMS change and RMS size of every step,
#: ``change`` and ``rms`` (steps + 1, M, L) float64 (row 0 is left as it is).
Record = namedtuple("Record", "out ring every history change rms")

#: The steps of an in-numba run: it starts from E[t0] and runs ``steps`` steps (t0 + 1 ...
#: t0 + steps: the mixing schedule and the frames read the step's own index) with
#: top-down delay ``delay``; inputs carry a frame axis, and step t reads frame
#: min((t - 1) // ``per_frame``, frames - 1).
Span = namedtuple("Span", "t0 steps delay per_frame")
