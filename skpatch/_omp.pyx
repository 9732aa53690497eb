# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, nonecheck=False
"""Compiled orthogonal matching pursuit with a residual tolerance (batch OMP).

Rubinstein, Zibulevsky and Elad's batch OMP (2008): with the Gram matrix of the
unit-norm atoms and each signal's correlations with them computed beforehand (two
BLAS products, in the Python layer), a signal is coded with a Cholesky factor of
its selected atoms' Gram matrix that grows by one row per atom, without touching
the signal again. The Python layer (``skpatch._priors.error_constrained_omp``)
checks the input and owns every output; the loop releases the GIL, so that
threads code different batches at once.
"""

from libc.math cimport sqrt
from libc.stdlib cimport free, malloc

# A residual whose squared correlation with every atom is below this is orthogonal
# to them all; an atom whose Cholesky pivot is below machine epsilon depends
# linearly on the ones selected (scikit-learn's orthogonal_mp stops there too).
cdef double TINY = 2.2250738585072014e-308
cdef double EPSILON = 2.220446049250313e-16


def batch_omp(double[:, ::1] codes, const double[:, ::1] correlations,
              const double[::1] norms_squared, const double[:, ::1] gram,
              double tol, Py_ssize_t max_atoms, const double[:, ::1] atoms=None,
              double[:, ::1] approximation=None):
    """Code every signal whose squared norm exceeds ``tol``; ``codes`` starts at 0.

    Signal ``i`` gets atoms, one at a time the one most correlated with its
    residual, until its squared residual is at most ``tol``, ``max_atoms`` are
    used, or its residual is orthogonal to every atom. Its code is the
    least-squares fit on the selected atoms. With ``atoms`` (unit-norm, in rows)
    and ``approximation`` (zeros), the approximation ``code @ atoms`` is summed
    from the selected atoms only, instead of a dense product afterwards.
    """
    cdef Py_ssize_t n_atoms = gram.shape[0], i, a, j
    cdef _Scratch scratch
    cdef bint ok
    with nogil:
        ok = _allocate(&scratch, n_atoms, max_atoms)
        if ok:
            for i in range(correlations.shape[0]):
                if norms_squared[i] <= tol:
                    continue
                scratch.n_selected = 0
                _code_one(&codes[i, 0], &correlations[i, 0], norms_squared[i],
                          gram, tol, max_atoms, &scratch)
                if approximation is not None:
                    for a in range(scratch.n_selected):
                        _subtract_scaled(&approximation[i, 0],
                                         &atoms[scratch.selected[a], 0],
                                         -codes[i, scratch.selected[a]],
                                         atoms.shape[1])
        _release(&scratch)
    if not ok:
        raise MemoryError("no memory left for the work arrays of batch OMP")


cdef struct _Scratch:
    double *residual  # correlations of the residual with every atom
    double *factor  # Cholesky factor of the selected atoms' Gram matrix, row-major
    double *target  # the signal's correlations with the selected atoms
    double *coefs
    double *work
    Py_ssize_t *selected
    Py_ssize_t n_selected  # atoms in the last signal's code


cdef bint _allocate(_Scratch *s, Py_ssize_t n_atoms, Py_ssize_t max_atoms) noexcept nogil:
    s.residual = <double *> malloc(n_atoms * sizeof(double))
    s.factor = <double *> malloc(max_atoms * max_atoms * sizeof(double))
    s.target = <double *> malloc(max_atoms * sizeof(double))
    s.coefs = <double *> malloc(max_atoms * sizeof(double))
    s.work = <double *> malloc(max_atoms * sizeof(double))
    s.selected = <Py_ssize_t *> malloc(max_atoms * sizeof(Py_ssize_t))
    return not (s.residual == NULL or s.factor == NULL or s.target == NULL
                or s.coefs == NULL or s.work == NULL or s.selected == NULL)


cdef void _release(_Scratch *s) noexcept nogil:
    free(s.residual)
    free(s.factor)
    free(s.target)
    free(s.coefs)
    free(s.work)
    free(s.selected)


cdef void _code_one(double *code, const double *correlations, double norm_squared,
                    const double[:, ::1] gram, double tol, Py_ssize_t max_atoms,
                    _Scratch *s) noexcept nogil:
    cdef Py_ssize_t n_atoms = gram.shape[0], n = 0, a, j, best
    cdef double *factor = s.factor
    cdef double value, pivot
    for j in range(n_atoms):
        s.residual[j] = correlations[j]
    while True:
        best = _most_correlated(s.residual, n_atoms)
        if s.residual[best] * s.residual[best] <= TINY:
            return
        # The new row of the Cholesky factor: L w = G[selected, best].
        pivot = 1.0
        for a in range(n):
            value = gram[s.selected[a], best]
            for j in range(a):
                value -= factor[a * max_atoms + j] * s.work[j]
            s.work[a] = value / factor[a * max_atoms + a]
            pivot -= s.work[a] * s.work[a]
        if pivot <= EPSILON:
            return
        for a in range(n):
            factor[n * max_atoms + a] = s.work[a]
        factor[n * max_atoms + n] = sqrt(pivot)
        s.selected[n] = best
        s.target[n] = correlations[best]
        n += 1
        s.n_selected = n
        _solve_normal_equations(factor, max_atoms, n, s.target, s.coefs, s.work)
        value = norm_squared
        for a in range(n):
            code[s.selected[a]] = s.coefs[a]
            value -= s.coefs[a] * s.target[a]
        if n == max_atoms or value <= tol:
            return
        # Residual correlations: c - G[:, selected] coefs (rows of the symmetric G).
        for j in range(n_atoms):
            s.residual[j] = correlations[j]
        for a in range(n):
            _subtract_scaled(s.residual, &gram[s.selected[a], 0], s.coefs[a], n_atoms)


cdef inline Py_ssize_t _most_correlated(const double *residual,
                                        Py_ssize_t n_atoms) noexcept nogil:
    """The first index of the largest absolute value (numpy's argmax order)."""
    cdef Py_ssize_t j, best = 0
    cdef double largest = -1.0, value
    for j in range(n_atoms):
        value = residual[j] if residual[j] >= 0 else -residual[j]
        if value > largest:
            largest = value
            best = j
    return best


cdef inline void _solve_normal_equations(const double *factor, Py_ssize_t stride,
                                         Py_ssize_t n, const double *target,
                                         double *coefs, double *work) noexcept nogil:
    """``coefs = (L L^T)^-1 target`` by forward then backward substitution."""
    cdef Py_ssize_t a, b
    cdef double value
    for a in range(n):
        value = target[a]
        for b in range(a):
            value -= factor[a * stride + b] * work[b]
        work[a] = value / factor[a * stride + a]
    for a in range(n - 1, -1, -1):
        value = work[a]
        for b in range(a + 1, n):
            value -= factor[b * stride + a] * coefs[b]
        coefs[a] = value / factor[a * stride + a]


cdef inline void _subtract_scaled(double *target, const double *row, double scale,
                                  Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(n):
        target[j] -= scale * row[j]
