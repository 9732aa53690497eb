# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, nonecheck=False
"""Compiled loops of the patch engine: copy patches out, add them back, select per pixel.

Every kernel sees patches as a 2-D array, one row of values per patch, and a canvas
(the image, or the sums being built) as a flat C-contiguous array. Patch ``i = o *
len(inner) + j`` sits at flat offset ``outer[o] + inner[j]`` in the canvas: a full grid
is its leading axes (``outer``) times its last axis (``inner``), so no offset per
patch is ever stored, and patches at arbitrary origins are ``outer = origins``,
``inner = [0]``. ``row_offsets[r]`` is the flat offset of a patch's row ``r`` from its
first value. A *row* is the run of values contiguous in both the patch and the
canvas: the last patch axis with its channels. The Python layer works these offsets
out from the geometry (``PatchGrid._flat_origins`` and ``PatchGrid._row_offsets``),
checks every shape, bound and dtype, and allocates every output: the kernels only
loop, with the GIL released so that several threads can run them at once.
"""

from libc.math cimport NAN, fabs, isfinite
from libc.stdint cimport (
    int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t,
)
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

ctypedef fused floating:
    float
    double

# Sized integers match numpy's int8 ... uint64 on every platform.
ctypedef fused label:
    int8_t
    int16_t
    int32_t
    int64_t
    uint8_t
    uint16_t
    uint32_t
    uint64_t

# The values a median or a mode is taken over.
ctypedef fused value:
    float
    double
    int8_t
    int16_t
    int32_t
    int64_t
    uint8_t
    uint16_t
    uint32_t
    uint64_t


# --------------------------------------------------------------------- extraction


def gather_patches(const unsigned char[::1] canvas, unsigned char[:, ::1] out,
                   const Py_ssize_t[::1] outer, const Py_ssize_t[::1] inner,
                   const Py_ssize_t[::1] row_offsets):
    """Copy patch ``i`` of the canvas into ``out[i]``; everything in bytes."""
    with nogil:
        _gather(canvas, out, outer, inner, row_offsets)


cdef void _gather(const unsigned char[::1] canvas, unsigned char[:, ::1] out,
                  const Py_ssize_t[::1] outer, const Py_ssize_t[::1] inner,
                  const Py_ssize_t[::1] row_offsets) noexcept nogil:
    cdef Py_ssize_t n_rows = row_offsets.shape[0], n_inner = inner.shape[0]
    cdef Py_ssize_t row_bytes = out.shape[1] // n_rows
    cdef Py_ssize_t o, j, r
    cdef unsigned char *target = &out[0, 0]
    cdef const unsigned char *source
    for o in range(out.shape[0] // n_inner):
        for j in range(n_inner):
            source = &canvas[outer[o] + inner[j]]
            for r in range(n_rows):
                _copy_row(target, source + row_offsets[r], row_bytes)
                target += row_bytes


cdef inline void _copy_row(unsigned char *target, const unsigned char *source,
                           Py_ssize_t n_bytes) noexcept nogil:
    # A memcpy of a size known at compile time is a few moves instead of a call,
    # and patch rows are short: these sizes cover 8 to 16 values of 4 or 8 bytes.
    if n_bytes == 32:
        memcpy(target, source, 32)
    elif n_bytes == 64:
        memcpy(target, source, 64)
    elif n_bytes == 128:
        memcpy(target, source, 128)
    else:
        memcpy(target, source, n_bytes)


# ------------------------------------------------------------------- overlap-add


def add_patches(double[::1] canvas, const floating[:, ::1] patches,
                const Py_ssize_t[::1] outer, const Py_ssize_t[::1] inner,
                const Py_ssize_t[::1] row_offsets, const double[::1] window=None,
                double[::1] weights=None):
    """``canvas[patch i] += patches[i]``, times ``window`` (one weight per value).

    With ``weights``, a canvas laid out as ``canvas``, the window (1 where it is
    None) is added there too, for the weighted mean.
    """
    with nogil:
        if window is None:
            # One pass for both canvases: the weights are added where the values are.
            _add_patches(canvas, patches, outer, inner, row_offsets,
                         NULL if weights is None else &weights[0])
        else:
            _add_weighted_patches(canvas, patches, outer, inner, row_offsets, window)
            if weights is not None:
                _add_windows(weights, patches.shape[0], outer, inner, row_offsets,
                             patches.shape[1], window)


cdef inline void _add_row(double *target, const floating *values,
                          Py_ssize_t length) noexcept nogil:
    # Rows of 8 values (8x8 patches, the common case) get a loop of known length
    # over values loaded first: the compiler then knows the stores cannot change
    # the values and adds them in vector registers.
    cdef double row[8]
    cdef Py_ssize_t k
    if length == 8:
        for k in range(8):
            row[k] = values[k]
        for k in range(8):
            target[k] += row[k]
    else:
        for k in range(length):
            target[k] += values[k]


cdef inline void _add_ones(double *target, Py_ssize_t length) noexcept nogil:
    cdef Py_ssize_t k
    if length == 8:
        for k in range(8):
            target[k] += 1.0
    else:
        for k in range(length):
            target[k] += 1.0


cdef void _add_patches(double[::1] canvas, const floating[:, ::1] patches,
                       const Py_ssize_t[::1] outer, const Py_ssize_t[::1] inner,
                       const Py_ssize_t[::1] row_offsets,
                       double *weights) noexcept nogil:
    """Add the patches; with ``weights`` (not NULL), add 1 there for each value."""
    cdef Py_ssize_t n_rows = row_offsets.shape[0], n_inner = inner.shape[0]
    cdef Py_ssize_t length = patches.shape[1] // n_rows
    cdef Py_ssize_t o, j, r, at
    cdef double *sums = &canvas[0]
    cdef const floating *values = &patches[0, 0]
    for o in range(patches.shape[0] // n_inner):
        for j in range(n_inner):
            for r in range(n_rows):
                at = outer[o] + inner[j] + row_offsets[r]
                _add_row(sums + at, values, length)
                if weights != NULL:
                    _add_ones(weights + at, length)
                values += length


cdef void _add_weighted_patches(double[::1] canvas, const floating[:, ::1] patches,
                                const Py_ssize_t[::1] outer,
                                const Py_ssize_t[::1] inner,
                                const Py_ssize_t[::1] row_offsets,
                                const double[::1] window) noexcept nogil:
    cdef Py_ssize_t n_rows = row_offsets.shape[0], n_inner = inner.shape[0]
    cdef Py_ssize_t length = patches.shape[1] // n_rows
    cdef Py_ssize_t o, j, r, k
    cdef double *corner
    cdef double *target
    cdef const floating *values = &patches[0, 0]
    cdef const double *weights
    for o in range(patches.shape[0] // n_inner):
        for j in range(n_inner):
            corner = &canvas[outer[o] + inner[j]]
            weights = &window[0]
            for r in range(n_rows):
                target = corner + row_offsets[r]
                for k in range(length):
                    target[k] += values[k] * weights[k]
                values += length
                weights += length


cdef void _add_windows(double[::1] canvas, Py_ssize_t n_patches,
                       const Py_ssize_t[::1] outer, const Py_ssize_t[::1] inner,
                       const Py_ssize_t[::1] row_offsets, Py_ssize_t n_values,
                       const double[::1] window) noexcept nogil:
    """Add the window at the origin of every patch (a uniform window is added
    by ``_add_patches``, in the same pass as the values)."""
    cdef Py_ssize_t n_rows = row_offsets.shape[0], n_inner = inner.shape[0]
    cdef Py_ssize_t length = n_values // n_rows
    cdef Py_ssize_t o, j, r
    for o in range(n_patches // n_inner):
        for j in range(n_inner):
            for r in range(n_rows):
                _add_row(&canvas[outer[o] + inner[j] + row_offsets[r]],
                         &window[r * length], length)


def divide_rows(floating[:, ::1] out, const double[::1] sums,
                const Py_ssize_t[::1] row_starts, const double[::1] row_scale,
                const double[::1] column_scale, const double[::1] weights=None):
    """Write the weighted mean of every canvas value into ``out``; row by row.

    Row ``r`` of the image is ``sums[row_starts[r]:][:out.shape[1]]``. Without
    ``weights`` the mean is the sum times ``row_scale[r] * column_scale[c]`` (the
    inverse of a separable weight map, NaN where nothing covers); with them, it
    is the sum divided by the weights at the same place (NaN where they are 0).
    Returns whether every sum was finite.
    """
    cdef Py_ssize_t r, c, length = out.shape[1]
    cdef const double *row
    cdef const double *row_weights
    cdef floating *target
    cdef double scale
    cdef bint finite = True
    with nogil:
        for r in range(out.shape[0]):
            row = &sums[row_starts[r]]
            target = &out[r, 0]
            finite &= _row_finite(row, length)
            if weights is None:
                scale = row_scale[r]
                for c in range(length):
                    target[c] = row[c] * scale * column_scale[c]
            else:
                row_weights = &weights[row_starts[r]]
                # Where nothing covers, both are 0 and 0 / 0 is the NaN wanted (a
                # value under a zero weight adds 0 to the sum): no branch, so
                # the loop runs in vector registers.
                for c in range(length):
                    target[c] = row[c] / row_weights[c]
    return finite


cdef inline bint _row_finite(const double *values, Py_ssize_t n) noexcept nogil:
    # x - x is 0 for a finite x, NaN for NaN or infinity; four sums keep four
    # independent chains of additions instead of one.
    cdef double s0 = 0, s1 = 0, s2 = 0, s3 = 0
    cdef Py_ssize_t c = 0
    while c + 4 <= n:
        s0 += values[c] - values[c]
        s1 += values[c + 1] - values[c + 1]
        s2 += values[c + 2] - values[c + 2]
        s3 += values[c + 3] - values[c + 3]
        c += 4
    while c < n:
        s0 += values[c] - values[c]
        c += 1
    return s0 + s1 + s2 + s3 == 0


# ----------------------------------------------------- per-value median and mode
# The values covering each canvas value are sorted out band by band (a band is a
# run of whole canvas rows): the rows of the patches that fall in the band are
# copied, value by value, into one segment per canvas value, and each segment is
# reduced on its own. A row starting at band value ``s`` covers ``s .. s + length
# - 1``, all in the same canvas row, so the size of every segment follows from the
# number of rows starting at each value. Memory is one band's segments, never a
# second patch matrix.


def median_by_band(double[::1] out, double[::1] coverage,
                   const value[:, ::1] patches, const Py_ssize_t[::1] outer,
                   const Py_ssize_t[::1] inner, const Py_ssize_t[::1] row_offsets,
                   const Py_ssize_t[::1] order,
                   const Py_ssize_t[::1] band_bounds,
                   const Py_ssize_t[::1] band_first, const Py_ssize_t[::1] band_last):
    """Median of the values covering each canvas value.

    Band ``b`` is canvas values ``band_bounds[b]:band_bounds[b + 1]``; the
    patches that may cover it are ``order[band_first[b]:band_last[b]]``
    (``band_first[b]:band_last[b]`` when ``order`` is None). ``out`` gets the
    median (NaN where nothing covers), ``coverage`` the number of values.
    Returns False, leaving the rest undone, at the first NaN or infinity.
    """
    cdef _Bands bands
    cdef Py_ssize_t b, v, n
    cdef value *segment
    cdef double pivot, spread
    cdef int status
    with nogil:
        status = _start_bands(&bands, band_bounds, patches.shape[1] // row_offsets.shape[0])
        for b in range(band_bounds.shape[0] - 1):
            if status:
                break
            status = _sort_band(&bands, b, &patches[0, 0], outer, inner, row_offsets,
                                order, band_bounds, band_first, band_last)
            for v in range(bands.n_band if status == 0 else 0):
                n = bands.starts[v + 1] - bands.starts[v]
                coverage[bands.start + v] = n
                if n == 0:
                    out[bands.start + v] = NAN
                    continue
                segment = <value *> bands.values + bands.starts[v]
                pivot = _mean(segment, n, &spread)
                if not isfinite(pivot) and not _all_finite(segment, n):
                    status = 1
                    break
                # Equal values (a flat area, an exact round trip) need no selection.
                out[bands.start + v] = pivot if spread == 0 else _median(
                    segment, <value *> bands.scratch, n, pivot
                )
        _free_bands(&bands)
    if status < 0:
        raise MemoryError("no memory left for a band of the median merge")
    return status == 0


def mode_by_band(label[::1] out, double[::1] coverage,
                 const label[:, ::1] patches, const Py_ssize_t[::1] outer,
                 const Py_ssize_t[::1] inner, const Py_ssize_t[::1] row_offsets,
                 const Py_ssize_t[::1] order,
                 const Py_ssize_t[::1] band_bounds,
                 const Py_ssize_t[::1] band_first, const Py_ssize_t[::1] band_last):
    """Most frequent label covering each canvas value, ties to the smallest.

    As :func:`median_by_band`; ``out`` is left as it is where nothing covers.
    """
    cdef _Bands bands
    cdef Py_ssize_t b, v, n
    cdef int status
    with nogil:
        status = _start_bands(&bands, band_bounds, patches.shape[1] // row_offsets.shape[0])
        for b in range(band_bounds.shape[0] - 1):
            if status:
                break
            status = _sort_band(&bands, b, &patches[0, 0], outer, inner, row_offsets,
                                order, band_bounds, band_first, band_last)
            for v in range(bands.n_band if status == 0 else 0):
                n = bands.starts[v + 1] - bands.starts[v]
                coverage[bands.start + v] = n
                if n > 0:
                    # the scratch holds the distinct labels, then their counts
                    out[bands.start + v] = _mode(
                        <label *> bands.values + bands.starts[v], n,
                        <label *> bands.scratch,
                        <Py_ssize_t *> bands.scratch + bands.max_coverage,
                    )
        _free_bands(&bands)
    if status:
        raise MemoryError("no memory left for a band of the mode merge")


cdef struct _Bands:
    Py_ssize_t length  # values per patch row
    Py_ssize_t start, n_band  # the current band: first canvas value, size
    Py_ssize_t *rows_at  # rows starting at each band value (n_band + 1)
    Py_ssize_t *starts  # segment starts, then write cursors (n_band + 1)
    void *values  # the segments
    Py_ssize_t capacity  # bytes allocated for the segments
    Py_ssize_t max_coverage  # the longest segment of the band (at least 1)
    void *scratch  # room for two 8-byte numbers per value of the longest segment
    Py_ssize_t scratch_capacity


cdef int _start_bands(_Bands *bands, const Py_ssize_t[::1] band_bounds,
                      Py_ssize_t length) noexcept nogil:
    """Allocate the per-value arrays for the largest band; -1 if out of memory."""
    cdef Py_ssize_t b, largest = 0
    for b in range(band_bounds.shape[0] - 1):
        largest = max(largest, band_bounds[b + 1] - band_bounds[b])
    bands.length = length
    bands.values = bands.scratch = NULL
    bands.capacity = bands.scratch_capacity = 0
    bands.rows_at = <Py_ssize_t *> malloc((largest + 1) * sizeof(Py_ssize_t))
    bands.starts = <Py_ssize_t *> malloc((largest + 1) * sizeof(Py_ssize_t))
    return -1 if bands.rows_at == NULL or bands.starts == NULL else 0


cdef void _free_bands(_Bands *bands) noexcept nogil:
    free(bands.rows_at)
    free(bands.starts)
    free(bands.values)
    free(bands.scratch)


cdef int _sort_band(_Bands *bands, Py_ssize_t b, const value *patches,
                    const Py_ssize_t[::1] outer, const Py_ssize_t[::1] inner,
                    const Py_ssize_t[::1] row_offsets,
                    const Py_ssize_t[::1] order, const Py_ssize_t[::1] band_bounds,
                    const Py_ssize_t[::1] band_first,
                    const Py_ssize_t[::1] band_last) noexcept nogil:
    """Copy the values of band ``b`` into one segment per canvas value.

    ``bands.starts[v]:bands.starts[v + 1]`` is then the segment of band value
    ``v`` in ``bands.values``, and ``bands.scratch`` has room for two 8-byte
    numbers per value of the longest segment. Returns -1 if out of memory.
    """
    cdef Py_ssize_t length = bands.length, n_rows = row_offsets.shape[0]
    cdef Py_ssize_t n_band = band_bounds[b + 1] - band_bounds[b], j, i, r, v
    cdef Py_ssize_t covering = 0, corner, n_inner = inner.shape[0]
    cdef Py_ssize_t *rows_at = bands.rows_at
    cdef Py_ssize_t *starts = bands.starts
    cdef const value *row
    cdef value *values
    bands.start, bands.n_band = band_bounds[b], n_band
    for v in range(n_band + 1):
        rows_at[v] = 0
    for j in range(band_first[b], band_last[b]):
        i = j if order is None else order[j]
        corner = outer[i // n_inner] + inner[i % n_inner] - bands.start
        r = _first_row_in_band(corner, row_offsets)
        while r < n_rows and corner + row_offsets[r] < n_band:
            rows_at[corner + row_offsets[r]] += 1
            r += 1
    # Value v is covered by the rows starting at v - length + 1 .. v.
    bands.max_coverage = 1
    starts[0] = 0
    for v in range(n_band):
        covering += rows_at[v] - (rows_at[v - length] if v >= length else 0)
        bands.max_coverage = max(bands.max_coverage, covering)
        starts[v + 1] = starts[v] + covering
    if _grow(&bands.values, &bands.capacity, starts[n_band] * sizeof(value)) or _grow(
        &bands.scratch, &bands.scratch_capacity, 16 * bands.max_coverage
    ):
        return -1
    values = <value *> bands.values
    for j in range(band_first[b], band_last[b]):
        i = j if order is None else order[j]
        corner = outer[i // n_inner] + inner[i % n_inner] - bands.start
        r = _first_row_in_band(corner, row_offsets)
        row = patches + (i * n_rows + r) * length
        while r < n_rows and corner + row_offsets[r] < n_band:
            _scatter_row(values, starts + corner + row_offsets[r], row, length)
            row += length
            r += 1
    # The write cursors ended on the next segment's start: move them back.
    for v in range(n_band, 0, -1):
        starts[v] = starts[v - 1]
    starts[0] = 0
    return 0


cdef inline Py_ssize_t _first_row_in_band(Py_ssize_t corner,
                                         const Py_ssize_t[::1] row_offsets) noexcept nogil:
    # Row offsets ascend, so the rows of a patch inside a band are a run: skip to
    # its first one, and the caller stops at the first row past the band (one
    # mispredicted branch per patch instead of a test per row).
    cdef Py_ssize_t r = 0
    while r < row_offsets.shape[0] and corner + row_offsets[r] < 0:
        r += 1
    return r


cdef inline void _scatter_row(value *values, Py_ssize_t *cursors, const value *row,
                              Py_ssize_t length) noexcept nogil:
    """Append ``row[k]`` to the segment whose write cursor is ``cursors[k]``."""
    cdef Py_ssize_t k
    cdef Py_ssize_t at[8]
    if length == 8:
        # Cursors read first, then moved on in one loop: the stores of values
        # cannot change them, and the compiler adds them in vector registers.
        for k in range(8):
            at[k] = cursors[k]
        for k in range(8):
            cursors[k] = at[k] + 1
        for k in range(8):
            values[at[k]] = row[k]
    else:
        for k in range(length):
            values[cursors[k]] = row[k]
            cursors[k] += 1


cdef int _grow(void **buffer, Py_ssize_t *capacity, Py_ssize_t n_bytes) noexcept nogil:
    """Make ``*buffer`` hold at least ``n_bytes`` (its content is lost); -1 if out of memory."""
    if n_bytes > capacity[0] or buffer[0] == NULL:
        free(buffer[0])
        buffer[0] = malloc(max(n_bytes, 1))  # malloc(0) may return NULL
        capacity[0] = n_bytes if buffer[0] != NULL else 0
    return -1 if buffer[0] == NULL else 0


cdef inline double _mean(const value *values, Py_ssize_t n,
                         double *spread) noexcept nogil:
    """The mean, exactly ``values[0]`` when all values are equal.

    Summing the differences to the first value keeps equal values exact (a plain
    sum of n copies of x rounds, and the mean would then fall beside every value).
    ``*spread`` gets the sum of their absolute values: 0 when all are equal.
    Four running sums: one would wait on the latency of every addition.
    """
    cdef double first = values[0], d0, d1, d2, d3
    cdef double s0 = 0, s1 = 0, s2 = 0, s3 = 0, a0 = 0, a1 = 0, a2 = 0, a3 = 0
    cdef Py_ssize_t i = 0
    while i + 4 <= n:
        d0 = values[i] - first
        d1 = values[i + 1] - first
        d2 = values[i + 2] - first
        d3 = values[i + 3] - first
        s0 += d0
        s1 += d1
        s2 += d2
        s3 += d3
        a0 += fabs(d0)
        a1 += fabs(d1)
        a2 += fabs(d2)
        a3 += fabs(d3)
        i += 4
    while i < n:
        d0 = values[i] - first
        s0 += d0
        a0 += fabs(d0)
        i += 1
    spread[0] = (a0 + a1) + (a2 + a3)
    return first + ((s0 + s1) + (s2 + s3)) / n


cdef bint _all_finite(const value *values, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        if not isfinite(<double> values[i]):
            return False
    return True


cdef double _median(value *values, value *spare, Py_ssize_t n,
                    double pivot) noexcept nogil:
    """Median of ``values[:n]`` (the mean of ranks ``(n - 1) // 2`` and ``n // 2``).

    Quickselect with a three-way partition written out of place without branches
    on the data: values below the pivot fill ``spare`` from the front, values
    above from the back, equal ones are counted by the gap. The first pivot is
    the mean (close to the median of similar estimates); a pivot that leaves
    every value on one side is replaced by a median of three values.
    """
    cdef Py_ssize_t low = (n - 1) // 2, high = n // 2, below, above, i
    cdef value x
    cdef double lower, upper
    while True:
        below, above = 0, n
        for i in range(n):
            x = values[i]
            spare[below] = x
            spare[above - 1] = x
            below += x < pivot
            above -= x > pivot
        if high < below or low >= above:
            if below == n or above == 0:  # no progress: the pivot was no value
                pivot = _median_of_three(values, n)
                continue
            if high < below:
                n = below
                values, spare = spare, values
            else:
                n, low, high = n - above, low - above, high - above
                values, spare = spare + above, values
            pivot = _median_of_three(values, n)
            continue
        lower = pivot if low >= below else _largest(spare, below)
        upper = pivot if high < above else _smallest(spare + above, n - above)
        return 0.5 * (lower + upper)


cdef inline double _median_of_three(const value *values, Py_ssize_t n) noexcept nogil:
    cdef double a = values[0], b = values[n // 2], c = values[n - 1]
    if a > b:
        a, b = b, a
    if b > c:
        b = c
    return a if a > b else b


cdef inline double _largest(const value *values, Py_ssize_t n) noexcept nogil:
    cdef double best = values[0]
    cdef Py_ssize_t i
    for i in range(1, n):
        if values[i] > best:
            best = values[i]
    return best


cdef inline double _smallest(const value *values, Py_ssize_t n) noexcept nogil:
    cdef double best = values[0]
    cdef Py_ssize_t i
    for i in range(1, n):
        if values[i] < best:
            best = values[i]
    return best


cdef label _mode(const label *values, Py_ssize_t n, label *distinct,
                 Py_ssize_t *counts) noexcept nogil:
    """Most frequent of ``values[:n]``, the smallest on ties.

    The distinct labels are counted in a list, so the cost is ``n`` times the
    number of distinct labels: small where overlapping patches mostly agree.
    """
    cdef Py_ssize_t n_distinct = 1, i = 1, j, best = 0
    cdef label x
    # The leading run of the first label is counted in a register: pixels whose
    # patches all agree (the inside of every region) end here, without a count
    # in memory waiting on the previous one.
    while i < n and values[i] == values[0]:
        i += 1
    distinct[0], counts[0] = values[0], i
    for i in range(i, n):
        x = values[i]
        for j in range(n_distinct):
            if distinct[j] == x:
                counts[j] += 1
                break
        else:
            distinct[n_distinct] = x
            counts[n_distinct] = 1
            n_distinct += 1
    for j in range(1, n_distinct):
        if counts[j] > counts[best] or (
            counts[j] == counts[best] and distinct[j] < distinct[best]
        ):
            best = j
    return distinct[best]
