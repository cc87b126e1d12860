"""Approximate runs: sampling and reduced precision (see issue 5). Never imports TensorFlow or Beam."""
