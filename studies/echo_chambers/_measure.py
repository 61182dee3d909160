"""The runs and scores of the echo-chambers study (run.py drives them and prints tables).

Every score is computed at the last step of a run, per level, against the scene's labels
(level 0 textures, 1 parts, 2 objects) and over the objects' columns only (the background
left out, as ``analysis.agreement(objects_only=True)`` does), except ``leak_bg``, which
also counts the pairs across an object's outline.
"""

from __future__ import annotations

import numpy as np

#: scores of one settled state, each (levels,)
SCORES = (
    "ari", "purity", "inverse_purity", "leak", "leak_bg", "contrast", "count", "settled",
)  # fmt: skip
#: scores of the trivial partitions (analysis.agreement's baselines), each (baseline, level)
BASELINE_SCORES = ("baseline_ari", "baseline_purity", "baseline_inverse_purity")
#: the input changes of part 2, all with the same per-entry RMS on the columns they change
PERTURBATIONS = ("white, all columns", "white, one part", "coherent, one part")
#: the starting states of part 3
STARTS = ("fresh", "from A", "from C", "from random")


from _common import fmt_interval, t_interval  # noqa: E402 - run.py puts studies/ on the path


def fmt(x, confidence, digits=2):
    """'mean [low, high]' of the values ``x`` over seeds."""
    return fmt_interval(*t_interval(x, confidence), digits)


class Runs:
    """Configs, scenes and settled runs, each made once.

    A settled run is keyed by (scene seed, beta, attention weight, noise); with weight 0
    beta plays no role, so those runs are shared by every beta.
    """

    def __init__(self, study):
        import glomsim as gs

        self.study = study
        self.cfgs, self.scenes, self.settled = {}, {}, {}
        self.weights = gs.identity_weights(study.config())

    def config(self, beta, weight, **changes):
        beta = 0.0 if float(weight) == 0 else float(beta)  # no attention: beta plays no role
        key = (beta, float(weight), tuple(sorted(changes.items())))
        if key not in self.cfgs:
            self.cfgs[key] = self.study.config(
                mix=dict(attention=float(weight)), attention=dict(beta=float(beta)), **changes
            )
        return self.cfgs[key]

    def scene(self, seed, noise):
        from glomsim.scenes import make_scene

        key = (int(seed), float(noise))
        if key not in self.scenes:
            c = self.study.params["config"]
            self.scenes[key] = make_scene(
                grid=tuple(c["grid"]), dim=int(c["dim"]), levels=int(c["levels"]),
                seed=int(seed), noise=float(noise), **self.study.params["scene"],
            )  # fmt: skip
        return self.scenes[key]

    def settle(self, seed, beta, weight, noise):
        """The run of [config] steps from zeros on scene (seed, noise) (cached)."""
        import glomsim as gs

        beta = 0.0 if float(weight) == 0 else float(beta)
        key = (int(seed), beta, float(weight), float(noise))
        if key not in self.settled:
            cfg = self.config(beta, weight)
            scene = self.scene(seed, noise)
            self.settled[key] = gs.simulate(cfg, self.weights, inputs=scene,
                                            record_every=cfg.steps)  # fmt: skip
        return self.settled[key]


def _pairs(study):
    """(island pairs, 4-neighbour pairs of the boundary leak) of the grid."""
    from glomsim.neighbours import neighbour_pairs

    rows, cols = (int(v) for v in study.params["config"]["grid"])
    y, x = np.divmod(np.arange(rows * cols), cols)
    pos = np.stack([y, x], axis=1).astype(np.float64)
    return neighbour_pairs(pos, float(study.params["islands"]["radius"])), neighbour_pairs(pos, 1.0)


def score(study, ds, thresholds=()):
    """Scores of the last step of ``ds`` against its scene's labels.

    Returns (scores, baselines, ari per threshold (threshold, level), island labels
    (level, column)). ``scores`` holds :data:`SCORES`, each (levels,); ari, purity,
    inverse purity, the boundary leak and the cosine contrast come from
    ``analysis.agreement(objects_only=True)`` (islands at the [islands] threshold);
    ``leak_bg`` is the boundary leak over every 4-neighbour pair across a true boundary,
    the object outlines included (the only boundaries level 2 has).
    """
    import analysis as an
    from analysis.agreement import background_columns, boundary_leak
    from analysis.islands import island_labels

    opts = study.params["islands"]
    isl = an.islands(ds, time=-1, threshold=float(opts["threshold"]), radius=float(opts["radius"]))
    ag = an.agreement(ds, isl, objects_only=True)
    truth = ds["label"].transpose("level", "column").values
    emb = np.asarray(ds["embedding"].isel(time=-1).transpose("level", "column", "feature"),
                     dtype=np.float64)  # fmt: skip
    pairs, pairs4 = _pairs(study)
    out = {k: np.asarray(ag[k].isel(time=-1), dtype=np.float64)
           for k in ("ari", "purity", "inverse_purity")}  # fmt: skip
    out["leak"] = np.asarray(ag["boundary_leak"].isel(time=-1), dtype=np.float64)
    out["contrast"] = np.asarray(ag["cosine_contrast"].isel(time=-1), dtype=np.float64)
    out["leak_bg"] = np.array([
        boundary_leak(emb[lv], truth[lv], pairs4, float(opts["threshold"]))
        for lv in range(len(truth))
    ])  # fmt: skip
    out["count"] = np.asarray(isl["count"].values[-1], dtype=np.float64)
    out["settled"] = (an.convergence(ds)["settled_step"].values >= 0).astype(np.float64)
    base = {k: np.asarray(ag[k].values, dtype=np.float64) for k in BASELINE_SCORES}
    objects = ~background_columns(truth)
    by_threshold = np.array([
        [an.adjusted_rand_index(island_labels(emb[lv], th, pairs=pairs)[objects],
                                truth[lv][objects]) for lv in range(len(truth))]
        for th in thresholds
    ]).reshape(len(thresholds), len(truth))  # fmt: skip
    return out, base, by_threshold, isl["labels"].values[-1]


def sweep(study, runs):
    """Part 1: the scores over (seed, beta, attention, noise), with the baselines per seed."""
    p, sw = study.params["study"], study.params["sweep"]
    seeds, betas, weights, noises = p["seeds"], sw["beta"], sw["attention"], sw["noise"]
    thresholds = [float(t) for t in sw["thresholds"]]
    levels = int(study.params["config"]["levels"])
    shape = (len(seeds), len(betas), len(weights), len(noises))
    out = {k: np.full((*shape, levels), np.nan) for k in SCORES}
    out["ari_threshold"] = np.full((*shape, len(thresholds), levels), np.nan)
    base = {k: np.full((len(seeds), 2, levels), np.nan) for k in BASELINE_SCORES}
    for s, seed in enumerate(seeds):
        for b, beta in enumerate(betas):
            for a, weight in enumerate(weights):
                for n, noise in enumerate(noises):
                    ds = runs.settle(seed, beta, weight, noise)
                    got, bl, by_th, _ = score(study, ds, thresholds)
                    for k in SCORES:
                        out[k][s, b, a, n] = got[k]
                    out["ari_threshold"][s, b, a, n] = by_th
                    for k in BASELINE_SCORES:
                        base[k][s] = bl[k]
    return out, base


def _unit(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _rms(x, axis=None):
    return np.sqrt(np.mean(np.asarray(x, dtype=np.float64) ** 2, axis=axis))


def perturbations(scene, size, rng):
    """The input changes of :data:`PERTURBATIONS`: white noise on every column, white
    noise on the columns of one random part (level-1 label, not the background), and one
    random vector added to every column of that part. Each has per-entry RMS ``size`` on
    the columns it changes."""
    tokens = scene.tokens
    parts = np.unique(scene.labels[1][scene.labels[1] > 0])
    part = scene.labels[1] == rng.choice(parts)
    white = size * rng.standard_normal(tokens.shape)
    coherent = size * rng.standard_normal(tokens.shape[1])
    return {
        PERTURBATIONS[0]: white,
        PERTURBATIONS[1]: np.where(part[:, None], white, 0.0),
        PERTURBATIONS[2]: np.where(part[:, None], coherent[None, :], 0.0),
    }


def gains(study, runs):
    """Part 2: gain (seed, attention, perturbation, level) = RMS change of the settled state
    over RMS change of the unit-normalised tokens, after [config] steps more from the
    settled state with the changed tokens, against the same continuation with the
    unchanged tokens (so leftover drift cancels). Without attention it is 1."""
    import glomsim as gs

    p, pr = study.params["study"], study.params["probe"]
    seeds, weights = p["seeds"], pr["attention"]
    levels = int(study.params["config"]["levels"])
    gain = np.full((len(seeds), len(weights), len(PERTURBATIONS), levels), np.nan)
    for s, seed in enumerate(seeds):
        scene = runs.scene(seed, pr["noise"])
        deltas = perturbations(scene, float(pr["perturbation"]), np.random.default_rng(1000 + seed))
        for a, weight in enumerate(weights):
            cfg = runs.config(pr["beta"], weight)
            settled = runs.settle(seed, pr["beta"], weight, pr["noise"])
            base = gs.simulate(cfg, runs.weights, inputs=scene.tokens, init=settled,
                               record_every=cfg.steps).embedding.values[-1]  # fmt: skip
            for k, name in enumerate(PERTURBATIONS):
                changed = scene.tokens + deltas[name]
                end = gs.simulate(cfg, runs.weights, inputs=changed, init=settled,
                                  record_every=cfg.steps).embedding.values[-1]  # fmt: skip
                d_unit = _unit(changed) - _unit(scene.tokens)
                gain[s, a, k] = _rms(end - base, axis=(1, 2)) / _rms(d_unit)
    return gain


def switch(study, runs):
    """Part 3: scene B from each start of :data:`STARTS`; scores against B, and the ARI
    against A's labels (objects of A only) of the same end state. Returns ({score:
    (seed, attention, start, level)}, island maps of the first seed)."""
    import analysis as an
    import glomsim as gs
    from analysis.agreement import background_columns

    p, pr = study.params["study"], study.params["probe"]
    seeds, weights = p["seeds"], pr["attention"]
    levels = int(study.params["config"]["levels"])
    steps = int(pr["switch_steps"])
    shape = (len(seeds), len(weights), len(STARTS), levels)
    out = {k: np.full(shape, np.nan) for k in (*SCORES, "ari_vs_A")}
    maps = {}
    for s, seed in enumerate(seeds):
        a_scene = runs.scene(seed, pr["noise"])
        b_scene = runs.scene(seed + int(pr["b_offset"]), pr["noise"])
        a_objects = ~background_columns(a_scene.labels)
        rng = np.random.default_rng(2000 + seed)
        random_start = rng.standard_normal((levels, *a_scene.tokens.shape))
        for a, weight in enumerate(weights):
            cfg = runs.config(pr["beta"], weight)
            settled = {
                "from A": runs.settle(seed, pr["beta"], weight, pr["noise"]),
                "from C": runs.settle(seed + int(pr["c_offset"]), pr["beta"], weight, pr["noise"]),
            }
            for k, start in enumerate(STARTS):
                if start in settled:
                    init = settled[start].embedding.values[-1]
                else:
                    init = random_start if start == "from random" else None
                ds = gs.simulate(cfg, runs.weights, inputs=b_scene, init=init, steps=steps,
                                 record_every=steps)  # fmt: skip
                got, _, _, labels = score(study, ds)
                for name in SCORES:
                    out[name][s, a, k] = got[name]
                out["ari_vs_A"][s, a, k] = [
                    an.adjusted_rand_index(labels[lv][a_objects], a_scene.labels[lv][a_objects])
                    for lv in range(levels)
                ]
                if s == 0:
                    maps[float(weight), start] = labels
        if s == 0:
            maps["truth"] = (a_scene.labels, b_scene.labels)
    return out, maps
