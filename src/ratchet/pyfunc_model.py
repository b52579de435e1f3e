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
    def load_context(self, context) -> None:
        from pathlib import Path

        from ratchet.config import ModelSettings
        from ratchet.modeling import load_classifier, read_manifest
        from ratchet.offline import configure_offline

        configure_offline()
        model_dir = Path(context.artifacts["model"])
        manifest = read_manifest(model_dir)
        settings = ModelSettings(base=manifest.base_model, max_length=manifest.max_length)
        self.classifier = load_classifier(model_dir, settings)

    def predict(self, context, model_input, params=None) -> pd.DataFrame:
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


mlflow.models.set_model(RatchetClassifierModel())
