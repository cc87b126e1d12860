"""The old name of :mod:`helix_tf.reuse.planner` (the store-aware planner, with reasons).

Kept so imports written before the rename keep working; new code imports
:mod:`helix_tf.reuse.planner`.
"""

from helix_tf.reuse.planner import (
    describe_change as describe_change,
    human_bytes as human_bytes,
    plan_reuse as plan_reuse,
)

__all__ = ["plan_reuse", "describe_change", "human_bytes"]
