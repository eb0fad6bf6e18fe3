"""Consistency-model maths, domain-free: grids, scalings, curricula, noise, metrics, objectives (CT, iCT, CD),
sampling, and the EDM diffusion maths a CD teacher needs (`cmrl.consistency.edm`)."""
from . import edm
from .config import CD, CT, ICT, PRESETS, ConsistencyConfig, DiffusionConfig
from .curriculum import ct_num_scales, ct_teacher_ema, ict_num_scales
from .edm import Denoiser
from .karras import c_in, c_noise, c_out, c_skip, karras_sigmas
from .metrics import default_huber_c, inverse_delta_weight, pseudo_huber, squared_l2
from .noise import lognormal_index_probs, uniform_indices
from .objective import ConsistencyDistillation, ConsistencyTraining, NoisePairs, make_objective
from .parameterization import consistency_output, network_inputs
from .sampling import default_sampling_sigmas, multistep_sample, sampling_noise

__all__ = [
    "CD", "CT", "ICT", "PRESETS", "ConsistencyConfig", "ConsistencyDistillation", "ConsistencyTraining",
    "Denoiser", "DiffusionConfig", "NoisePairs", "edm", "make_objective",
    "c_in", "c_noise", "c_out", "c_skip", "consistency_output", "ct_num_scales", "ct_teacher_ema",
    "default_huber_c", "default_sampling_sigmas", "ict_num_scales", "inverse_delta_weight",
    "karras_sigmas", "lognormal_index_probs", "multistep_sample",
    "network_inputs", "pseudo_huber", "sampling_noise", "squared_l2", "uniform_indices",
]
