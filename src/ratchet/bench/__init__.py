"""Benchmarks that measure ratchet (continual-learning quality); they write results, they do not test."""
