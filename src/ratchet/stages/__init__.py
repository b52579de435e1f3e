"""dvc.yaml entry points: `python -m ratchet.stages.<name>`. Thin: read inputs, call the core, write outputs."""
