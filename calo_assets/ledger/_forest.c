/* An isolation forest (Liu, Ting & Zhou 2008) grown and applied in one call, with its own PRNG.
 *
 * `path_lengths(matrix, seed, trees, rows_per_tree, out)` grows `trees` isolation trees on the rows of
 * `matrix` (a C-contiguous 2-D buffer of float64, finite values) and writes into `out` (a writable
 * 1-D float64 buffer, one value per row) each row's path length summed over the trees, in tree order.
 *
 * Everything random comes from one xoshiro256** generator seeded from `seed` (taken modulo 2**64) by
 * splitmix64, drawn in this order, tree after tree:
 *   - the tree's rows: a partial Fisher-Yates shuffle of 0..n-1 (started afresh for each tree), whose
 *     first min(rows_per_tree, n) positions are the sample (without replacement);
 *   - then, node by node in preorder (a node, its left subtree, its right subtree), for a node of depth
 *     below ceil(log2(max(sample, 2))) with at least two rows: features drawn one at a time without
 *     replacement (`below(number not drawn yet)` indexes the list of those not drawn, 0..columns-1 at
 *     first; the one drawn swaps places with the last not drawn) until one is not constant in the
 *     node, which makes a uniform choice among those that are not; then u in [0, 1) (`unit`). The
 *     threshold is min + u * (max - min) of that feature in the node, or min if rounding (or an
 *     overflow of max - min) makes it reach max, so that both children get rows. Rows at most the
 *     threshold go left. A node at the depth limit, with one row, or without a feature that is not
 *     constant, is a leaf.
 * A row's path length in a tree is the depth of the leaf it reaches plus c(rows of the sample in that
 * leaf), c(n) = 2 H(n - 1) - 2 (n - 1) / n with H the harmonic number summed exactly in increasing
 * order (the paper's definition), c(0) = c(1) = 0.
 *
 * Only integer arithmetic and IEEE double operations without fused multiply-adds (the product of the
 * threshold goes through a volatile, so no compiler may contract it), so the figures are the same on
 * every machine. `test_anomalies.py` holds the same algorithm in Python and compares.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    uint64_t s[4];
} Random;

static uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += UINT64_C(0x9E3779B97F4A7C15));
    z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static void seed_random(Random *r, uint64_t seed) {
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&seed);
}

/* xoshiro256** (Blackman & Vigna). */
static uint64_t next_u64(Random *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* Uniform in [0, bound), bound >= 1, without bias: draws below 2**64 mod bound are drawn again. */
static uint64_t below(Random *r, uint64_t bound) {
    uint64_t floor = (UINT64_C(0) - bound) % bound;
    for (;;) {
        uint64_t x = next_u64(r);
        if (x >= floor) return x % bound;
    }
}

/* Uniform in [0, 1): the top 53 bits. */
static double unit(Random *r) { return (double)(next_u64(r) >> 11) * 0x1.0p-53; }

/* c(n) for n = 0..top, as the Python side computes it. */
static void fill_average_path_lengths(double *c, Py_ssize_t top) {
    double harmonic = 0.0; /* H(n - 1) */
    c[0] = 0.0;
    for (Py_ssize_t n = 1; n <= top; n++) {
        if (n > 1) harmonic += 1.0 / (double)(n - 1);
        c[n] = (harmonic + harmonic) - (double)(2 * (n - 1)) / (double)n;
    }
}

/* A node of a grown tree. Rows at most the threshold go to child[0], the others to child[1]; a leaf's
 * children are itself, so that every row takes max_depth steps down a tree. */
typedef struct {
    double threshold;
    int32_t feature;
    int32_t child[2];
} Node;

typedef struct {
    const double *x; /* rows x columns, row-major */
    Py_ssize_t columns;
    int max_depth;
    double *c;          /* c(n) by leaf size */
    Py_ssize_t *rows;   /* the sample, partitioned in place as the tree grows */
    Py_ssize_t *drawn;  /* the features of a node, those not drawn yet first */
    Node *nodes;        /* the tree, in preorder */
    double *length;     /* by node: a leaf's depth + c(size) (0 for a split) */
    int32_t size;
    Random random;
} Grower;

static int32_t leaf(Grower *g, int32_t node, int depth, Py_ssize_t size) {
    g->nodes[node] = (Node){.threshold = 0.0, .feature = 0, .child = {node, node}};
    g->length[node] = (double)depth + g->c[size];
    return node;
}

/* Grows the node holding rows[start:end] at `depth`; returns the index of the node. */
static int32_t grow(Grower *g, Py_ssize_t start, Py_ssize_t end, int depth) {
    int32_t node = g->size++;
    Py_ssize_t size = end - start;
    if (depth >= g->max_depth || size <= 1) return leaf(g, node, depth, size);
    const double *x = g->x;
    const Py_ssize_t *rows = g->rows;
    Py_ssize_t columns = g->columns;
    /* Features drawn one at a time without replacement until one is not constant in the node: a
     * uniform choice among those that are not, that looks at one or two features, not all. */
    for (Py_ssize_t f = 0; f < columns; f++) g->drawn[f] = f;
    Py_ssize_t left = columns, f;
    double low, high;
    for (;;) {
        if (left == 0) return leaf(g, node, depth, size);
        Py_ssize_t k = (Py_ssize_t)below(&g->random, (uint64_t)left);
        f = g->drawn[k];
        low = high = x[rows[start] * columns + f];
        for (Py_ssize_t i = start + 1; i < end; i++) {
            double v = x[rows[i] * columns + f];
            low = v < low ? v : low;
            high = v > high ? v : high;
        }
        if (low < high) break;
        g->drawn[k] = g->drawn[left - 1];
        g->drawn[--left] = f;
    }
    volatile double step = unit(&g->random) * (high - low); /* rounded: no fused multiply-add */
    double threshold = low + step;
    if (!(threshold < high)) threshold = low;
    /* Rows at most the threshold first (the lowest goes left, the highest right). */
    Py_ssize_t middle = start;
    for (Py_ssize_t i = start; i < end; i++) {
        Py_ssize_t r = g->rows[i];
        if (x[r * columns + f] <= threshold) {
            g->rows[i] = g->rows[middle];
            g->rows[middle++] = r;
        }
    }
    g->length[node] = 0.0;
    int32_t below_node = grow(g, start, middle, depth + 1);
    int32_t above_node = grow(g, middle, end, depth + 1);
    g->nodes[node] =
        (Node){.threshold = threshold, .feature = (int32_t)f, .child = {below_node, above_node}};
    return node;
}

#define BLOCK 16 /* rows walked down a tree together: independent chains of loads */

/* Adds each row's path length in the grown tree to out. */
static void apply(const Grower *g, Py_ssize_t count, double *out) {
    const double *x = g->x;
    const Node *nodes = g->nodes;
    Py_ssize_t columns = g->columns;
    if (columns == 0) { /* the root is a leaf */
        for (Py_ssize_t i = 0; i < count; i++) out[i] += g->length[0];
        return;
    }
    for (Py_ssize_t first = 0; first < count; first += BLOCK) {
        Py_ssize_t n = count - first < BLOCK ? count - first : BLOCK;
        const double *block = x + first * columns;
        int32_t at[BLOCK] = {0};
        for (int level = 0; level < g->max_depth; level++) {
            for (Py_ssize_t j = 0; j < n; j++) {
                const Node *node = nodes + at[j];
                at[j] = node->child[block[j * columns + node->feature] > node->threshold];
            }
        }
        for (Py_ssize_t j = 0; j < n; j++) out[first + j] += g->length[at[j]];
    }
}

static int is_float64(const Py_buffer *view) {
    const char *format = view->format ? view->format : "B";
    if (format[0] == '@' || format[0] == '=' || format[0] == '<') format++;
    return view->itemsize == 8 && strcmp(format, "d") == 0;
}

static PyObject *path_lengths(PyObject *module, PyObject *args) {
    (void)module;
    PyObject *matrix_object, *seed_object, *out_object;
    Py_ssize_t trees, rows_per_tree;
    if (!PyArg_ParseTuple(args, "OO!nnO:path_lengths", &matrix_object, &PyLong_Type, &seed_object,
                          &trees, &rows_per_tree, &out_object))
        return NULL;
    if (trees < 0 || rows_per_tree < 1 || rows_per_tree > (1 << 29)) {
        PyErr_SetString(PyExc_ValueError, "trees must be >= 0 and rows_per_tree in 1..2**29");
        return NULL;
    }
    uint64_t seed = (uint64_t)PyLong_AsUnsignedLongLongMask(seed_object);
    if (PyErr_Occurred()) return NULL;

    Py_buffer matrix, out;
    if (PyObject_GetBuffer(matrix_object, &matrix, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return NULL;
    if (PyObject_GetBuffer(out_object, &out, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE) <
        0) {
        PyBuffer_Release(&matrix);
        return NULL;
    }
    PyObject *result = NULL;
    Grower g;
    memset(&g, 0, sizeof g);
    Py_ssize_t *order = NULL;
    if (matrix.ndim != 2 || !is_float64(&matrix)) {
        PyErr_SetString(PyExc_TypeError, "matrix must be a 2-D C-contiguous float64 buffer");
        goto done;
    }
    if (out.ndim != 1 || !is_float64(&out) || out.shape[0] != matrix.shape[0]) {
        PyErr_SetString(PyExc_TypeError, "out must be a 1-D float64 buffer, one value per row");
        goto done;
    }
    Py_ssize_t count = matrix.shape[0], columns = matrix.shape[1];
    const double *x = matrix.buf;
    double *totals = out.buf;
    for (Py_ssize_t i = 0; i < count * columns; i++) {
        if (!(x[i] - x[i] == 0.0)) { /* NaN or infinite */
            PyErr_SetString(PyExc_ValueError, "matrix must hold finite values only");
            goto done;
        }
    }
    for (Py_ssize_t i = 0; i < count; i++) totals[i] = 0.0;
    if (count == 0 || trees == 0) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    Py_ssize_t sample = rows_per_tree < count ? rows_per_tree : count;
    int max_depth = 0;
    while (max_depth < 63 && ((Py_ssize_t)1 << max_depth) < sample) max_depth++;
    if (max_depth == 0) max_depth = 1; /* ceil(log2(max(sample, 2))) */
    Py_ssize_t capacity = 2 * sample - 1;
    g.c = PyMem_Calloc((size_t)sample + 1, sizeof(double));
    order = PyMem_Calloc((size_t)count, sizeof(Py_ssize_t));
    g.rows = order;
    g.drawn = PyMem_Calloc((size_t)columns + 1, sizeof(Py_ssize_t));
    g.nodes = PyMem_Calloc((size_t)capacity, sizeof(Node));
    g.length = PyMem_Calloc((size_t)capacity, sizeof(double));
    if (!g.c || !order || !g.drawn || !g.nodes || !g.length) {
        PyErr_NoMemory();
        goto done;
    }
    fill_average_path_lengths(g.c, sample);
    g.x = x;
    g.columns = columns;
    g.max_depth = max_depth;
    seed_random(&g.random, seed);
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t tree = 0; tree < trees; tree++) {
        for (Py_ssize_t i = 0; i < count; i++) order[i] = i;
        for (Py_ssize_t i = 0; i < sample; i++) {
            Py_ssize_t j = i + (Py_ssize_t)below(&g.random, (uint64_t)(count - i));
            Py_ssize_t r = order[i];
            order[i] = order[j];
            order[j] = r;
        }
        g.size = 0;
        grow(&g, 0, sample, 0);
        apply(&g, count, totals);
    }
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
done:
    PyMem_Free(g.c);
    PyMem_Free(order);
    PyMem_Free(g.drawn);
    PyMem_Free(g.nodes);
    PyMem_Free(g.length);
    PyBuffer_Release(&out);
    PyBuffer_Release(&matrix);
    return result;
}

static PyMethodDef methods[] = {
    {"path_lengths", path_lengths, METH_VARARGS,
     "path_lengths(matrix, seed, trees, rows_per_tree, out, /)\n--\n\n"
     "Grow an isolation forest of `trees` trees on the rows of `matrix` (2-D C-contiguous float64,\n"
     "finite), each on min(rows_per_tree, rows) rows drawn without replacement, with xoshiro256**\n"
     "seeded by splitmix64 from `seed`; write into `out` (1-D float64, one per row) each row's path\n"
     "length (leaf depth + c(leaf size)) summed over the trees."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_forest",
    .m_doc = "An isolation forest grown and applied in one call, with its own portable PRNG.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__forest(void) { return PyModule_Create(&module); }
