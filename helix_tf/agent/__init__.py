"""The think-time agent: Optuna search over declared spaces, using the public run API only."""
