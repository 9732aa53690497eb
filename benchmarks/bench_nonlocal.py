"""Benchmark of skpatch's non-local methods: the similar-patch search and NL-Bayes.

Run from the repository root::

    python benchmarks/bench_nonlocal.py            # default run (a few minutes)
    python benchmarks/bench_nonlocal.py --quick    # fewer rounds, no denoising
    python benchmarks/bench_nonlocal.py --repeat 5
    python benchmarks/bench_nonlocal.py --table    # PSNR over images and noise levels

What it measures, on scikit-image's ``camera`` (512x512, float64, Gaussian noise of
standard deviation 25/255 from ``np.random.default_rng(0)``), everything on one thread
(BLAS and OpenMP limited with threadpoolctl) but the ``n_jobs=2`` row:

* the search: ``skpatch.search_similar_patches`` with 5x5 patches, a 21x21 search
  window and 16 neighbours, for the references of a grid with step 1 (every patch)
  and step 2;
* scikit-image's ``denoise_nl_means`` (fast mode, ``patch_size=5``,
  ``patch_distance=10``: the same 21x21 window), whose cost is that of comparing
  every patch with its whole window (plus the weighted average, which is cheap);
* ``sklearn.neighbors.NearestNeighbors`` (brute force) fitted on exactly the
  candidates of each reference's window and queried for the reference: a Python
  loop, so it runs on 300 references and the time is scaled to all of them; its
  neighbours are checked against skpatch's;
* the denoiser: ``skpatch.denoise_nl_bayes`` with its defaults against
  ``bm3d.bm3d`` (``bm3d`` is not a dependency; the row is skipped when it is not
  importable), time and PSNR of the clipped estimate, and with ``n_jobs=2``;
* with ``--table``, the PSNR table of the user guide: six grey images at
  sigma 15, 25 and 50 and two colour images at 25 (``bm3d.bm3d_rgb`` in colour).

Times are the best of ``--repeat`` rounds; a round runs every contender once, in turn,
so that a slow spell of a shared machine falls on all of them alike. Ratios are
printed; nothing is asserted.
"""

import argparse
import gc
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent


def _import_skpatch():
    try:
        import skpatch
    except ImportError:
        skpatch = None
    if not hasattr(skpatch, "search_similar_patches"):
        sys.modules.pop("skpatch", None)
        sys.path.insert(0, str(REPO_ROOT))
        import skpatch
    return skpatch


skpatch = _import_skpatch()
from skimage import data  # noqa: E402
from skimage.restoration import denoise_nl_means  # noqa: E402
from sklearn.neighbors import NearestNeighbors  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

try:
    import bm3d
except ImportError:
    bm3d = None

PATCH, WINDOW, K, SIGMA = 5, 21, 16, 25 / 255


def timed(function):
    gc.collect()
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def best_of(contenders, repeat):
    """Best time of each contender over ``repeat`` interleaved rounds."""
    best = dict.fromkeys(contenders, np.inf)
    results = {}
    for _ in range(repeat):
        for name, function in contenders.items():
            elapsed, results[name] = timed(function)
            best[name] = min(best[name], elapsed)
    return best, results


def sklearn_window_search(image, references):
    """NearestNeighbors on the candidates of each reference's (shifted) window."""
    view = np.lib.stride_tricks.sliding_window_view(image, (PATCH, PATCH))
    n_positions = np.array(view.shape[:2])
    found = []
    for reference in references:
        start = np.clip(reference - WINDOW // 2, 0, n_positions - WINDOW)
        window = view[start[0] : start[0] + WINDOW, start[1] : start[1] + WINDOW]
        candidates = window.reshape(-1, PATCH * PATCH)
        model = NearestNeighbors(n_neighbors=K, algorithm="brute").fit(candidates)
        query = view[reference[0], reference[1]].reshape(1, -1)
        index = model.kneighbors(query, return_distance=False)[0]
        found.append(np.stack(np.unravel_index(index, (WINDOW, WINDOW)), -1) + start)
    return np.array(found)


def bench_search(noisy, repeat):
    n_sample = 300
    grid = skpatch.PatchGrid(noisy.shape, PATCH)
    sample = grid.origins()[:: grid.n_patches // n_sample][:n_sample]
    contenders = {
        "skpatch step 1": lambda: skpatch.search_similar_patches(
            noisy, PATCH, n_neighbors=K, search_window=WINDOW
        ),
        "skpatch step 2": lambda: skpatch.search_similar_patches(
            noisy, PATCH, n_neighbors=K, search_window=WINDOW, step=2
        ),
        "skimage nl_means (fast)": lambda: denoise_nl_means(
            noisy,
            patch_size=PATCH,
            patch_distance=WINDOW // 2,
            h=0.6 * SIGMA,
            sigma=SIGMA,
            fast_mode=True,
        ),
        f"sklearn NearestNeighbors ({n_sample} refs)": lambda: sklearn_window_search(
            noisy, sample
        ),
    }
    best, results = best_of(contenders, repeat)
    sklearn_name = list(contenders)[-1]
    scale = grid.n_patches / n_sample
    ours = best["skpatch step 1"]
    print(
        f"\nsearch: {grid.n_patches} references (step 1), 5x5 patches, "
        f"21x21 window, {K} neighbours; best of {repeat}"
    )
    for name, seconds in best.items():
        line = f"  {name:38s} {seconds:8.3f} s"
        if name == sklearn_name:
            seconds *= scale
            line += f"  -> {seconds:7.1f} s for all references"
        print(f"{line}  ({seconds / ours:6.1f} x skpatch step 1)")
    expected = skpatch.search_similar_patches(
        noisy, PATCH, n_neighbors=K, search_window=WINDOW, origins=sample
    )[0]
    same = np.mean(
        [
            {tuple(o) for o in a} == {tuple(o) for o in b}
            for a, b in zip(expected, results[sklearn_name], strict=True)
        ]
    )
    print(f"  same neighbour sets as NearestNeighbors: {same:.0%} of the sample")


def bench_denoise(clean, noisy, repeat):
    def psnr(estimate):
        return skpatch.metrics.peak_signal_noise_ratio(
            clean, np.clip(estimate, 0, 1), data_range=1
        )

    contenders = {
        "skpatch denoise_nl_bayes": lambda: skpatch.denoise_nl_bayes(noisy, SIGMA),
        "skpatch denoise_nl_bayes n_jobs=2": lambda: skpatch.denoise_nl_bayes(
            noisy, SIGMA, n_jobs=2
        ),
    }
    if bm3d is not None:
        contenders["bm3d.bm3d"] = lambda: bm3d.bm3d(noisy, SIGMA)
    best, results = best_of(contenders, repeat)
    print(f"\ndenoising camera, sigma 25/255; best of {repeat}")
    ours = best["skpatch denoise_nl_bayes"]
    for name, seconds in best.items():
        print(
            f"  {name:38s} {seconds:8.2f} s  {psnr(results[name]):6.2f} dB  "
            f"({seconds / ours:5.2f} x skpatch)"
        )
    if bm3d is None:
        print("  bm3d is not importable: no BM3D row")


GREY_IMAGES = ("camera", "coins", "brick", "grass", "gravel", "clock")
COLOUR_IMAGES = ("chelsea", "astronaut")


def psnr_table():
    """NL-Bayes (and BM3D when importable) over images and noise levels, in dB."""
    cases = [(name, s) for name in GREY_IMAGES for s in (15, 25, 50)]
    cases += [(name, 25) for name in COLOUR_IMAGES]
    print("\nPSNR (dB) of the clipped estimate, noise from default_rng(0)")
    header = "  image      s   NL-Bayes  time (s)"
    print(header + ("      BM3D  time (s)   diff" if bm3d is not None else ""))
    differences = []
    for name, s in cases:
        clean = getattr(data, name)().astype(np.float64) / 255
        colour = clean.ndim == 3
        sigma = s / 255
        noisy = clean + sigma * np.random.default_rng(0).standard_normal(clean.shape)
        seconds, ours = timed(
            partial(
                skpatch.denoise_nl_bayes,
                noisy,
                sigma,
                channel_axis=-1 if colour else None,
            )
        )
        ours_db = skpatch.metrics.peak_signal_noise_ratio(
            clean, np.clip(ours, 0, 1), data_range=1
        )
        line = f"  {name:9s} {s:3d}   {ours_db:8.2f}  {seconds:8.2f}"
        if bm3d is not None:
            reference = bm3d.bm3d_rgb if colour else bm3d.bm3d
            ref_seconds, theirs = timed(partial(reference, noisy, sigma))
            ref_db = skpatch.metrics.peak_signal_noise_ratio(
                clean, np.clip(theirs, 0, 1), data_range=1
            )
            differences.append(ours_db - ref_db)
            line += f"  {ref_db:8.2f}  {ref_seconds:8.2f}  {ours_db - ref_db:+5.2f}"
        print(line, flush=True)
    if differences:
        print(f"  mean difference {np.mean(differences):+.2f} dB")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--table", action="store_true")
    args = parser.parse_args(argv)
    repeat = 1 if args.quick else args.repeat
    clean = data.camera().astype(np.float64) / 255
    noisy = clean + SIGMA * np.random.default_rng(0).standard_normal(clean.shape)
    print(f"skpatch {skpatch.__version__} from {Path(skpatch.__file__).parent}")
    with threadpool_limits(limits=1):
        if args.table:
            psnr_table()
            return
        bench_search(noisy, repeat)
        if not args.quick:
            bench_denoise(clean, noisy, repeat)


if __name__ == "__main__":
    main()
