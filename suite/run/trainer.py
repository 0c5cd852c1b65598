"""Runs one (task, model, lambda, seed) cell under a protocol, exactly as the original script."""
from __future__ import annotations

import copy
import dataclasses
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from baselines import ModelConfig, build_model, count_params, usage_of
from tasks import IGNORE, Task

from suite.errors import ConfigError, parse
from suite.run.phase1 import FORMAT as PHASE1_FORMAT, load_checkpoint, phase1_key, save_checkpoint, shares_phase1
from suite.run.devices import precision
from suite.run.protocol import FAITHFUL, Protocol
from suite.schema.bounds import Lambda, Seed


class NonFiniteLoss(RuntimeError):
    """The training loss became NaN or infinite: the cell cannot produce a result."""


@dataclass
class EpochRecord:
    phase: int
    epoch: int
    lam: float
    train_loss: float        # mean task cross-entropy over the epoch's steps
    train_acc: float
    val_acc: float
    usage: float             # eval usage (argmax gates), mean over layers
    usage_per_layer: list
    seconds: float           # wall time of this epoch (training + evaluation)


@dataclass
class TrainResult:
    accuracy: float
    usage: float
    usage_per_layer: list
    params: int
    epochs_phase1: int
    epochs_phase2: int
    phase2_ran: bool
    seconds: float
    history: list = field(default_factory=list)
    model: torch.nn.Module | None = None  # the weights whose accuracy is reported
    usage_model: torch.nn.Module | None = None  # the weights whose usage is reported, if not `model`
    # routed: phase 1's wall time, and whether it was read from a phase-1 checkpoint rather than
    # trained here (then `seconds` is this run's own time and `phase1_seconds` the reused one's)
    phase1_seconds: float | None = None
    phase1_reused: bool = False
    phase1_key: str | None = None  # routed curriculum cells only

    @property
    def model_for_usage(self) -> torch.nn.Module:
        return self.usage_model if self.usage_model is not None else self.model

    def summary(self) -> dict:
        return {k: getattr(self, k) for k in ("accuracy", "usage", "usage_per_layer", "params",
                                              "epochs_phase1", "epochs_phase2", "phase2_ran", "seconds")}


#: a terminal redraws the bar often; a log file (nox output redirected, CI) gets a line every 30 s
BAR_INTERVAL = 0.1 if sys.stderr.isatty() else 30.0


def module_generators(model: torch.nn.Module) -> dict:
    """Every torch.Generator a module of `model` holds (a router's own noise, say), by
    'module.path:attribute': state the state dict does not carry."""
    return {f"{name}:{attr}": v for name, m in model.named_modules()
            for attr, v in vars(m).items() if isinstance(v, torch.Generator)}


def cpu_tree(x):
    """A copy of nested dicts/lists/tuples of tensors with every tensor detached on the CPU."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().clone()
    if isinstance(x, dict):
        return {k: cpu_tree(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(cpu_tree(v) for v in x)
    return x


@torch.no_grad()
def evaluate(model, batches) -> tuple[float, list]:
    """Accuracy over the scored targets (those != IGNORE) and per-layer usage (mean over every
    sequence x position), argmax routing."""
    model.eval()
    correct = total = gated = 0
    layer_sum = 0
    for b in batches:
        out = model(b.inputs, b.positions)
        correct += (out.logits.argmax(-1) == b.targets).sum()  # an argmax never equals IGNORE
        total += (b.targets != IGNORE).sum()
        layer_sum = layer_sum + torch.stack([g.sum() for g in out.gates])
        gated += out.gates[0].numel()
    return float(correct) / float(total), (layer_sum / gated).tolist()


class Trainer:
    """One run. Seeds: init and routing noise from `seed`; data from the task's split streams.

    `phase1_checkpoint` (routed cells under the "curriculum" schedule only; ignored otherwise): at
    the end of phase 1 everything the rest of the run depends on is saved there; if the file
    exists when the run starts, phase 1 is read from it instead of trained (it must have been
    written for this cell's phase-1 key, which leaves out the lambda target) and the run goes on
    exactly as the run that wrote it did.
    """

    def __init__(self, task: Task, model_name: str, *, lambda_target: float = 0.0, seed: int = 0,
                 protocol: Protocol = FAITHFUL, model_config: ModelConfig | None = None,
                 device: torch.device | str = "cpu", progress: bool = True, desc: str = "",
                 phase1_checkpoint: Path | str | None = None):
        seed = parse(Seed, seed, "seed", strict=True)
        lambda_target = float(parse(Lambda, lambda_target, "lambda_target"))
        if model_name != "routed" and lambda_target != 0:
            raise ConfigError(f"lambda_target: only the routed model has an attention cost; "
                              f"must be 0 for '{model_name}', got {lambda_target}")
        cfg = model_config or ModelConfig()
        if cfg.vocab_size < task.vocab_size:
            raise ConfigError(f"vocab_size: the model's ({cfg.vocab_size}) must cover the task's "
                              f"({task.vocab_size})")
        self.task, self.protocol, self.lambda_target = task, protocol, float(lambda_target)
        self.device = torch.device(device)
        self.routed = model_name == "routed"
        torch.manual_seed(seed)
        self.model = build_model(model_name, cfg).to(self.device)
        p = protocol
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=p.lr, betas=p.betas,
                                     weight_decay=p.weight_decay)
        bs = p.batch_size(task.seq_len)
        self.train_stream = task.stream("train", seed, bs, self.device)
        self.val_stream = task.stream("validation", seed, bs, self.device)
        self.progress, self.desc = progress, desc
        self.history: list[EpochRecord] = []
        self.best = None  # (accuracy, state dict) of the best epoch so far
        shared = self.routed and shares_phase1(model_name, protocol)
        self.phase1_key = phase1_key(task, cfg, seed, protocol, self.device) if shared else None
        self.phase1_path = Path(phase1_checkpoint) if shared and phase1_checkpoint is not None else None

    # -- one epoch ---------------------------------------------------------------------------
    def step(self, lam: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One optimiser step on a fresh batch: (task loss, correct count, scored targets), the
        counts as 0-d tensors on the device (no host sync); scored targets are those != IGNORE."""
        model, p = self.model, self.protocol
        b = next(self.train_stream)
        with precision(p.precision, self.device):
            out = model(b.inputs, b.positions)
            logits = out.logits.reshape(-1, out.logits.shape[-1])
            ce = F.cross_entropy(logits, b.targets.reshape(-1))  # ignore_index -100 = IGNORE: unscored targets skipped
            loss = ce + lam * usage_of(out.gates) if lam else ce
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), p.clip_norm)
        self.opt.step()
        scored = (b.targets != IGNORE).sum()
        return ce.detach(), (logits.detach().argmax(-1) == b.targets.reshape(-1)).sum(), scored

    def _train_epoch(self, lam: float, bar) -> tuple[float, float]:
        """Mean loss and accuracy of one epoch; one host sync at its end, where a NaN or inf in any
        step's loss shows in the sum."""
        self.model.train()
        loss_sum = torch.zeros((), device=self.device)
        correct = torch.zeros((), device=self.device)
        seen = torch.zeros((), device=self.device, dtype=torch.long)
        for _ in range(self.protocol.steps_per_epoch):
            ce, ok, n = self.step(lam)
            loss_sum += ce
            correct += ok
            seen += n
            bar.update(1)
        return float(loss_sum) / self.protocol.steps_per_epoch, float(correct) / float(seen)

    def _epoch(self, phase: int, epoch: int, lam: float, bar) -> EpochRecord:
        t0 = time.perf_counter()
        loss, train_acc = self._train_epoch(lam, bar)
        if not math.isfinite(loss):
            raise NonFiniteLoss(f"training loss became {loss} in phase {phase} epoch {epoch} (lambda {lam:g})")
        val = [next(self.val_stream) for _ in range(self.protocol.eval_batches)]
        with precision(self.protocol.precision, self.device):
            acc, per_layer = evaluate(self.model, val)
        rec = EpochRecord(phase, epoch, lam, loss, train_acc, acc, sum(per_layer) / len(per_layer),
                          per_layer, time.perf_counter() - t0)
        self.history.append(rec)
        if self.best is None or acc > self.best[0]:
            self.best = (acc, {k: v.detach().clone() for k, v in self.model.state_dict().items()})
        bar.set_postfix_str(f"ep {epoch} acc {acc:.3f} usage {rec.usage:.4f} lam {lam:.3f}")
        return rec

    def _bar(self, phase_name: str, epochs: int):
        return tqdm(total=epochs * self.protocol.steps_per_epoch, desc=f"{self.desc}{phase_name}",
                    disable=not self.progress, leave=False, unit="step", dynamic_ncols=True,
                    mininterval=BAR_INTERVAL)

    # -- the protocol ------------------------------------------------------------------------
    def run(self) -> TrainResult:
        p, t0 = self.protocol, time.perf_counter()
        if not self.routed:
            epochs = p.capped(p.baseline_max_epochs)
            with self._bar("baseline", epochs) as bar:
                for e in range(1, epochs + 1):
                    rec = self._epoch(1, e, 0.0, bar)
                    if rec.val_acc > p.solved_above:
                        break
            return self._result(self._restore_best(), rec, len(self.history), 0, False, t0)

        reused = self.phase1_path is not None and self.phase1_path.exists()
        if reused:
            solved, seconds1 = self._load_phase1()
        else:
            solved = self._phase1()
            seconds1 = time.perf_counter() - t0
            if self.phase1_path is not None:
                self._save_phase1(solved, seconds1)
        rec, n1 = self.history[-1], len(self.history)
        if not solved:
            # the original reports (best phase-1 accuracy, LAST usage): keep the last weights for usage
            last = copy.deepcopy(self.model)
            result = self._result(self._restore_best(), rec, n1, 0, False, t0)
            result.usage_model = last
        else:
            epochs2 = p.phase2_epochs
            with self._bar("phase 2", epochs2) as bar:
                for e in range(1, epochs2 + 1):
                    rec = self._epoch(2, e, p.lambda_at(2, e, self.lambda_target), bar)
                    if rec.val_acc < p.phase2_floor:
                        break
            result = self._result(rec.val_acc, rec, n1, len(self.history) - n1, True, t0)
        result.phase1_seconds, result.phase1_reused, result.phase1_key = seconds1, reused, self.phase1_key
        return result

    def _phase1(self) -> bool:
        """Routed phase 1: up to its epoch budget, stop when solved; whether it was solved."""
        p = self.protocol
        epochs1 = p.capped(p.phase1_max_epochs)
        with self._bar("phase 1", epochs1) as bar:
            for e in range(1, epochs1 + 1):
                rec = self._epoch(1, e, p.lambda_at(1, e, self.lambda_target), bar)
                if rec.val_acc > p.solved_above:
                    return True
        return False

    # -- the phase-1 checkpoint --------------------------------------------------------------
    def _save_phase1(self, solved: bool, seconds: float) -> None:
        """Everything the rest of the run reads, at the end of phase 1 (atomic write)."""
        cuda = self.device.type == "cuda"
        best_acc, best_state = self.best
        model_state = self.model.state_dict()
        # the best epoch is often the last (a solved phase 1): then its weights are the model's
        best_is_last = best_state.keys() == model_state.keys() and all(
            torch.equal(best_state[k], model_state[k]) for k in model_state)
        save_checkpoint(self.phase1_path, {
            "format": PHASE1_FORMAT, "key": self.phase1_key, "solved": bool(solved), "seconds": float(seconds),
            "epochs": len(self.history),
            "history": [dataclasses.asdict(h) for h in self.history],
            "model": cpu_tree(model_state),
            "model_generators": {k: g.get_state() for k, g in module_generators(self.model).items()},
            "optimizer": cpu_tree(self.opt.state_dict()),
            "best_accuracy": float(best_acc), "best_state": None if best_is_last else cpu_tree(best_state),
            "rng_cpu": torch.get_rng_state(),
            "rng_cuda": torch.cuda.get_rng_state(self.device) if cuda else None,
            "streams": {"train": self.train_stream.state(), "validation": self.val_stream.state()},
        })

    def _load_phase1(self) -> tuple[bool, float]:
        """Put the trainer where the run that wrote the checkpoint was at the end of phase 1:
        (solved, that phase 1's wall time)."""
        data = load_checkpoint(self.phase1_path, self.phase1_key)
        self.model.load_state_dict(data["model"])
        gens = module_generators(self.model)
        if set(gens) != set(data["model_generators"]):
            raise ConfigError(f"phase1 checkpoint: '{self.phase1_path}' holds generators "
                              f"{sorted(data['model_generators'])}, the model {sorted(gens)}")
        for k, g in gens.items():
            g.set_state(data["model_generators"][k])
        self.opt.load_state_dict(data["optimizer"])
        best = data["model"] if data["best_state"] is None else data["best_state"]
        self.best = (data["best_accuracy"], {k: v.to(self.device).clone() for k, v in best.items()})
        self.history = [EpochRecord(**h) for h in data["history"]]
        self.train_stream.load_state(data["streams"]["train"])
        self.val_stream.load_state(data["streams"]["validation"])
        torch.set_rng_state(data["rng_cpu"])
        if self.device.type == "cuda":
            torch.cuda.set_rng_state(data["rng_cuda"], self.device)
        return bool(data["solved"]), float(data["seconds"])

    def _restore_best(self) -> float:
        """Load the best epoch's weights (the model whose accuracy is reported) into the model."""
        acc, state = self.best
        self.model.load_state_dict(state)
        return acc

    def _result(self, acc, last: EpochRecord, n1, n2, ran2, t0) -> TrainResult:
        return TrainResult(acc, last.usage, last.usage_per_layer, count_params(self.model), n1, n2,
                           ran2, time.perf_counter() - t0, list(self.history), self.model)


def train(task: Task, model_name: str, **kwargs) -> TrainResult:
    """Build and run one training cell; see Trainer for the arguments."""
    return Trainer(task, model_name, **kwargs).run()
