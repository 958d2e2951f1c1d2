r"""An ensemble of flows for the distribution function, and its training by maximum likelihood.

The ensemble's density is the mean of its members' densities,

.. math:: f(\eta) = \frac1K \sum_{k=1}^K f_k(\eta), \qquad
          \ln f = \operatorname{logsumexp}_k \ln f_k - \ln K,

which averages out the members' independent fitting noise (Green & Ting 2020, Sec. 3).
Each member maximises the likelihood of the stars (their eq. 2) with Adam, a cosine learning-rate
decay, a held-out validation split and early stopping on it; an optional wall-clock budget per
member ends the decay early instead of cutting it off.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..phasespace import PhaseSpace, Standardization
from .flows import FlowConfig, PhaseSpaceFlow

__all__ = ["FlowEnsemble", "FlowTraining", "train_flow"]


@dataclass(frozen=True)
class FlowTraining:
    """How each member is trained."""

    epochs: int = 64
    batch_size: int = 4096
    lr: float = 3e-3
    weight_decay: float = 0.0
    val_fraction: float = 0.1
    patience: int = 10  # epochs without a better validation loss before stopping
    time_budget_s: float | None = None  # per member; None = no limit
    bootstrap: bool = False  # each member sees a bootstrap resample of the training stars

    def to_dict(self) -> dict:
        return asdict(self)


def _schedule(step: int, total: int, t0: float, budget: float | None) -> float:
    """Fraction of the training done, by steps or by wall time, whichever is further."""
    done = step / max(total, 1)
    if budget:
        done = max(done, (time.perf_counter() - t0) / budget)
    return min(done, 1.0)


def train_flow(
    flow: PhaseSpaceFlow,
    train: Tensor,
    val: Tensor,
    cfg: FlowTraining,
    seed: int,
    progress: bool = True,
    desc: str = "flow",
) -> dict:
    """Fit one flow to ``train`` (N, 6) by maximum likelihood; returns its training history.

    The returned flow holds the weights of the epoch with the best validation log-likelihood.
    """
    gen = torch.Generator(device="cpu").manual_seed(seed)
    opt = torch.optim.Adam(flow.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    n = len(train)
    per_epoch = max(1, n // cfg.batch_size)
    total = cfg.epochs * per_epoch
    best, best_state, since_best = math.inf, None, 0
    history: dict[str, list] = {"epoch": [], "train_nll": [], "val_nll": []}
    t0, step = time.perf_counter(), 0
    bar = tqdm(range(cfg.epochs), desc=desc, disable=not progress, leave=False)
    for epoch in bar:
        flow.train()
        perm = torch.randperm(n, generator=gen).to(train.device)
        running = 0.0
        for b in range(per_epoch):
            frac = _schedule(step, total, t0, cfg.time_budget_s)
            for group in opt.param_groups:
                group["lr"] = cfg.lr * 0.5 * (1.0 + math.cos(math.pi * frac))
            batch = train[perm[b * cfg.batch_size : (b + 1) * cfg.batch_size]]
            loss = -flow.log_prob(batch).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(flow.parameters(), 10.0)
            opt.step()
            running += loss.item()
            step += 1
        val_nll = _mean_nll(flow, val)
        history["epoch"].append(epoch)
        history["train_nll"].append(running / per_epoch)
        history["val_nll"].append(val_nll)
        bar.set_postfix(val_nll=f"{val_nll:.4f}")
        if val_nll < best - 1e-4:
            best, since_best = val_nll, 0
            best_state = {k: t.detach().clone() for k, t in flow.state_dict().items()}
        else:
            since_best += 1
        if since_best >= cfg.patience or _schedule(step, total, t0, cfg.time_budget_s) >= 1.0:
            break
    if best_state is not None:
        flow.load_state_dict(best_state)
    history["best_val_nll"] = best
    history["seconds"] = time.perf_counter() - t0
    return history


@torch.no_grad()
def _mean_nll(flow: nn.Module, eta: Tensor, batch: int = 65536) -> float:
    flow.eval()
    total = sum(-flow.log_prob(eta[i : i + batch]).sum().item() for i in range(0, len(eta), batch))
    return total / len(eta)


class FlowEnsemble(nn.Module):
    """K flows whose mean density models f(x, v), in the model's units."""

    def __init__(self, standardization: Standardization, k: int = 4, config=FlowConfig()):
        super().__init__()
        if k < 1:
            raise ValueError(f"an ensemble needs at least one flow, got k={k}")
        self.config = config
        self.standardization = standardization
        mean = torch.as_tensor(standardization.mean)
        scale = torch.as_tensor(standardization.scale)
        self.members = nn.ModuleList(PhaseSpaceFlow(mean, scale, config) for _ in range(k))

    @property
    def k(self) -> int:
        return len(self.members)

    @property
    def device(self) -> torch.device:
        return self.members[0].mean.device

    def metadata(self) -> dict:
        """What ``from_metadata`` needs to rebuild the architecture before loading weights."""
        return {
            "k": self.k,
            "config": self.config.to_dict(),
            "mean": self.standardization.mean.tolist(),
            "scale": self.standardization.scale.tolist(),
        }

    @classmethod
    def from_metadata(cls, meta: dict) -> FlowEnsemble:
        std = Standardization(np.asarray(meta["mean"]), np.asarray(meta["scale"]))
        return cls(std, int(meta["k"]), FlowConfig.from_dict(meta["config"]))

    def fit(
        self,
        data: PhaseSpace,
        cfg: FlowTraining = FlowTraining(),
        seed: int = 0,
        progress: bool = True,
        members: list[int] | None = None,
        on_member_done: Callable[[int, dict], None] | None = None,
    ) -> list[dict]:
        """Train the members (all, or those listed) on ``data``; one history per member.

        Member k is initialised and shuffled from seed ``seed + k``, so results do not depend
        on which members are trained together (or on which process).
        """
        train_ps, val_ps = data.split(cfg.val_fraction, seed)
        dev = self.device
        val = torch.as_tensor(val_ps.eta, dtype=torch.float32, device=dev)
        histories = []
        for k in members if members is not None else range(self.k):
            torch.manual_seed(seed + k)
            self.members[k].load_state_dict(self._fresh_state(k, seed))
            eta = train_ps.eta
            if cfg.bootstrap:
                eta = eta[np.random.default_rng(seed + k).integers(0, len(eta), len(eta))]
            train = torch.as_tensor(eta, dtype=torch.float32, device=dev)
            hist = train_flow(
                self.members[k], train, val, cfg, seed + k, progress, f"flow {k + 1}/{self.k}"
            )
            histories.append(hist)
            if on_member_done is not None:
                on_member_done(k, hist)
        return histories

    def _fresh_state(self, k: int, seed: int) -> dict:
        """Initial weights of member k from its own seed (independent of construction order)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + k)
            fresh = PhaseSpaceFlow(self.members[k].mean, self.members[k].scale, self.config)
        return fresh.to(self.device).state_dict()

    def log_prob(self, eta: Tensor) -> Tensor:
        """ln f of the ensemble: log of the mean of the members' densities."""
        logs = torch.stack([m.log_prob(eta) for m in self.members])
        return torch.logsumexp(logs, dim=0) - math.log(self.k)

    def log_prob_and_grad(
        self, eta: np.ndarray, batch_size: int = 16384
    ) -> tuple[np.ndarray, np.ndarray]:
        """ln f and grad_eta ln f (N, 6) in the model's units, computed in batches."""
        self.eval()
        logf = np.empty(len(eta))
        grad = np.empty((len(eta), eta.shape[1]))
        for i in range(0, len(eta), batch_size):
            chunk = torch.as_tensor(
                eta[i : i + batch_size], dtype=self.members[0].mean.dtype, device=self.device
            ).requires_grad_(True)
            lp = self.log_prob(chunk)
            (g,) = torch.autograd.grad(lp.sum(), chunk)
            logf[i : i + batch_size] = lp.detach().cpu().double().numpy()
            grad[i : i + batch_size] = g.cpu().double().numpy()
        return logf, grad

    @torch.no_grad()
    def sample(self, n: int, seed: int) -> np.ndarray:
        """n points (n, 6) from the ensemble density (each from a uniformly chosen member)."""
        self.eval()
        counts = np.random.default_rng(seed).multinomial(n, [1.0 / self.k] * self.k)
        with torch.random.fork_rng(devices=[] if self.device.type == "cpu" else [self.device]):
            torch.manual_seed(seed)
            parts = [
                m.sample(int(c)).cpu().double().numpy()
                for m, c in zip(self.members, counts, strict=True)
            ]
        out = np.concatenate(parts)
        return out[np.random.default_rng(seed + 1).permutation(n)]
