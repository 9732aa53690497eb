"""
==========================================
Non-local Bayes denoising, grey and colour
==========================================

Non-local methods denoise a patch with the help of the patches that look like it
elsewhere in the image. :func:`skpatch.search_similar_patches` finds, for reference
patches, their most similar patches within a search window; :func:`skpatch.
denoise_nl_bayes` (and its estimator :class:`skpatch.NonLocalBayes`) builds the
two-step non-local Bayes algorithm of Lebrun, Buades and Morel (2013) on it: each group
of similar patches is modelled as a Gaussian whose mean and covariance come from the
group itself, every patch gets its Bayesian estimate, and the estimates are averaged
back into an image; the second step does it again with the groups and their statistics
taken from the first step's result.

It is compared with scikit-image's non-local means, with the learned dictionary of
:ref:`sphx_glr_auto_examples_denoising_plot_dictionary_denoising.py`, and with BM3D when
the ``bm3d`` package is installed (it is not a dependency of skpatch). The protocol is
the one of the dictionary example: images scaled to [0, 1], Gaussian noise of standard
deviation 25/255 from ``np.random.default_rng(0)`` (not clipped), PSNR of the estimate
clipped to [0, 1] with a data range of 1. Times are wall-clock, on one thread.
"""

# %%
# The images
# ----------
import time
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle
from skimage import data
from skimage.restoration import denoise_nl_means
from sklearn.decomposition import MiniBatchDictionaryLearning
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits

from skpatch import PatchDenoiser, denoise_nl_bayes, search_similar_patches
from skpatch.metrics import peak_signal_noise_ratio

try:
    import bm3d
except ImportError:
    bm3d = None


def psnr(reference, estimate):
    """PSNR in dB of an estimate clipped to [0, 1], with a data range of 1."""
    return peak_signal_noise_ratio(reference, np.clip(estimate, 0, 1), data_range=1)


sigma = 25 / 255
rng = np.random.default_rng(0)
grey = data.camera().astype(np.float64) / 255
noisy_grey = grey + sigma * rng.standard_normal(grey.shape)
rng = np.random.default_rng(0)
colour = data.chelsea().astype(np.float64) / 255
noisy_colour = colour + sigma * rng.standard_normal(colour.shape)
print(f"camera {grey.shape}, chelsea {colour.shape}, sigma = 25/255")


# %%
# The methods
# -----------
# Non-local means uses scikit-image's fast mode with the parameters of the dictionary
# example. The dictionary denoiser is the dictionary example's, with half as many
# training patches to keep this page quick; :class:`~skpatch.PatchDenoiser` takes
# single-channel images, so colour goes through it channel by channel. NL-Bayes runs
# with its defaults, which depend on the noise level only.
def nl_means(noisy, channel_axis=None):
    return denoise_nl_means(
        noisy,
        patch_size=5,
        patch_distance=6,
        h=0.6 * sigma,
        sigma=sigma,
        fast_mode=True,
        channel_axis=channel_axis,
    )


def dictionary(noisy):
    channels = noisy[..., np.newaxis] if noisy.ndim == 2 else noisy
    out = np.empty_like(channels)
    for c in range(channels.shape[-1]):
        denoiser = PatchDenoiser(
            MiniBatchDictionaryLearning(
                n_components=100,
                alpha=0.2,
                max_iter=2,
                batch_size=256,
                fit_algorithm="cd",
                random_state=0,
            ),
            patch_size=(8, 8),
            max_patches=10_000,
            noise_sigma=sigma,
            random_state=0,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            batch = channels[np.newaxis, ..., c]
            out[..., c] = denoiser.fit(batch).transform(batch)[0]
    return out.reshape(noisy.shape)


def nl_bayes(noisy, channel_axis=None):
    return denoise_nl_bayes(noisy, sigma, channel_axis=channel_axis)


methods = {
    "non-local means": (nl_means, nl_means),
    "dictionary": (dictionary, dictionary),
    "NL-Bayes (skpatch)": (nl_bayes, nl_bayes),
}
if bm3d is not None:
    methods["BM3D (bm3d package)"] = (
        lambda noisy: bm3d.bm3d(noisy, sigma),
        lambda noisy, channel_axis=None: bm3d.bm3d_rgb(noisy, sigma),
    )

# %%
# Denoise and time
# ----------------
# BLAS and OpenMP are limited to one thread, so that every method runs on one core.
results = {}
with threadpool_limits(limits=1):
    for name, (on_grey, on_colour) in methods.items():
        start = time.perf_counter()
        grey_estimate = on_grey(noisy_grey)
        grey_time = time.perf_counter() - start
        start = time.perf_counter()
        if on_colour is dictionary:
            colour_estimate = on_colour(noisy_colour)
        else:
            colour_estimate = on_colour(noisy_colour, channel_axis=-1)
        colour_time = time.perf_counter() - start
        results[name] = (grey_estimate, grey_time, colour_estimate, colour_time)

print(f"{'':22s} {'camera':>17s} {'chelsea (colour)':>19s}")
print(
    f"{'noisy':22s} {psnr(grey, noisy_grey):8.2f} dB {'':7s} "
    f"{psnr(colour, noisy_colour):8.2f} dB"
)
for name, (g, g_time, c, c_time) in results.items():
    print(
        f"{name:22s} {psnr(grey, g):8.2f} dB {g_time:5.1f} s "
        f"{psnr(colour, c):8.2f} dB {c_time:5.1f} s"
    )

# %%
# The results
# -----------
# Three panels a row (at the width of the page, the titles stay readable): the grey
# image's rows, then the colour image's.
n_columns = 3
# sphinx_gallery_thumbnail_number = 1
n_rows = -(-(2 + len(results)) // n_columns)  # rows per image
fig, axes = plt.subplots(
    2 * n_rows,
    n_columns,
    figsize=(3.2 * n_columns, 3.4 * n_rows + 2.4 * n_rows),
    height_ratios=[3.4] * n_rows + [2.4] * n_rows,
    layout="constrained",
)
for block, (clean, noisy, index) in enumerate(
    [(grey, noisy_grey, 0), (colour, noisy_colour, 2)]
):
    panels = [("clean", clean), (f"noisy, {psnr(clean, noisy):.2f} dB", noisy)]
    panels += [
        (f"{name}, {psnr(clean, estimate[index]):.2f} dB", estimate[index])
        for name, estimate in results.items()
    ]
    block_axes = axes[block * n_rows : (block + 1) * n_rows].ravel()
    for ax in block_axes:
        ax.set_axis_off()
    for ax, (title, image) in zip(block_axes, panels, strict=False):
        ax.imshow(np.clip(image, 0, 1), cmap="gray", vmin=0, vmax=1)
        ax.set_title(title, fontsize=10)

# %%
# What the search finds
# ---------------------
# The groups of the second step are searched on the first step's (basic) estimate.
# Here, one reference patch on the edge of the cameraman's coat (the 5x5 patch of the
# estimate with the most variance in the zoomed area) and the 25 patches most similar
# to it within a 23x23 search window, found on NL-Bayes' estimate and cut out of the
# noisy image they are averaged from: the search follows the edge.
estimate = results["NL-Bayes (skpatch)"][0]
top, left_col, size = 250, 200, 70
area = estimate[top : top + size, left_col : left_col + size]
windows = np.lib.stride_tricks.sliding_window_view(area, (5, 5))
spot = np.unravel_index(np.argmax(windows.var(axis=(2, 3))), windows.shape[:2])
reference = np.array([[top + spot[0], left_col + spot[1]]])
neighbors, distances, patches = search_similar_patches(
    noisy_grey,
    5,
    n_neighbors=25,
    search_window=23,
    origins=reference,
    guide=estimate,
    return_patches=True,
)
fig_search = plt.figure(figsize=(10, 4.6), layout="constrained")
left, right = fig_search.subfigures(1, 2, width_ratios=[1, 1.1])
ax = left.subplots()
extent = (left_col - 0.5, left_col + size - 0.5, top + size - 0.5, top - 0.5)
ax.imshow(
    noisy_grey[top : top + size, left_col : left_col + size],
    cmap="gray",
    vmin=0,
    vmax=1,
    extent=extent,
)
for k in range(len(neighbors[0]) - 1, -1, -1):
    row, col = neighbors[0, k]
    color = "tab:red" if k == 0 else "tab:orange"
    ax.add_patch(Rectangle((col - 0.5, row - 0.5), 5, 5, fill=False, lw=1, color=color))
ax.set_title("reference (red) and its 25 most similar patches")
ax.set_axis_off()
grid = right.subplots(5, 5)
for ax, patch, distance in zip(grid.ravel(), patches[0], distances[0], strict=True):
    ax.imshow(patch, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_title(f"{distance:.2g}", fontsize=7)
    ax.set_axis_off()
right.suptitle("the group, nearest first (squared distance on the estimate)")

# sphinx_gallery_start_ignore
# Run as a script, the example also saves its figures in examples/_output/; in the
# documentation, sphinx-gallery shows them instead.
import sys  # noqa: E402

if "sphinx_gallery" not in sys.modules:
    import os

    output_dir = Path(__file__).resolve().parents[1] / "_output"
    output_dir.mkdir(exist_ok=True)
    fig.savefig(output_dir / "nonlocal_denoising.png", dpi=100)
    fig_search.savefig(output_dir / "nonlocal_denoising_search.png", dpi=100)
    print(f"figures saved in {os.path.relpath(output_dir)}")
# sphinx_gallery_end_ignore
