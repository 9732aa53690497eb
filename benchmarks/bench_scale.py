"""Benchmark of skpatch at scale: threads over tiles, and dask on a cluster.

Run from the repository root (each part on its own; they need the machine's
cores free, so run them when nothing else is)::

    python benchmarks/bench_scale.py threads            # 2048^2, n_jobs=2 vs None
    python benchmarks/bench_scale.py zarr               # 8192^2 zarr, 1 vs 2 workers
    python benchmarks/bench_scale.py volume             # 512^3 zarr volume, 2 workers
    python benchmarks/bench_scale.py zarr --rounds 2    # best of 2 interleaved runs
    python benchmarks/bench_scale.py threads --size 512 --rounds 2   # a quick look

``threads``
    A 2048x2048 float32 noisy image (scikit-image's camera, tiled) denoised by
    :class:`PatchDenoiser` with a 100-atom dictionary and ``noise_sigma``
    (error-constrained coding), 8x8 patches, step 1, with ``n_jobs=None`` (as
    it is, and with BLAS held to one thread) and ``n_jobs=2``, in interleaved
    rounds; prints every time (wall and CPU), the best of each, the speed-ups
    and the largest difference between the results.
``zarr``
    An 8192x8192 float32 image (256 MiB) written to a zarr store in a temporary
    folder, denoised by dask into another zarr store on a ``LocalCluster`` of 1
    and then 2 worker processes with a 1 GiB memory limit each (one thread per
    worker). Prints the wall times, the speed-up, each worker's peak resident
    memory, whether a worker restarted or logged a memory warning, and the
    largest difference on a 1024x1024 crop against the in-memory result of the
    same crop plus its halo.
``volume``
    A 512^3 float32 volume (512 MiB) with 8^3 patches and step 2, the same way
    on 2 workers (``--workers 1 2`` to compare).

Temporary zarr stores are removed at the end. Speed is reported, never
asserted: the exit status is 0 either way.
"""

import argparse
import os
import re
import resource
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
SIGMA = 0.1
MEMORY_WARNINGS = re.compile(
    r"memory use is high|memory limit|restarting worker|worker .* exceeded|"
    r"paused|spill",
    re.IGNORECASE,
)


def _import_skpatch():
    try:
        import skpatch
    except ImportError:
        sys.path.insert(0, str(REPO_ROOT))
        import skpatch
    return skpatch


skpatch = _import_skpatch()


def noisy_image(shape, seed=0, origin=(0,) * 3):
    """A block of a large noisy image, float32: scikit-image's camera, tiled.

    The 512x512 camera is mirrored into a seamless period of 1024 pixels along
    each axis (its natural statistics give patches that need atoms, unlike a
    smooth pattern), a volume is made of shifted copies of it, and white noise
    of standard deviation 0.1 seeded by the block's origin is added.
    """
    from skimage import data

    camera = data.camera().astype(np.float32) / 255
    period = np.concatenate([camera, camera[::-1]])
    period = np.concatenate([period, period[:, ::-1]], axis=1)
    index = [(np.arange(n) + o) % 1024 for n, o in zip(shape, origin, strict=False)]
    clean = period[np.ix_(index[-2], index[-1])] if len(shape) > 1 else period[0]
    if len(shape) == 3:
        shifts = index[0][:, None, None]
        clean = period[
            (index[1][None, :, None] + shifts) % 1024,
            (index[2][None, None, :] + 3 * shifts) % 1024,
        ]
    rng = np.random.default_rng([seed, *origin])
    return (clean + SIGMA * rng.standard_normal(shape)).astype(np.float32)


def fitted_denoiser(patch_size, step=1, n_components=100):
    """A PatchDenoiser with a dictionary trained on a 256^ndim sample image."""
    from sklearn.decomposition import MiniBatchDictionaryLearning

    model = MiniBatchDictionaryLearning(
        n_components=n_components,
        alpha=0.2,
        max_iter=2,
        batch_size=256,
        fit_algorithm="cd",
        random_state=0,
    )
    denoiser = skpatch.PatchDenoiser(
        model,
        patch_size=patch_size,
        step=step,
        max_patches=10000,
        noise_sigma=SIGMA,
        random_state=0,
    )
    sample = noisy_image((256,) * len(patch_size), seed=1, origin=(128,) * 3)
    sample = sample.astype(np.float64)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        denoiser.fit(sample[None])
    print(
        f"dictionary of {n_components} atoms fitted in "
        f"{time.perf_counter() - start:.1f} s"
    )
    return denoiser


def header(title):
    from threadpoolctl import threadpool_info

    load = os.getloadavg()
    blas = [(i["internal_api"], i["num_threads"]) for i in threadpool_info()]
    print(f"== {title}")
    print(
        f"skpatch {skpatch.__version__} from {Path(skpatch.__file__).parent}; "
        f"numpy {np.__version__}; cpus {os.cpu_count()}; BLAS {blas}"
    )
    print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


def bench_threads(args):
    from threadpoolctl import threadpool_limits

    header(f"threads: {args.size}x{args.size} float32, 8x8, step 1")
    image = noisy_image((args.size, args.size))[None]
    denoiser = fitted_denoiser((8, 8))
    # n_jobs=None as a user runs it (BLAS with its default threads), the same
    # held to one BLAS thread (a single core), and two tile threads.
    contenders = {"None": (None, None), "None, BLAS 1": (None, 1), "2": (2, None)}
    times = {name: [] for name in contenders}
    results = {}
    for round_ in range(args.rounds):
        for name, (n_jobs, blas) in contenders.items():
            denoiser.set_params(n_jobs=n_jobs)
            with threadpool_limits(limits=blas, user_api="blas"):
                cpu, start = os.times(), time.perf_counter()
                results[name] = denoiser.transform(image)
                wall, cpu_end = time.perf_counter() - start, os.times()
            used = cpu_end.user - cpu.user + cpu_end.system - cpu.system
            times[name].append(wall)
            print(
                f"round {round_}: n_jobs={name:<13} {wall:6.2f} s wall, "
                f"{used:6.2f} s cpu, load {os.getloadavg()[0]:.2f}",
                flush=True,
            )
        times.setdefault("2 processes", []).append(two_processes(denoiser, image))
        print(
            f"round {round_}: 2 processes, one half each (BLAS 1): "
            f"{times['2 processes'][-1]:6.2f} s wall",
            flush=True,
        )
    best = {name: min(t) for name, t in times.items()}
    diff = float(np.abs(results["None"] - results["2"]).max())
    print(
        f"best of {args.rounds}: "
        + ", ".join(f"n_jobs={name} {t:.2f} s" for name, t in best.items())
    )
    print(
        f"speed-up n_jobs=2 vs None: {best['None'] / best['2']:.2f}x, vs None "
        f"with one BLAS thread: {best['None, BLAS 1'] / best['2']:.2f}x "
        f"(target 1.7x); max |difference| {diff:.2e}, dtype {results['2'].dtype}"
    )
    ceiling = best["None, BLAS 1"] / best["2 processes"]
    print(
        f"the machine's own ceiling: two processes on a half each take "
        f"{best['2 processes']:.2f} s, {ceiling:.2f}x faster than one process on "
        f"the whole"
    )
    load = os.getloadavg()
    print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


def two_processes(denoiser, image):
    """Wall time of two processes denoising one half of the image each, at once.

    No threads and one BLAS thread each: how much faster two cores of this
    machine do independent work than one, the ceiling of any n_jobs=2.
    """
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    half = image.shape[1] // 2
    parts = [image[:, :half], image[:, half:]]
    barrier, queue = context.Barrier(3), context.Queue()
    workers = [
        context.Process(target=_denoise_part, args=(denoiser, part, barrier, queue))
        for part in parts
    ]
    for worker in workers:
        worker.start()
    barrier.wait()
    start = time.perf_counter()
    ends = [queue.get() for _ in workers]
    for worker in workers:
        worker.join()
    return max(ends) - start


def _denoise_part(denoiser, part, barrier, queue):
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        denoiser.set_params(n_jobs=None).transform(part[:, :64])  # warm up
        barrier.wait()
        denoiser.transform(part)
    queue.put(time.perf_counter())


def write_zarr_input(path, shape, chunks):
    """Write the noisy image to a zarr store chunk by chunk (never all in memory)."""
    import dask.array as da

    def block(block_info=None):
        location = block_info[None]["array-location"]
        return noisy_image(
            tuple(b - a for a, b in location), origin=tuple(a for a, _ in location)
        )

    lazy = da.map_blocks(
        block,
        chunks=chunks_for(shape, chunks),
        dtype=np.float32,
        meta=np.empty((0,) * len(shape), np.float32),
    )
    lazy.to_zarr(str(path))


def chunks_for(shape, chunks):
    return tuple(
        (c,) * (n // c) + ((n % c,) if n % c else ())
        for n, c in zip(shape, chunks, strict=True)
    )


def worker_malloc_environ(default_malloc):
    """glibc settings for the worker processes (see docs/large_images.rst).

    distributed sets ``MALLOC_TRIM_THRESHOLD_=65536`` in its workers, which
    also freezes glibc's mmap threshold at 128 KiB: every batch array is then
    fresh memory, and the page faults triple the time of patch work. A 32 MiB
    mmap threshold and a 128 MiB trim threshold let batches reuse the heap.
    """
    if default_malloc:
        return {}
    key = "distributed.nanny.pre-spawn-environ."
    return {
        key + "MALLOC_MMAP_THRESHOLD_": 2**25,
        key + "MALLOC_TRIM_THRESHOLD_": 2**27,
    }


def run_on_cluster(n_workers, denoiser, source, target, args):
    """Denoise the zarr store ``source`` into ``target`` on a fresh LocalCluster."""
    import dask
    import dask.array as da
    from distributed import Client, LocalCluster

    with (
        dask.config.set(worker_malloc_environ(args.default_malloc)),
        LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            memory_limit=args.memory_limit,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        Client(cluster) as client,
    ):
        workers_before = set(client.scheduler_info()["workers"])
        image = da.from_zarr(str(source))
        lazy = denoiser.transform(image[None])[0]
        start = time.perf_counter()
        lazy.to_zarr(str(target), overwrite=True)
        elapsed = time.perf_counter() - start
        workers_after = set(client.scheduler_info()["workers"])
        peaks = client.run(_peak_rss_mib)
        logs = client.get_worker_logs()
        warnings_seen = [
            line
            for lines in logs.values()
            for _, line in lines
            if MEMORY_WARNINGS.search(line)
        ]
    restarted = workers_before != workers_after
    peaks_text = ", ".join(f"{p:.0f}" for p in peaks.values())
    print(
        f"{n_workers} worker(s): {elapsed:.1f} s; peak worker RSS {peaks_text} MiB; "
        f"restarted: {restarted}; memory warnings: {len(warnings_seen)}",
        flush=True,
    )
    for line in warnings_seen[:5]:
        print("   ", line)
    return elapsed


def _peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def check_crop(denoiser, source, target, crop, halo):
    """Max |difference| between the zarr output and memory on a crop plus halo."""
    import zarr

    inp, out = (
        zarr.open_array(str(source), mode="r"),
        zarr.open_array(str(target), mode="r"),
    )
    outer = tuple(slice(s.start - halo, s.stop + halo) for s in crop)
    inner = tuple(slice(halo, -halo) for _ in crop)
    expected = denoiser.set_params(n_jobs=None).transform(inp[outer][None])[0][inner]
    return float(np.abs(out[crop] - expected).max())


def bench_dask(args, shape, chunks, patch_size, step, crop):
    title = "x".join(map(str, shape))
    header(
        f"{args.part}: {title} float32 zarr, patch {patch_size}, step {step}, "
        f"chunks {chunks}, memory limit {args.memory_limit} per worker"
    )
    print(f"worker malloc settings: {worker_malloc_environ(args.default_malloc)}")
    denoiser = fitted_denoiser(patch_size, step=step)
    folder = Path(tempfile.mkdtemp(prefix="skpatch-bench-", dir=args.tmp))
    try:
        source, target = folder / "noisy.zarr", folder / "denoised.zarr"
        start = time.perf_counter()
        write_zarr_input(source, shape, chunks)
        size = sum(f.stat().st_size for f in source.rglob("*") if f.is_file())
        print(
            f"input written in {time.perf_counter() - start:.1f} s "
            f"({size / 2**20:.0f} MiB on disk at {folder})"
        )
        times = {n: [] for n in args.workers}
        for _ in range(args.rounds):
            for n in args.workers:
                times[n].append(run_on_cluster(n, denoiser, source, target, args))
        best = {n: min(t) for n, t in times.items()}
        print(
            "best of " + ", ".join(f"{n} worker(s) {t:.1f} s" for n, t in best.items())
        )
        if len(best) > 1:
            one, two = best[min(best)], best[max(best)]
            print(
                f"speed-up {max(best)} vs {min(best)} workers: {one / two:.2f}x "
                f"(target 1.7x)"
            )
        # A halo that is a multiple of the step keeps the crop's grid on the global
        # grid (the crops start on multiples of the step).
        halo = -(-(max(patch_size) - 1) // step) * step
        diff = check_crop(denoiser, source, target, crop, halo)
        print(f"crop {crop}: max |difference| to the in-memory result {diff:.2e}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    load = os.getloadavg()
    print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("part", choices=["threads", "zarr", "volume"])
    parser.add_argument("--size", type=int, default=None, help="image side")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--workers", type=int, nargs="+", default=None)
    parser.add_argument("--memory-limit", default="1GiB")
    parser.add_argument("--tmp", default=None, help="folder for the zarr stores")
    parser.add_argument(
        "--default-malloc",
        action="store_true",
        help="keep distributed's MALLOC_TRIM_THRESHOLD_ in the workers",
    )
    args = parser.parse_args()
    if args.part == "threads":
        args.rounds = args.rounds or 3
        args.size = args.size or 2048
        bench_threads(args)
    elif args.part == "zarr":
        args.rounds = args.rounds or 1
        size = args.size or 8192
        args.workers = args.workers or [1, 2]
        side, chunk = min(1024, size // 4), min(1024, size // 4)
        crop = (
            slice(size // 2 - side // 2, size // 2 + side // 2),
            slice(size // 2 - side // 4, size // 2 + 3 * side // 4),
        )
        bench_dask(args, (size, size), (chunk, chunk), (8, 8), 1, crop)
    else:
        args.rounds = args.rounds or 1
        size = args.size or 512
        args.workers = args.workers or [2]
        half, chunk = size // 2, min(128, size // 4)
        crop = (slice(half - 32, half + 32),) * 3
        bench_dask(args, (size,) * 3, (chunk,) * 3, (8, 8, 8), 2, crop)


if __name__ == "__main__":
    main()
