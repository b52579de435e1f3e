"""Models: resolve the offline base model, set up LoRA or full fine-tuning, save and load (safetensors).

A saved model folder holds either a LoRA adapter (adapter_model.safetensors + adapter_config.json)
or full weights (model.safetensors + config.json), plus ratchet_model.json describing it. The
tokenizer always comes from the base model. Nothing is ever fetched from a hub.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ratchet import records
from ratchet.config import ModelSettings
from ratchet.model_files import MODEL_MANIFEST, ModelError, read_manifest, resolve_base_model
from ratchet.records import ModelManifest, Task

log = logging.getLogger("ratchet")


def pick_device() -> torch.device:
    """The GPU when torch sees one, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def load_tokenizer(settings: ModelSettings):
    from transformers import AutoTokenizer

    _quiet_transformers()
    return AutoTokenizer.from_pretrained(resolve_base_model(settings.base), local_files_only=True)


def masked_mean(hidden_states: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The mean of each sequence's token vectors, padding left out (sentence-embedding pooling)."""
    mask = attention_mask.unsqueeze(-1).to(hidden_states.dtype)
    return (hidden_states * mask).sum(1) / mask.sum(1).clamp(min=1.0)


class MaskedMeanPooler(torch.nn.Module):
    """Stands in for BERT's pooler: the mean of the token vectors, padding left out.

    BertModel calls its pooler with the hidden states only, so the attention mask is taken from
    the encoder's own call by a forward pre-hook (see use_mean_pooling). No weights: nothing to save.
    """

    def __init__(self) -> None:
        super().__init__()
        self.mask: torch.Tensor | None = None

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if self.mask is None or self.mask.shape[:2] != hidden_states.shape[:2]:
            return hidden_states.mean(dim=1)
        return masked_mean(hidden_states, self.mask)


def use_mean_pooling(model: torch.nn.Module) -> torch.nn.Module:
    """Replace the [CLS] pooler of a *ForSequenceClassification model by a masked mean."""
    encoder = model.base_model
    if not hasattr(encoder, "pooler"):
        raise ModelError(f"model.pooling is mean but {type(encoder).__name__} has no pooler to replace")
    pooler = MaskedMeanPooler()
    encoder.pooler = pooler

    def remember_mask(_module, args, kwargs):
        mask = kwargs.get("attention_mask")
        if mask is None and len(args) > 1:
            mask = args[1]
        pooler.mask = mask
        return None

    encoder.register_forward_pre_hook(remember_mask, with_kwargs=True)
    return model


def _base_model(settings: ModelSettings, labels: list[str], seed: int, weights: Path | None = None,
                task: Task = "text-classification"):
    """The base encoder with a fresh head: one logit per label for a text, or per tag for a token."""
    from transformers import AutoModelForSequenceClassification, AutoModelForTokenClassification

    _quiet_transformers()
    torch.manual_seed(seed)  # the fresh classifier head (and pooler) start from a fixed draw
    source = weights if weights is not None else resolve_base_model(settings.base)
    auto = AutoModelForTokenClassification if task == "token-classification" else AutoModelForSequenceClassification
    model = auto.from_pretrained(
        source, num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)}, local_files_only=True)
    if task == "text-classification" and settings.pooling == "mean":
        return use_mean_pooling(model)
    return model


def build_trainable(settings: ModelSettings, labels: list[str], seed: int, start_from: Path | None,
                    task: Task = "text-classification"):
    """The model to fine-tune: the base model, or the champion in `start_from` continued.

    `labels` are the classes of a text classifier, or the tags (O, B-X, I-X...) of a token one.

    LoRA continues the champion's adapter (and its trained head); full and top-layer fine-tuning
    continue its weights. A LoRA champion can be continued by full or top-layer fine-tuning
    (merged first), not the reverse.
    """
    from peft import LoraConfig, PeftModel, TaskType, get_peft_model

    manifest = read_manifest(start_from) if start_from else None
    kind = manifest.kind if manifest else None
    if manifest and manifest.task != task:
        raise ModelError(f"the champion in {start_from} is a {manifest.task} model; this project's task is {task}")
    if manifest and manifest.labels != labels:
        raise ModelError(f"the champion in {start_from} was trained for labels "
                         f"{manifest.labels}, but data.labels is {labels}")
    if manifest and manifest.pooling != settings.pooling:
        raise ModelError(f"the champion in {start_from} reads its text with "
                         f"{manifest.pooling} pooling, but model.pooling is "
                         f"{settings.pooling}: a champion cannot be continued with another pooling")
    if settings.finetune == "lora":
        if kind == "full":
            raise ModelError("model.finetune is lora but the champion was saved with full weights; "
                             "continue it with model.finetune: full or top_layers")
        base = _base_model(settings, labels, seed, task=task)
        if kind == "lora":
            return PeftModel.from_pretrained(base, start_from, is_trainable=True)
        token = task == "token-classification"
        config = LoraConfig(task_type=TaskType.TOKEN_CLS if token else TaskType.SEQ_CLS, r=settings.lora.r, lora_alpha=settings.lora.alpha,
                            lora_dropout=settings.lora.dropout,
                            target_modules=list(settings.lora.target_modules),
                            # the head and the freshly initialised pooler must train too
                            modules_to_save=["classifier"] + (["pooler"] if settings.pooling == "cls" and not token else []))
        return get_peft_model(base, config)
    if kind == "lora":
        model = load_weights(start_from, settings, labels).cpu()
    else:
        model = _base_model(settings, labels, seed, weights=start_from if kind == "full" else None, task=task)
    if settings.finetune == "top_layers":
        freeze_all_but_top_layers(model, settings.top_layers)
    return model


def freeze_all_but_top_layers(model: torch.nn.Module, top_layers: int) -> None:
    """Only the top `top_layers` encoder layers, the pooler and the classifier head keep training."""
    encoder_layers = model.base_model.encoder.layer
    if top_layers > len(encoder_layers):
        raise ModelError(f"model.top_layers is {top_layers} but the model has {len(encoder_layers)} layers")
    for p in model.parameters():
        p.requires_grad = False
    keep = list(encoder_layers[len(encoder_layers) - top_layers:])
    keep += [m for m in (getattr(model.base_model, "pooler", None), getattr(model, "classifier", None)) if m is not None]
    for module in keep:
        for p in module.parameters():
            p.requires_grad = True


def save_model(model, out_dir: Path, settings: ModelSettings, labels: list[str],
               parent_version: str | None = None, trained_batches: list[str] | None = None,
               task: Task = "text-classification", entity_types: list[str] | None = None) -> ModelManifest:
    """Save weights as safetensors plus a manifest; LoRA saves only the adapter and trained modules."""
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)
    manifest = ModelManifest(kind="lora" if hasattr(model, "peft_config") else "full", base_model=settings.base,
                             labels=labels, pooling=settings.pooling, max_length=settings.max_length,
                             finetune=settings.finetune, parent_version=parent_version,
                             trained_batches=trained_batches or [], task=task, entity_types=entity_types or [])
    records.write(out_dir / MODEL_MANIFEST, manifest)
    return manifest


@dataclass
class Classifier:
    model: torch.nn.Module
    tokenizer: object
    labels: list[str]
    max_length: int

    def _batches(self, texts: list[str], batch_size: int):
        """(positions, tokenised batch) in length order, so padding stays small; no gradients."""
        self.model.eval()
        device = next(self.model.parameters()).device
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                idx = order[start:start + batch_size]
                yield idx, self.tokenizer([texts[i] for i in idx], truncation=True, max_length=self.max_length,
                                          padding=True, return_tensors="pt").to(device)

    def predict_proba(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Class probabilities, in input order."""
        out = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        for idx, enc in self._batches(texts, batch_size):
            out[idx] = torch.softmax(self.model(**enc).logits.float(), dim=-1).cpu().numpy()
        return out

    def embed_and_predict(self, texts: list[str], batch_size: int = 64) -> tuple[np.ndarray, list[str]]:
        """Mean-pooled last-layer encoder embeddings (the model's own view of each text) and labels."""
        embeddings: np.ndarray | None = None
        predicted = np.zeros(len(texts), dtype=np.int64)
        for idx, enc in self._batches(texts, batch_size):
            output = self.model(**enc, output_hidden_states=True)
            pooled = masked_mean(output.hidden_states[-1], enc["attention_mask"])
            if embeddings is None:
                embeddings = np.zeros((len(texts), pooled.shape[1]), dtype=np.float32)
            embeddings[idx] = pooled.float().cpu().numpy()
            predicted[idx] = output.logits.argmax(-1).cpu().numpy()
        if embeddings is None:
            embeddings = np.zeros((0, 0), dtype=np.float32)
        return embeddings, [self.labels[i] for i in predicted]

    def predict(self, texts: list[str], batch_size: int = 64) -> list[str]:
        probabilities = self.predict_proba(texts, batch_size)
        return [self.labels[i] for i in probabilities.argmax(axis=1)]


def load_weights(model_dir: Path, settings: ModelSettings, labels: list[str] | None = None) -> torch.nn.Module:
    """A saved ratchet model of either task, on the CPU, in eval mode (LoRA adapters merged for speed)."""
    from peft import PeftModel

    manifest = read_manifest(model_dir)
    labels = labels or manifest.labels
    model_settings = settings.model_copy(update={"base": manifest.base_model, "pooling": manifest.pooling})
    if manifest.kind == "lora":
        base = _base_model(model_settings, labels, seed=0, task=manifest.task)
        model = PeftModel.from_pretrained(base, model_dir).merge_and_unload()
    else:
        model = _base_model(model_settings, labels, seed=0, weights=model_dir, task=manifest.task)
    return model.eval()


def load_classifier(model_dir: Path, settings: ModelSettings, labels: list[str] | None = None) -> Classifier:
    """Load a saved text classifier for inference, on the GPU when there is one."""
    manifest = read_manifest(model_dir)
    if manifest.task != "text-classification":
        raise ModelError(f"{model_dir} holds a {manifest.task} model, not a text classifier")
    labels = labels or manifest.labels
    model = load_weights(model_dir, settings, labels).to(pick_device())
    model_settings = settings.model_copy(update={"base": manifest.base_model})
    return Classifier(model=model, tokenizer=load_tokenizer(model_settings), labels=list(labels),
                      max_length=manifest.max_length)
