r"""The force at one position from the CBE alone: a least-squares solve over velocities.

At a fixed position :math:`\vec x` the stationary collisionless Boltzmann equation,
:math:`\vec v\cdot\nabla_x\ln f + \vec a\cdot\nabla_v\ln f = 0` with :math:`\vec a = -\nabla\Phi`,
holds for every velocity, and :math:`\vec a(\vec x)` is the same three numbers for all of them.
Given K velocities :math:`\vec v_k` at :math:`\vec x` (drawn from the DF there, K >> 3), the
force is the least-squares solution (An, Naik et al. 2021, arXiv:2106.05981)

.. math::
    \hat{\vec a} = \arg\min_{\vec a} \sum_k
        \left(\nabla_v\ln f_k\cdot\vec a + \vec v_k\cdot\nabla_x\ln f_k\right)^2 ,

a 3 x 3 linear system per position. No potential model enters, so it diagnoses a DF model's
gradients directly: with exact gradients the solve returns the true force; noise in
:math:`\nabla_v\ln f` biases :math:`|\hat{\vec a}|` low (errors in the regressors attenuate a
least-squares slope), noise in :math:`\nabla_x \ln f` only scatters it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["least_squares_force"]

GradLogF = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


def least_squares_force(grad_log_f: GradLogF, x: np.ndarray, v_samples: np.ndarray) -> np.ndarray:
    """The acceleration -grad Phi at each position that best makes f stationary there.

    ``grad_log_f(x, v)`` maps (N, 3) positions and velocities to (grad_x ln f, grad_v ln f),
    each (N, 3) (a mock's ``grad_log_df``, or a DF model's). ``x`` is (P, 3) with
    ``v_samples`` (P, K, 3), K >= 3 velocities at each position; or one position (3,) with
    (K, 3). Returns the acceleration, (P, 3) or (3,).
    """
    x, v = np.asarray(x, dtype=np.float64), np.asarray(v_samples, dtype=np.float64)
    single = x.ndim == 1
    if single:
        x, v = x[None], v[None]
    if x.ndim != 2 or x.shape[1] != 3 or v.ndim != 3 or v.shape[0] != len(x) or v.shape[2] != 3:
        raise ValueError(
            f"need x (P, 3) with v_samples (P, K, 3), or x (3,) with (K, 3); got "
            f"{np.shape(x)} and {np.shape(v_samples)}"
        )
    n_pos, k = v.shape[:2]
    if k < 3:
        raise ValueError(f"three force components need at least 3 velocities per position, got {k}")
    gx, gv = grad_log_f(np.repeat(x, k, axis=0), v.reshape(-1, 3))
    gx, gv = np.asarray(gx).reshape(n_pos, k, 3), np.asarray(gv).reshape(n_pos, k, 3)
    bad = ~(np.isfinite(gx).all((1, 2)) & np.isfinite(gv).all((1, 2)))
    if bad.any():
        raise ValueError(
            f"grad ln f is not finite at {int(bad.sum())} of {n_pos} positions (velocities "
            "where f = 0?): draw the velocities from the DF at each position"
        )
    # normal equations of the K x 3 system gv a = -(v . gx), one per position
    normal = np.einsum("pki,pkj->pij", gv, gv)
    rhs = -np.einsum("pki,pk->pi", gv, np.sum(v * gx, axis=-1))
    cond = np.linalg.cond(normal)
    if not np.all(cond < 1e12):
        raise ValueError(
            f"grad_v ln f spans fewer than 3 directions at {int(np.sum(~(cond < 1e12)))} "
            "positions: the force is not determined there (more, or more varied, velocities)"
        )
    acc = np.linalg.solve(normal, rhs[..., None])[..., 0]
    return acc[0] if single else acc
