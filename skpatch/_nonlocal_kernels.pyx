# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, nonecheck=False
"""Compiled loops of the non-local methods: nearest patches in a window, with claims.

As in ``_kernels``, an image is a flat C-contiguous array with channels last, and a
patch is found by the flat offset of its first value plus ``row_offsets[r]``, the
offset of its row ``r``: a row is the last patch axis with its channels,
``row_length`` contiguous values. The Python layer (``_neighbors``, ``_nonlocal``)
works out every offset from the geometry, checks shapes, bounds and dtypes, and
allocates the outputs; the loops here run with the GIL released.
"""

from libc.math cimport INFINITY
from libc.stdlib cimport free, malloc

ctypedef fused floating:
    float
    double


# ---------------------------------------------------------------------- search


def nearest_patches(const floating[::1] guide, const Py_ssize_t[::1] references,
                    const Py_ssize_t[::1] window_starts,
                    const Py_ssize_t[::1] line_offsets, Py_ssize_t line_length,
                    Py_ssize_t candidate_stride, const Py_ssize_t[::1] row_offsets,
                    Py_ssize_t row_length, Py_ssize_t[:, ::1] out_index,
                    double[:, ::1] out_distance, unsigned char[::1] claimed,
                    const Py_ssize_t[::1] shape, const Py_ssize_t[::1] block_shift,
                    Py_ssize_t block_side, unsigned char[::1] keep):
    """For reference ``i``, the ``k`` candidates nearest to it, ascending.

    Reference ``i`` starts at ``references[i]``. Its candidates lie on lines (the
    last axis of the search window): line ``l`` holds ``line_length``
    candidates, the ``t``-th starting at ``window_starts[i] + line_offsets[l] +
    t * candidate_stride``; starts increase with ``(l, t)``. ``out_index[i]``
    gets the starts of the ``k = out_index.shape[1]`` nearest (squared L2 over
    the patch), ``out_distance[i]`` their distances, sorted by distance and then
    by start.

    Claims (the paste trick of the non-local methods), when ``claimed`` is not
    empty: it flags patch positions (a start divided by ``candidate_stride``),
    flat in a C-ordered grid of ``shape``. References are taken in order; one
    already flagged is skipped (``keep[i] = 0``, its rows left as they were);
    otherwise ``keep[i] = 1``, and its neighbours are flagged where they lie in
    its claim block: the box of side ``block_side`` holding it, position ``c``
    along axis ``a`` being in block ``(c + block_shift[a]) // block_side``.
    """
    cdef double *line = <double *>malloc(line_length * sizeof(double))
    if line == NULL:
        raise MemoryError()
    with nogil:
        _nearest(guide, references, window_starts, line_offsets, line_length,
                 candidate_stride, row_offsets, row_length, out_index, out_distance,
                 claimed, shape, block_shift, block_side, keep, line)
    free(line)


cdef void _nearest(const floating[::1] guide, const Py_ssize_t[::1] references,
                   const Py_ssize_t[::1] window_starts,
                   const Py_ssize_t[::1] line_offsets, Py_ssize_t line_length,
                   Py_ssize_t candidate_stride, const Py_ssize_t[::1] row_offsets,
                   Py_ssize_t row_length, Py_ssize_t[:, ::1] out_index,
                   double[:, ::1] out_distance, unsigned char[::1] claimed,
                   const Py_ssize_t[::1] shape, const Py_ssize_t[::1] block_shift,
                   Py_ssize_t block_side, unsigned char[::1] keep,
                   double *line) noexcept nogil:
    cdef Py_ssize_t k = out_index.shape[1]
    cdef Py_ssize_t i, j, l, t, n_kept, start, position, member
    cdef bint claims = claimed.shape[0] > 0
    cdef double bound
    cdef Py_ssize_t *index
    cdef double *dist
    for i in range(references.shape[0]):
        position = references[i] // candidate_stride
        if claims and claimed[position]:
            keep[i] = 0
            continue
        keep[i] = 1
        index = &out_index[i, 0]
        dist = &out_distance[i, 0]
        n_kept = 0
        bound = INFINITY
        for l in range(line_offsets.shape[0]):
            start = window_starts[i] + line_offsets[l]
            _line_distances(guide, references[i], start, line_length,
                            candidate_stride, row_offsets, row_length, line)
            for t in range(line_length):
                # Candidates come in increasing start: one as far as the worst
                # kept loses the tie, so only a strictly nearer one gets in.
                if n_kept < k:
                    _heap_push(dist, index, n_kept, line[t],
                               start + t * candidate_stride)
                    n_kept += 1
                    if n_kept == k:
                        bound = dist[0]
                elif line[t] < bound:
                    _heap_replace_top(dist, index, k, line[t],
                                      start + t * candidate_stride)
                    bound = dist[0]
        _heap_sort(dist, index, n_kept)
        if claims:
            for j in range(n_kept):
                member = index[j] // candidate_stride
                if _same_block(position, member, shape, block_shift, block_side):
                    claimed[member] = 1


cdef inline void _line_distances(const floating[::1] guide, Py_ssize_t reference,
                                 Py_ssize_t start, Py_ssize_t line_length,
                                 Py_ssize_t stride, const Py_ssize_t[::1] row_offsets,
                                 Py_ssize_t row_length, double *line) noexcept nogil:
    # One reference value at a time against the whole line of candidates: the
    # innermost loop runs along the line, which the compiler vectorises.
    cdef Py_ssize_t r, v, t
    cdef double x, difference
    cdef const floating *y
    for t in range(line_length):
        line[t] = 0.0
    for r in range(row_offsets.shape[0]):
        for v in range(row_length):
            x = guide[reference + row_offsets[r] + v]
            y = &guide[start + row_offsets[r] + v]
            if stride == 1:
                for t in range(line_length):
                    difference = x - <double>y[t]
                    line[t] += difference * difference
            else:
                for t in range(line_length):
                    difference = x - <double>y[t * stride]
                    line[t] += difference * difference


cdef inline bint _after(double d1, Py_ssize_t i1, double d2,
                        Py_ssize_t i2) noexcept nogil:
    """Whether (d1, i1) sorts after (d2, i2): farther, or as far and later."""
    return d1 > d2 or (d1 == d2 and i1 > i2)


cdef void _heap_push(double *dist, Py_ssize_t *index, Py_ssize_t n, double d,
                     Py_ssize_t i) noexcept nogil:
    # A max-heap on (distance, start): the worst kept candidate at the top.
    cdef Py_ssize_t child = n, parent
    while child > 0:
        parent = (child - 1) // 2
        if not _after(d, i, dist[parent], index[parent]):
            break
        dist[child] = dist[parent]
        index[child] = index[parent]
        child = parent
    dist[child] = d
    index[child] = i


cdef void _heap_replace_top(double *dist, Py_ssize_t *index, Py_ssize_t n, double d,
                            Py_ssize_t i) noexcept nogil:
    cdef Py_ssize_t parent = 0, child
    while True:
        child = 2 * parent + 1
        if child >= n:
            break
        if child + 1 < n and _after(dist[child + 1], index[child + 1], dist[child],
                                    index[child]):
            child += 1
        if not _after(dist[child], index[child], d, i):
            break
        dist[parent] = dist[child]
        index[parent] = index[child]
        parent = child
    dist[parent] = d
    index[parent] = i


cdef void _heap_sort(double *dist, Py_ssize_t *index, Py_ssize_t n) noexcept nogil:
    # Move the worst to the end, one at a time: ascending order in place.
    cdef Py_ssize_t last
    cdef double d
    cdef Py_ssize_t i
    for last in range(n - 1, 0, -1):
        d = dist[last]
        i = index[last]
        dist[last] = dist[0]
        index[last] = index[0]
        _heap_replace_top(dist, index, last, d, i)


# ---------------------------------------------------------------- paste trick


cdef bint _same_block(Py_ssize_t p, Py_ssize_t q, const Py_ssize_t[::1] shape,
                      const Py_ssize_t[::1] block_shift,
                      Py_ssize_t block_side) noexcept nogil:
    cdef Py_ssize_t a, n
    for a in range(shape.shape[0] - 1, -1, -1):
        n = shape[a]
        if (p % n + block_shift[a]) // block_side != (
            q % n + block_shift[a]
        ) // block_side:
            return False
        p //= n
        q //= n
    return True
