"""Environment construction, reference scores, vectorised evaluation and dataset collection."""
from cmrl.envs.evaluation import EvalResult, evaluate_policy
from cmrl.envs.make import make_env, make_vector_env
from cmrl.envs.scores import (
    REFERENCE_SCORES,
    ReferenceScores,
    check_reference_scores,
    normalized_score,
    reference_scores,
)

__all__ = [
    "REFERENCE_SCORES", "EvalResult", "ReferenceScores", "check_reference_scores", "evaluate_policy", "make_env",
    "make_vector_env", "normalized_score", "reference_scores",
]
