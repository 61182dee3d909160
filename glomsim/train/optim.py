"""Adam, the optimiser of :func:`glomsim.train.train`."""

from __future__ import annotations

import numpy as np

__all__ = ["Adam"]


class Adam:
    """Adam (Kingma and Ba 2015) on a dict of float64 arrays, updated in place.

    Parameters
    ----------
    params : dict
        The arrays to optimise; :meth:`step` changes them in place.
    lr : float
        Step size.
    beta1, beta2, eps : float
        Decay of the first and second moment estimates, and the denominator's guard.

    Examples
    --------
    >>> p = {"x": np.array([1.0, -2.0])}
    >>> opt = Adam(p, lr=0.1)
    >>> opt.step({"x": np.array([0.5, -0.5])})
    >>> p["x"]  # the first step moves every entry by lr against its gradient's sign
    array([ 0.9, -1.9])
    """

    def __init__(self, params: dict, lr: float, beta1=0.9, beta2=0.999, eps=1e-8):
        self.params = params
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.moment1 = {k: np.zeros_like(v) for k, v in params.items()}
        self.moment2 = {k: np.zeros_like(v) for k, v in params.items()}
        self.steps = 0

    def step(self, grads: dict) -> None:
        """One update of every array in ``params`` from its gradient in ``grads``."""
        self.steps += 1
        beta1, beta2 = self.beta1, self.beta2
        for k, p in self.params.items():
            g = grads[k]
            self.moment1[k] = beta1 * self.moment1[k] + (1 - beta1) * g
            self.moment2[k] = beta2 * self.moment2[k] + (1 - beta2) * g * g
            m_hat = self.moment1[k] / (1 - beta1**self.steps)
            v_hat = self.moment2[k] / (1 - beta2**self.steps)
            p -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)

    def settings(self) -> dict:
        """The optimiser as recorded in learned weights' metadata."""
        return {"name": "adam", "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps}
