"""Published consensus results, reproduced with glomsim's classic special cases.

One level, no nets (``Mix(bottom_up=0, top_down=0)`` or identity weights): the GLOM update
is then a classic opinion-dynamics model, whose known results are the oracle.
"""

import math

import numpy as np
import pytest
import scipy.linalg

import glomsim as gs
from analysis.convergence import convergence
from analysis.energy import energy
from glomsim.reference import neighbourhood

pytestmark = pytest.mark.usefixtures("one_numba_thread")


def _uniform_attention(cfg):
    """Row-stochastic A of uniform averaging (beta = 0) over each column's neighbourhood."""
    allowed = neighbourhood(cfg.position_array(), cfg.attention_at(0).radius).astype(float)
    return allowed / allowed.sum(1, keepdims=True)


# ----- DeGroot ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def degroot():
    w_prev, w_att = 1.0, 2.0
    cfg = gs.GlomConfig(
        levels=1,
        dim=2,
        grid=(3, 4),
        steps=220,
        dtype="float64",
        mix=gs.Mix(bottom_up=0, top_down=0, previous=w_prev, attention=w_att),
        attention=gs.Attention(kernel="dot", beta=0.0, radius=1.5),
    )
    mixing = (w_prev * np.eye(12) + w_att * _uniform_attention(cfg)) / (w_prev + w_att)
    init = np.random.default_rng(7).normal(size=(1, 12, 2))
    return cfg, mixing, init, gs.simulate(cfg, gs.identity_weights(cfg), init=init)


def test_degroot_rate_is_the_second_largest_eigenvalue_modulus(degroot):
    """DeGroot, "Reaching a consensus", JASA 69 (1974) 118-121: x_{t+1} = M x_t with M
    row-stochastic and primitive converges to consensus; the error, and so the step change,
    decays like |lambda_2|^t, lambda_2 the second-largest eigenvalue modulus of M (e.g.
    Xiao and Boyd, "Fast linear iterations for distributed averaging", 2004).

    Lazy uniform averaging on a 3x4 grid with the 8-neighbourhood (radius 1.5).
    """
    cfg, mixing, _, ds = degroot
    moduli = np.sort(np.abs(np.linalg.eigvals(mixing)))[::-1]
    assert moduli[0] == pytest.approx(1.0)
    out = convergence(ds)
    assert float(out.rate[0]) == pytest.approx(moduli[1], rel=1e-4)
    assert not bool(out.finite_time[0])
    assert 0 < int(out.settled_step[0]) < cfg.steps


def test_degroot_consensus_is_the_stationary_weighted_mean(degroot):
    """DeGroot (1974), Theorem: the consensus is pi^T x_0, pi the left Perron vector of M
    (pi M = pi, sum pi = 1): the stationary distribution of the row-stochastic matrix."""
    _, mixing, init, ds = degroot
    values, left = scipy.linalg.eig(mixing, left=True, right=False)
    pi = np.real(left[:, np.argmax(np.real(values))])
    pi /= pi.sum()
    assert np.all(pi > 0)
    final = ds.embedding.values[-1, 0]
    np.testing.assert_allclose(final, np.broadcast_to(pi @ init[0], final.shape), atol=1e-12)


# ----- Hegselmann-Krause ------------------------------------------------------------------------
def _hk_numpy(x0, epsilon, steps):
    """Plain Hegselmann-Krause: x_i <- mean of {x_j : |x_i - x_j| <= epsilon}, same closed ball
    and relative tolerance (1e-9) as glomsim's bounded kernel."""
    traj = [np.asarray(x0, dtype=float)]
    for _ in range(steps):
        x = traj[-1]
        close = np.abs(x[:, None] - x[None, :]) <= epsilon * (1 + 1e-9)
        traj.append((close * x[None, :]).sum(1) / close.sum(1))
    return np.stack(traj)


def _hk_glomsim(n, steps, epsilon=1.0):
    cfg = gs.GlomConfig(
        levels=1,
        dim=1,
        grid=(1, n),
        steps=steps,
        dtype="float64",
        mix=gs.Mix(bottom_up=0, top_down=0, previous=0, attention=1),
        attention=gs.Attention(kernel="bounded", epsilon=epsilon),
    )
    init = np.arange(n, dtype=float).reshape(1, n, 1)
    return gs.simulate(cfg, gs.identity_weights(cfg), init=init)


def _clusters(x):
    """Sorted distinct opinions and their sizes (agents in a cluster agree exactly)."""
    values, sizes = np.unique(x, return_counts=True)
    return values, sizes.tolist()


@pytest.mark.parametrize("n", range(2, 31))
def test_hegselmann_krause_equally_spaced_agents(n):
    """Hegselmann and Krause, "Opinion dynamics and bounded confidence", JASSS 5(3) (2002):
    the bounded-confidence model freezes in finitely many steps, into clusters more than
    epsilon apart.

    Hegarty and Wedin, "The Hegselmann-Krause dynamics for equally spaced agents" (arXiv
    1406.0819), abstract and main theorem: n agents at 1, ..., n with confidence bound 1 end
    in 2 floor(n/6) clusters of 3 agents plus, if 6 does not divide n, one cluster of
    n mod 6 agents in the middle; every 5 steps a group of 3 breaks off at either end, so
    freezing takes 5n/6 + O(1) steps. Checked here against a plain numpy HK as well.
    """
    steps = 5 * n // 6 + 8
    ds = _hk_glomsim(n, steps)
    traj = ds.embedding.values[:, 0, :, 0]
    np.testing.assert_allclose(traj, _hk_numpy(np.arange(n), 1.0, steps), rtol=0, atol=1e-12)

    values, sizes = _clusters(traj[-1])
    predicted = [3] * (n // 6) + ([n % 6] if n % 6 else []) + [3] * (n // 6)
    assert sizes == predicted
    assert np.all(np.diff(values) > 1.0)

    out = convergence(ds)
    # freezing: the residual is exactly 0 after the settling step, and no rate exists
    settled = int(out.settled_step[0])
    assert np.all(out.residual.values[settled + 1 :, 0] == 0.0)
    assert out.residual.values[settled, 0] > 0
    assert bool(out.finite_time[0]) and math.isnan(float(out.rate[0]))
    assert abs(settled - 5 * n / 6) <= 5


@pytest.mark.parametrize("n", [6, 9, 13, 17, 20])
def test_hegselmann_krause_freezing_time_grows_by_five_per_six_agents(n):
    """Hegarty and Wedin (arXiv 1406.0819): the evolution repeats every 5 steps, peeling 3
    agents off each end, so adding 6 agents adds exactly 5 steps before freezing."""
    t_n = int(convergence(_hk_glomsim(n, n + 10)).settled_step[0])
    t_n6 = int(convergence(_hk_glomsim(n + 6, n + 16)).settled_step[0])
    assert t_n6 - t_n == 5


# ----- Friedkin-Johnsen -------------------------------------------------------------------------
def test_friedkin_johnsen_fixed_point_is_the_closed_form():
    """Friedkin and Johnsen, "Social influence and opinions", J. Math. Sociology 15 (1990)
    193-206: x_{t+1} = W x_t + B u with spectral radius of W below 1 converges to
    x* = (I - W)^{-1} B u. Here W = (w_p I + w_a A) / S, B = w_bu / S, S = w_bu + w_p + w_a,
    with the fixed input u as the bottom-up contribution (identity nets)."""
    w_bu, w_p, w_a = 0.5, 1.0, 2.0
    cfg = gs.GlomConfig(
        levels=1,
        dim=3,
        grid=(2, 5),
        steps=250,
        dtype="float64",
        mix=gs.Mix(bottom_up=w_bu, top_down=0, previous=w_p, attention=w_a),
        attention=gs.Attention(kernel="dot", beta=0.0, radius=1.0),
    )
    rng = np.random.default_rng(3)
    u, init = rng.normal(size=(10, 3)), rng.normal(size=(1, 10, 3))
    ds = gs.simulate(cfg, gs.identity_weights(cfg), inputs=u, init=init)
    s = w_bu + w_p + w_a
    susceptibility = (w_p * np.eye(10) + w_a * _uniform_attention(cfg)) / s
    expect = np.linalg.solve(np.eye(10) - susceptibility, (w_bu / s) * u)
    np.testing.assert_allclose(ds.embedding.values[-1, 0], expect, rtol=0, atol=1e-12)
    # the contraction rate is the spectral radius of W: (w_p + w_a) / S, A being stochastic
    assert float(convergence(ds).rate[0]) == pytest.approx((w_p + w_a) / s, rel=1e-4)


def test_friedkin_johnsen_from_the_prejudices_decays_at_lambda_times_lambda_2():
    """From the classic start x_0 = u the error x_t - x* has no component along the
    consensus direction: with pi the stationary distribution of M (pi M = pi),
    pi x* = pi u, so pi (x_0 - x*) = 0, and e_t = (lambda M)^t e_0 decays at
    lambda |lambda_2(M)| (docs/maths.md), not at lambda = rho(lambda M)."""
    w_bu, w_p, w_a = 0.5, 1.0, 2.0
    cfg = gs.GlomConfig(
        levels=1,
        dim=2,
        grid=(3, 4),
        steps=250,
        dtype="float64",
        mix=gs.Mix(bottom_up=w_bu, top_down=0, previous=w_p, attention=w_a),
        attention=gs.Attention(kernel="dot", beta=0.0, radius=1.5),
    )
    u = np.random.default_rng(4).normal(size=(12, 2))
    mixing = (w_p * np.eye(12) + w_a * _uniform_attention(cfg)) / (w_p + w_a)
    lam = (w_p + w_a) / (w_bu + w_p + w_a)
    moduli = np.sort(np.abs(np.linalg.eigvals(mixing)))[::-1]
    assert lam == pytest.approx(0.857, abs=1e-3) and lam * moduli[1] == pytest.approx(
        0.702, abs=1e-3
    )
    # the stationary distribution: the left eigenvector of eigenvalue 1
    vals, left = np.linalg.eig(mixing.T)
    pi = np.real(left[:, np.argmin(np.abs(vals - 1))])
    pi /= pi.sum()
    x_star = np.linalg.solve(np.eye(12) - lam * mixing, (1 - lam) * u)
    np.testing.assert_allclose(pi @ (u - x_star), 0.0, atol=1e-12)

    w = gs.identity_weights(cfg)
    ds = gs.simulate(cfg, w, inputs=u, init=u[None])
    np.testing.assert_allclose(ds.embedding.values[-1, 0], x_star, rtol=0, atol=1e-12)
    assert float(convergence(ds).rate[0]) == pytest.approx(lam * moduli[1], rel=1e-4)
    # from a random start the consensus direction is excited and the rate is lambda
    init = np.random.default_rng(5).normal(size=(1, 12, 2))
    random_start = gs.simulate(cfg, w, inputs=u, init=init)
    assert float(convergence(random_start).rate[0]) == pytest.approx(lam, rel=1e-4)


# ----- self-attention dynamics on the sphere -----------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1])
def test_self_attention_on_the_sphere_reaches_one_cluster(seed):
    """Geshkovski, Letrouit, Polyanskiy and Rigollet, "The emergence of clusters in
    self-attention dynamics" (NeurIPS 2023, arXiv 2305.05465) and "A mathematical perspective
    on Transformers" (arXiv 2312.10794, Theorems 4.1 and 5.1): on the sphere in dimension
    d >= 3, tokens moved by self-attention converge to a single cluster for almost every
    start (proved for small and for large beta in continuous time). glomsim's dot kernel +
    l2 with lazy mixing is a discretisation with step w_att / (w_prev + w_att).

    The interaction energy then climbs to its maximum pairs * exp(beta) (op. cit., Sec. 3).
    """
    beta = 1.0
    cfg = gs.GlomConfig(
        levels=1,
        dim=3,
        grid=(1, 16),
        steps=120,
        dtype="float64",
        normalize="l2",
        mix=gs.Mix(bottom_up=0, top_down=0, previous=1, attention=1),
        attention=gs.Attention(kernel="dot", beta=beta),
    )
    x = np.random.default_rng(seed).normal(size=(1, 16, 3))
    x /= np.linalg.norm(x, axis=-1, keepdims=True)
    ds = gs.simulate(cfg, gs.identity_weights(cfg), init=x)
    final = ds.embedding.values[-1, 0]
    cosines = final @ final.T
    assert cosines.min() > 1 - 1e-12
    log_e = energy(ds).log_energy.values[:, 0]
    assert log_e[-1] == pytest.approx(math.log(16 * 16) + beta, rel=1e-12)
    assert log_e[0] < log_e[-1]


def _equiangular_step(rho, n, beta, w_prev, w_att):
    """One step of the pairwise inner product of n equiangular unit vectors.

    Derived from the update: softmax weights a = e^beta / Z on self and b = e^(beta rho) / Z
    on each other column, Z = e^beta + (n-1) e^(beta rho). With s = sum_j x_j,
    y_i = (alpha - gamma) x_i + gamma s, alpha = (w_prev + w_att a) / S, gamma = w_att b / S,
    S = w_prev + w_att; <x_i, s> = c = 1 + (n-1) rho and |s|^2 = n c, so
    |y_i|^2 = (alpha-gamma)^2 + 2 (alpha-gamma) gamma c + gamma^2 n c,
    <y_i, y_k> = (alpha-gamma)^2 rho + 2 (alpha-gamma) gamma c + gamma^2 n c (same for all
    pairs, so the configuration stays equiangular), and after l2: rho' = <y_i,y_k> / |y_i|^2.
    """
    z = math.exp(beta) + (n - 1) * math.exp(beta * rho)
    s = w_prev + w_att
    alpha = (w_prev + w_att * math.exp(beta) / z) / s
    gamma = w_att * math.exp(beta * rho) / z / s
    c = 1 + (n - 1) * rho
    common = 2 * (alpha - gamma) * gamma * c + gamma**2 * n * c
    return ((alpha - gamma) ** 2 * rho + common) / ((alpha - gamma) ** 2 + common)


@pytest.mark.parametrize("rho0", [-0.3, 0.0, 0.6])
def test_equiangular_start_follows_the_scalar_recursion(rho0):
    """Equiangular reduction (cf. Geshkovski et al., arXiv 2312.10794, who follow the
    pairwise inner product of equiangular tokens in continuous time): n unit vectors with
    equal pairwise inner products rho stay equiangular, and rho follows the scalar recursion
    derived in ``_equiangular_step`` from the discrete update, here checked step by step."""
    n, beta, w_prev, w_att = 4, 2.0, 1.0, 1.5
    gram = (1 - rho0) * np.eye(n) + rho0 * np.ones((n, n))
    x = np.linalg.cholesky(gram)  # rows are unit vectors with Gram matrix `gram`
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(n, n)))
    x = x @ q  # a generic rotation: nothing aligned with the axes
    cfg = gs.GlomConfig(
        levels=1,
        dim=n,
        grid=(1, n),
        steps=40,
        dtype="float64",
        normalize="l2",
        mix=gs.Mix(bottom_up=0, top_down=0, previous=w_prev, attention=w_att),
        attention=gs.Attention(kernel="dot", beta=beta),
    )
    ds = gs.simulate(cfg, gs.identity_weights(cfg), init=x[None])
    off = ~np.eye(n, dtype=bool)
    rho = rho0
    for t in range(cfg.steps + 1):
        e = ds.embedding.values[t, 0]
        inner = (e @ e.T)[off]
        assert np.ptp(inner) < 1e-12  # still equiangular
        assert inner.mean() == pytest.approx(rho, abs=1e-12)
        rho = _equiangular_step(rho, n, beta, w_prev, w_att)
    assert rho == pytest.approx(1.0, abs=1e-9)
