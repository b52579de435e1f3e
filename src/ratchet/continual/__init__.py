"""Continual learning: the replay buffer, retention losses, and one increment of learning."""
