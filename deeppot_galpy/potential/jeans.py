r"""Weak-form Jeans equations from the stars: an unbiased check on the force amplitude.

Multiplying the stationary collisionless Boltzmann equation by :math:`v_j\,\psi(\vec x)` and
integrating by parts over phase space (the test function :math:`\psi` vanishes where the
sample is incomplete) gives, for every :math:`\psi` and axis :math:`j`,

.. math::
    \langle \psi\,\partial_j\Phi \rangle_\star
    = \langle v_j\, \vec v\cdot\nabla\psi \rangle_\star ,

averages over the stars themselves. Unlike the CBE loss, this needs no density model and no
gradient of f, so it carries none of the flows' smoothing or noise: it pins the amplitude of
the force averaged over each test function (the flows' gradient errors otherwise bias
:math:`|\vec a|` low by a few per cent). The test functions are Gaussians
:math:`\psi_m = \exp(-|\vec x - \vec c_m|^2 / 2 s_m^2)` centred on random stars, their widths
set by the local star density (the distance to the k-th nearest of the subsample, k a fixed
fraction of the stars or, to mix scales, log-uniform in a range of fractions) and kept 2.5
widths inside the volume the stars fill (:class:`~deeppot_galpy.phasespace.FilledVolume`, a
ball or a cylinder). At a survey volume's hard edge every function is also multiplied by a
taper, :math:`(1 - d^2/R^2)^2` in a ball and its product over the side and the faces of a
cylinder, that vanishes there, so the integration by parts holds exactly: on the
local-disk mock, where the stars stream at ~240 km/s through the volume, functions that
reached past the edge broke the moments for the true force tens of times beyond their noise,
and a Gaussian's 4% at 2.5 widths still made them prefer a 3% weaker radial force
(benchmarks/RESULTS.md, section 12). Smaller functions reach further into a core, where a wide
Gaussian centred near the middle averages a force that changes sign; they are noisier, being
sums over fewer stars.

For a spherical fit the functions may be ``shells`` about the origin: long across the radius
vector of their centre, where a spherical potential does not change, and thin along it, where
it does, at a round function's volume. With thickness over length q, the two long axes are
:math:`q^{-1/3} s_m` and the radial one :math:`q^{2/3} s_m`: a shell holds about as many stars
as a round function, but measures the force at one radius rather than smeared over a ball,
which matters where the force changes over less than a ball's width (a cusp, the ripples of a
flow's gradients). A range (lo, hi) draws each function's q log-uniformly, mixing shapes as
``neighbours`` mixes scales: thin shells resolve the force in radius, round functions are
the less noisy. (Arcs along a disk's azimuth and slabs thin in z were measured too, and made
the local disk's forces worse: benchmarks/RESULTS.md, section 10.)

The functions are centred on stars drawn from the subsample. In a cusp the innermost radii
hold few of them, so few functions measure the force where it changes fastest, and the
flows' CBE term, which smooths a cusp, outpulls them there. ``temper`` t draws each star with
odds :math:`(dN/d\ln r)^{-t}` about the origin (from 40 bins of equal counts in ln r), so the
centres follow :math:`(dN/d\ln r)^{1-t}` (1: uniform in ln r): at 0.5, the default for a
spherical fit of a cusp (:func:`~.fit.jeans_temper_power`), the held-out Hernquist spheres'
innermost radial bin went from -8 / -11% to -1 / -4%; in a core the inner functions average
a force that changes sign, and Plummer's inner bins went 9-16% low (benchmarks/RESULTS.md,
section 36).

``velocity`` replaces the factor :math:`v_j` by other families of velocity factors
:math:`h_{mk}(\vec v)` (:mod:`~deeppot_galpy.potential.weakform`: third moments, Gaussian
velocity windows), each giving :math:`\langle\psi_m\nabla_v h_{mk}\cdot\nabla\Phi\rangle_\star
= \langle h_{mk}\,\vec v\cdot\nabla\psi_m\rangle_\star`; the default ``"linear"`` is the
equation above.

Measured velocities :math:`\vec v + \vec\epsilon` with errors of zero mean and covariance
:math:`C` (per star) inflate the second moments: :math:`\langle (v_j + \epsilon_j)
(\vec v + \vec\epsilon)\cdot\nabla\psi\rangle = \langle v_j\,\vec v\cdot\nabla\psi\rangle +
\langle (C\nabla\psi)_j\rangle`, so ``v_cov`` subtracts :math:`\langle (C\nabla\psi)_j
\rangle` (exact for the linear family, whatever the errors' distribution; the right-hand
side is linear in the velocities and unbiased).

A distance error moves a star along its line of sight and scales its tangential velocity by
the same factor, so positions and velocities err together, and a catalog's S/N-limited
parallaxes make that matter at a volume's far side. ``reobserved``, the same stars with every
error drawn once more (:func:`~deeppot_galpy.data.catalog_to_phasespace` makes it from a Gaia
table's errors), corrects both sides by simulation-extrapolation (SIMEX; Cook & Stefanski
1994): to second order in the errors each moment moves by the same amount per draw, so
:math:`2A(\vec x, \vec v) - A(\vec x', \vec v')` is the error-free stars' A, and likewise
the force side, :math:`2B(\vec x) - B(\vec x')`, whose correction a quarter of each
minibatch measures (paired stars, so the difference is precise). On the local-disk mock's
catalogs it takes the true potential's tension from 4.97 to 1.40 with four times DR3's
errors and from 9.06 to 3.03 in a 3 kpc ball, where subtracting the velocities' covariance
moved neither (benchmarks/RESULTS.md, section 40).

For a catalog that holds a fraction :math:`S(\vec x)` of the stars
(:mod:`~deeppot_galpy.completeness`) the test function is :math:`S\psi`, so
:math:`\vec v\cdot\nabla\psi` becomes :math:`\vec v\cdot(\nabla\psi + \psi\nabla\ln S)`
in the averages over the catalog's stars.

The loss is the cross product of two independent minibatch estimates of the violation,
:math:`\sum_{m,k} w_{mk} (B^{(1)}_{mk} - A_{mk})(B^{(2)}_{mk} - A_{mk}) / \sum_{m,k} w_{mk}
A_{mk}^2`, which is unbiased for the weighted squared violation (a single estimate's square
would add its variance); with several families, the sum of one such ratio per family (each
family weighs the same). The weights are the equations' Monte Carlo variances to the power
``-noise_weight`` (from the scatter of :math:`A` between random groups of the stars): 0 weighs
every equation alike, so those with large moments (many stars, high dispersions) dominate; 1
is a chi^2, which lets the noisy ones pull as hard. In between, 0.5, a spherical fit's
default, lets the outer shells (few stars, wide, cold) hold the radial orbits the flows
misread: the Osipkov-Merritt sphere's force error 2.02% -> 1.25%, its outermost bin -11% ->
-3% (benchmarks/RESULTS.md, section 19).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from scipy.spatial import cKDTree
from torch import Tensor

from ..completeness import Completeness
from ..phasespace import FilledVolume
from .weakform import parse_families

__all__ = ["JEANS_STARS", "JeansMoments", "centre_odds", "fraction_range"]

_CHUNK = 4096  # stars per pass when precomputing: (chunk x functions x factors) floats
#: stars the moments are summed over by default (a random subsample of a larger catalog)
JEANS_STARS = 2**20
_GROUPS = 64  # random groups of stars whose scatter measures the moments' noise (tension)
_PAIRED = 4  # a minibatch's stars per star observed once more (SIMEX correction)


def _shell_metric(centers: np.ndarray, width: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Each function's inverse covariance (M, 3, 3): thickness q^(2/3) width along the centre's
    radius vector n, length q^(-1/3) width across it."""
    n = centers / np.linalg.norm(centers, axis=1, keepdims=True).clip(min=1e-12)
    radial = np.einsum("mi,mj->mij", n, n)
    along, across = (width * q ** (2 / 3))[:, None, None], (width * q ** (-1 / 3))[:, None, None]
    return radial / along**2 + (np.eye(3) - radial) / across**2


def centre_odds(x: np.ndarray, temper: float, bins: int = 40) -> np.ndarray | None:
    r"""Each star's odds of centring a test function, :math:`\propto (dN/d\ln r)^{-t}` about
    the origin (None, uniform, for t = 0). ``bins`` bins of ln r hold equal counts, so the
    density in ln r of each is inversely its width."""
    if temper == 0:
        return None
    ln_r = np.log(np.maximum(np.linalg.norm(x, axis=1), np.finfo(np.float64).tiny))
    edges = np.quantile(ln_r, np.linspace(0.0, 1.0, bins + 1))
    width = np.maximum(np.diff(edges), 1e-12)  # stars at one radius: a bin of no width
    which = np.clip(np.searchsorted(edges, ln_r, side="right") - 1, 0, bins - 1)
    odds = width[which] ** temper
    return odds / odds.sum()


def fraction_range(value: float | tuple[float, float], name: str) -> tuple[float, float]:
    """A value in (0, 1] or a (min, max) range of them, as (min, max); else a ValueError."""
    bounds = (value, value) if isinstance(value, int | float) else tuple(value)
    if len(bounds) != 2 or not 0 < bounds[0] <= bounds[1] <= 1:
        raise ValueError(f"{name} must be in (0, 1], or a (min, max) range in it, got {value!r}")
    return bounds


class JeansMoments:
    """Precomputed weak-form moments A_mk over (a subsample of) the stars, and the loss term."""

    def __init__(
        self,
        x: np.ndarray,
        v: np.ndarray,
        region: dict,
        n_functions: int = 192,
        n_stars: int = JEANS_STARS,
        neighbours: float | tuple[float, float] = 0.02,
        seed: int = 0,
        device: str | torch.device = "cpu",
        velocity: str | Sequence[str] = "linear",
        completeness: Completeness | None = None,
        v_cov: np.ndarray | None = None,
        shells: float | tuple[float, float] = 1.0,
        noise_weight: float = 0.0,
        temper: float = 0.0,
        reobserved: tuple[np.ndarray, np.ndarray] | None = None,
    ):
        if not 0 <= noise_weight <= 1:
            raise ValueError(f"noise_weight must be in [0, 1], got {noise_weight}")
        if not 0 <= temper <= 1:
            raise ValueError(f"temper must be in [0, 1], got {temper}")
        self.families = parse_families(velocity)
        self.temper = temper
        errors = v_cov is not None or reobserved is not None
        if errors and any(f.name != "linear" for f in self.families):
            raise ValueError("the errors' deconvolution is implemented for the linear family")
        if v_cov is not None and reobserved is not None:
            raise ValueError("give v_cov or reobserved, not both: each takes out the errors")
        rng = np.random.default_rng(seed)
        idx = np.sort(rng.choice(len(x), min(n_stars, len(x)), replace=False))
        x, v = np.asarray(x[idx], dtype=np.float64), np.asarray(v[idx], dtype=np.float64)
        cov = None if v_cov is None else torch.as_tensor(np.asarray(v_cov[idx], np.float64))
        volume = FilledVolume.of(region)
        f_lo, f_hi = fraction_range(neighbours, "neighbours")
        q_lo, q_hi = fraction_range(shells, "shells")
        odds = centre_odds(x, temper)
        cand = x[rng.choice(len(x), min(len(x), 4 * n_functions), replace=False, p=odds)]
        # each function's neighbour count, log-uniform in [lo, hi] (a range mixes scales)
        k = np.maximum(8, np.exp(rng.uniform(np.log(f_lo), np.log(f_hi), len(cand))) * len(x))
        k = np.minimum(k.astype(int), len(x))
        dist = cKDTree(x).query(cand, k=int(k.max()))[0]
        width = dist[np.arange(len(cand)), k - 1]
        # each function's shape: drawn only for a range, so fixed shells leave the stream as is
        q = np.full(len(cand), q_lo)
        if q_lo < q_hi:
            q = np.exp(rng.uniform(np.log(q_lo), np.log(q_hi), len(cand)))
        reach = width * q ** (-1 / 3)
        # 2.5 widths inside the region: psi ~ 4e-2 there, and falls as a Gaussian beyond
        inside = volume.depth(cand) > 2.5 * reach
        self.centers, self.widths = cand[inside][:n_functions], width[inside][:n_functions]
        if len(self.centers) < 8:
            raise ValueError("too few Jeans test functions fit inside the stars' region")
        # psi's quadratic form d^T W d (d = x - c) expanded about the region's centre o into
        # matrix products, (x' x'^T) : W - 2 x' . W c' + c'^T W c' (x' = x - o, c' = c - o):
        # no (stars x functions x 3 x 3) array, and exact to rounding near each function
        self._origin = torch.as_tensor(volume.center, dtype=torch.float64)
        self._metric = torch.as_tensor(
            _shell_metric(self.centers, self.widths, q[inside][:n_functions])
        )
        c = torch.as_tensor(self.centers) - self._origin
        self._wc = torch.einsum("mij,mj->mi", self._metric, c)
        self._cwc = (c * self._wc).sum(1)
        xs, vs = torch.as_tensor(x), torch.as_tensor(v)
        # every function times a taper that reaches zero at a survey volume's hard edge
        taper, grad_taper = volume.taper(x)
        taper, grad_taper = torch.as_tensor(taper), torch.as_tensor(grad_taper)
        self._taper = taper
        # each function's velocity frame: the psi-weighted mean velocity and rms dispersion
        mom = torch.zeros(len(self.centers), 5, dtype=torch.float64)  # sums of psi (1, v, v^2)
        for lo in range(0, len(x), _CHUNK):
            vc = vs[lo : lo + _CHUNK]
            powers = torch.cat(
                [torch.ones_like(vc[:, :1]), vc, vc.square().sum(1, keepdim=True)], 1
            )
            mom += (self.psi(xs[lo : lo + _CHUNK]) * taper[lo : lo + _CHUNK, None]).T @ powers
        self._u = mom[:, 1:4] / mom[:, :1]
        self._s = torch.sqrt((mom[:, 4] / mom[:, 0] - self._u.square().sum(1)).clamp(min=0.0) / 3)
        # the stars fall in random groups whose moments scatter as their Monte Carlo noise
        # (the tension); drawn last, so the functions do not depend on it
        self._group = torch.as_tensor(rng.integers(0, _GROUPS, len(x)))
        grad_log_s = None if completeness is None else completeness.grad_log
        A = self._star_sums(xs, vs, taper, grad_taper, grad_log_s, cov)
        self._again = None
        if reobserved is not None:
            # SIMEX: errors drawn once more shift every moment by as much again (to second
            # order), so 2 A - A' is the error-free stars' A
            x1, v1 = (np.asarray(a[idx], dtype=np.float64) for a in reobserved)
            taper1, grad_taper1 = (torch.as_tensor(a) for a in volume.taper(x1))
            again = self._star_sums(
                torch.as_tensor(x1), torch.as_tensor(v1), taper1, grad_taper1, grad_log_s, None
            )
            A = [2.0 * a - a1 for a, a1 in zip(A, again, strict=True)]
            self._again = (torch.as_tensor(x1, dtype=torch.float32, device=device), taper1)
        self._A_groups = A
        self._group_size = torch.bincount(self._group, minlength=_GROUPS).double()
        self.A = [(a.sum(0) / len(x)).to(device, torch.float32) for a in A]
        self.norm = [float(a.square().sum()) for a in self.A]
        # each equation's weight in the loss: its Monte Carlo variance to the power -noise_weight
        self._w = [self._noise_weights(a, noise_weight).to(device, torch.float32) for a in A]
        self._loss_norm = [
            float((w * a.square()).sum()) for w, a in zip(self._w, self.A, strict=True)
        ]
        self.x = torch.as_tensor(x, dtype=torch.float32, device=device)
        self.v = torch.as_tensor(v, dtype=torch.float32, device=device)
        if self._again is not None:
            self._again = (self._again[0], self._again[1].to(device, torch.float32))
        self._origin, self._metric, self._wc, self._cwc, self._u, self._s, self._taper = (
            t.to(device, torch.float32)
            for t in (
                self._origin,
                self._metric,
                self._wc,
                self._cwc,
                self._u,
                self._s,
                self._taper,
            )
        )

    def _star_sums(
        self,
        xs: Tensor,
        vs: Tensor,
        taper: Tensor,
        grad_taper: Tensor,
        grad_log_s: Callable[[np.ndarray], np.ndarray] | None,
        cov: Tensor | None,
    ) -> list[Tensor]:
        """Per family, A_mk = < h_mk v . grad(S T psi_m) / S > (less < C grad(T psi_m) > for
        velocity errors) summed per group of the stars at (xs, vs): (groups, M, size)."""
        gls = (
            torch.zeros_like(xs) if grad_log_s is None else torch.as_tensor(grad_log_s(xs.numpy()))
        )
        A = [
            torch.zeros(_GROUPS, len(self.centers), f.size, dtype=torch.float64)
            for f in self.families
        ]
        for group in range(_GROUPS):
            members = torch.nonzero(self._group == group).flatten()
            for lo in range(0, len(members), _CHUNK):
                rows = members[lo : lo + _CHUNK]
                xc, vc, t = xs[rows], vs[rows], taper[rows, None]
                psi = self.psi(xc)
                # grad(S T psi) / S = psi (T grad ln S + grad T - T W (x - c)), T the taper
                # and W psi's inverse covariance
                own = t * gls[rows] + grad_taper[rows]  # (n, 3)
                d = xc - self._origin
                vdg = psi * ((vc * own).sum(1, keepdim=True) - t * self._bilinear(vc, d))
                for a, fam in zip(A, self.families, strict=True):
                    a[group] += fam.sums(vc, lambda vc=vc: self._relative(vc), self._s, vdg)
                if cov is not None:  # the linear family alone (checked above)
                    A[0][group] -= self._covariance_term(cov[rows], psi, t, own, d)
        return A

    def _variance_of_mean(self, group_sums: Tensor) -> Tensor:
        """The Monte Carlo variance of a mean over all the stars, from the scatter of the
        groups' means of what ``group_sums`` (groups, M, size) sums."""
        return (group_sums / self._group_size.clamp(min=1)[:, None, None]).var(0) / _GROUPS

    def _noise_weights(self, a_groups: Tensor, power: float) -> Tensor:
        """var(A_mk)^-power, mean 1."""
        var = self._variance_of_mean(a_groups)
        w = var.clamp(min=float(var[var > 0].min()) if (var > 0).any() else 1.0) ** -power
        return w / w.mean()

    def psi(self, x: Tensor) -> Tensor:
        """The test functions at x (N, 3) -> (N, M), computed when needed (not stored for all
        the stars: N x M floats would dominate the memory of a fit with many functions)."""
        d = x - self._origin
        q = self._bilinear(d, d) - d @ self._wc.T + self._cwc
        return torch.exp(-0.5 * q.clamp(min=0.0))

    def _bilinear(self, a: Tensor, d: Tensor) -> Tensor:
        """a_n^T W_m (x_n - c_m) for the rows of a and of d = x - o (N, 3), o the region's
        centre, and every function m: (N, M)."""
        outer = (a.unsqueeze(2) * d.unsqueeze(1)).flatten(1)  # a_i d_j, (N, 9)
        return outer @ self._metric.flatten(1).T - a @ self._wc.T

    def _covariance_term(
        self, cov: Tensor, psi: Tensor, t: Tensor, own: Tensor, d: Tensor
    ) -> Tensor:
        """sum_n C_n grad(S T psi_m)(x_n) / S over a chunk of stars (M, 3), C (n, 3, 3) their
        velocity error covariances, as matrix products: grad(S T psi) / S = psi (own - T W
        (x - c)), own = T grad ln S + grad T (n, 3), t = T (n, 1) and d = x - o (n, 3)."""
        pt = psi * t
        first = psi.T @ torch.einsum("nki,ni->nk", cov, own)
        c_d = (cov.unsqueeze(-1) * d[:, None, None, :]).flatten(1)  # C_ki d_j: (n, 27)
        c_w_d = torch.einsum("mkij,mij->mk", (pt.T @ c_d).unflatten(1, (3, 3, 3)), self._metric)
        c_w_c = torch.einsum("mki,mi->mk", (pt.T @ cov.flatten(1)).unflatten(1, (3, 3)), self._wc)
        return first - c_w_d + c_w_c

    def _relative(self, v: Tensor) -> Tensor:
        """Velocities in each function's frame, (v - u_m) / s_m: (N, M, 3)."""
        return (v.unsqueeze(1) - self._u) / self._s[:, None]

    @property
    def positions(self) -> Tensor:
        """Where the moments need grad Phi: the stars (:attr:`x`), then, with ``reobserved``,
        the same stars observed once more: what :meth:`violation`, :meth:`tension` and
        :meth:`force_scales` take the force at."""
        return self.x if self._again is None else torch.cat([self.x, self._again[0]])

    def _moments(self, grad_phi: Tensor, idx: Tensor, again: bool = False) -> list[Tensor]:
        """Per family, < psi_m grad_v h_mk . grad Phi > over the stars ``idx`` (observed once
        more with ``again``; the linear family alone, whose factor has no velocity): (M, size)."""
        x, taper = (self.x, self._taper) if not again else self._again
        with torch.no_grad():  # psi and the velocities do not depend on the potential
            psi = self.psi(x[idx]) * taper[idx, None]
            w = self._relative(self.v[idx])
        return [f.moments(psi, w, grad_phi) / len(idx) for f in self.families]

    def _paired(self, idx: Tensor) -> Tensor:
        """The stars of ``idx`` whose second observation measures the SIMEX correction: the
        first quarter (the correction is the difference of the moments at nearby positions
        of the same stars, so few stars measure it well)."""
        return idx[: max(1, len(idx) // _PAIRED)]

    def points(self, idx: Tensor) -> Tensor:
        """Where :meth:`loss` needs grad Phi for the minibatches ``idx`` (:meth:`draw`): the
        stars, then, with ``reobserved``, each half's paired stars observed once more."""
        if self._again is None:
            return self.x[idx]
        half = len(idx) // 2
        paired = torch.cat([self._paired(idx[:half]), self._paired(idx[half:])])
        return torch.cat([self.x[idx], self._again[0][paired]])

    def _estimate(self, g: Tensor, g_again: Tensor | None, idx: Tensor) -> list[Tensor]:
        """One minibatch's unbiased estimate of the moments B_mk, with the SIMEX correction
        B(x) - B(x') from its paired stars (``g_again``: grad Phi at their x')."""
        est = self._moments(g, idx)
        if g_again is None:
            return est
        paired = self._paired(idx)
        here = self._moments(g[: len(paired)], paired)
        there = self._moments(g_again, paired, again=True)
        return [e + h - t for e, h, t in zip(est, here, there, strict=True)]

    def __len__(self) -> int:
        return len(self.x)

    def draw(self, batch_size: int, generator: torch.Generator) -> Tensor:
        """Indices of two disjoint minibatches of stars (2 * batch_size)."""
        perm = torch.randperm(len(self.x), generator=generator)[: 2 * batch_size]
        return perm.to(self.x.device)

    def loss(self, grad_phi: Tensor, idx: Tensor) -> Tensor:
        """Unbiased squared relative violation from grad Phi at :meth:`points` of the stars
        ``idx`` (see draw)."""
        half = len(idx) // 2
        g, rest = grad_phi[: len(idx)], grad_phi[len(idx) :]
        again = (None, None)
        if self._again is not None:
            again = rest.split([len(self._paired(idx[:half])), len(self._paired(idx[half:]))])
        b1 = self._estimate(g[:half], again[0], idx[:half])
        b2 = self._estimate(g[half:], again[1], idx[half:])
        return sum(
            (w * (p - a) * (q - a)).sum() / n
            for p, q, a, n, w in zip(b1, b2, self.A, self._loss_norm, self._w, strict=True)
        )

    def _residual_groups(self, grad_phi: np.ndarray) -> list[Tensor]:
        """Per family, each group's summed violation sum (B - A) for grad Phi at
        :attr:`positions`: (groups, M, size), float64 on the CPU."""
        g = torch.as_tensor(grad_phi, dtype=torch.float32, device=self.x.device)
        if len(g) != len(self.positions):
            raise ValueError(f"grad Phi is needed at the {len(self.positions)} positions")
        group = self._group.to(self.x.device)
        out = [-a.clone() for a in self._A_groups]
        for k in range(_GROUPS):
            idx = torch.nonzero(group == k).flatten()
            if len(idx):
                parts = self._moments(g[idx], idx)
                if self._again is not None:  # 2 B(x) - B(x'), as A
                    there = self._moments(g[len(self.x) :][idx], idx, again=True)
                    parts = [2.0 * p - t for p, t in zip(parts, there, strict=True)]
                for r, part in zip(out, parts, strict=True):
                    r[k] += part.double().cpu() * len(idx)
        return out

    def violation(self, grad_phi: np.ndarray) -> float:
        """Relative rms violation for grad Phi evaluated at :attr:`positions` (the
        mean over families of the squared relative violation, square-rooted)."""
        ratios = [
            float((r.sum(0) / len(self.x)).square().sum()) / n
            for r, n in zip(self._residual_groups(grad_phi), self.norm, strict=True)
        ]
        return float(np.sqrt(np.mean(ratios)))

    def force_scale(
        self,
        grad_phi: np.ndarray,
        functions: np.ndarray | None = None,
        axis: int | None = None,
    ) -> tuple[float, float]:
        r"""The factor the stars' moments ask the force :math:`\nabla\Phi` (at all of this
        :attr:`positions`) to be multiplied by, and its error.

        The weighted least-squares :math:`s` in :math:`A_{mk} \approx s\,B_{mk}(\nabla\Phi)`
        over the first velocity family's equations of ``functions`` (a boolean mask or indices
        of :attr:`centers`; all by default) and the equations' ``axis`` (0-2; all by default),
        weighted as the loss weighs them; the error is a jackknife over the random groups of
        stars. For the true force of stars in equilibrium :math:`s = 1` within its error, so
        on a mock it tells a fit's systematic error (the flows', the network's) from what the
        sample itself supports, region by region (``benchmarks/equilibrium.py``).
        """
        return self.force_scales(grad_phi, [(functions, axis)])[0]

    def force_scales(
        self,
        grad_phi: np.ndarray,
        selections: Sequence[tuple[np.ndarray | None, int | None]],
    ) -> list[tuple[float, float]]:
        """:meth:`force_scale` for several (functions, axis) selections, from one pass over
        the stars."""
        residuals = self._residual_groups(grad_phi)[0]
        weights = self._w[0].double().cpu()
        out = []
        for functions, axis in selections:
            chosen = np.zeros(len(self.centers), dtype=bool)
            chosen[np.arange(len(self.centers)) if functions is None else functions] = True
            axes = slice(None) if axis is None else slice(axis, axis + 1)
            a = self._A_groups[0][:, chosen, axes]
            b = residuals[:, chosen, axes] + a
            w = weights[chosen, axes]
            # all the groups, then each group left out (jackknife), as sums over the rest
            a = torch.cat([a.sum(0, keepdim=True), a.sum(0) - a])
            b = torch.cat([b.sum(0, keepdim=True), b.sum(0) - b])
            s = ((w * a * b).sum((1, 2)) / (w * b * b).sum((1, 2))).numpy()
            out.append((float(s[0]), math.sqrt((_GROUPS - 1) * s[1:].var())))
        return out

    def tension(self, grad_phi: np.ndarray) -> float:
        r"""The Birge ratio of the equations for grad Phi at :attr:`positions`: the
        mean over equations of (violation / its Monte Carlo error)^2.

        The error of each equation is the scatter of its violation between the random groups
        of stars, :math:`\sigma^2 = \mathrm{var}_g(R_g) / G`, and the mean of
        :math:`R^2/\sigma^2` is multiplied by :math:`(G-3)/(G-1)`, which undoes the bias of
        dividing by an estimated variance. The true potential gives 1 up to noise (0.9-1.1 on
        nine mocks' stars, RESULTS.md section 19); a fit the stars' moments pull away from
        (flows that misread radial orbits, say) gives more.
        """
        ratios = []
        for r in self._residual_groups(grad_phi):
            var = self._variance_of_mean(r)
            total = r.sum(0) / len(self.x)
            ratios.append((total.square() / var.clamp(min=1e-300)).flatten())
        return float(torch.cat(ratios).mean()) * (_GROUPS - 3) / (_GROUPS - 1)
