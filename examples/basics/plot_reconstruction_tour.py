"""
=======================================
A tour of extraction and reconstruction
=======================================

The options of :func:`skpatch.extract_patches` and
:func:`skpatch.reconstruct_from_patches`, each with a picture:

- steps and offsets, and the exact round trip;
- edge policies: the default snap, ``'valid'`` and a numpy pad mode, shown by their
  coverage maps (``return_weights=True``);
- weighting windows: none of them zeroes a covered pixel, and tapered ones hide the
  seams left by patches processed independently;
- the median merge: robust to outlier patches, and the merge for label images;
- a 3-D volume;
- streaming a large image with :func:`skpatch.iter_patches` and
  :class:`skpatch.PatchAccumulator`, in memory bounded by the batch.

The image is scikit-image's ``camera`` (512x512), scaled to [0, 1].
"""

# %%
# Steps, offsets and the exact round trip
# ---------------------------------------
# :class:`skpatch.PatchGrid` says where patches sit without touching pixels. A step
# of 16 with 32x32 patches lands exactly on the far edge of a 512-pixel axis
# ((512 - 32) is a multiple of 16); a step of 24 does not, so one last patch per
# axis is snapped to the edge. An offset shifts the regular grid by less than a
# step (and a first patch is snapped to the near edge). Whatever the geometry,
# reconstructing the unmodified patches gives the image back.
import time
import tracemalloc

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.collections import PatchCollection
from matplotlib.patches import Rectangle
from skimage import data

from skpatch import (
    PatchAccumulator,
    PatchGrid,
    extract_patches,
    iter_patches,
    patch_window,
    reconstruct_from_patches,
)

t_start = time.perf_counter()
image = data.camera().astype(np.float64) / 255
rng = np.random.default_rng(0)

geometries = [
    {"step": 16},
    {"step": 24},
    {"step": 24, "offset": 12},
    {"step": (8, 28)},
]
for geometry in geometries:
    t0 = time.perf_counter()
    patches = extract_patches(image, 32, **geometry)
    rebuilt = reconstruct_from_patches(patches, image.shape, **geometry)
    elapsed = time.perf_counter() - t0
    grid = PatchGrid(image.shape, 32, **geometry)
    print(
        f"{geometry!s:27}{grid.n_patches:5} patches {grid.grid_shape!s:9} "
        f"max |error| {np.abs(rebuilt - image).max():.1e}, {elapsed * 1000:.0f} ms"
    )


def draw_grid(ax, grid, color="tab:orange"):
    """Outline every patch of ``grid`` on ``ax`` (image coordinates)."""
    (top, _), (left, _) = grid.pad_width
    height, width = grid.patch_size
    outlines = [
        Rectangle((c - left - 0.5, r - top - 0.5), width, height)
        for r in grid.axis_origins[0]
        for c in grid.axis_origins[1]
    ]
    ax.add_collection(
        PatchCollection(outlines, facecolor="none", edgecolor=color, linewidth=0.8)
    )


# sphinx_gallery_thumbnail_number = 1
fig_grid, axes = plt.subplots(2, 2, figsize=(8, 8.6), layout="constrained")
for ax, geometry in zip(axes.ravel(), geometries, strict=True):
    grid = PatchGrid(image.shape, 32, **geometry)
    ax.imshow(image, cmap="gray", vmin=0, vmax=1)
    draw_grid(ax, grid)
    ax.set_title(f"{geometry}\n{grid.n_patches} patches of 32x32")
    ax.set_axis_off()
fig_grid.suptitle("Patch outlines: where the steps miss the edge, a patch snaps to it")

# %%
# Edge policies and coverage maps
# -------------------------------
# On a 500x500 crop, 32x32 patches with a step of 24 miss the far edge by 12 pixels
# ((500 - 32) % 24 = 12).
#
# - The default snaps a last patch to the edge: every pixel is covered, the pixels
#   under the snapped patches a little more often.
# - ``'valid'`` keeps only the regular grid: the last 12 rows and columns are
#   covered by no patch and come back as NaN (``fill_value``).
# - ``'reflect'`` pads the image by 31 pixels on every side, so that border pixels
#   are covered about as often as interior ones; reconstruction crops the padding.
#
# ``return_weights=True`` returns the coverage map: how many patches cover each
# pixel (with uniform weights).
crop = image[:500, :500]
fig_edges, axes = plt.subplots(1, 3, figsize=(9, 3.4), layout="constrained")
for ax, padding in zip(axes, [None, "valid", "reflect"], strict=True):
    patches = extract_patches(crop, 32, step=24, padding=padding)
    rebuilt, coverage = reconstruct_from_patches(
        patches, crop.shape, step=24, padding=padding, return_weights=True
    )
    missing = np.isnan(rebuilt)
    error = np.abs(rebuilt[~missing] - crop[~missing]).max()
    print(
        f"padding={padding!r:9} {len(patches):3} patches, {missing.sum():5} NaN "
        f"pixels, max |error| elsewhere {error:.1e}"
    )
    shown = ax.imshow(coverage, cmap="viridis", vmin=0, vmax=9)
    ax.set_title(
        f"padding={padding!r}: {len(patches)} patches\n"
        f"coverage {coverage.min():g} to {coverage.max():g}",
        fontsize=9,
    )
    ax.set_axis_off()
fig_edges.colorbar(shown, ax=axes, shrink=0.8, label="patches covering a pixel")

# %%
# Windows: no covered pixel gets zero weight
# ------------------------------------------
# ``weights=`` weights each patch's values by a window before averaging. Every
# window of skpatch is sampled at pixel centres and stays strictly positive, so even
# a non-overlapping tiling (``step == patch_size``) with a Hann window, whose
# continuous form is 0 at the patch border, gives every pixel a weight and the
# image back exactly. (The colour scale is logarithmic: a zero weight would be
# -inf and show as a blank pixel.)
tile = 32
patches = extract_patches(image, tile, step=tile)
windows = ["uniform", "gaussian", "hann", "triangular"]
fig_win, axes = plt.subplots(2, 2, figsize=(8, 7.4), layout="constrained")
for ax, name in zip(axes.ravel(), windows, strict=True):
    rebuilt, weight = reconstruct_from_patches(
        patches, image.shape, step=tile, weights=name, return_weights=True
    )
    print(
        f"{name:10} window min {patch_window(name, (tile, tile)).min():.1e}, "
        f"weight sum min {weight.min():.1e}, "
        f"max |error| {np.abs(rebuilt - image).max():.1e}"
    )
    shown = ax.imshow(np.log10(weight[:96, :96]), cmap="magma", vmin=-6, vmax=0)
    ax.set_title(f"{name}: weight sum, min {weight.min():.1e}")
    ax.set_axis_off()
fig_win.colorbar(shown, ax=axes, shrink=0.8, label="log10(weight sum)")
fig_win.suptitle(f"Weight sums of a {tile}x{tile} tiling (top-left 96x96 pixels)")

# %%
# Windows: blending patches processed independently
# -------------------------------------------------
# When each patch is processed on its own, neighbouring patches disagree about the
# pixels they share. Here each 32x32 patch (step 16) is contrast-stretched to
# [0, 1], a deliberately local operation. With uniform weights the disagreement
# shows as blocks; Gaussian and Hann windows trust each patch's centre more than its
# border and blend the estimates smoothly.
#
# The printed seam ratio is the mean vertical gradient on the rows where patch
# borders fall, divided by that elsewhere: about 1 means no visible seams. The
# pictures show the top-left quarter of the image.
step = 16
patches = extract_patches(image, 32, step=step)
low = patches.min(axis=(1, 2), keepdims=True)
high = patches.max(axis=(1, 2), keepdims=True)
stretched = (patches - low) / np.maximum(high - low, 1e-12)

fig_seams, axes = plt.subplots(1, 3, figsize=(9, 3.4), layout="constrained")
border_rows = np.arange(image.shape[0] - 1) % step == step - 1
for ax, name in zip(axes, ["uniform", "gaussian", "hann"], strict=True):
    blended = reconstruct_from_patches(stretched, image.shape, step=step, weights=name)
    gradient = np.abs(np.diff(blended, axis=0)).mean(axis=1)
    ratio = gradient[border_rows].mean() / gradient[~border_rows].mean()
    print(f"per-patch contrast stretch, weights={name!r:10} seam ratio {ratio:.2f}")
    ax.imshow(blended[:256, :256], cmap="gray")
    ax.set_title(f"weights={name!r}\nseam ratio {ratio:.2f}", fontsize=10)
    ax.set_axis_off()

# %%
# The median merge: outlier patches
# ---------------------------------
# A few patches go badly wrong (set to 5, far outside the image's range), as a
# model might on inputs it has never seen. The mean spreads their error over every
# pixel they cover; the per-pixel median (``aggregate='median'``) ignores them as
# long as they are a minority of the patches covering a pixel.
small = image[::2, ::2]  # 256x256
patches = extract_patches(small, 9, step=3)
bad = rng.choice(len(patches), size=12, replace=False)
corrupted = patches.copy()
corrupted[bad] = 5.0
merged = {}
print(f"{len(bad)} outlier patches of {len(patches)}")
for aggregate in ["mean", "median"]:
    t0 = time.perf_counter()
    merged[aggregate] = reconstruct_from_patches(
        corrupted, small.shape, step=3, aggregate=aggregate
    )
    elapsed = time.perf_counter() - t0
    error = np.abs(merged[aggregate] - small)
    print(
        f"aggregate={aggregate!r:8} max |error| {error.max():.3f}, pixels off by "
        f"> 0.01: {(error > 0.01).sum():4} ({elapsed * 1000:.0f} ms)"
    )

# %%
# The median merge: label images
# ------------------------------
# The mean of labels invents values: a pixel between class 0 and class 2 becomes
# 1, a class it never was. Here a three-class label map is cut into 9x9 patches
# (step 3, so 9 patches cover an interior pixel), and each patch is "predicted"
# independently with 15% of its pixels given a random label. The median of the
# predictions covering a pixel is always one of them where an odd number of
# patches cover it; the mean is a fraction almost everywhere.
labels = np.digitize(small, [0.35, 0.65]).astype(np.float64)  # classes 0, 1, 2
patches = extract_patches(labels, 9, step=3)
flip = rng.random(patches.shape) < 0.15
predicted = np.where(flip, rng.integers(0, 3, patches.shape), patches)

merged_labels = {}
for aggregate in ["mean", "median"]:
    merged_labels[aggregate] = reconstruct_from_patches(
        predicted, labels.shape, step=3, aggregate=aggregate
    )
    invented = ~np.isin(merged_labels[aggregate], [0, 1, 2])
    wrong = np.rint(merged_labels[aggregate]) != labels
    print(
        f"aggregate={aggregate!r:8} not a class label: "
        f"{invented.mean():6.1%}, wrong after rounding: {wrong.mean():.2%}"
    )

label_style = {"cmap": "viridis", "vmin": 0, "vmax": 2, "interpolation": "nearest"}
fig_labels, axes = plt.subplots(2, 2, figsize=(8, 8.4), layout="constrained")
axes = axes.ravel()
axes[0].imshow(labels, **label_style)
axes[0].set_title("true labels", fontsize=10)
axes[1].imshow(predicted[len(predicted) // 2], **label_style)
axes[1].set_title("one predicted 9x9 patch\n(15% random labels)", fontsize=10)
for ax, (aggregate, merged_map) in zip(axes[2:], merged_labels.items(), strict=True):
    invented = ~np.isin(merged_map, [0, 1, 2])
    ax.imshow(merged_map, **label_style)
    ax.set_title(
        f"aggregate={aggregate!r}\nnot a class label: {invented.mean():.1%}",
        fontsize=10,
    )
for ax in axes:
    ax.set_axis_off()

# %%
# A 3-D volume
# ------------
# Without ``channel_axis`` every axis is spatial: a 3-D array is a volume, cut into
# 3-D patches. Here a volume of random blobs, 8x8x8 patches with steps (4, 4, 6),
# padded by reflection.
shape = (48, 64, 80)
centres = rng.uniform(0, 1, (12, 3)) * shape
zz, yy, xx = np.indices(shape, sparse=True)
volume = np.zeros(shape)
for cz, cy, cx in centres:
    volume += np.exp(-((zz - cz) ** 2 + (yy - cy) ** 2 + (xx - cx) ** 2) / 60.0)

geometry = {"step": (4, 4, 6), "padding": "reflect"}
t0 = time.perf_counter()
patches = extract_patches(volume, (8, 8, 8), **geometry)
rebuilt, coverage = reconstruct_from_patches(
    patches, volume.shape, return_weights=True, **geometry
)
elapsed = time.perf_counter() - t0
print(f"volume {volume.shape}: patches {patches.shape} ({elapsed * 1000:.0f} ms)")
print(
    f"round trip max |error| {np.abs(rebuilt - volume).max():.1e}, coverage "
    f"{coverage.min():g} to {coverage.max():g}"
)

fig_volume, axes = plt.subplots(1, 3, figsize=(9, 2.9), layout="constrained")
middle = shape[0] // 2
axes[0].imshow(volume[middle], cmap="gray")
axes[0].set_title(f"volume, slice {middle}", fontsize=10)
axes[1].imshow(rebuilt[middle], cmap="gray")
axes[1].set_title(f"rebuilt, slice {middle}", fontsize=10)
shown = axes[2].imshow(coverage[middle], cmap="viridis", vmin=0)
axes[2].set_title(f"coverage, slice {middle}", fontsize=10)
fig_volume.colorbar(shown, ax=axes[2], shrink=0.8)
for ax in axes:
    ax.set_axis_off()

# %%
# Streaming a large image
# -----------------------
# A 2048x2048 float32 image (16 MiB) with 16x16 patches and a step of 4 has
# 259,081 patches: a 253 MiB patch matrix. :func:`skpatch.iter_patches` yields
# them in batches with their origins; each batch is processed (here: each patch
# loses its mean and is scaled by 0.5, then gets its mean back, a stand-in for a
# model) and added to a :class:`skpatch.PatchAccumulator`, which holds only
# image-sized sums. ``tracemalloc`` measures the peak memory numpy allocates
# meanwhile: bounded by the batch and a few images, not by the patch matrix.
big = np.tile(image.astype(np.float32), (4, 4))  # 2048x2048
patch, step, batch_size = (16, 16), 4, 4096
grid = PatchGrid(big.shape, patch, step=step)
matrix_bytes = grid.n_patches * np.prod(patch) * big.itemsize
print(
    f"streaming {big.shape} {big.dtype}: {grid.n_patches} patches, a "
    f"{matrix_bytes / 2**20:.0f} MiB patch matrix"
)
print(
    f"batches of {batch_size} patches "
    f"({batch_size * np.prod(patch) * big.itemsize / 2**20:.0f} MiB)"
)

t0 = time.perf_counter()
tracemalloc.start()
accumulator = PatchAccumulator(big.shape, patch, step=step, weights="hann")
for batch, origins in iter_patches(big, patch, step=step, batch_size=batch_size):
    means = batch.mean(axis=(1, 2), keepdims=True)
    accumulator.add(0.5 * (batch - means) + means, origins)
result = accumulator.result()
_, peak = tracemalloc.get_traced_memory()
tracemalloc.stop()
elapsed = time.perf_counter() - t0
print(f"streamed in {elapsed:.2f} s, result {result.shape} {result.dtype}")
print(
    f"peak traced memory {peak / 2**20:.0f} MiB: {peak / matrix_bytes:.2f}x the "
    f"patch matrix, {peak / big.nbytes:.1f}x the image"
)

fig_stream, axes = plt.subplots(1, 2, figsize=(8, 4.4), layout="constrained")
# Every 4th pixel is shown: drawing 2048x2048 images is slow and no screen needs it.
axes[0].imshow(big[::4, ::4], cmap="gray", vmin=0, vmax=1)
axes[0].set_title(f"input {big.shape[0]}x{big.shape[1]}", fontsize=10)
axes[1].imshow(result[::4, ::4], cmap="gray", vmin=0, vmax=1)
axes[1].set_title(
    f"streamed, contrast halved per patch\npeak memory {peak / 2**20:.0f} MiB for a "
    f"{matrix_bytes / 2**20:.0f} MiB patch matrix",
    fontsize=10,
)
for ax in axes:
    ax.set_axis_off()

print(f"total {time.perf_counter() - t_start:.1f} s")

# sphinx_gallery_start_ignore
# Run as a script, the example also saves its figures in examples/_output/; in the
# documentation, sphinx-gallery shows them instead.
import sys  # noqa: E402

if "sphinx_gallery" not in sys.modules:
    import os
    from pathlib import Path

    output_dir = Path(__file__).resolve().parents[1] / "_output"
    output_dir.mkdir(exist_ok=True)
    figures = {
        "grid": fig_grid,
        "edges": fig_edges,
        "windows": fig_win,
        "seams": fig_seams,
        "labels": fig_labels,
        "volume": fig_volume,
        "streaming": fig_stream,
    }
    for name, figure in figures.items():
        figure.savefig(output_dir / f"reconstruction_tour_{name}.png", dpi=80)
    print(f"figures saved in {os.path.relpath(output_dir)}")
# sphinx_gallery_end_ignore
