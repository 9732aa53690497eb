"""
===============================================
Image denoising with a learned patch dictionary
===============================================

An image is cut into every overlapping 8x8 patch with :func:`skpatch.extract_patches`.
A dictionary of 100 atoms is learned with scikit-learn's
:class:`~sklearn.decomposition.MiniBatchDictionaryLearning` on a random subset of the
noisy patches. Each noisy patch is then approximated with as few atoms as keep the
residual at the noise level (orthogonal matching pursuit with an error target, as in
K-SVD denoising), and :func:`skpatch.reconstruct_from_patches` averages the overlapping
estimates back into an image.

The image is scikit-image's ``camera`` (512x512), scaled to [0, 1], with Gaussian noise
of standard deviation 25/255 added (not clipped). PSNR is measured with a data range of
1, after clipping the estimate to [0, 1].
"""

# %%
# The noisy image
# ---------------
import time
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from skimage import data
from sklearn.decomposition import MiniBatchDictionaryLearning
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import orthogonal_mp_gram

from skpatch import extract_patches, reconstruct_from_patches


def psnr(reference, estimate):
    """Peak signal-to-noise ratio in dB for images in [0, 1]."""
    mse = np.mean((np.asarray(reference) - np.asarray(estimate)) ** 2)
    return 10 * np.log10(1.0 / mse)


clean = data.camera().astype(np.float64) / 255
sigma = 25 / 255
rng = np.random.default_rng(0)
noisy = clean + sigma * rng.standard_normal(clean.shape)
print(f"noisy: {psnr(clean, noisy):.2f} dB")

# %%
# Learn a dictionary on a random subset of noisy patches
# ------------------------------------------------------
# Each patch loses its mean (its DC component), so that the atoms only model
# structure; the means are put back after denoising. The lasso solved for each
# mini-batch is one step of an alternating minimisation, so the rare batch on which
# it stops short of convergence is harmless: its warning is silenced.
#
# 8x8 patches rather than 7x7: with 7x7 and the same settings, the result is about
# 0.2 dB lower (28.9 dB).
patch_size = (8, 8)
n_features = np.prod(patch_size)

t_start = time.perf_counter()
train = extract_patches(noisy, patch_size, max_patches=20_000, random_state=0)
train = train.reshape(len(train), -1)
train -= train.mean(axis=1, keepdims=True)

dico = MiniBatchDictionaryLearning(
    n_components=100,
    alpha=0.2,
    max_iter=3,
    batch_size=256,
    fit_algorithm="cd",
    random_state=0,
)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    dictionary = dico.fit(train).components_

# %%
# Encode every patch of the noisy image
# -------------------------------------
# Orthogonal matching pursuit adds atoms until the residual of a patch is about as
# large as the noise in it, ``n_features * (1.15 * sigma) ** 2``. The Gram matrix is
# computed once; patches are encoded in chunks so that the code matrix stays small.
patches = extract_patches(noisy, patch_size)
patches = patches.reshape(len(patches), -1)
means = patches.mean(axis=1, keepdims=True)
patches -= means

gram = dictionary @ dictionary.T
tol = n_features * (1.15 * sigma) ** 2
chunk = 16_384
for start in range(0, len(patches), chunk):
    block = patches[start : start + chunk]
    codes = orthogonal_mp_gram(
        gram,
        dictionary @ block.T,
        tol=tol,
        norms_squared=np.einsum("ij,ij->i", block, block),
        copy_Xy=False,
    )
    block[...] = codes.T @ dictionary
patches += means

# %%
# Put the denoised patches back together
# --------------------------------------
# Every pixel is the mean of the estimates of all the patches that cover it.
denoised = reconstruct_from_patches(patches.reshape(-1, *patch_size), clean.shape)
denoised = np.clip(denoised, 0, 1)
elapsed = time.perf_counter() - t_start
print(
    f"denoised (dictionary learning, skpatch): {psnr(clean, denoised):.2f} dB "
    f"in {elapsed:.1f} s"
)

# %%
# Results and the learned atoms
# -----------------------------
fig, axes = plt.subplots(1, 3, figsize=(12, 4.4), layout="constrained")
panels = [
    ("clean", clean),
    (f"noisy, {psnr(clean, noisy):.2f} dB", noisy),
    (f"denoised, {psnr(clean, denoised):.2f} dB", denoised),
]
for ax, (title, image) in zip(axes, panels, strict=True):
    ax.imshow(image, cmap="gray", vmin=0, vmax=1)
    ax.set_title(title)
    ax.set_axis_off()

fig_atoms, axes_atoms = plt.subplots(10, 10, figsize=(5, 5), layout="constrained")
for ax, atom in zip(axes_atoms.ravel(), dictionary, strict=True):
    ax.imshow(atom.reshape(patch_size), cmap="gray", interpolation="nearest")
    ax.set_axis_off()
fig_atoms.suptitle("learned atoms")

# %%
# Figures are also written to ``examples/_output/`` so that a run without a screen
# leaves something to look at.
script = Path(globals().get("__file__", "plot_dictionary_denoising.py")).resolve()
output_dir = script.parent / "_output"
output_dir.mkdir(exist_ok=True)
fig.savefig(output_dir / "dictionary_denoising.png", dpi=100)
fig_atoms.savefig(output_dir / "dictionary_denoising_atoms.png", dpi=100)
print(f"figures saved in {output_dir}")
