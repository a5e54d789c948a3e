"""The training loop: BPR batches, Adam, early stopping on a valid metric, atomic checkpoints,
exact resume, and the run folder (config.yaml, log.jsonl, metrics.json, curves.png, model.pt).

Determinism: the model is initialised after ``torch.manual_seed(seed)``, the sampler owns a
numpy generator seeded with ``seed``, and ``checkpoint.pt`` holds every RNG state, so a resumed run
continues exactly as an uninterrupted one would.
"""

from __future__ import annotations

import json
import math
import resource
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch
from tqdm.auto import tqdm

from siger.artifacts import atomic_write, compact_table, plot_curves, write_json
from siger.config import Config, ConfigError, check_config, config_from_dict, config_mismatch
from siger.data.dataset import InteractionData, load_dataset
from siger.data.graphs import GraphStore
from siger.data.sampler import BPRSampler
from siger.distributed import DistContext, all_keys, allreduce_grads, allreduce_sum, broadcast_model, rank_bounds
from siger.eval.ranking import evaluate
from siger.models.base import Recommender, get_model_class
from siger.train.record import loaded_code_state
from siger.train.stopping import STOP_KEYS, effective_warmup, first_stop, patience_used


class TrainingError(RuntimeError):
    """Training cannot go on (non-finite loss, a resume that does not match the run)."""


def _saved_value(saved: dict, key: str) -> Any:
    """A key's value in a saved ``Config.to_dict()``; '(default)' where the run predates the key."""
    for section in ("train", "model"):
        if key in (saved.get(section) or {}):
            return saved[section][key]
    return "(default)"


def show_progress(setting: bool | None) -> bool:
    """Whether to draw progress bars: as set, or (None) only when stderr is a terminal."""
    return sys.stderr.isatty() if setting is None else bool(setting)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def device_error(name: str) -> str | None:
    """Why ``name`` cannot hold tensors in this process, or None when it can."""
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError) as e:
        return f"device {name!r} is not a torch device ({e})"
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            return (f"device {name!r}: no CUDA device is usable here (torch {torch.__version__}, "
                    f"built with CUDA {torch.version.cuda}); use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            return f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s) here"
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        return f"device {name!r}: MPS is not available here; use --device cpu"
    elif dev.type not in ("cpu", "cuda", "mps"):
        return f"device {name!r}: only cpu, cuda[:N] and mps are supported"
    return None


def check_device(name: str) -> None:
    """Raise :class:`ConfigError` naming the ``device`` key when ``name`` is unusable here."""
    err = device_error(name)
    if err:
        raise ConfigError(f"--device: {err}")


def build_model(cfg: Config, data: InteractionData, store: GraphStore | None = None) -> Recommender:
    """Seed, then construct the configured model on its device."""
    check_device(cfg.train.device)
    torch.manual_seed(cfg.train.seed)
    store = store or GraphStore(data, cfg.train.cache_dir)
    cls = get_model_class(cfg.train.model)
    return cls(data, cfg.model, store, cfg.train.device).to(cfg.train.device)


def load_data(cfg: Config) -> InteractionData:
    return load_dataset(cfg.train.dataset, cfg.train.data_dir).select_modalities(cfg.train.modalities)


def load_model(run_dir: str | Path, data: InteractionData | None = None,
               device: str | None = None) -> tuple[Recommender, Config, InteractionData]:
    """Rebuild a trained model from a run folder (config.yaml + model.pt).

    ``device``: where to put it; None keeps the run's own device where it is usable here and
    falls back to the CPU otherwise (a run trained on a GPU loads on a CPU-only machine).
    """
    import yaml

    run_dir = Path(run_dir)
    cfg_path, model_path = run_dir / "config.yaml", run_dir / "model.pt"
    for p in (cfg_path, model_path):
        if not p.exists():
            raise FileNotFoundError(f"{p}: not found (is {run_dir} a finished training run?)")
    cfg = config_from_dict(yaml.safe_load(cfg_path.read_text()))
    if device is not None:
        cfg.train.device = device
    elif device_error(cfg.train.device):
        cfg.train.device = "cpu"
    data = data or load_data(cfg)
    model = build_model(cfg, data)
    state = torch.load(model_path, map_location=cfg.train.device, weights_only=True)
    model.load_state_dict(state["model"])
    model.eval()
    return model, cfg, data


# called after each evaluation with (epoch, valid metrics, replay); True stops the run ("pruned"),
# except inside the warm-up, where the answer is ignored as early stopping's would be (a tuner's
# pruner gets the rule the trainer has, whatever its own warm-up setting).
# replay=True: an evaluation restored from a checkpoint on resume, reported again (its answer is ignored)
EvalCallback = Callable[[int, dict, bool], Optional[bool]]


class Trainer:
    """Trains one model on one dataset under the MMRec protocol.

    Early stopping: the run stops after ``patience`` evaluations without a better valid metric,
    counting only evaluations after the warm-up (``warmup_epochs``, at least ``warmup_steps``
    optimiser steps: the attribute ``warmup``; 0: MMRec's rule; :mod:`siger.train.stopping`).
    ``on_eval`` (optional, see :data:`EvalCallback`) sees every evaluation and may stop the run
    after the warm-up; a tuner's pruner uses it.

    Args:
        cfg: resolved configuration.
        data: the validated dataset (modalities already selected).
        out_dir: run folder for artifacts; None writes nothing.
        log: where human-readable lines go.
        on_eval: optional callback after each evaluation.
    """

    def __init__(self, cfg: Config, data: InteractionData, out_dir: str | Path | None = None,
                 log: Callable[[str], None] = print, dist: DistContext | None = None,
                 on_eval: EvalCallback | None = None):
        self.cfg = cfg
        self.on_eval = on_eval
        self.data = data
        self.dist = dist or DistContext()
        self.out = Path(out_dir) if out_dir is not None else None
        self.write = self.out is not None and self.dist.is_main  # only rank 0 writes artifacts
        self.log = log if self.dist.is_main else (lambda s: None)
        # the code that runs is the code loaded now: its git state goes in the run's record
        self.git = loaded_code_state() if self.write else None
        t = cfg.train
        if t.num_threads > 0:
            torch.set_num_threads(t.num_threads)
        check_config(cfg)  # a config built in code gets the checks a loaded one gets
        t0 = time.perf_counter()
        self.store = GraphStore(data, t.cache_dir)
        self.model = build_model(cfg, data, self.store)
        self._device = torch.device(cfg.train.device)
        if self.dist.enabled:
            broadcast_model(self.model)
        self.build_seconds = time.perf_counter() - t0
        if self.model.summary():
            self.log(f"{self.model.name}: {json.dumps(self.model.summary())}")
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=t.learning_rate)
        # a decaying step size (lr_decay < 1); none at all with the default 1, so a constant-rate
        # run computes exactly what it did before the option existed
        self.scheduler = (torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda e: t.lr_decay ** (e / t.lr_decay_epochs)) if t.lr_decay != 1.0 else None)
        self.sampler = BPRSampler(data.train_matrix, seed=t.seed, pool=t.neg_pool)
        self.warmup = effective_warmup(t.warmup_epochs, t.warmup_steps, int(data.train_matrix.nnz), t.batch_size)
        self.valid_m = data.matrix("valid")
        self.test_m = data.matrix("test")
        self.history: list[dict[str, Any]] = []
        self.best: dict[str, Any] = {"epoch": -1, "valid": None, "test": None}
        self.start_epoch = 0
        self.rule_changed: str | None = None  # set by a resume under other stop-key values (what changed)

    # -- pieces -----------------------------------------------------------------------------
    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One pass over all train pairs; returns the mean of each loss term."""
        t = self.cfg.train
        self.model.train()
        self.model.pre_epoch()
        users, pos, neg = (torch.from_numpy(a).to(t.device) for a in self.sampler.epoch())
        n = len(users)
        sums: dict[str, float] = {}
        n_batches = math.ceil(n / t.batch_size)
        bar = tqdm(range(n_batches), desc=f"epoch {epoch}", leave=False, disable=not show_progress(t.progress),
                   file=sys.stderr, dynamic_ncols=True)
        for b in bar:
            lo, hi = b * t.batch_size, min((b + 1) * t.batch_size, n)
            if self.dist.enabled:  # this rank's contiguous share of the global batch
                a, z = rank_bounds(hi - lo, self.dist.rank, self.dist.world)
                lo, hi, weight = lo + a, lo + z, (z - a) / (hi - lo)
            else:
                weight = 1.0
            terms = self.train_step(users[lo:hi], pos[lo:hi], neg[lo:hi], weight, where=f"epoch {epoch} batch {b}")
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v * weight
            if b % 10 == 0 and terms:
                bar.set_postfix(loss=f"{sum(terms.values()):.4f}")
        if self.dist.enabled:  # weighted shares sum to the global-batch means
            keys = all_keys(sums)
            sums = {k: allreduce_sum(sums.get(k, 0.0), self.cfg.train.device) for k in keys}
        return {k: v / n_batches for k, v in sums.items()}

    def train_step(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, weight: float = 1.0,
                   where: str = "step") -> dict[str, float]:
        """One optimiser step on a batch ``[B]`` of (user, positive, negative) ids; returns the loss terms.

        ``weight`` scales this process's loss (its share of a distributed global batch); an empty
        share still joins the gradient all-reduce."""
        self.optimizer.zero_grad(set_to_none=True)
        terms = self.model.loss(users, pos, neg) if len(users) else {}
        loss = sum(terms.values()) if terms else None
        if loss is not None and not torch.isfinite(loss):
            raise TrainingError(f"{where}: non-finite loss {loss.item()} ({ {k: v.item() for k, v in terms.items()} })")
        if loss is not None:
            (loss * weight).backward()
        if self.dist.enabled:
            allreduce_grads(self.model)
        self.optimizer.step()
        return {k: v.item() for k, v in terms.items()}

    def evaluate(self, split: str, emb: tuple[torch.Tensor, torch.Tensor] | None = None) -> dict[str, float]:
        """Metrics on ``split``; pass ``emb`` to reuse embeddings already computed this epoch."""
        u, i = emb if emb is not None else self.model.embeddings()
        target = self.valid_m if split == "valid" else self.test_m
        return evaluate(u, i, self.data.train_matrix, target, self.cfg.train.topk, self.cfg.train.eval_chunk_users,
                        self.dist)

    # -- checkpoints ------------------------------------------------------------------------
    def _save_model(self, epoch: int) -> None:
        state = {"model": self.model.state_dict(), "epoch": epoch}
        atomic_write(self.out / "model.pt", lambda p: torch.save(state, p))

    def _save_checkpoint(self, epoch: int) -> None:
        state = {
            "epoch": epoch,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict() if self.scheduler is not None else None,
            "sampler": self.sampler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(self._device) if self._device.type == "cuda" else None,
            "history": self.history,
            "best": self.best,
            "config": self.cfg.to_dict(),
        }
        atomic_write(self.out / "checkpoint.pt", lambda p: torch.save(state, p))

    def resume(self) -> bool:
        """Restore the last checkpoint of ``out_dir``; False when there is none."""
        path = self.out / "checkpoint.pt" if self.out else None
        if path is None or not path.exists():
            return False
        state = torch.load(path, map_location="cpu", weights_only=False)  # RNG states must stay on the CPU
        diff = config_mismatch(state["config"], self.cfg)
        rule = [k for k in diff if k in STOP_KEYS]
        if rule and not [k for k in diff if k not in STOP_KEYS]:
            self._check_rule_continues(state, rule)
            diff = []
        if diff:
            saved, now = state["config"], self.cfg.to_dict()
            detail = ", ".join(
                f"{k}: saved {_saved_value(saved, k)!r}, now {now['train'].get(k, now['model'].get(k))!r}"
                for k in diff)
            raise ConfigError(f"{path}: cannot resume: the run was made with another config; differing keys: "
                              f"{detail}. Resume with the run's own settings (see {self.out / 'config.yaml'}) "
                              "or train into another --out")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state.get("scheduler") is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.sampler.load_state_dict(state["sampler"])
        torch.set_rng_state(state["torch_rng"])
        if self._device.type == "cuda" and state.get("cuda_rng") is not None:  # perturbation noise is drawn there
            torch.cuda.set_rng_state(state["cuda_rng"], self._device)
        self.history, self.best = state["history"], state["best"]
        self.start_epoch = state["epoch"] + 1
        self.log(f"resumed from {path} at epoch {self.start_epoch}")
        return True

    def _check_rule_continues(self, state: dict[str, Any], keys: list[str]) -> None:
        """A checkpoint made under other values of the stop keys (``keys``, a subset of
        :data:`~siger.train.stopping.STOP_KEYS`): its epochs are the epochs this config trains, so
        the run continues under the current rule, unless that rule would have ended it before the
        checkpoint's last epoch (then it is not this config's run: :class:`ConfigError`)."""
        t, metric = self.cfg.train, self.cfg.train.valid_metric
        evals = [(r["epoch"], r["valid"][metric]) for r in state["history"] if "valid" in r]
        stop = first_stop(evals, self.warmup, t.patience)
        saved = ", ".join(f"{k} {_saved_value(state['config'], k)} -> {getattr(t, k)}" for k in keys)
        if stop is not None and stop < state["epoch"]:
            raise ConfigError(f"{self.out / 'checkpoint.pt'}: cannot resume: the stop rule changed ({saved}) and "
                              f"the current one ends this run at epoch {stop}, before the {state['epoch'] + 1} "
                              f"epochs it ran; train into another --out")
        self.rule_changed = saved
        self.log(f"the stop rule changed since this checkpoint ({saved}; warm-up {self.warmup} epochs): "
                 "its epochs are the same, so the run continues under the current rule")

    # -- the loop ---------------------------------------------------------------------------
    def fit(self, resume: bool = False) -> dict[str, Any]:
        t = self.cfg.train
        if self.out is not None:
            resumed = resume and self.resume()  # every rank reads the checkpoint; rank 0 writes
            if self.write:
                self.out.mkdir(parents=True, exist_ok=True)
                if not resumed or self.rule_changed:  # a run continued under a new stop rule is now its run
                    self.cfg.save(self.out / "config.yaml")
                self._rewrite_log()
        metric = t.valid_metric
        stop = None  # why the run ended before t.epochs: "early_stop" | "pruned"
        if self.on_eval is not None:
            for rec in self.history:  # evaluations restored by resume
                if "valid" in rec:
                    self.on_eval(rec["epoch"], rec["valid"], True)
        for epoch in range(self.start_epoch, t.epochs):
            if self._should_stop(epoch - 1):  # a resumed run that had already stopped
                stop = "early_stop"
                break
            t0 = time.perf_counter()
            losses = self.train_epoch(epoch)
            train_s = time.perf_counter() - t0
            rec: dict[str, Any] = {"epoch": epoch, "loss": losses, "train_seconds": round(train_s, 4)}
            if (epoch + 1) % t.eval_every == 0 or epoch == t.epochs - 1:
                t1 = time.perf_counter()
                emb = self.model.embeddings()  # once per evaluation, shared by valid and test
                valid = self.evaluate("valid", emb)
                rec["valid"] = valid
                if self.best["valid"] is None or valid[metric] > self.best["valid"][metric]:
                    self.best = {"epoch": epoch, "valid": valid, "test": self.evaluate("test", emb)}
                    if self.write:
                        self._save_model(epoch)
                rec["eval_seconds"] = round(time.perf_counter() - t1, 4)
                self.log(f"epoch {epoch:4d}  loss {sum(losses.values()):.4f}  valid {metric} "
                         f"{valid[metric]:.4f}  best {self.best['valid'][metric]:.4f} @ {self.best['epoch']}  "
                         f"({train_s:.1f}s train, {rec['eval_seconds']:.1f}s eval)")
            self.history.append(rec)
            if self.scheduler is not None:  # the next epoch's step size
                self.scheduler.step()
            if self.write:
                self._save_checkpoint(epoch)
                with open(self.out / "log.jsonl", "a") as fh:
                    fh.write(json.dumps(rec) + "\n")
            if ("valid" in rec and self.on_eval is not None and self.on_eval(epoch, rec["valid"], False)
                    and epoch >= self.warmup):
                stop = "pruned"
                self.log(f"stopped at epoch {epoch} by the evaluation callback (pruned)")
                break
            if self._should_stop(epoch):
                stop = "early_stop"
                self.log(f"early stop: no better valid {metric} for {t.patience} evaluations")
                break
        return self._finish(stop)

    def _should_stop(self, epoch: int) -> bool:
        """Early stopping after ``epoch`` (the history holds its evaluation; :mod:`siger.train.stopping`)."""
        t = self.cfg.train
        evals = [r["epoch"] for r in self.history if "valid" in r]
        return patience_used(evals, self.best["epoch"], self.warmup) >= t.patience

    def _rewrite_log(self) -> None:
        """log.jsonl = the history so far (drops lines of epochs after the last checkpoint)."""
        atomic_write(self.out / "log.jsonl",
                     lambda p: Path(p).write_text("".join(json.dumps(r) + "\n" for r in self.history)))

    def _write_record(self, result: dict[str, Any]) -> None:
        """record.json (see :mod:`siger.train.record`); a run finished again unchanged (e.g. a
        resumed finished run) keeps its first record, so its id and date stay put; one continued
        under a new stop rule gets a new record, with the config it now is the run of."""
        from siger.train.record import run_record

        path = self.out / "record.json"
        if path.exists() and not self.rule_changed:
            try:
                old = json.loads(path.read_text())
                if old.get("test") == result["test"] and old.get("epochs_run") == result["epochs_run"]:
                    return
            except (OSError, ValueError):
                pass
        write_json(path, run_record(result, self.cfg.to_dict(), self.git, self.history))

    def _finish(self, stop: str | None) -> dict[str, Any]:
        t = self.cfg.train
        train_s = [h["train_seconds"] for h in self.history]
        eval_s = [h["eval_seconds"] for h in self.history if "eval_seconds" in h]
        result = {
            "model": t.model,
            "dataset": t.dataset,
            "seed": t.seed,
            "best_epoch": self.best["epoch"],
            "epochs_run": len(self.history),
            "stopped_early": stop == "early_stop",
            "warmup_epochs_effective": self.warmup,
            "pruned": stop == "pruned",
            "valid": self.best["valid"],
            "test": self.best["test"],
            "seconds_per_epoch": float(np.mean(train_s)) if train_s else None,
            "seconds_per_eval": float(np.mean(eval_s)) if eval_s else None,
            "graph_build_seconds": round(self.build_seconds, 3),
            "peak_rss_mb": round(peak_rss_mb(), 1),
            "n_parameters": sum(p.numel() for p in self.model.parameters()),
        }
        if self.model.summary():
            result["model_summary"] = self.model.summary()
        if self.write:
            write_json(self.out / "metrics.json", result)
            self._write_record(result)
            plot_curves(self.history, self.out / "curves.png", t.valid_metric)
        if self.best["valid"] is not None:
            self.log(f"\nbest epoch {self.best['epoch']} of {len(self.history)} "
                     f"({result['seconds_per_epoch']:.2f}s/epoch train)\n")
            self.log(compact_table({"valid": self.best["valid"], "test": self.best["test"]}, t.topk))
            if self.write:
                self.log(f"(every metric at K = {', '.join(map(str, t.topk))}: {self.out / 'metrics.json'})")
        return result
