r"""An ensemble of flows for the distribution function, and its training by maximum likelihood.

The ensemble's density is the mean of its members' densities,

.. math:: f(\eta) = \frac1K \sum_{k=1}^K f_k(\eta), \qquad
          \ln f = \operatorname{logsumexp}_k \ln f_k - \ln K,

which averages out the members' independent fitting noise (Green & Ting 2020, Sec. 3).
Each member maximises the likelihood of the stars (their eq. 2) with Adam, a cosine learning-rate
decay, a held-out validation split and early stopping on it; an optional wall-clock budget per
member ends the decay early instead of cutting it off.

Large catalogs: the stars may be an (N, 6) array memory-mapped from disk
(``np.load(path, mmap_mode="r")``). Training then gathers each batch's rows from the map and
converts only those to torch (:class:`StarBatches`), so 10^7 stars train without a copy of
the catalog in memory. Training can be checkpointed every few epochs and resumed exactly
(:mod:`deeppot_galpy.checkpoint`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..checkpoint import Checkpoint, restore_training_state, training_state
from ..device import map_batches
from ..phasespace import PhaseSpace, Standardization, split_rows
from .augment import Augmentation
from .factorised import FactorisedFlow
from .flows import FlowConfig, PhaseSpaceFlow

__all__ = ["FlowEnsemble", "FlowTraining", "StarBatches", "split_rows", "train_flow"]


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
    # each batch moved by a random element of the potential's symmetry group (df.augment)
    augment: bool = False

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.patience < 1:
            raise ValueError(
                f"flow training needs epochs, batch_size and patience >= 1 (got {self.epochs}, "
                f"{self.batch_size}, {self.patience})"
            )
        if not self.lr > 0 or self.weight_decay < 0:
            raise ValueError(
                f"flow training needs lr > 0 and weight_decay >= 0 (got {self.lr}, "
                f"{self.weight_decay})"
            )
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        budget = self.time_budget_s
        if budget is not None and not (isinstance(budget, int | float) and budget >= 0):
            raise ValueError(f"time_budget_s must be >= 0 (0: no limit), got {self.time_budget_s}")

    def to_dict(self) -> dict:
        return asdict(self)


class StarBatches:
    """Rows ``rows`` of an (N, 6) array, read and converted to torch one batch at a time.

    ``batches[idx]`` (idx a CPU index tensor into ``rows``) is a float32 tensor on ``device``,
    equal to indexing a tensor of all the rows, so training gives the same flow either way.
    """

    def __init__(self, eta: np.ndarray, rows: np.ndarray, device: str | torch.device):
        self.eta = eta
        self.rows = rows
        self.device = torch.device(device)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, idx: Tensor) -> Tensor:
        return torch.as_tensor(
            self.eta[self.rows[idx.numpy()]], dtype=torch.float32, device=self.device
        )


def _schedule(step: int, total: int, t0: float, budget: float | None) -> float:
    """Fraction of the training done, by steps or by wall time, whichever is further."""
    done = step / max(total, 1)
    if budget:
        done = max(done, (time.perf_counter() - t0) / budget)
    return min(done, 1.0)


def train_flow(
    flow: nn.Module,
    train: Tensor | StarBatches,
    val: Tensor,
    cfg: FlowTraining,
    seed: int,
    progress: bool = True,
    desc: str = "flow",
    checkpoint: Checkpoint | None = None,
    augment: Augmentation | None = None,
) -> dict:
    """Fit one flow to ``train`` (N, 6) by maximum likelihood; returns its training history.

    The returned flow holds the weights of the epoch with the best validation log-likelihood.
    With a ``checkpoint``, training starts from its saved state (a finished flow is just
    loaded), saves its state when :meth:`Checkpoint.due` says so, and marks it done at the end.
    ``augment`` moves each batch by a random symmetry (:mod:`.augment`).
    """
    gen = torch.Generator(device="cpu").manual_seed(seed)
    opt = torch.optim.Adam(flow.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    n = len(train)
    per_epoch = max(1, n // cfg.batch_size)
    total = cfg.epochs * per_epoch
    best, best_state, since_best = math.inf, None, 0
    history: dict = {"epoch": [], "train_nll": [], "val_nll": []}
    first_epoch, step, elapsed = 0, 0, 0.0
    saved = checkpoint.load() if checkpoint is not None else None
    if saved is not None:
        best_state = restore_training_state(*saved, flow, opt, gen)
        state = saved[1]
        if state["done"]:
            return state["history"]
        first_epoch, step, elapsed = state["epoch"], state["step"], state["elapsed"]
        best, since_best, history = state["best"], state["since_best"], state["history"]

    def save(done: bool, next_epoch: int) -> None:
        tensors, state = training_state(flow, opt, gen, None if done else best_state)
        state.update(
            done=done,
            epoch=next_epoch,
            step=step,
            best=best,
            since_best=since_best,
            history=history,
            elapsed=time.perf_counter() - t0,
        )
        checkpoint.save(tensors, state)

    t0 = time.perf_counter() - elapsed
    bar = tqdm(range(first_epoch, cfg.epochs), desc=desc, disable=not progress, leave=False)
    for epoch in bar:
        flow.train()
        perm = torch.randperm(n, generator=gen)
        if isinstance(train, Tensor):
            perm = perm.to(train.device)
        running, batches = 0.0, 0
        for b in range(per_epoch):
            frac = _schedule(step, total, t0, cfg.time_budget_s)
            if frac >= 1.0:  # the time budget ran out mid-epoch (an epoch of 10^7 stars is long)
                break
            for group in opt.param_groups:
                group["lr"] = cfg.lr * 0.5 * (1.0 + math.cos(math.pi * frac))
            batch = train[perm[b * cfg.batch_size : (b + 1) * cfg.batch_size]]
            if augment is not None:
                batch = augment(batch, gen)
            loss = -flow.log_prob(batch).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(flow.parameters(), 10.0)
            opt.step()
            running += loss.item()
            step += 1
            batches += 1
        val_nll = _mean_nll(flow, val)
        history["epoch"].append(epoch)
        history["train_nll"].append(running / max(batches, 1))
        history["val_nll"].append(val_nll)
        bar.set_postfix(val_nll=f"{val_nll:.4f}")
        if val_nll < best - 1e-4:
            best, since_best = val_nll, 0
            best_state = {k: t.detach().clone() for k, t in flow.state_dict().items()}
        else:
            since_best += 1
        if since_best >= cfg.patience or _schedule(step, total, t0, cfg.time_budget_s) >= 1.0:
            break
        if checkpoint is not None and checkpoint.due(epoch + 1):
            save(done=False, next_epoch=epoch + 1)
    if best_state is not None:
        flow.load_state_dict(best_state)
    history["best_val_nll"] = best
    history["seconds"] = time.perf_counter() - t0
    if checkpoint is not None:
        save(done=True, next_epoch=cfg.epochs)
    return history


@torch.no_grad()
def _mean_nll(flow: nn.Module, eta: Tensor, batch: int = 65536) -> float:
    flow.eval()
    total = sum(-flow.log_prob(eta[i : i + batch]).sum().item() for i in range(0, len(eta), batch))
    return total / len(eta)


def member(mean: Tensor, scale: Tensor, config: FlowConfig) -> nn.Module:
    """One flow of the form ``config.model`` names (the same log_prob/sample interface)."""
    if config.model == "auto":
        raise ValueError(
            "the DF model 'auto' is chosen from the stars first (deeppot_galpy.shape."
            "choose_df_model); build the ensemble with the model it gives"
        )
    cls = FactorisedFlow if config.factorised else PhaseSpaceFlow
    return cls(mean, scale, config)


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
        self.members = nn.ModuleList(member(mean, scale, config) for _ in range(k))

    @property
    def k(self) -> int:
        return len(self.members)

    @property
    def device(self) -> torch.device:
        return self.members[0].mean.device

    def subset(self, members: Sequence[int]) -> FlowEnsemble:
        """The listed members as an ensemble of their own, sharing their weights."""
        out = FlowEnsemble(self.standardization, len(members), self.config)
        out.members = nn.ModuleList(self.members[k] for k in members)
        return out.eval()

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
        data: PhaseSpace | np.ndarray,
        cfg: FlowTraining = FlowTraining(),
        seed: int = 0,
        progress: bool = True,
        members: list[int] | None = None,
        on_member_done: Callable[[int, dict], None] | None = None,
        rows: np.ndarray | None = None,
        checkpoints: Callable[[int], Checkpoint] | None = None,
        augment: Augmentation | None = None,
    ) -> list[dict]:
        """Train the members (all, or those listed) on ``data``; one history per member.

        Member k is initialised and shuffled from seed ``seed + k``, so results do not depend
        on which members are trained together (or on which process).

        ``data`` is a PhaseSpace or an (N, 6) array of (x, v); ``rows`` restricts training to
        those rows of it. A memory-mapped array is read batch by batch (:class:`StarBatches`);
        other data are copied to the device once. ``checkpoints(k)`` is member k's
        :class:`~deeppot_galpy.checkpoint.Checkpoint`: training resumes from it, and a member
        it records as finished is loaded, not retrained. ``augment``: see :func:`train_flow`.
        """
        eta = data.eta if isinstance(data, PhaseSpace) else data
        rows = np.arange(len(eta)) if rows is None else np.asarray(rows)
        train_rows, val_rows = split_rows(rows, cfg.val_fraction, seed)
        dev = self.device
        val = torch.as_tensor(eta[val_rows], dtype=torch.float32, device=dev)
        histories = []
        for k in members if members is not None else range(self.k):
            torch.manual_seed(seed + k)
            self.members[k].load_state_dict(self._fresh_state(k, seed))
            idx = train_rows
            if cfg.bootstrap:
                idx = idx[np.random.default_rng(seed + k).integers(0, len(idx), len(idx))]
            if isinstance(eta, np.memmap):
                train = StarBatches(eta, idx, dev)
            else:
                train = torch.as_tensor(eta[idx], dtype=torch.float32, device=dev)
            hist = train_flow(
                self.members[k],
                train,
                val,
                cfg,
                seed + k,
                progress,
                f"flow {k + 1}/{self.k}",
                checkpoints(k) if checkpoints is not None else None,
                augment,
            )
            histories.append(hist)
            if on_member_done is not None:
                on_member_done(k, hist)
        return histories

    def _fresh_state(self, k: int, seed: int) -> dict:
        """Initial weights of member k from its own seed (independent of construction order)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + k)
            fresh = member(self.members[k].mean, self.members[k].scale, self.config)
        return fresh.to(self.device).state_dict()

    def log_prob(self, eta: Tensor, conditional: bool = False) -> Tensor:
        """ln f of the ensemble: log of the mean of the members' densities; with
        ``conditional``, ln p(v | x) likewise (factorised members only)."""
        if conditional and not hasattr(self.members[0], "log_prob_parts"):
            raise ValueError(
                "p(v | x) needs a factorised DF model (flow model 'factorised' or 'mixture')"
            )
        logs = torch.stack(
            [m.log_prob_parts(eta)[1] if conditional else m.log_prob(eta) for m in self.members]
        )
        return torch.logsumexp(logs, dim=0) - math.log(self.k)

    def log_prob_and_grad(
        self, eta: np.ndarray, batch_size: int = 16384, conditional: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """ln f and grad_eta ln f (N, 6) in the model's units (``conditional``: of ln p(v | x)).

        Computed in batches of ``batch_size``, halved whenever the device runs out of memory.
        """
        self.eval()
        logf = np.empty(len(eta))
        grad = np.empty((len(eta), eta.shape[1]))
        dtype = self.members[0].mean.dtype

        def evaluate(rows: slice) -> None:
            chunk = torch.as_tensor(eta[rows], dtype=dtype, device=self.device)
            chunk.requires_grad_(True)
            lp = self.log_prob(chunk, conditional)
            (g,) = torch.autograd.grad(lp.sum(), chunk)
            logf[rows] = lp.detach().cpu().double().numpy()
            grad[rows] = g.cpu().double().numpy()

        map_batches(evaluate, len(eta), batch_size)
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
