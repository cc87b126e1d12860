"""Operator kinds: sources, features, learners, metrics (specs) and their executors."""
