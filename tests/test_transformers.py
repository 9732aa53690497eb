"""Tests for PatchExtractor and PatchReconstructor."""

import re

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.decomposition import PCA, MiniBatchDictionaryLearning
from sklearn.exceptions import NotFittedError
from sklearn.feature_extraction.image import extract_patches_2d
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from skpatch import (
    PatchExtractor,
    PatchReconstructor,
    extract_patches,
    reconstruct_from_patches,
)

# (batch shape, patch_size, geometry keywords): gray, colour, volumes, steps,
# offsets and every edge policy.
CASES = [
    ((3, 9, 11), 3, {}),
    ((2, 9, 11, 3), (4, 3), {"step": 2}),
    ((2, 10, 12), (4, 4), {"step": (3, 4), "offset": (1, 2)}),
    ((2, 9, 11, 2), 4, {"step": 3, "padding": "reflect"}),
    ((2, 9, 11), 3, {"step": 2, "padding": "symmetric"}),
    ((2, 9, 11), 3, {"step": 2, "padding": "edge"}),
    ((2, 9, 11), 3, {"step": 3, "padding": "constant"}),
    ((2, 9, 11), 3, {"step": 3, "padding": "wrap"}),
    ((2, 5, 6, 7), (3, 3, 3), {"step": 2}),
    ((2, 5, 6, 7, 2), (2, 3, 4), {"step": (1, 2, 3)}),
]
CASE_IDS = [f"{shape}-{patch}-{kwargs}" for shape, patch, kwargs in CASES]


def _channel_axis(batch_shape, patch_size):
    n_spatial = len(patch_size) if isinstance(patch_size, tuple) else 2
    return -1 if len(batch_shape) == n_spatial + 2 else None


def test_design_contract_snippet_runs():
    """Check that the user-facing contract of DESIGN.md runs as written."""
    rng = np.random.default_rng(0)
    img = rng.random((97, 131, 3))
    P = extract_patches(img, (8, 8), step=(3, 5), channel_axis=-1)
    rec = reconstruct_from_patches(P, img.shape, step=(3, 5), channel_axis=-1)
    assert rec.shape == img.shape and np.allclose(rec, img)  # noqa: PT018

    noisy = rng.random((2, 64, 80))
    pipe = make_pipeline(
        PatchExtractor(patch_size=(7, 7)),
        MiniBatchDictionaryLearning(
            n_components=32,
            transform_algorithm="omp",
            transform_n_nonzero_coefs=3,
            random_state=0,
        ),
    )
    pipe.fit(noisy)
    denoised = pipe.inverse_transform(pipe.transform(noisy))
    assert denoised.shape == (2, 64, 80)
    assert np.all(np.isfinite(denoised))


def test_pipeline_dictionary_learning_inverse_gives_images(reference):
    """Check that a dictionary-learning pipeline maps images back to images."""
    X = reference.make_image((2, 16, 18), seed=5) - 1.0
    pipe = make_pipeline(
        PatchExtractor((7, 7), step=2),
        MiniBatchDictionaryLearning(
            n_components=12,
            transform_algorithm="omp",
            transform_n_nonzero_coefs=3,
            batch_size=32,
            max_iter=5,
            random_state=0,
        ),
    )
    pipe.fit(X)
    rebuilt = pipe.inverse_transform(pipe.transform(X))
    assert rebuilt.shape == X.shape
    assert rebuilt.dtype == X.dtype
    # Three atoms per patch explain part of the images: better than their mean.
    assert np.mean((rebuilt - X) ** 2) < np.mean((X - X.mean()) ** 2)


@pytest.mark.parametrize(
    ("shape", "patch_size"), [((3, 10, 12), (4, 5)), ((2, 9, 11, 3), (3, 3))]
)
def test_pipeline_full_rank_pca_reproduces_images(shape, patch_size, reference):
    """Check that PCA with every component reproduces the images to float precision."""
    X = reference.make_image(shape, seed=6)
    n_features = int(np.prod(patch_size)) * (3 if len(shape) == 4 else 1)
    pipe = make_pipeline(PatchExtractor(patch_size), PCA(n_components=n_features))
    pipe.fit(X)
    assert_allclose(pipe.inverse_transform(pipe.transform(X)), X, rtol=1e-10)


@pytest.mark.parametrize(("shape", "patch_size", "kwargs"), CASES, ids=CASE_IDS)
def test_transform_rows_are_engine_patches(shape, patch_size, kwargs, reference):
    """Check that the rows are extract_patches of each image, flattened, in order."""
    X = reference.make_image(shape, seed=7)
    rows = PatchExtractor(patch_size, **kwargs).fit(X).transform(X)
    channel_axis = _channel_axis(shape, patch_size)
    expected = np.concatenate(
        [
            extract_patches(
                image, patch_size, channel_axis=channel_axis, **kwargs
            ).reshape(-1, rows.shape[1])
            for image in X
        ]
    )
    assert_array_equal(rows, expected)


@pytest.mark.parametrize("shape", [(2, 7, 9), (2, 7, 9, 3)])
def test_transform_matches_sklearn_extract_patches_2d(shape, reference):
    """Check that step-1 rows equal scikit-learn's extract_patches_2d, flattened."""
    X = reference.make_image(shape, seed=8)
    rows = PatchExtractor((3, 4)).fit(X).transform(X)
    expected = np.concatenate(
        [extract_patches_2d(image, (3, 4)).reshape(len(rows) // 2, -1) for image in X]
    )
    assert_array_equal(rows, expected)


@pytest.mark.parametrize(("shape", "patch_size", "kwargs"), CASES, ids=CASE_IDS)
def test_round_trip_reproduces_images(shape, patch_size, kwargs, reference):
    """Check that inverse_transform(transform(X)) gives X back."""
    X = reference.make_image(shape, seed=9)
    extractor = PatchExtractor(patch_size, **kwargs).fit(X)
    assert_allclose(extractor.inverse_transform(extractor.transform(X)), X)


@pytest.mark.parametrize(
    ("weights", "aggregate"),
    [
        ("uniform", "mean"),
        ("hann", "mean"),
        (("gaussian", 0.7), "mean"),
        ("triangular", "mean"),
        ("uniform", "median"),
    ],
)
@pytest.mark.parametrize(("shape", "patch_size", "kwargs"), CASES, ids=CASE_IDS)
def test_inverse_transform_is_per_image_reconstruction(
    shape, patch_size, kwargs, weights, aggregate, reference
):
    """Check that inverse_transform rebuilds each image as reconstruct_from_patches."""
    X = reference.make_image(shape, seed=10)
    extractor = PatchExtractor(
        patch_size, weights=weights, aggregate=aggregate, **kwargs
    ).fit(X)
    rows = np.random.default_rng(0).random(extractor.transform(X).shape)
    images = extractor.inverse_transform(rows)
    per_image = np.split(rows, len(X))
    channel_axis = _channel_axis(shape, patch_size)
    for image, image_rows in zip(images, per_image, strict=True):
        expected = reconstruct_from_patches(
            image_rows.reshape(-1, *extractor.patch_shape_),
            X.shape[1:],
            channel_axis=channel_axis,
            weights=weights,
            aggregate=aggregate,
            **kwargs,
        )
        assert_allclose(image, expected, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.uint8, np.int64, np.bool_])
@pytest.mark.parametrize(("shape", "patch_size"), [((3, 12, 13), (4, 5)),
                                                   ((2, 9, 8, 2), (3, 3)),
                                                   ((2, 6, 7, 8), (3, 2, 4))])
def test_label_pipeline_round_trips_with_the_mode(shape, patch_size, dtype, reference):
    """Check that label images keep their dtype in patch rows and come back exactly."""
    X = (reference.make_image(shape, np.uint8, seed=4) // 80).astype(dtype)
    extractor = PatchExtractor(patch_size, step=2, aggregate="mode").fit(X)
    rows = extractor.transform(X)
    assert rows.dtype == dtype
    images = extractor.inverse_transform(rows)
    assert images.dtype == dtype
    np.testing.assert_array_equal(images, X)
    reconstructor = PatchReconstructor(X.shape[1:], patch_size, step=2,
                                       aggregate="mode").fit(rows)
    np.testing.assert_array_equal(reconstructor.transform(rows), X)


def test_mode_refuses_float_rows(reference):
    """Check that inverse_transform with aggregate='mode' names the float dtype."""
    X = (reference.make_image((2, 8, 9), np.uint8) // 80).astype(np.int32)
    extractor = PatchExtractor(3, aggregate="mode").fit(X)
    rows = extractor.transform(X).astype(np.float64)
    with pytest.raises(TypeError, match=reference.mentions("mode", "float64")):
        extractor.inverse_transform(rows)


def test_inverse_transform_with_weight_array(reference):
    """Check that an array of weights is used per image, channels included."""
    X = reference.make_image((2, 8, 9, 2), seed=11)
    weights = reference.make_image((3, 4, 2), seed=12)
    extractor = PatchExtractor((3, 4), step=2, weights=weights).fit(X)
    rows = np.random.default_rng(1).random(extractor.transform(X).shape)
    expected = reconstruct_from_patches(
        rows[: extractor.n_patches_per_image_].reshape(-1, 3, 4, 2),
        (8, 9, 2),
        step=2,
        channel_axis=-1,
        weights=weights,
    )
    assert_allclose(extractor.inverse_transform(rows)[0], expected, rtol=1e-12)


def test_fitted_attributes(reference):
    """Check that fit records the image shape, grid, patch shape and counts."""
    X = reference.make_image((4, 10, 12, 3), seed=13)
    extractor = PatchExtractor((4, 5), step=(2, 3)).fit(X)
    assert extractor.image_shape_ == (10, 12, 3)
    assert extractor.grid_.grid_shape == (4, 4)
    assert extractor.patch_shape_ == (4, 5, 3)
    assert extractor.n_patches_per_image_ == 16
    assert extractor.n_features_out_ == 60
    assert not hasattr(extractor, "n_features_in_")
    assert extractor.transform(X).shape == (4 * 16, 60)


def test_int_patch_size_means_2d_images(reference):
    """Check that an int patch_size reads 3-D X as gray and 4-D X as colour."""
    gray = reference.make_image((2, 6, 5), seed=14)
    colour = reference.make_image((2, 6, 5, 3), seed=15)
    assert PatchExtractor(2).fit(gray).patch_shape_ == (2, 2)
    assert PatchExtractor(2).fit(colour).patch_shape_ == (2, 2, 3)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float_dtype_preserved(dtype, reference):
    """Check that float32 and float64 stay so through transform and inverse."""
    X = reference.make_image((2, 8, 9), dtype=dtype, seed=16)
    extractor = PatchExtractor(3, step=2).fit(X)
    rows = extractor.transform(X)
    assert rows.dtype == dtype
    assert extractor.inverse_transform(rows).dtype == dtype


@pytest.mark.parametrize("dtype", [np.uint8, np.int32, bool])
def test_integer_and_bool_images_give_float64(dtype, reference):
    """Check that integer and boolean images give float64 patches of the same values."""
    X = reference.make_image((2, 6, 7), dtype=dtype, seed=17)
    extractor = PatchExtractor(3).fit(X)
    rows = extractor.transform(X)
    assert rows.dtype == np.float64
    assert_array_equal(rows, extractor.transform(X.astype(np.float64)))
    assert_allclose(extractor.inverse_transform(rows), X.astype(np.float64))


def test_rows_are_ordered_image_by_image(reference):
    """Check that a batch's rows are those of each image, concatenated."""
    X = reference.make_image((3, 8, 9, 2), seed=18)
    extractor = PatchExtractor(4, step=2).fit(X)
    expected = np.concatenate([extractor.transform(X[i : i + 1]) for i in range(3)])
    assert_array_equal(extractor.transform(X), expected)


def test_inverse_transform_accepts_several_whole_images(reference):
    """Check that inverse_transform takes any number of whole images of rows."""
    X = reference.make_image((3, 8, 9), seed=19)
    extractor = PatchExtractor(4, step=2).fit(X)
    rows = extractor.transform(X)
    one = extractor.inverse_transform(rows[: extractor.n_patches_per_image_])
    assert one.shape == (1, 8, 9)
    assert_allclose(one[0], X[0])


def test_fit_transform_without_max_patches_equals_transform(reference):
    """Check that fit_transform gives the full grid when max_patches is None."""
    X = reference.make_image((2, 8, 9), seed=20)
    extractor = PatchExtractor(3, step=2)
    assert_array_equal(extractor.fit_transform(X), extractor.transform(X))


@pytest.mark.parametrize(("max_patches", "per_image"), [(5, 5), (0.25, 14)])
def test_max_patches_subsamples_only_fit_transform(max_patches, per_image, reference):
    """Check that max_patches draws rows in fit_transform and transform is full."""
    X = reference.make_image((3, 9, 10), seed=21)
    extractor = PatchExtractor(3, max_patches=max_patches, random_state=0)
    sampled = extractor.fit_transform(X)
    full = extractor.transform(X)
    n_grid = extractor.n_patches_per_image_
    assert n_grid == 56
    assert sampled.shape == (3 * per_image, 9)
    assert full.shape == (3 * n_grid, 9)
    for i in range(3):
        block = sampled[i * per_image : (i + 1) * per_image]
        image_rows = full[i * n_grid : (i + 1) * n_grid]
        matches = (block[:, None, :] == image_rows[None]).all(axis=2)
        positions = matches.argmax(axis=1)
        assert matches.any(axis=1).all()
        assert np.all(np.diff(positions) > 0)
    assert_allclose(extractor.inverse_transform(full), X)


def test_max_patches_draw_is_seeded_and_differs_between_images(reference):
    """Check that random_state fixes the draw and each image gets its own draw."""
    X = np.stack([reference.make_image((9, 10), seed=22)] * 2)
    first = PatchExtractor(3, max_patches=6, random_state=1).fit_transform(X)
    again = PatchExtractor(3, max_patches=6, random_state=1).fit_transform(X)
    other = PatchExtractor(3, max_patches=6, random_state=2).fit_transform(X)
    assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert not np.array_equal(first[:6], first[6:])


def test_pipeline_fit_trains_on_the_subsample(reference):
    """Check that a pipeline's fit feeds max_patches rows to the next step."""
    X = reference.make_image((2, 9, 10), seed=23)
    pipe = make_pipeline(PatchExtractor(3, max_patches=20, random_state=0), PCA(4))
    pipe.fit(X)
    assert pipe[-1].n_samples_ == 2 * 20
    assert pipe.transform(X).shape == (2 * 56, 4)
    assert pipe.inverse_transform(pipe.transform(X)).shape == X.shape


def test_max_patches_larger_than_grid_is_refused(reference):
    """Check that fit refuses more patches per image than the grid holds."""
    X = reference.make_image((2, 5, 5), seed=24)
    with pytest.raises(ValueError, match=reference.mentions("(9)", "got 10")):
        PatchExtractor(3, max_patches=10).fit(X)


def test_uncovered_pixels_come_back_nan(reference):
    """Check that pixels no patch covers (step > patch) come back as NaN."""
    X = reference.make_image((1, 7, 7), seed=25)
    extractor = PatchExtractor(2, step=3).fit(X)
    images = extractor.inverse_transform(extractor.transform(X))
    covered = np.zeros((7, 7), dtype=bool)
    for origin in extractor.grid_.origins():
        covered[origin[0] : origin[0] + 2, origin[1] : origin[1] + 2] = True
    assert not covered.all()
    assert np.isnan(images[0][~covered]).all()
    assert_allclose(images[0][covered], X[0][covered])


@pytest.mark.parametrize(
    ("shape", "patch_size", "first", "last"),
    [
        ((1, 4, 4), (2, 3), "patch_0_0", "patch_1_2"),
        ((1, 4, 4, 3), 2, "patch_0_0_c0", "patch_1_1_c2"),
        ((1, 4, 4, 4), (2, 2, 3), "patch_0_0_0", "patch_1_1_2"),
    ],
)
def test_get_feature_names_out(shape, patch_size, first, last, reference):
    """Check that feature names follow the flattened patch order, channels last."""
    X = reference.make_image(shape, seed=26)
    extractor = PatchExtractor(patch_size).fit(X)
    names = extractor.get_feature_names_out()
    assert names.dtype == object
    assert len(names) == extractor.transform(X).shape[1]
    assert len(set(names)) == len(names)
    assert (names[0], names[-1]) == (first, last)
    if len(shape) == 4 and not isinstance(patch_size, tuple):
        assert names[1] == "patch_0_0_c1"


def test_get_feature_names_out_refuses_input_features_and_unfitted(reference):
    """Check that get_feature_names_out needs a fit and no input_features."""
    with pytest.raises(NotFittedError):
        PatchExtractor(2).get_feature_names_out()
    extractor = PatchExtractor(2).fit(reference.make_image((1, 4, 4)))
    with pytest.raises(ValueError, match=re.escape("got ['a', 'b']")):
        extractor.get_feature_names_out(["a", "b"])


def test_set_output_pandas_round_trip(reference):
    """Check that pandas output has the feature names and inverts to images."""
    pd = pytest.importorskip("pandas")
    X = reference.make_image((2, 6, 7, 3), seed=27)
    extractor = PatchExtractor(3, step=2).set_output(transform="pandas").fit(X)
    frame = extractor.transform(X)
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == list(extractor.get_feature_names_out())
    assert isinstance(extractor.fit_transform(X), pd.DataFrame)
    assert_allclose(extractor.inverse_transform(frame), X)


def test_reconstructor_accepts_pandas_rows(reference):
    """Check that the reconstructor fits on a DataFrame of patches and keeps names."""
    pytest.importorskip("pandas")
    X = reference.make_image((2, 6, 7), seed=32)
    extractor = PatchExtractor(3, step=2).set_output(transform="pandas").fit(X)
    frame = extractor.transform(X)
    reconstructor = PatchReconstructor((6, 7), 3, step=2).fit(frame)
    assert_array_equal(
        reconstructor.feature_names_in_, extractor.get_feature_names_out()
    )
    assert_allclose(reconstructor.transform(frame), X)


def test_transform_before_fit_raises_not_fitted(reference):
    """Check that transform and inverse_transform need fit first."""
    extractor = PatchExtractor(2)
    with pytest.raises(NotFittedError):
        extractor.transform(reference.make_image((1, 4, 4)))
    with pytest.raises(NotFittedError):
        extractor.inverse_transform(np.zeros((9, 4)))


@pytest.mark.parametrize(
    ("patch_size", "shape", "expected"),
    [
        (3, (8, 9), ("3 axes", "4 axes", "(8, 9)", "2 axes")),
        (3, (1, 2, 8, 9, 3), ("3 axes", "4 axes", "(1, 2, 8, 9, 3)", "5 axes")),
        ((3, 3, 3), (8, 9, 10), ("4 axes", "5 axes", "(8, 9, 10)", "3 axes")),
    ],
)
def test_wrong_ndim_is_refused(patch_size, shape, expected, reference):
    """Check that X with the wrong number of axes names expected and received."""
    with pytest.raises(ValueError, match=reference.mentions(*expected)):
        PatchExtractor(patch_size).fit(np.zeros(shape))


def test_wrong_image_shape_at_transform_is_refused(reference):
    """Check that transform refuses images of another shape than in fit."""
    extractor = PatchExtractor(3).fit(reference.make_image((2, 8, 9)))
    with pytest.raises(ValueError, match=reference.mentions("(8, 10)", "(8, 9)")):
        extractor.transform(reference.make_image((2, 8, 10)))
    with pytest.raises(ValueError, match=reference.mentions("(8, 9, 3)", "(8, 9)")):
        extractor.transform(reference.make_image((2, 8, 9, 3)))


def test_wrong_row_count_or_width_at_inverse_transform_is_refused(reference):
    """Check that inverse_transform names the row count and width it expected."""
    extractor = PatchExtractor((3, 4), step=2).fit(reference.make_image((2, 8, 9)))
    n = extractor.n_patches_per_image_
    assert n == 16
    match = reference.mentions("33 rows", "16 patches", "(8, 9)")
    with pytest.raises(ValueError, match=match):
        extractor.inverse_transform(np.zeros((2 * n + 1, 12)))
    match = reference.mentions("11 columns", "(3, 4)", "12 values")
    with pytest.raises(ValueError, match=match):
        extractor.inverse_transform(np.zeros((n, 11)))
    with pytest.raises(ValueError, match="Found array with dim 3"):
        extractor.inverse_transform(np.zeros((n, 3, 4)))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_values_are_refused(bad, reference):
    """Check that NaN or infinity in images or patch rows is an error with its place."""
    X = reference.make_image((2, 6, 7), seed=28)
    extractor = PatchExtractor(3).fit(X)
    X_bad = X.copy()
    X_bad[1, 2, 3] = bad
    match = reference.mentions("1 NaN or infinite", "(1, 2, 3)")
    with pytest.raises(ValueError, match=match):
        PatchExtractor(3).fit(X_bad)
    match = reference.mentions("1 NaN or infinite", "(1, 2, 3)")
    with pytest.raises(ValueError, match=match):
        extractor.transform(X_bad)
    rows = extractor.transform(X)
    rows[4, 5] = bad
    match = reference.mentions("1 NaN or infinite", "(4, 5)")
    with pytest.raises(ValueError, match=match):
        extractor.inverse_transform(rows)


def test_patch_larger_than_image_is_refused(reference):
    """Check that a patch larger than the images is refused at fit."""
    with pytest.raises(ValueError, match=reference.mentions("(9, 4)", "(8, 9)")):
        PatchExtractor((9, 4)).fit(reference.make_image((2, 8, 9)))


def test_incompatible_parameters_are_refused_at_fit(reference):
    """Check that fit refuses a median with weights and a misshapen weight array."""
    X = reference.make_image((2, 8, 9))
    with pytest.raises(ValueError, match=reference.mentions("median", "'hann'")):
        PatchExtractor(3, weights="hann", aggregate="median").fit(X)
    with pytest.raises(ValueError, match=reference.mentions("mode", "'gaussian'")):
        PatchExtractor(3, weights="gaussian", aggregate="mode").fit(X)
    with pytest.raises(ValueError, match=reference.mentions("(3, 3)", "(3, 4)")):
        PatchExtractor(3, weights=np.ones((3, 4))).fit(X)
    with pytest.raises(ValueError, match=reference.mentions("offset", "(2, 2)")):
        PatchExtractor(3, step=2, offset=2).fit(X)


def test_geometry_changed_after_fit_is_refused(reference):
    """Check that transform refuses geometry parameters changed since fit."""
    X = reference.make_image((2, 8, 9))
    extractor = PatchExtractor(3).fit(X)
    extractor.set_params(step=2)
    with pytest.raises(
        ValueError,
        match=reference.mentions("changed since fit", "step (1, 1)", "step (2, 2)"),
    ):
        extractor.transform(X)
    extractor.set_params(step=1, weights="hann")
    assert extractor.transform(X).shape == (2 * 42, 9)


def test_reconstructor_inverts_extractor(reference):
    """Check that PatchReconstructor.transform rebuilds PatchExtractor's rows."""
    X = reference.make_image((3, 9, 11, 2), seed=29)
    extractor = PatchExtractor(4, step=3, padding="reflect", weights="hann").fit(X)
    rows = np.random.default_rng(2).random(extractor.transform(X).shape)
    reconstructor = PatchReconstructor(
        (9, 11, 2), 4, step=3, padding="reflect", weights="hann"
    ).fit(rows)
    assert_allclose(reconstructor.transform(rows), extractor.inverse_transform(rows))
    assert_array_equal(reconstructor.inverse_transform(X), extractor.transform(X))
    assert reconstructor.n_features_in_ == 32
    assert reconstructor.image_shape_ == (9, 11, 2)


def test_reconstructor_volume_round_trip_float32(reference):
    """Check that a 3-D reconstructor round-trips float32 volumes as float32."""
    X = reference.make_image((2, 5, 6, 7), dtype=np.float32, seed=30)
    reconstructor = PatchReconstructor((5, 6, 7), (3, 3, 2), step=(2, 2, 1))
    rows = reconstructor.fit(np.zeros((36, 18))).inverse_transform(X)
    assert rows.dtype == np.float32
    images = reconstructor.transform(rows)
    assert images.dtype == np.float32
    assert_allclose(images, X, rtol=1e-6)


def test_pipeline_in_image_space(reference):
    """Check that extractor, patch step and reconstructor form an image pipeline."""
    X = reference.make_image((2, 8, 9), seed=31)
    pipe = make_pipeline(
        PatchExtractor(3, step=2),
        FunctionTransformer(lambda rows: 2.0 * rows),
        PatchReconstructor((8, 9), 3, step=2),
    )
    assert_allclose(pipe.fit_transform(X), 2.0 * X)
    assert_allclose(pipe.transform(X), 2.0 * X)


def test_reconstructor_refuses_bad_rows_and_image_shape(reference):
    """Check that the reconstructor names expected and received shapes."""
    reconstructor = PatchReconstructor((8, 9), (3, 4), step=2)
    with pytest.raises(ValueError, match=reference.mentions("11 columns", "12 values")):
        reconstructor.fit(np.zeros((16, 11)))
    with pytest.raises(ValueError, match=reference.mentions("15 rows", "16 patches")):
        reconstructor.fit(np.zeros((15, 12)))
    reconstructor.fit(np.zeros((16, 12)))
    with pytest.raises(ValueError, match=reference.mentions("17 rows", "16 patches")):
        reconstructor.transform(np.zeros((17, 12)))
    match = reference.mentions("11 features", "12 features")
    with pytest.raises(ValueError, match=match):
        reconstructor.transform(np.zeros((16, 11)))
    with pytest.raises(ValueError, match=reference.mentions("(8, 10)", "(8, 9)")):
        reconstructor.inverse_transform(np.zeros((1, 8, 10)))
    match = reference.mentions("2 spatial axes", "(8, 9, 3, 2)")
    with pytest.raises(ValueError, match=match):
        PatchReconstructor((8, 9, 3, 2), 3).fit(np.zeros((1, 9)))
    match = reference.mentions("image_shape", ">= 1", "(8, 0)")
    with pytest.raises(ValueError, match=match):
        PatchReconstructor((8, 0), 3).fit(np.zeros((1, 9)))


def test_reconstructor_refuses_image_shape_changed_after_fit(reference):
    """Check that a changed image_shape needs a new fit."""
    reconstructor = PatchReconstructor((6, 6), 3, step=3).fit(np.zeros((4, 9)))
    reconstructor.set_params(image_shape=(6, 7))
    match = reference.mentions("(6, 6)", "(6, 7)", "fit again")
    with pytest.raises(ValueError, match=match):
        reconstructor.transform(np.zeros((4, 9)))
