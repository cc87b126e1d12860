"""The engine: executes a reuse plan (Beam for preprocessing, Keras for training)."""
