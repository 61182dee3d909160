"""Learned weights: train the column's bottom-up and top-down nets from scenes, without torch.

Every level is a denoising autoencoder in GLOM's sense: the bottom-up net f_l predicts the
state of level l from a corrupted copy of the level below (the input tokens for l = 0),
and the top-down net g_l predicts it from a corrupted copy of the level above plus the
positional code. On top of this reconstruction the paper's island regulariser pulls each
prediction towards the consensus of the column's own island (the mean state of the
columns that share its ground-truth label at that level) and a contrastive hinge pushes
it away from the consensus of the other islands of the same scene, so that the levels do
not all collapse onto one vector.

The states the nets learn to predict (the *targets*) are the current weights' own:
``targets="bottom_up"`` (the default) uses one cheap bottom-up pass,
S_0 = norm(f_0(u)), S_l = norm(f_l(S_{l-1})); ``targets="settled"`` simulates each
training scene with the current weights and takes the final state (what the dynamics
settle to). Either way the targets and consensus vectors are constants of each gradient
step (no gradient flows through them), as in the paper. Gradients are derived by hand
(exact GELU derivative Phi(x) + x phi(x)) and checked against finite differences in the
tests; the optimiser is Adam over minibatches of scenes. See ``docs/training.md`` for the maths.

One job per module: ``losses`` (the loss terms and their exact gradients through the
reference's nets), ``data`` (examples, targets and corrupted minibatches), ``optim``
(Adam) and ``loop`` (:func:`train`, its history and the learned weights' metadata). The
``glomsim train`` command lives in :mod:`glomsim.cli.train`.
"""

from __future__ import annotations

from .data import TARGETS, level_states, make_training_scenes
from .loop import train
from .losses import NETS, TERMS, TRAINED, TrainingBatch, loss_and_grads

__all__ = [
    "train",
    "make_training_scenes",
    "TrainingBatch",
    "loss_and_grads",
    "level_states",
    "TRAINED",
    "TERMS",
    "NETS",
    "TARGETS",
]
