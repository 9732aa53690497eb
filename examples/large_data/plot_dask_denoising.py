"""
=====================================
Denoising an image larger than memory
=====================================

A :class:`skpatch.PatchDenoiser` fitted as usual takes a dask array as well as a
numpy array: ``fit`` samples its patches reading only the chunks that hold them,
and ``transform`` returns a lazy dask array with the chunks of the input, which
can be computed piece by piece, written to a zarr store, or run on a cluster.
The result equals the in-memory one for any chunking: each chunk is denoised
from the patches of the global grid that cover it, read from the chunk plus a
halo of ``patch_size - 1`` pixels.

The "large" image here is a lazy mosaic of four of scikit-image's 512x512
images with Gaussian noise of standard deviation 0.1, in chunks of 256x256:
small enough for a documentation build, built the way a real one would be (from
loaders that dask calls chunk by chunk). See :ref:`large_images` for clusters
and zarr stores.
"""

# %%
# A lazy noisy mosaic
# -------------------
import time
import warnings

import dask
import dask.array as da
import matplotlib.pyplot as plt
import numpy as np
from dask.diagnostics import ProgressBar
from skimage import data
from sklearn.decomposition import MiniBatchDictionaryLearning
from sklearn.exceptions import ConvergenceWarning

from skpatch import PatchDenoiser
from skpatch.metrics import peak_signal_noise_ratio

SIGMA = 0.1
NAMES = ("camera", "moon", "brick", "grass")


def load(name):
    """One tile of the mosaic, as a loader of a real data set would give it."""
    return getattr(data, name)().astype(np.float32) / 255


tiles = [
    da.from_delayed(dask.delayed(load)(name), (512, 512), np.float32) for name in NAMES
]
clean = da.block([tiles[:2], tiles[2:]]).rechunk(256)
noise = da.random.default_rng(0).standard_normal(clean.shape, chunks=256)
noisy = (clean + SIGMA * noise).astype(np.float32)
print(f"{noisy.shape} {noisy.dtype}: {noisy.npartitions} chunks of {noisy.chunksize}")

# %%
# Fit on a sample, denoise lazily
# -------------------------------
# ``fit`` draws 3,000 patches at random; dask computes only the chunks (and
# halos) they fall in. ``transform`` only builds the graph: nothing is computed
# until ``compute``, here with the threaded scheduler and a progress bar.
denoiser = PatchDenoiser(
    MiniBatchDictionaryLearning(
        n_components=64,
        alpha=0.2,
        max_iter=2,
        batch_size=256,
        fit_algorithm="cd",
        random_state=0,
    ),
    patch_size=(8, 8),
    step=2,
    max_patches=3000,
    noise_sigma=SIGMA,
    random_state=0,
)
t_start = time.perf_counter()
with warnings.catch_warnings(), dask.config.set(scheduler="threads"):
    warnings.simplefilter("ignore", ConvergenceWarning)
    denoiser.fit(noisy[None])
print(
    f"fitted on {denoiser.max_patches} patches in {time.perf_counter() - t_start:.1f} s"
)

lazy = denoiser.transform(noisy[None])[0]
print(f"lazy result: {type(lazy).__name__} {lazy.shape}, chunks {lazy.chunksize}")
t_start = time.perf_counter()
with ProgressBar(dt=1.0):
    noisy_values, denoised = dask.compute(noisy, lazy, scheduler="threads")
print(f"denoised in {time.perf_counter() - t_start:.1f} s")

# %%
# Tiled equals untiled
# --------------------
# Denoising the computed image in memory, in one piece, gives the same pixels
# to float rounding (float32 here); the PSNR is measured against the clean
# mosaic with a data range of 1.
in_memory = denoiser.transform(noisy_values[None])[0]
difference = np.abs(denoised - in_memory).max()
print(f"largest difference to the in-memory result: {difference:.1e}")
clean_values = clean.compute()
for label, image in (("noisy", noisy_values), ("denoised", np.clip(denoised, 0, 1))):
    print(
        f"{label}: {peak_signal_noise_ratio(clean_values, image, data_range=1):.2f} dB"
    )

# %%
# The chunk grid and a zoom across a chunk corner
# -----------------------------------------------
# The dashed lines are the chunk borders. The zoom is centred on the corner of
# four chunks: there is no seam, since every pixel near a border was denoised
# from the same patches as in the untiled computation.
fig, axes = plt.subplots(1, 3, figsize=(12, 4.4))
# sphinx_gallery_thumbnail_number = 1
axes[0].imshow(noisy_values, cmap="gray", vmin=0, vmax=1)
axes[0].set_title("noisy mosaic and its chunks")
for axis, draw in ((0, axes[0].axhline), (1, axes[0].axvline)):
    for border in np.cumsum(noisy.chunks[axis])[:-1]:
        draw(border - 0.5, color="tab:orange", lw=0.8, ls="--")
zoom = (slice(188, 324), slice(188, 324))
axes[0].add_patch(plt.Rectangle((188, 188), 136, 136, fill=False, color="tab:red"))
for ax, image, title in (
    (axes[1], noisy_values[zoom], "noisy, zoom"),
    (axes[2], denoised[zoom], "denoised with dask, zoom"),
):
    ax.imshow(image, cmap="gray", vmin=0, vmax=1, extent=(188, 324, 324, 188))
    ax.axhline(255.5, color="tab:orange", lw=0.8, ls="--")
    ax.axvline(255.5, color="tab:orange", lw=0.8, ls="--")
    ax.set_title(title)
for ax in axes:
    ax.set_xticks([])
    ax.set_yticks([])
fig.tight_layout()
plt.show()
