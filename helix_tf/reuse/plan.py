"""The old name of :mod:`helix_tf.reuse.solver` (the exact min-cut reuse-plan solver).

Kept so imports written before the rename keep working; new code imports
:mod:`helix_tf.reuse.solver`.
"""

from helix_tf.reuse import solver as _solver
from helix_tf.reuse.solver import (
    BRUTE_FORCE_MAX_NODES as BRUTE_FORCE_MAX_NODES,
    COMPUTE as COMPUTE,
    LOAD as LOAD,
    PRUNE as PRUNE,
    RESOLUTION_S as RESOLUTION_S,
    PlanNode as PlanNode,
    ReusePlan as ReusePlan,
    available as available,
    brute_force_plan as brute_force_plan,
    solve_reuse_plan as solve_reuse_plan,
)

__all__ = list(_solver.__all__)
