"""Argument normalisation shared by every layer: ints, tuples, images, memory."""

import numbers
import os
import sys

import numpy as np

PAD_MODES = ("reflect", "symmetric", "edge", "constant", "wrap")
EDGE_POLICIES = (None, "valid", *PAD_MODES)


def as_axis_tuple(value, ndim, name, *, minimum):
    """Broadcast an int, or check a tuple, to ``ndim`` integers ``>= minimum``."""
    values = (value,) * ndim if _is_integer(value) else value
    if not isinstance(values, tuple | list | np.ndarray):
        raise TypeError(
            f"{name} must be an int or a tuple of {ndim} ints, got {value!r} "
            f"of type {type(value).__name__}"
        )
    values = tuple(values)
    if len(values) != ndim:
        raise ValueError(
            f"{name} has {len(values)} axes but the image has {ndim} spatial axes; "
            f"got {name}={value!r}"
        )
    for v in values:
        if not _is_integer(v):
            raise TypeError(
                f"{name} must contain integers, got {value!r} "
                f"(element {v!r} of type {type(v).__name__})"
            )
    if any(v < minimum for v in values):
        raise ValueError(f"{name} must be >= {minimum} on every axis, got {value!r}")
    return tuple(int(v) for v in values)


def _is_integer(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_padding(padding):
    """Return ``padding`` if it is a known edge policy, else raise."""
    if not (padding is None or (isinstance(padding, str) and padding in EDGE_POLICIES)):
        raise ValueError(
            f"padding must be None (snap a last patch to the far edge), 'valid' or a "
            f"numpy pad mode in {PAD_MODES}, got {padding!r}"
        )
    return padding


def check_numeric_array(array, name):
    """Convert to an ndarray of real numbers (bool, int, float), refusing the rest."""
    array = np.asarray(array)
    if array.dtype.kind not in "biuf":
        raise TypeError(
            f"{name} must hold real numbers (bool, integer or float), "
            f"got dtype {array.dtype}"
        )
    if array.size == 0:
        raise ValueError(f"{name} is empty: got shape {array.shape}")
    return array


def check_finite(array, name, owner):
    """Raise if a float ``array`` holds NaN or infinity, saying how many and where."""
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        bad = ~np.isfinite(array)
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{name} must be finite, got {int(bad.sum())} NaN or infinite values "
            f"(the first at index {first}); {owner} needs finite values"
        )


def normalize_channel_axis(channel_axis, ndim):
    """Return ``channel_axis`` as a non-negative int (or None), checked for ``ndim``."""
    if channel_axis is None:
        return None
    if not _is_integer(channel_axis):
        raise TypeError(f"channel_axis must be an int or None, got {channel_axis!r}")
    if not -ndim <= channel_axis < ndim:
        raise ValueError(
            f"channel_axis {channel_axis} is out of range for an image with {ndim} axes"
        )
    return channel_axis % ndim


def spatial_shape_and_channels(shape, channel_axis):
    """Split an image shape into its spatial shape and number of channels (or None)."""
    shape = tuple(int(s) for s in shape)
    channel_axis = normalize_channel_axis(channel_axis, len(shape))
    if channel_axis is None:
        return shape, None, None
    spatial = shape[:channel_axis] + shape[channel_axis + 1 :]
    if not spatial:
        raise ValueError(
            f"an image of shape {shape} with a channel axis has no spatial axes"
        )
    return spatial, shape[channel_axis], channel_axis


def output_float_dtype(dtype):
    """float32/float64 stay as they are; integers, bools and halves become float64."""
    dtype = np.dtype(dtype)
    return dtype if dtype in (np.float32, np.float64) else np.dtype(np.float64)


def available_memory():
    """Bytes of memory that can be allocated now, or None where the OS does not say.

    On Linux this is ``MemAvailable`` plus free swap from ``/proc/meminfo`` (free
    memory alone would ignore the page cache the kernel gives back on demand).
    """
    try:
        with open("/proc/meminfo") as meminfo:
            fields = dict(line.split(":", 1) for line in meminfo)
        kib = int(fields["MemAvailable"].split()[0])
        kib += int(fields.get("SwapFree", "0 kB").split()[0])
        return kib * 1024
    except (OSError, KeyError, ValueError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_fits_in_memory(n_bytes, what, hint):
    """Raise MemoryError, before allocating, when ``n_bytes`` cannot fit."""
    free = available_memory()
    if free is not None and n_bytes > free:
        raise MemoryError(
            f"{what} needs {_format_bytes(n_bytes)} ({n_bytes} bytes) but only "
            f"{_format_bytes(free)} of memory is available; {hint}"
        )


def _format_bytes(n_bytes):
    return f"{n_bytes / 2**30:.2f} GiB"


def is_dask_array(X):
    """Whether ``X`` is a dask array, without importing dask for numpy users."""
    dask_array = sys.modules.get("dask.array")
    return dask_array is not None and isinstance(X, dask_array.Array)
