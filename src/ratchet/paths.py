"""Every path of a ratchet project has its home here; dvc.yaml names the same ones (a test checks)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ProjectPaths:
    """The layout of one ratchet project, rooted at the folder holding params.yaml and dvc.yaml."""

    root: Path

    @classmethod
    def at(cls, root: str | Path) -> "ProjectPaths":
        return cls(Path(root).resolve())

    # settings and pipeline definition
    @property
    def params(self) -> Path:
        return self.root / "params.yaml"

    @property
    def attempt(self) -> Path:
        """attempt.yaml: which retry of the feedback loop the pipeline runs (a DVC params file)."""
        return self.root / "attempt.yaml"

    # DVC-tracked data/ (written only by the flow and the CLI, never by a stage)
    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def data_dvc(self) -> Path:
        return self.root / "data.dvc"

    @property
    def catalog(self) -> Path:
        return self.data / "catalog.json"

    @property
    def reference(self) -> Path:
        return self.data / "reference"

    @property
    def batches(self) -> Path:
        return self.data / "batches"

    def batch_dir(self, batch_id: str) -> Path:
        return self.reference if batch_id == "reference" else self.batches / batch_id

    @property
    def champion(self) -> Path:
        return self.data / "champion"

    @property
    def canary(self) -> Path:
        """Optional must-pass examples (text,label[,id]); every candidate is checked on them."""
        return self.data / "canary.csv"

    @property
    def replay_buffer(self) -> Path:
        """The champion's replay buffer (buffer.parquet + buffer.json)."""
        return self.data / "replay"

    # landing zone and outcomes of raw files (not in DVC)
    @property
    def incoming(self) -> Path:
        return self.root / "incoming"

    @property
    def state_db(self) -> Path:
        """The default state store (ratchet.state_store): sqlite, unless RATCHET_STATE_URL names another."""
        return self.root / "ratchet-state.db"

    @property
    def promotion_record(self) -> Path:
        """A promotion in progress (records.PromotionRecord); absent when none is."""
        return self.root / "promotion-in-progress.json"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine"

    @property
    def archive(self) -> Path:
        return self.root / "archive"

    @property
    def ledger(self) -> Path:
        return self.root / "ledger.jsonl"

    # stage outputs
    @property
    def prepared(self) -> Path:
        return self.root / "artifacts" / "prepared"

    @property
    def plan(self) -> Path:
        return self.prepared / "plan.json"

    @property
    def training_mix(self) -> Path:
        return self.prepared / "train.parquet"

    @property
    def eval_suite(self) -> Path:
        return self.prepared / "eval"

    @property
    def prepared_canary(self) -> Path:
        """data/canary.csv as the evaluate stage reads it (prepare copies it, so DVC tracks it)."""
        return self.prepared / "canary.parquet"

    @property
    def old_validation(self) -> Path:
        """Buffer rows held out of the mix: early stopping and the EWC Fisher use them."""
        return self.prepared / "old_validation.parquet"

    @property
    def next_replay_buffer(self) -> Path:
        """The buffer as it will be if the candidate is promoted (installed into data/replay then)."""
        return self.prepared / "replay_next"

    @property
    def candidate(self) -> Path:
        return self.root / "artifacts" / "candidate"

    @property
    def eval_predictions(self) -> Path:
        """The candidate's and the champion's predictions on the eval suite (train writes, evaluate reads)."""
        return self.root / "artifacts" / "eval_predictions.parquet"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics"

    @property
    def train_metrics(self) -> Path:
        return self.metrics / "train.json"

    @property
    def eval_metrics(self) -> Path:
        return self.metrics / "eval.json"

    @property
    def gate_result(self) -> Path:
        return self.metrics / "gate.json"

    @property
    def split_accuracy_plot(self) -> Path:
        return self.metrics / "split_accuracy.csv"

    @property
    def accuracy_matrix(self) -> Path:
        return self.metrics / "accuracy_matrix.csv"

    @property
    def accuracy_heatmap(self) -> Path:
        return self.metrics / "accuracy_matrix.png"

    @property
    def increments_plot(self) -> Path:
        """Average accuracy, BWT and FWT after every promoted increment plus this candidate."""
        return self.metrics / "increments.csv"

    # reports for reviewers
    @property
    def drift_reports(self) -> Path:
        return self.root / "reports" / "drift"

    @property
    def drift_cache(self) -> Path:
        """Reference embeddings per champion and drift calibrations (safe to delete)."""
        return self.root / ".ratchet-cache" / "drift"

    @property
    def fetched_manifest(self) -> Path:
        """Which remote files (orchestration.incoming_url) were already copied into incoming/."""
        return self.root / ".ratchet-cache" / "fetched.json"

    @property
    def prefect_results(self) -> Path:
        """Prefect task results (JSON only), so a re-run flow run resumes after its last finished task."""
        return self.root / ".ratchet-cache" / "prefect-results"

    @property
    def validation_reports(self) -> Path:
        return self.root / "reports" / "validation"

    # MLflow's embedded store (used when MLFLOW_TRACKING_URI is not set)
    @property
    def mlflow_db(self) -> Path:
        return self.root / "mlflow.db"

    @property
    def mlflow_artifacts(self) -> Path:
        return self.root / "mlartifacts"
