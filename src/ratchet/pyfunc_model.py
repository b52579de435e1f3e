"""The registered model as an MLflow pyfunc ("models from code": no pickled Python objects).

MLflow loads this file to serve `models:/ratchet@champion`; the weights are the model folder
logged as the artifact "model" (safetensors + ratchet_model.json), loaded offline by ratchet.
Part of the MLflow adapter (with registry.py).
"""

from __future__ import annotations

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel


class RatchetClassifierModel(PythonModel):
    """A text classifier answers `label` and `probabilities` per text; an entity tagger (manifest
    task token-classification) answers `entities` per text: a list of {text, type, start, end,
    score}, start/end counting words as ratchet splits them (column `tokens`, lists of words, is
    used as given when the input has it)."""

    def load_context(self, context) -> None:
        from pathlib import Path

        from ratchet.config import ModelSettings
        from ratchet.modeling import load_classifier, read_manifest
        from ratchet.offline import configure_offline

        configure_offline()
        model_dir = Path(context.artifacts["model"])
        manifest = read_manifest(model_dir)
        settings = ModelSettings(base=manifest.base_model, max_length=manifest.max_length)
        self.task = manifest.task
        if self.task == "token-classification":
            from ratchet.entities.tagger import load_tagger

            self.tagger = load_tagger(model_dir, settings)
        else:
            self.classifier = load_classifier(model_dir, settings)

    def predict(self, context, model_input, params=None) -> pd.DataFrame:
        if self.task == "token-classification":
            return self._entities(model_input)
        if isinstance(model_input, pd.DataFrame):
            texts = model_input["text" if "text" in model_input.columns else model_input.columns[0]]
        else:
            texts = model_input
        texts = [str(t) for t in list(texts)]
        probabilities = self.classifier.predict_proba(texts)
        labels = self.classifier.labels
        return pd.DataFrame({
            "label": [labels[i] for i in probabilities.argmax(axis=1)],
            "probabilities": [dict(zip(labels, map(float, row))) for row in probabilities],
        })

    def _entities(self, model_input) -> pd.DataFrame:
        from ratchet.entities.tagger import split_words

        if isinstance(model_input, pd.DataFrame) and "tokens" in model_input.columns:
            sentences = [[str(w) for w in words] for words in model_input["tokens"]]
        else:
            if isinstance(model_input, pd.DataFrame):
                model_input = model_input["text" if "text" in model_input.columns else model_input.columns[0]]
            sentences = [split_words(str(t)) for t in list(model_input)]
        found = self.tagger.extract(sentences)
        return pd.DataFrame({"entities": [[s.as_record() for s in spans] for spans in found]})


mlflow.models.set_model(RatchetClassifierModel())
