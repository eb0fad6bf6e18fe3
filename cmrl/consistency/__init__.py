"""Consistency-model maths, domain-free: grids, scalings, curricula, noise, metrics, objective, sampling."""
from .config import CT, ICT, PRESETS, ConsistencyConfig
from .curriculum import ct_num_scales, ct_teacher_ema, ict_num_scales
from .karras import c_in, c_noise, c_out, c_skip, karras_sigmas
from .metrics import default_huber_c, inverse_delta_weight, pseudo_huber, squared_l2
from .noise import lognormal_index_probs, uniform_indices
from .objective import ConsistencyTraining, NoisePairs
from .parameterization import consistency_output, network_inputs
from .sampling import default_sampling_sigmas, multistep_sample, sampling_noise

__all__ = [
    "CT", "ICT", "PRESETS", "ConsistencyConfig", "ConsistencyTraining", "NoisePairs",
    "c_in", "c_noise", "c_out", "c_skip", "consistency_output", "ct_num_scales", "ct_teacher_ema",
    "default_huber_c", "default_sampling_sigmas", "ict_num_scales", "inverse_delta_weight",
    "karras_sigmas", "lognormal_index_probs", "multistep_sample",
    "network_inputs", "pseudo_huber", "sampling_noise", "squared_l2", "uniform_indices",
]
