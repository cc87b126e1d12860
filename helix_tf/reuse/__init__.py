"""Reuse across iterations: cost model, max-flow plan, materialization, store, metadata.

Never imports TensorFlow or Apache Beam (see docs/ARCHITECTURE.md).
"""
