"""Tests of dask arrays in PatchDenoiser, denoise_image and NL-Bayes (skpatch._dask)."""

import pickle
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.decomposition import PCA, MiniBatchDictionaryLearning
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_limits

from skpatch import (
    NonLocalBayes,
    PatchDenoiser,
    denoise_image,
    denoise_nl_bayes,
    extract_patches,
)

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")

SIGMA = 0.1


def noisy_images(shape, seed=0, dtype=np.float64):
    """Smooth images plus noise, so that denoising has something to do."""
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*(np.linspace(0, 3, n) for n in shape[1:]), indexing="ij")
    clean = 0.5 + 0.2 * np.sin(sum(grids))
    clean = np.broadcast_to(clean, shape)
    return (clean + SIGMA * rng.standard_normal(shape)).astype(dtype)


def dictionary_denoiser(**params):
    model = MiniBatchDictionaryLearning(
        12, alpha=0.5, max_iter=2, batch_size=64, fit_algorithm="cd", random_state=0
    )
    defaults = {
        "patch_size": (5, 5),
        "max_patches": 150,
        "noise_sigma": SIGMA,
        "random_state": 0,
    }
    return PatchDenoiser(model, **{**defaults, **params})


@pytest.fixture(scope="module")
def images():
    """Two noisy 37x43 images."""
    return noisy_images((2, 37, 43))


@pytest.fixture(scope="module")
def fitted(images):
    """A dictionary denoiser fitted in memory, with 3 EPLL iterations, step 2."""
    return dictionary_denoiser(step=2, n_iter=3).fit(images)


@pytest.mark.parametrize(
    "chunks",
    [(1, 3, 4), (2, 37, 43), (1, 10, 9), (1, 1, 43), (2, (30, 7), (2, 40, 1))],
    ids=["smaller-than-patch", "single", "off-step", "one-row", "uneven"],
)
def test_lazy_transform_equals_in_memory(images, fitted, chunks):
    """Check that any chunking gives the in-memory result, with the input chunks."""
    X = da.from_array(images, chunks=chunks)
    lazy = fitted.transform(X)
    assert isinstance(lazy, da.Array)
    assert lazy.shape == X.shape
    assert lazy.chunks == X.chunks
    expected = fitted.transform(images)
    np.testing.assert_allclose(
        lazy.compute(scheduler="threads"), expected, rtol=0, atol=1e-12
    )


def test_distributed_cluster_equals_in_memory(images, fitted, dask_client):
    """Check that worker processes of a LocalCluster compute the in-memory result."""
    X = da.from_array(images, chunks=(1, 11, 14))
    lazy = fitted.predict(X)
    got = dask.compute(lazy, scheduler=dask_client)[0]
    np.testing.assert_allclose(got, fitted.transform(images), rtol=0, atol=1e-12)


def test_distributed_fit_and_colour(dask_client):
    """Check fit and transform of colour images on the cluster against memory."""
    images = noisy_images((2, 30, 26, 3), seed=1)
    X = da.from_array(images, chunks=(1, 8, 13, 2))
    with dask.config.set(scheduler=dask_client):
        lazy_fit = dictionary_denoiser(patch_size=(4, 4)).fit(X)
    memory_fit = dictionary_denoiser(patch_size=(4, 4)).fit(images)
    np.testing.assert_array_equal(
        lazy_fit.estimator_.components_, memory_fit.estimator_.components_
    )
    got = dask.compute(lazy_fit.transform(X), scheduler=dask_client)[0]
    np.testing.assert_allclose(got, memory_fit.transform(images), rtol=0, atol=1e-12)


def test_graph_pickles(images, fitted):
    """Check that the graph of a lazy result survives pickle (as workers get it)."""
    lazy = fitted.transform(da.from_array(images, chunks=(1, 12, 12)))
    graph = pickle.loads(pickle.dumps(dict(lazy.__dask_graph__())))
    assert len(graph) == len(lazy.__dask_graph__())


@pytest.mark.parametrize("padding", [None, "reflect", "wrap", "constant"])
def test_pad_modes_and_offsets_through_dask(images, padding):
    """Check pad modes, offsets and windows against memory for a tiny chunking."""
    denoiser = dictionary_denoiser(
        step=(2, 3), offset=(1, 2), padding=padding, weights="hann", n_iter=2
    ).fit(images)
    X = da.from_array(images, chunks=(1, 4, 6))
    np.testing.assert_allclose(
        denoiser.transform(X).compute(scheduler="threads"),
        denoiser.transform(images),
        rtol=0,
        atol=1e-12,
    )


def test_volume_and_float32(images):
    """Check a 3-D volume batch: float32 stays float32 and equals memory."""
    volumes = noisy_images((1, 13, 12, 11), seed=2, dtype=np.float32)
    denoiser = PatchDenoiser(
        PCA(n_components=10), patch_size=(4, 4, 4), step=(1, 2, 3)
    ).fit(volumes)
    lazy = denoiser.transform(da.from_array(volumes, chunks=(1, 5, 3, 11)))
    assert lazy.dtype == np.float32
    got = lazy.compute(scheduler="threads")
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, denoiser.transform(volumes), rtol=1e-6, atol=1e-6)


def test_gaussian_mixture_epll_through_dask(images):
    """Check EPLL iterations with a Gaussian-mixture prior for a lazy image."""
    rows = extract_patches(images[0], (4, 4)).reshape(-1, 16)
    prior = GaussianMixture(2, random_state=0).fit(rows - rows.mean(1, keepdims=True))
    lazy = denoise_image(
        da.from_array(images[0], chunks=(9, 20)),
        prior,
        patch_size=(4, 4),
        noise_sigma=SIGMA,
        n_iter=3,
    )
    expected = denoise_image(
        images[0], prior, patch_size=(4, 4), noise_sigma=SIGMA, n_iter=3
    )
    assert isinstance(lazy, da.Array)
    assert lazy.chunks == ((9, 9, 9, 9, 1), (20, 20, 3))
    np.testing.assert_allclose(
        lazy.compute(scheduler="threads"), expected, rtol=0, atol=1e-12
    )


def test_transform_computes_nothing(fitted):
    """Check that transform only builds a graph: no chunk is read."""

    def boom(block):
        raise AssertionError("a chunk was computed")

    X = da.zeros((2, 37, 43), chunks=(1, 20, 20)).map_blocks(boom, dtype=float)
    lazy = fitted.transform(X)
    assert lazy.shape == X.shape


def test_fit_reads_only_the_chunks_of_the_sample():
    """Check that fit samples patches reading only the chunks around them."""
    images = noisy_images((1, 120, 120), seed=3)
    read, lock = [], threading.Lock()

    def record(block, block_info=None):
        with lock:
            read.append(tuple(block_info[0]["chunk-location"]))
        return block

    X = da.from_array(images, chunks=(1, 10, 10)).map_blocks(record, dtype=float)
    denoiser = dictionary_denoiser(max_patches=3)
    with dask.config.set(scheduler="threads"):
        denoiser.fit(X)
    # 3 patches of 5x5 touch at most 4 chunks each.
    assert 0 < len(set(read)) <= 12 < 144
    memory = dictionary_denoiser(max_patches=3).fit(images)
    np.testing.assert_array_equal(
        denoiser.estimator_.components_, memory.estimator_.components_
    )


def test_partial_fit_on_dask_batches(images):
    """Check partial_fit on a stream of dask batches equals the in-memory stream."""
    X = da.from_array(images, chunks=(1, 16, 16))
    lazy, memory = dictionary_denoiser(), dictionary_denoiser()
    for i in range(2):
        with dask.config.set(scheduler="threads"):
            lazy.partial_fit(X[i : i + 1])
        memory.partial_fit(images[i : i + 1])
    np.testing.assert_allclose(
        lazy.estimator_.components_, memory.estimator_.components_, rtol=0, atol=1e-12
    )


def test_bad_dask_input(images, fitted):
    """Check wrong axes, channels and unknown chunks with dask input."""
    with pytest.raises(ValueError, match=r"2 spatial axes.*shape \(37, 43\)"):
        fitted.transform(da.from_array(images[0]))
    with pytest.raises(ValueError, match=r"no channels.*shape \(37, 43, 3\)"):
        fitted.transform(da.zeros((1, 37, 43, 3)))
    X = da.from_array(images)
    unknown = X[X[:, 0, 0] > -10]
    with pytest.raises(ValueError, match="unknown chunk sizes"):
        fitted.transform(unknown)
    with pytest.raises(ValueError, match=r"patch_size \(5, 5\).*\(3, 43\)"):
        fitted.transform(da.zeros((1, 3, 43)))


# ------------------------------------------------------------------ NL-Bayes


@pytest.fixture(scope="module")
def noisy_scene():
    """A noisy 150x130 image (three rows of claim blocks) and its NL-Bayes."""
    image = noisy_images((1, 150, 130), seed=3)[0]
    return image, denoise_nl_bayes(image, SIGMA)


@st.composite
def chunkings(draw, shape):
    """Random chunk lengths along every axis (often shorter than the halo)."""
    chunks = []
    for size in shape:
        cuts = draw(st.sets(st.integers(1, size - 1), max_size=4))
        bounds = [0, *sorted(cuts), size]
        chunks.append(tuple(np.diff(bounds).tolist()))
    return tuple(chunks)


@settings(max_examples=12, deadline=None)
@given(chunks=chunkings((150, 130)))
def test_nl_bayes_any_chunking_equals_in_memory(noisy_scene, chunks):
    """Check that every chunking gives the in-memory result, value for value."""
    image, expected = noisy_scene
    lazy = denoise_nl_bayes(da.from_array(image, chunks=chunks), SIGMA)
    assert isinstance(lazy, da.Array)
    assert lazy.chunks == chunks
    np.testing.assert_array_equal(lazy.compute(scheduler="synchronous"), expected)


@pytest.mark.parametrize("chunks", [((75, 75), (65, 65)), ((7, 143), (130,))])
def test_nl_bayes_mean_of_final_estimates_through_dask(chunks):
    """Check the mean of the Bayes and Wiener final estimates (three steps)."""
    image = noisy_images((1, 150, 130), seed=3)[0]
    expected = denoise_nl_bayes(image, SIGMA, final="mean")
    lazy = denoise_nl_bayes(da.from_array(image, chunks=chunks), SIGMA, final="mean")
    np.testing.assert_array_equal(lazy.compute(scheduler="synchronous"), expected)


@pytest.mark.parametrize("colour_space", ["opponent", "rgb"])
def test_nl_bayes_colour_and_float32_through_dask(colour_space):
    """Check colour images (channels last) and float32 against memory."""
    image = noisy_images((1, 100, 90, 3), seed=4, dtype=np.float32)[0]
    expected = denoise_nl_bayes(
        image, SIGMA, channel_axis=-1, colour_space=colour_space
    )
    lazy = denoise_nl_bayes(
        da.from_array(image, chunks=(40, 50, 2)),
        SIGMA,
        channel_axis=-1,
        colour_space=colour_space,
    )
    assert lazy.dtype == np.float32
    assert lazy.chunks == ((40, 40, 20), (50, 40), (2, 1))
    np.testing.assert_allclose(
        lazy.compute(scheduler="synchronous"), expected, rtol=0, atol=1e-6
    )


def test_nl_bayes_volume_through_dask():
    """Check a 3-D volume cut along every axis (small search window)."""
    volume = noisy_images((1, 30, 24, 26), seed=5)[0]
    options = {"search_window": 5, "n_neighbors": 20}
    expected = denoise_nl_bayes(volume, SIGMA, **options)
    lazy = denoise_nl_bayes(da.from_array(volume, chunks=(13, 9, 11)), SIGMA, **options)
    # Value for value with BLAS on one thread, as in memory (a multi-threaded
    # BLAS rounds the 125-value covariances differently).
    with threadpool_limits(limits=1, user_api="blas"):
        got = lazy.compute(scheduler="synchronous")
    np.testing.assert_array_equal(got, expected)


def test_nl_bayes_estimator_on_the_cluster(dask_client):
    """Check NonLocalBayes on a dask batch: lazy, computed by worker processes."""
    images = noisy_images((2, 90, 70), seed=6)
    denoiser = NonLocalBayes(noise_sigma=SIGMA).fit(images)
    lazy = denoiser.transform(da.from_array(images, chunks=(1, 45, 35)))
    assert isinstance(lazy, da.Array)
    assert lazy.shape == images.shape
    got = dask.compute(lazy, scheduler=dask_client)[0]
    np.testing.assert_array_equal(got, denoiser.transform(images))


def test_nl_bayes_bad_dask_input():
    """Check the errors of lazy NL-Bayes: no noise estimate, NaN, bad batches."""
    image = noisy_images((1, 40, 40))[0]
    with pytest.raises(ValueError, match=r"noise_sigma=None.*dask"):
        denoise_nl_bayes(da.from_array(image), None)
    broken = image.copy()
    broken[3, 4] = np.nan
    lazy = denoise_nl_bayes(da.from_array(broken, chunks=20), SIGMA)
    with pytest.raises(ValueError, match="NaN"):
        lazy.compute(scheduler="synchronous")
    with pytest.raises(ValueError, match=r"n_images.*shape \(40, 40\)"):
        NonLocalBayes(noise_sigma=SIGMA).transform(da.from_array(image))
    with pytest.raises(TypeError, match="real numbers"):
        denoise_nl_bayes(da.zeros((40, 40), dtype=complex), SIGMA)
