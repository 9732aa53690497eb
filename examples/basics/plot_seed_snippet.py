"""
=====================================================
Grayscale patches, and the image back by averaging
=====================================================

The use case skpatch started from: take a grayscale image, cut it into every
overlapping 8x8 patch (stride 1), and put the image back together by averaging the
values the patches give each pixel. With :func:`skpatch.extract_patches` and
:func:`skpatch.reconstruct_from_patches` this is two calls, and the round trip is
exact to floating-point rounding.

The image is one channel (red) of scikit-image's ``astronaut`` (512x512), scaled to
[0, 1]. The same run times scikit-learn's
:func:`~sklearn.feature_extraction.image.extract_patches_2d` and
:func:`~sklearn.feature_extraction.image.reconstruct_from_patches_2d` for comparison
(set ``COMPARE_WITH_SKLEARN = False`` to skip them). Timings are the best of three
runs, except for scikit-learn's reconstruction (one run, of about a second).
"""

# %%
# One channel of a colour image
# -----------------------------
import time

import matplotlib.pyplot as plt
import numpy as np
from skimage import data

from skpatch import extract_patches, reconstruct_from_patches

COMPARE_WITH_SKLEARN = True


def best_time(function, repeat=3):
    """Return the last result of ``function()`` and its best wall time in seconds.

    The first call of a 125 MiB extraction also pays for the operating system
    mapping fresh memory, so one call alone overstates the steady cost.
    """
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - t0)
    return result, min(times)


image = data.astronaut()[..., 0].astype(np.float64) / 255
print(f"image: {image.shape} {image.dtype}")

# %%
# Extract every 8x8 patch
# -----------------------
# Stride 1 in both directions: ``(512 - 8 + 1) ** 2 = 255,025`` patches. The patch
# matrix is 64 times the image (125 MiB in float64); see the user guide's notes on
# memory for larger images.
patch_size = (8, 8)

patches, t_extract = best_time(lambda: extract_patches(image, patch_size, step=1))
print(
    f"skpatch extract_patches:          {t_extract:.3f} s (best of 3) -> "
    f"{patches.shape}, "
    f"{patches.nbytes / 2**20:.0f} MiB"
)

# %%
# Reconstruct by averaging the overlaps
# -------------------------------------
# Every pixel is the mean of the values of the patches that cover it: 64 in the
# interior, fewer near the border.
rebuilt, t_reconstruct = best_time(
    lambda: reconstruct_from_patches(patches, image.shape, step=1)
)
error = np.abs(rebuilt - image).max()
print(
    f"skpatch reconstruct_from_patches: {t_reconstruct:.3f} s (best of 3) -> "
    f"{rebuilt.shape}"
)
print(f"reconstruction max abs error:     {error:.1e}")

# %%
# The same with scikit-learn
# --------------------------
# scikit-learn gives the same patches in the same order; its reconstruction is a
# Python loop over the patches.
if COMPARE_WITH_SKLEARN:
    from sklearn.feature_extraction.image import (
        extract_patches_2d,
        reconstruct_from_patches_2d,
    )

    sk_patches, t_sk_extract = best_time(lambda: extract_patches_2d(image, patch_size))
    t0 = time.perf_counter()
    sk_rebuilt = reconstruct_from_patches_2d(sk_patches, image.shape)
    t_sk_reconstruct = time.perf_counter() - t0
    print(f"sklearn extract_patches_2d:          {t_sk_extract:.3f} s (best of 3)")
    print(
        f"sklearn reconstruct_from_patches_2d: {t_sk_reconstruct:.3f} s "
        f"({t_sk_reconstruct / t_reconstruct:.0f}x the time of skpatch)"
    )
    print(
        f"same patches: {np.array_equal(sk_patches, patches)}, reconstructions "
        f"differ by at most {np.abs(sk_rebuilt - rebuilt).max():.1e}"
    )
    del sk_patches

# %%
# The reconstruction and its error
# --------------------------------
# The image rebuilt from its patches looks like the input because it is the input,
# up to rounding: the map of the absolute difference stays at the level of float64
# rounding errors.

# sphinx_gallery_thumbnail_number = 1
fig, axes = plt.subplots(1, 2, figsize=(8, 3.9), layout="constrained")
axes[0].imshow(rebuilt, cmap="gray", vmin=0, vmax=1)
axes[0].set_title(f"rebuilt from {len(patches):,} patches")
shown = axes[1].imshow(np.abs(rebuilt - image), cmap="magma")
axes[1].set_title(f"|rebuilt - image|, max {error:.1e}")
fig.colorbar(shown, ax=axes[1], shrink=0.8)
for ax in axes:
    ax.set_axis_off()

# %%
# Some of the patches
# -------------------
# Patches from a diagonal of the image: patch ``k`` has its origin at
# ``(60 k, 60 k)``, so it is row ``60 k * n_grid + 60 k`` of the patch array, where
# ``n_grid = 505`` patch origins fit along each axis.
n_grid = len(image) - patch_size[0] + 1
fig_patches, axes_patches = plt.subplots(1, 8, figsize=(9, 1.6), layout="constrained")
for k, ax in enumerate(axes_patches):
    origin = 60 * k
    ax.imshow(patches[origin * n_grid + origin], cmap="gray", vmin=0, vmax=1)
    ax.set_title(f"({origin}, {origin})", fontsize=9)
    ax.set_axis_off()
fig_patches.suptitle("8x8 patches at a few origins")

# sphinx_gallery_start_ignore
# Run as a script, the example also saves its figures in examples/_output/; in the
# documentation, sphinx-gallery shows them instead.
import sys  # noqa: E402

if "sphinx_gallery" not in sys.modules:
    import os
    from pathlib import Path

    output_dir = Path(__file__).resolve().parents[1] / "_output"
    output_dir.mkdir(exist_ok=True)
    fig.savefig(output_dir / "seed_snippet.png", dpi=80)
    fig_patches.savefig(output_dir / "seed_snippet_patches.png", dpi=80)
    print(f"figures saved in {os.path.relpath(output_dir)}")
# sphinx_gallery_end_ignore
