"""ratchet: keep a text classifier learning from new labeled batches without forgetting."""

__version__ = "0.1.0"
