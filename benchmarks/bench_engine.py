"""Benchmark of the skpatch engine: patch extraction and overlap-adding reconstruction.

Run from the repository root::

    python benchmarks/bench_engine.py              # default run (about a minute)
    python benchmarks/bench_engine.py --quick      # smaller images, fewer rounds
    python benchmarks/bench_engine.py --repeat 15  # best of 15 timed rounds

What it measures, for three workloads
    (a) 512x512 float64, patch 8x8, step 1
    (b) 2048x2048 float32, patch 16x16, step 4
    (c) 128^3 float32 volume, patch 8^3, step 4

* the memory-copy limit: ``P.copy()`` of the contiguous patch matrix ``P`` (the
  cheapest possible way to produce, or to read once, an array of that size),
  measured in the same run;
* ``skpatch.extract_patches`` (contiguous ``(n, *patch)``, and reshaped to
  ``(n, n_features)``) and ``skpatch.reconstruct_from_patches``;
* scikit-learn's ``extract_patches_2d`` / ``reconstruct_from_patches_2d`` where
  they apply (2-D, step 1, i.e. workload (a)); the reconstruction is a Python
  loop, so it runs only twice instead of ``--repeat`` times;
* ``torch.nn.functional.unfold`` and ``fold(patches) / fold(ones)`` (2-D only),
  with torch limited to one thread so that every contender runs on a single core;
* the peak extra memory of ``skpatch.reconstruct_from_patches`` (bytes allocated
  during the call, output included, beyond its inputs), with ``tracemalloc``
  (numpy reports its buffers to it).

Every time is the best of N rounds after one warm-up run. A round runs every
contender of the workload once, in turn (copy, skpatch, scikit-learn, torch), so
that a slow spell of a shared machine falls on all of them alike rather than on
whichever was being timed. Each run has ``gc.collect()`` before it and is timed
with ``time.perf_counter``; freeing the previous result is not timed. The ratio
of each time to the copy limit and to skpatch is printed, and the performance
targets for workload (a) are reported as "target met" / "target missed". Speed
is reported, never asserted: the exit status is 0 either way.

The script imports the ``skpatch`` found on ``sys.path`` (e.g. via PYTHONPATH or
an install), falling back to the checkout this file lives in; the header prints
which one was used.
"""

import argparse
import gc
import math
import os
import platform
import sys
import time
import tracemalloc
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

MIB = 2**20
REPO_ROOT = Path(__file__).resolve().parent.parent


def _import_skpatch():
    try:
        import skpatch
    except ImportError:
        skpatch = None
    # Not importable, or only a namespace package (a checkout without __init__.py yet).
    if not hasattr(skpatch, "extract_patches"):
        sys.modules.pop("skpatch", None)
        sys.path.insert(0, str(REPO_ROOT))
        import skpatch
    return skpatch


def _import_optional(name):
    try:
        return __import__(name)
    except ImportError:
        return None


skpatch = _import_skpatch()
sklearn = _import_optional("sklearn")
torch = _import_optional("torch")
if sklearn is not None:
    from sklearn.feature_extraction.image import (
        extract_patches_2d,
        reconstruct_from_patches_2d,
    )
if torch is not None:
    from torch.nn.functional import fold as torch_fold
    from torch.nn.functional import unfold as torch_unfold

    torch.set_num_threads(1)


# --------------------------------------------------------------------------- workloads


@dataclass(frozen=True)
class Workload:
    key: str
    shape: tuple
    dtype: type
    patch: int
    step: int

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def patch_shape(self):
        return (self.patch,) * self.ndim

    def describe(self):
        def dims(t):
            return "x".join(map(str, t))

        return (
            f"{dims(self.shape)} {np.dtype(self.dtype).name}, "
            f"patch {dims(self.patch_shape)}, step {self.step}"
        )

    def make_image(self):
        return np.random.default_rng(0).random(self.shape, dtype=self.dtype)


WORKLOADS = (
    Workload("a", (512, 512), np.float64, 8, 1),
    Workload("b", (2048, 2048), np.float32, 16, 4),
    Workload("c", (128, 128, 128), np.float32, 8, 4),
)
QUICK_WORKLOADS = (
    Workload("a", (256, 256), np.float64, 8, 1),
    Workload("b", (1024, 1024), np.float32, 16, 4),
    Workload("c", (64, 64, 64), np.float32, 8, 4),
)

# Peak extra memory of reconstruction counts as "a few images" up to this many images.
FEW_IMAGES = 4


@dataclass(frozen=True)
class Target:
    label: str
    metric: str  # key into the metrics dict built by workload_metrics()
    op: str  # "<=" or ">="
    threshold: float
    unit: str  # how the measured value reads, e.g. "x copy"


TARGETS = {
    "a": (
        Target("extraction <= 1.2x copy", "extract_x_copy", "<=", 1.2, "x copy"),
        Target(
            "reconstruction <= 0.6x copy", "reconstruct_x_copy", "<=", 0.6, "x copy"
        ),
        Target(
            "reconstruction >= 10x faster than sklearn",
            "sklearn_over_skpatch",
            ">=",
            10,
            "x faster",
        ),
        Target(
            "reconstruction >= 3x faster than torch fold",
            "torch_over_skpatch",
            ">=",
            3,
            "x faster",
        ),
        Target(
            f"reconstruction peak extra memory <= {FEW_IMAGES} images",
            "peak_images",
            "<=",
            FEW_IMAGES,
            "x image",
        ),
        Target(
            "10% subset with origins <= 2x its copy",
            "subset_x_copy",
            "<=",
            2,
            "x subset copy",
        ),
        Target("median <= 6x the mean merge", "median_x_mean", "<=", 6, "x mean"),
        Target("mode <= 6x the mean merge", "mode_x_mean", "<=", 6, "x mean"),
    ),
    "b": (
        Target(
            "reconstruction <= 1.0x copy", "reconstruct_x_copy", "<=", 1.0, "x copy"
        ),
    ),
    "c": (
        Target("extraction <= 1.1x copy", "extract_x_copy", "<=", 1.1, "x copy"),
        Target(
            "reconstruction <= 1.0x copy", "reconstruct_x_copy", "<=", 1.0, "x copy"
        ),
    ),
}


# --------------------------------------------------------------------------- measuring


@dataclass
class Timing:
    op: str  # "copy", "extract" or "reconstruct"
    label: str
    seconds: float
    runs: int
    peer: str = ""  # short name used in the summary line ("" = skpatch / not a peer)


@dataclass
class Job:
    """One contender's call, timed by ``time_interleaved``; ``result`` is its output."""

    op: str
    label: str
    fn: object
    peer: str = ""
    runs: int = 0  # 0: every round; slow calls run in the first ``runs`` rounds only
    warmup: bool = True
    result: object = None


def time_interleaved(jobs, repeat):
    """Best wall time of every job over ``repeat`` rounds that each run every job once.

    Interleaving gives each contender the same share of a machine whose speed
    drifts (shared cores, memory bandwidth taken by neighbours): timing them one
    after the other would let a slow spell fall on one contender only.
    """
    for job in jobs:
        if job.warmup:
            job.result = job.fn()
    best = {id(job): math.inf for job in jobs}
    for round_ in range(repeat):
        for job in jobs:
            if job.runs and round_ >= job.runs:
                continue
            out = job.result = None  # free the previous result outside the timed region
            gc.collect()
            t0 = time.perf_counter()
            out = job.fn()
            best[id(job)] = min(best[id(job)], time.perf_counter() - t0)
            job.result = out
    return [
        Timing(
            job.op, job.label, best[id(job)], min(job.runs or repeat, repeat), job.peer
        )
        for job in jobs
    ]


def peak_extra_bytes(fn):
    """Peak bytes tracemalloc saw during ``fn()`` (earlier allocations excluded)."""
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def max_abs_diff(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


# --------------------------------------------------------------------------- contenders
# Each returns the jobs to time (a peer that does not apply returns a note instead),
# and a function that, once the jobs have run, checks their results.


def copy_jobs(patches):
    return [Job("copy", "P.copy()  (memory-copy limit)", patches.copy)]


def skpatch_jobs(w, image, patches):
    def extract():
        return skpatch.extract_patches(image, w.patch, step=w.step)

    def extract_flat():
        return extract().reshape(len(patches), -1)

    def reconstruct():
        return skpatch.reconstruct_from_patches(patches, w.shape, step=w.step)

    jobs = [
        Job("extract", "skpatch extract_patches -> (n, *patch)", extract),
        Job(
            "extract",
            f"skpatch extract_patches -> (n, {patches[0].size})",
            extract_flat,
        ),
        Job("reconstruct", "skpatch reconstruct_from_patches", reconstruct),
    ]

    def checks():
        out = jobs[2].result
        return [f"skpatch: round trip max |err| = {max_abs_diff(out, image):.2g}"]

    return jobs, checks


def merge_jobs(w, image, patches):
    """The other merges of workload (a): a random subset at origins, median, mode.

    The subset (10% of the patches, drawn once) is timed against a copy of its
    own patch matrix; the median and the mode against the mean merge of the full
    grid. Their inputs are the exact patches, as for the mean (every value of a
    pixel agrees), plus a noisy variant of each, reported without a target: the
    median of patches with Gaussian noise, the mode of votes of which a fifth
    are random among the 8 labels.
    """
    if w.key != "a":
        return "merges: median, mode and subset rows are run on (a) only"
    rng = np.random.default_rng(1)
    subset = np.sort(rng.choice(len(patches), len(patches) // 10, replace=False))
    grid = skpatch.PatchGrid(w.shape, w.patch, step=w.step)
    sub_patches, sub_origins = patches[subset], grid.origins()[subset]
    noisy = patches + 0.1 * rng.standard_normal(patches.shape)
    labels = skpatch.extract_patches((image * 8).astype(np.int64), w.patch, step=w.step)
    votes = labels.copy()
    flip = rng.random(votes.shape) < 0.2
    votes[flip] = rng.integers(0, 8, int(flip.sum()))

    def merge(values, **kwargs):
        return partial(
            skpatch.reconstruct_from_patches, values, w.shape, step=w.step, **kwargs
        )

    jobs = [
        Job("subset-copy", "P[subset].copy()  (10% of the patches)", sub_patches.copy),
        Job(
            "subset",
            "skpatch reconstruct, 10% subset with origins=",
            merge(sub_patches, origins=sub_origins),
        ),
        Job(
            "median",
            "skpatch reconstruct, aggregate='median'",
            merge(patches, aggregate="median"),
        ),
        Job(
            "mode",
            "skpatch reconstruct, aggregate='mode' (int64)",
            merge(labels, aggregate="mode"),
        ),
        Job(
            "median",
            "  same, noisy patches (no target)",
            merge(noisy, aggregate="median"),
            peer="noisy",
        ),
        Job(
            "mode",
            "  same, 20% random votes (no target)",
            merge(votes, aggregate="mode"),
            peer="noisy",
        ),
    ]

    def checks():
        same_labels = np.array_equal(jobs[3].result, (image * 8).astype(np.int64))
        return [
            f"merges: median == image {np.allclose(jobs[2].result, image)}, "
            f"mode == labels {same_labels}"
        ]

    return jobs, checks


def sklearn_jobs(w, image, patches, reference, repeat):
    if sklearn is None:
        return "sklearn: not installed"
    if w.ndim != 2 or w.step != 1:
        return (
            "sklearn: n/a (extract_patches_2d / reconstruct_from_patches_2d are 2-D,"
            " step 1 only)"
        )
    jobs = [
        Job(
            "extract",
            "sklearn extract_patches_2d",
            partial(extract_patches_2d, image, w.patch_shape),
            "sklearn",
        ),
        # A Python loop over patches: about a second a run, so two runs, no warm-up.
        Job(
            "reconstruct",
            "sklearn reconstruct_from_patches_2d",
            partial(reconstruct_from_patches_2d, patches, w.shape),
            "sklearn",
            runs=min(2, repeat),
            warmup=False,
        ),
    ]

    def checks():
        p, out = jobs[0].result, jobs[1].result
        return [
            f"sklearn: same patches as skpatch {np.array_equal(p, patches)}, "
            f"reconstruct max |diff| vs skpatch = {max_abs_diff(out, reference):.2g}"
        ]

    return jobs, checks


def torch_jobs(w, image, patches, reference):
    if torch is None:
        return "torch: not installed"
    if w.ndim != 2:
        return "torch: n/a (unfold/fold are 2-D only)"
    kw = {"kernel_size": w.patch, "stride": w.step}
    x = torch.from_numpy(image)[None, None]
    cols = torch_unfold(x, **kw)
    ones = torch.ones_like(cols)  # allocated outside the timed region

    def fold_average():
        return torch_fold(cols, w.shape, **kw) / torch_fold(ones, w.shape, **kw)

    jobs = [
        Job(
            "extract",
            "torch unfold -> (1, n_features, n)",
            partial(torch_unfold, x, **kw),
            "torch unfold",
        ),
        Job(
            "reconstruct",
            "torch fold(patches) / fold(ones)",
            fold_average,
            "torch fold",
        ),
    ]

    def checks():
        same = np.array_equal(cols[0].numpy(), patches.reshape(len(patches), -1).T)
        out = jobs[1].result
        return [
            f"torch: unfold == skpatch patches transposed {same}, fold max |diff| vs"
            f" skpatch = {max_abs_diff(out[0, 0].numpy(), reference):.2g}"
        ]

    return jobs, checks


# --------------------------------------------------------------------------- reporting


def fmt_s(seconds):
    return f"{seconds:.3g} s"


def vs_skpatch(t, t_sk):
    r = t / t_sk
    return (
        f"{r:.3g}x slower than skpatch"
        if r >= 1
        else f"{1 / r:.3g}x faster than skpatch"
    )


def print_timings(timings, t_copy, t_sk, repeat):
    order = {
        "copy": 0,
        "extract": 1,
        "reconstruct": 2,
        "subset-copy": 3,
        "subset": 4,
        "median": 5,
        "mode": 6,
    }
    for t in sorted(timings, key=lambda t: order[t.op]):
        line = f"    {t.op:<12} {t.label:<48} {fmt_s(t.seconds):>10}"
        if t.op in ("extract", "reconstruct"):
            line += f"  = {t.seconds / t_copy:5.2f}x copy"
        elif t.op == "subset":
            line += f"  = {t.seconds / t_sk['subset-copy']:5.2f}x subset copy"
        elif t.op in ("median", "mode"):
            line += f"  = {t.seconds / t_sk['reconstruct']:5.2f}x mean merge"
        if t.peer and t.op in ("extract", "reconstruct"):
            line += f"  ({vs_skpatch(t.seconds, t_sk[t.op])})"
        if t.runs != repeat:
            line += f"  [best of {t.runs}]"
        print(line)


def print_summary(key, timings, t_copy, t_sk):
    if "subset" in t_sk:
        print(
            f"  ({key}) merges       subset {fmt_s(t_sk['subset'])} = "
            f"{t_sk['subset'] / t_sk['subset-copy']:.2f}x subset copy | median "
            f"{fmt_s(t_sk['median'])} = {t_sk['median'] / t_sk['reconstruct']:.2f}x "
            f"mean | mode {fmt_s(t_sk['mode'])} = "
            f"{t_sk['mode'] / t_sk['reconstruct']:.2f}x mean"
        )
    for op in ("extract", "reconstruct"):
        parts = [f"skpatch {fmt_s(t_sk[op])} = {t_sk[op] / t_copy:.2f}x copy"]
        parts += [
            f"{t.peer} {fmt_s(t.seconds)} ({vs_skpatch(t.seconds, t_sk[op])})"
            for t in timings
            if t.op == op and t.peer
        ]
        print(f"  ({key}) {op:<12} " + " | ".join(parts))


def print_memory(peak, patch_bytes, image_bytes):
    print(
        f"    {'memory':<12} skpatch reconstruct peak extra {peak / MIB:.1f} MiB"
        f" = {peak / patch_bytes:.3f}x patch matrix = {peak / image_bytes:.2f}x image"
    )


def fmt_measured(value, unit):
    if unit == "x faster" and value < 1:
        return f"{1 / value:.3g}x slower"
    return f"{value:.3g}{unit}"


def print_targets(key, metrics):
    targets = TARGETS.get(key, ())
    if targets:
        print(f"  targets ({key}):")
    width = max((len(tg.label) for tg in targets), default=0)
    for tg in targets:
        value = metrics.get(tg.metric)
        if value is None:
            print(f"    {tg.label:<{width}}  n/a (peer not available)")
            continue
        met = value <= tg.threshold if tg.op == "<=" else value >= tg.threshold
        measured = fmt_measured(value, tg.unit)
        print(
            f"    {tg.label:<{width}}  measured {measured:<14} "
            f"{'target met' if met else 'target missed'}"
        )


def workload_metrics(timings, t_copy, t_sk, peak, image_bytes):
    rec = {t.peer: t.seconds for t in timings if t.op == "reconstruct" and t.peer}
    metrics = {
        "extract_x_copy": t_sk["extract"] / t_copy,
        "reconstruct_x_copy": t_sk["reconstruct"] / t_copy,
        "peak_images": peak / image_bytes,
    }
    if "subset" in t_sk:
        metrics["subset_x_copy"] = t_sk["subset"] / t_sk["subset-copy"]
        metrics["median_x_mean"] = t_sk["median"] / t_sk["reconstruct"]
        metrics["mode_x_mean"] = t_sk["mode"] / t_sk["reconstruct"]
    if "sklearn" in rec:
        metrics["sklearn_over_skpatch"] = rec["sklearn"] / t_sk["reconstruct"]
    if "torch fold" in rec:
        metrics["torch_over_skpatch"] = rec["torch fold"] / t_sk["reconstruct"]
    return metrics


# --------------------------------------------------------------------------- driver


def run_workload(w, repeat):
    """Time every contender on workload ``w`` and print its report."""
    image = w.make_image()
    patches = skpatch.extract_patches(image, w.patch, step=w.step)
    print(
        f"\n({w.key}) {w.describe()}: {len(patches):,} patches, "
        f"patch matrix {patches.nbytes / MIB:.1f} MiB, "
        f"image {image.nbytes / MIB:.1f} MiB"
    )
    reference = skpatch.reconstruct_from_patches(patches, w.shape, step=w.step)
    jobs, check_fns, notes = copy_jobs(patches), [], []
    for result in (
        skpatch_jobs(w, image, patches),
        merge_jobs(w, image, patches),
        sklearn_jobs(w, image, patches, reference, repeat),
        torch_jobs(w, image, patches, reference),
    ):
        if isinstance(result, str):
            notes.append(result)
        else:
            jobs += result[0]
            check_fns.append(result[1])
    timings = time_interleaved(jobs, repeat)
    checks = [line for check in check_fns for line in check()]
    for job in jobs:  # free the contenders' last results before measuring memory
        job.result = None
    peak = peak_extra_bytes(
        lambda: skpatch.reconstruct_from_patches(patches, w.shape, step=w.step)
    )

    t_copy = timings[0].seconds
    t_sk = {
        op: next(t.seconds for t in timings if t.op == op and not t.peer)
        for op in ("extract", "reconstruct", "subset-copy", "subset", "median", "mode")
        if any(t.op == op for t in timings)
    }
    print_timings(timings, t_copy, t_sk, repeat)
    print_memory(peak, patches.nbytes, reference.nbytes)
    for note in notes:
        print(f"    {note}")
    for check in checks:
        print(f"    check {check}")
    print_summary(w.key, timings, t_copy, t_sk)
    print_targets(
        w.key, workload_metrics(timings, t_copy, t_sk, peak, reference.nbytes)
    )


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def print_header(repeat, quick):
    def version(mod):
        return getattr(mod, "__version__", "?") if mod is not None else "not installed"

    print("skpatch engine benchmark" + (" (--quick)" if quick else ""))
    print(f"  skpatch {version(skpatch)} from {Path(skpatch.__file__).parent}")
    print(
        f"  python {platform.python_version()} | numpy {np.__version__} | "
        f"scikit-learn {version(sklearn)} | torch {version(torch)}"
    )
    print(
        f"  CPU: {cpu_name()} ({platform.machine()}), "
        f"os.cpu_count() = {os.cpu_count()}, "
        f"{platform.system()} {platform.release()}"
    )
    threads = (
        f"torch limited to {torch.get_num_threads()} thread" if torch else "torch n/a"
    )
    print(f"  threads: numpy single-threaded (copy/ufunc kernels), {threads}")
    print(
        f"  timing: best of {repeat} interleaved rounds after a warm-up (sklearn "
        f"reconstruct: best of {min(2, repeat)}, no warm-up); gc.collect() before each"
        " run"
    )
    print("  ratios: 'x copy' = time / P.copy() of the patch matrix; peers vs skpatch")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="smaller images, 3 repeats"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="timed rounds, best kept (default 9, --quick 3)",
    )
    parser.add_argument(
        "--workloads",
        default="abc",
        help="which workloads to run, e.g. 'a' or 'bc' (default all: abc)",
    )
    args = parser.parse_args(argv)
    if not set(args.workloads) <= {"a", "b", "c"}:
        parser.error(f"--workloads takes letters among a, b, c; got {args.workloads!r}")
    if args.repeat is None:
        args.repeat = 3 if args.quick else 9
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    print_header(args.repeat, args.quick)
    t0 = time.perf_counter()
    for w in QUICK_WORKLOADS if args.quick else WORKLOADS:
        if w.key in args.workloads:
            run_workload(w, args.repeat)
    print(f"\ntotal benchmark time {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
