"""skpatch: image patches done right.

Cut images (2-D, colour, 3-D volumes) into overlapping patches with any stride and
put them back together exactly, fast, inside scikit-learn.
"""

from ._denoise import PatchDenoiser, denoise_image
from ._extract import extract_patches, iter_patches, patch_view
from ._grid import PatchGrid
from ._neighbors import iter_similar_patches, search_similar_patches
from ._nonlocal import NonLocalBayes, denoise_nl_bayes, estimate_noise_sigma
from ._priors import error_constrained_omp, gaussian_mixture_wiener
from ._reconstruct import PatchAccumulator, reconstruct_from_patches
from ._transformers import PatchExtractor, PatchReconstructor
from ._windows import patch_window

__version__ = "0.1.0.dev0"

__all__ = [
    "NonLocalBayes",
    "PatchAccumulator",
    "PatchDenoiser",
    "PatchExtractor",
    "PatchGrid",
    "PatchReconstructor",
    "__version__",
    "denoise_image",
    "denoise_nl_bayes",
    "error_constrained_omp",
    "estimate_noise_sigma",
    "extract_patches",
    "gaussian_mixture_wiener",
    "iter_patches",
    "iter_similar_patches",
    "patch_view",
    "patch_window",
    "reconstruct_from_patches",
    "search_similar_patches",
]
