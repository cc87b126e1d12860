"""Compiler: typed DAG, checks, fingerprints, passes. Never imports TensorFlow or Beam."""
