"""Weighting windows for overlap averaging; none of them is ever zero."""

import numpy as np

WINDOW_NAMES = ("uniform", "gaussian", "hann", "triangular")


def _uniform(size):
    return np.ones(size)


def _centred_positions(size):
    """Pixel centres mapped to (0, 1): never exactly at the ends, so no weight is 0."""
    return (np.arange(size) + 0.5) / size


def _hann(size):
    return np.sin(np.pi * _centred_positions(size)) ** 2


def _triangular(size):
    return 1.0 - np.abs(2.0 * _centred_positions(size) - 1.0)


def _gaussian(size, sigma=None):
    sigma = size / 4.0 if sigma is None else sigma
    x = np.arange(size) - (size - 1) / 2.0
    return np.exp(-0.5 * (x / sigma) ** 2)


_WINDOWS = {
    "uniform": _uniform,
    "gaussian": _gaussian,
    "hann": _hann,
    "triangular": _triangular,
}


def is_uniform(weights):
    """Whether ``weights`` names the uniform window (plain averaging)."""
    return isinstance(weights, str) and weights == "uniform"


def axis_windows(weights, patch_size):
    """Return the 1-D windows of a named separable window, or None for an array.

    ``weights`` is a name from :data:`WINDOW_NAMES` or ``('gaussian', sigma)``.
    """
    if isinstance(weights, np.ndarray | list):
        return None
    name, args = _split_window_spec(weights)
    return tuple(_WINDOWS[name](p, *args) for p in patch_size)


def _split_window_spec(weights):
    if isinstance(weights, str) and weights in _WINDOWS:
        return weights, ()
    if (
        isinstance(weights, tuple)
        and len(weights) == 2
        and weights[0] == "gaussian"
        and isinstance(weights[1], int | float)
        and weights[1] > 0
    ):
        return "gaussian", (float(weights[1]),)
    raise ValueError(
        f"weights must be one of {WINDOW_NAMES}, ('gaussian', sigma) with sigma > 0, "
        f"or an array of positive weights; got {weights!r}"
    )


def patch_window(weights, patch_size, n_channels=None):
    """Return the weighting window used to overlap-average patches.

    Named windows are separable: the product of one 1-D window per axis. They
    are strictly positive everywhere, so no pixel that a patch covers is ever
    given zero weight (a Hann window that reaches 0 at the patch border would
    leave the image border of a step-``patch_size`` tiling with no estimate).

    Parameters
    ----------
    weights : {'uniform', 'gaussian', 'hann', 'triangular'}, tuple or array-like
        A window name, ``('gaussian', sigma)``, or an array of positive finite
        weights of shape ``patch_size`` (or ``patch_size + (n_channels,)``).
    patch_size : tuple of int
        Spatial patch shape.
    n_channels : int or None, default=None
        Number of channels, used only to check a user array.

    Returns
    -------
    window : ndarray of shape patch_size or patch_size + (n_channels,)
        The window, float64.

    Notes
    -----
    With centres :math:`t_k = (k + 1/2) / p` for :math:`k = 0, \\dots, p-1`, the Hann
    window is :math:`\\sin^2(\\pi t_k)`, the triangular one :math:`1 - |2 t_k - 1|`,
    and the Gaussian :math:`\\exp(-(k - (p-1)/2)^2 / (2\\sigma^2))` with
    :math:`\\sigma = p / 4` unless given.

    Examples
    --------
    >>> from skpatch import patch_window
    >>> patch_window("hann", (4,)).round(3)
    array([0.146, 0.854, 0.854, 0.146])
    >>> patch_window("gaussian", (8, 8)).shape
    (8, 8)
    """
    patch_size = tuple(patch_size)
    windows = axis_windows(weights, patch_size)
    if windows is None:
        return _check_weight_array(weights, patch_size, n_channels)
    window = windows[0]
    for w in windows[1:]:
        window = np.multiply.outer(window, w)
    return window


def _check_weight_array(weights, patch_size, n_channels):
    weights = np.asarray(weights, dtype=np.float64)
    allowed = [patch_size] + ([(*patch_size, n_channels)] if n_channels else [])
    if weights.shape not in allowed:
        raise ValueError(
            f"weights array must have shape {' or '.join(map(str, allowed))}, "
            f"got {weights.shape}"
        )
    if not np.all(np.isfinite(weights)) or not np.all(weights > 0):
        raise ValueError(
            "weights array must be finite and > 0 everywhere (a zero weight would "
            "leave a covered pixel without an estimate); its minimum is "
            f"{weights.min()}"
        )
    return weights
