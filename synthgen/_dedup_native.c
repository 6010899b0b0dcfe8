/* The hot loops of synthgen dedup, compiled: a chunk of JSON lines to the digests of their keys, and
 * the table of digests seen.
 *
 * scan() reads a line as a key only when it is sure msgspec would read the same one from it: a JSON
 * object checked byte by byte (strict UTF-8, escapes, numbers, nesting up to a limit), with the key
 * fields as strings (negative a string, null or absent), each once. Any line it is not sure of, it
 * leaves to the caller ("deferred"), which reads it with msgspec as the pure-Python path does: so the
 * two paths keep and drop the same lines, and this code may stay small. A key's digest is
 * MurmurHash3_x64_128 of its canonical bytes: per field, 0x00 for null, or 0x01, the UTF-8 length as
 * 8 bytes little-endian, and the UTF-8 text (dedup.canonical_key writes the same bytes in Python).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* -- MurmurHash3_x64_128, seed 0 (Austin Appleby's, public domain) ------------------------------ */

static inline uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }

static inline uint64_t fmix64(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return k;
}

static inline uint64_t load_le64(const uint8_t *p) {
    return (uint64_t)p[0] | (uint64_t)p[1] << 8 | (uint64_t)p[2] << 16 | (uint64_t)p[3] << 24 |
           (uint64_t)p[4] << 32 | (uint64_t)p[5] << 40 | (uint64_t)p[6] << 48 | (uint64_t)p[7] << 56;
}

static void murmur3_128(const uint8_t *data, size_t len, uint64_t out[2]) {
    const uint64_t c1 = 0x87c37b91114253d5ULL, c2 = 0x4cf5ad432745937fULL;
    uint64_t h1 = 0, h2 = 0, k1, k2;
    size_t blocks = len / 16;
    for (size_t i = 0; i < blocks; i++) {
        k1 = load_le64(data + 16 * i);
        k2 = load_le64(data + 16 * i + 8);
        k1 *= c1; k1 = rotl64(k1, 31); k1 *= c2; h1 ^= k1;
        h1 = rotl64(h1, 27); h1 += h2; h1 = h1 * 5 + 0x52dce729;
        k2 *= c2; k2 = rotl64(k2, 33); k2 *= c1; h2 ^= k2;
        h2 = rotl64(h2, 31); h2 += h1; h2 = h2 * 5 + 0x38495ab5;
    }
    const uint8_t *tail = data + 16 * blocks;
    size_t rest = len & 15;
    k1 = 0;
    k2 = 0;
    for (size_t i = rest; i > 8; i--) k2 ^= (uint64_t)tail[i - 1] << (8 * (i - 9));
    if (rest > 8) { k2 *= c2; k2 = rotl64(k2, 33); k2 *= c1; h2 ^= k2; }
    for (size_t i = rest < 8 ? rest : 8; i > 0; i--) k1 ^= (uint64_t)tail[i - 1] << (8 * (i - 1));
    if (rest) { k1 *= c1; k1 = rotl64(k1, 31); k1 *= c2; h1 ^= k1; }
    h1 ^= len; h2 ^= len;
    h1 += h2; h2 += h1;
    h1 = fmix64(h1); h2 = fmix64(h2);
    h1 += h2; h2 += h1;
    out[0] = h1;
    out[1] = h2;
}

/* -- growable byte buffers ------------------------------------------------------------------------ */

typedef struct {
    uint8_t *data;
    size_t len, cap;
} Buf;

static int buf_reserve(Buf *b, size_t more) {
    if (b->len + more <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + more) cap *= 2;
    uint8_t *data = PyMem_Realloc(b->data, cap);
    if (!data) return -1;
    b->data = data;
    b->cap = cap;
    return 0;
}

static int buf_put(Buf *b, const void *src, size_t n) {
    if (buf_reserve(b, n)) return -1;
    memcpy(b->data + b->len, src, n);
    b->len += n;
    return 0;
}

static int buf_put_i64(Buf *b, int64_t v) { return buf_put(b, &v, sizeof v); }

static PyObject *buf_bytes(Buf *b) { return PyBytes_FromStringAndSize((const char *)b->data, (Py_ssize_t)b->len); }

/* -- a strict JSON reader that answers "sure" or "not sure" ---------------------------------------- */

enum { SURE = 0, UNSURE = 1, NO_MEMORY = 2 };
#define MAX_DEPTH 64 /* msgspec reads far deeper; deeper lines are left to it */

typedef struct {
    const uint8_t *p, *end;
} Cursor;

static inline int is_ws(uint8_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static inline void skip_ws(Cursor *c) {
    while (c->p < c->end && is_ws(*c->p)) c->p++;
}

/* The length of the valid UTF-8 sequence at p (Unicode's table 3-7), or 0. */
static inline size_t utf8_length(const uint8_t *p, const uint8_t *end) {
    uint8_t b = p[0];
    size_t n;
    uint8_t lo = 0x80, hi = 0xBF; /* the bounds of the second byte */
    if (b >= 0xC2 && b <= 0xDF) n = 2;
    else if (b >= 0xE0 && b <= 0xEF) { n = 3; if (b == 0xE0) lo = 0xA0; if (b == 0xED) hi = 0x9F; }
    else if (b >= 0xF0 && b <= 0xF4) { n = 4; if (b == 0xF0) lo = 0x90; if (b == 0xF4) hi = 0x8F; }
    else return 0;
    if ((size_t)(end - p) < n || p[1] < lo || p[1] > hi) return 0;
    for (size_t i = 2; i < n; i++)
        if (p[i] < 0x80 || p[i] > 0xBF) return 0;
    return n;
}

static inline int hex4(const uint8_t *p, uint32_t *out) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        uint8_t c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= c - '0';
        else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
        else return -1;
    }
    *out = v;
    return 0;
}

static int put_utf8(Buf *out, uint32_t cp) {
    uint8_t b[4];
    size_t n;
    if (cp < 0x80) { b[0] = (uint8_t)cp; n = 1; }
    else if (cp < 0x800) { b[0] = 0xC0 | (cp >> 6); b[1] = 0x80 | (cp & 0x3F); n = 2; }
    else if (cp < 0x10000) { b[0] = 0xE0 | (cp >> 12); b[1] = 0x80 | ((cp >> 6) & 0x3F); b[2] = 0x80 | (cp & 0x3F); n = 3; }
    else { b[0] = 0xF0 | (cp >> 18); b[1] = 0x80 | ((cp >> 12) & 0x3F); b[2] = 0x80 | ((cp >> 6) & 0x3F); b[3] = 0x80 | (cp & 0x3F); n = 4; }
    return buf_put(out, b, n) ? NO_MEMORY : SURE;
}

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL

/* Where the run of bytes from p that stand for themselves in a JSON string ends: ASCII that is not a
 * control character, a quote or a backslash. Eight bytes a step (a word's bytes are tested at once:
 * "bit twiddling hacks", determine if a word has a byte less than n), then one at a time. */
/* How many bytes of a word (read from memory) come before the first flagged one: exact on a little-
 * endian machine, where the tests below may flag bytes after a special one too (a borrow runs on),
 * never one before it; elsewhere 0, and the byte loop finds it. */
static inline int before_flagged(uint64_t flags) {
#if (defined(__GNUC__) || defined(__clang__)) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    return __builtin_ctzll(flags) / 8;
#else
    (void)flags;
    return 0;
#endif
}

static inline const uint8_t *plain_run(const uint8_t *p, const uint8_t *end) {
    while (end - p >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        uint64_t quote = v ^ (ONES * '"'), slash = v ^ (ONES * '\\');
        uint64_t special = (((v - ONES * 0x20) & ~v) | ((quote - ONES) & ~quote) | ((slash - ONES) & ~slash) | v) & HIGHS;
        if (special) {
            p += before_flagged(special);
            break;
        }
        p += 8;
    }
    while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\') p++;
    return p;
}

/* A string at c->p (its opening quote). Its text goes to `out` when given. */
static int read_string(Cursor *c, Buf *out) {
    const uint8_t *p = c->p + 1, *end = c->end;
    for (;;) {
        const uint8_t *run = p; /* a run of bytes that stand for themselves */
        p = plain_run(p, end);
        if (out && p > run && buf_put(out, run, (size_t)(p - run))) return NO_MEMORY;
        if (p >= end) return UNSURE;
        uint8_t b = *p;
        if (b == '"') {
            c->p = p + 1;
            return SURE;
        }
        if (b < 0x20) return UNSURE; /* a raw control character: not JSON */
        if (b >= 0x80) {
            size_t n = utf8_length(p, end);
            if (!n) return UNSURE;
            if (out && buf_put(out, p, n)) return NO_MEMORY;
            p += n;
            continue;
        }
        /* an escape */
        if (end - p < 2) return UNSURE;
        uint8_t e = p[1], plain;
        switch (e) {
        case '"': plain = '"'; break;
        case '\\': plain = '\\'; break;
        case '/': plain = '/'; break;
        case 'b': plain = '\b'; break;
        case 'f': plain = '\f'; break;
        case 'n': plain = '\n'; break;
        case 'r': plain = '\r'; break;
        case 't': plain = '\t'; break;
        case 'u': {
            uint32_t cp, low;
            if (end - p < 6 || hex4(p + 2, &cp)) return UNSURE;
            p += 6;
            if (cp >= 0xDC00 && cp <= 0xDFFF) return UNSURE; /* a lone low surrogate */
            if (cp >= 0xD800 && cp <= 0xDBFF) {              /* a pair, or unsure */
                if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || hex4(p + 2, &low) || low < 0xDC00 || low > 0xDFFF)
                    return UNSURE;
                p += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
            }
            if (out) {
                int err = put_utf8(out, cp);
                if (err) return err;
            }
            continue;
        }
        default: return UNSURE;
        }
        if (out && buf_put(out, &plain, 1)) return NO_MEMORY;
        p += 2;
    }
}

static int read_number(Cursor *c) {
    const uint8_t *p = c->p, *end = c->end;
    if (p < end && *p == '-') p++;
    if (p >= end) return UNSURE;
    if (*p == '0') p++;
    else if (*p >= '1' && *p <= '9') while (p < end && *p >= '0' && *p <= '9') p++;
    else return UNSURE;
    if (p < end && *p == '.') {
        const uint8_t *digits = ++p;
        while (p < end && *p >= '0' && *p <= '9') p++;
        if (p == digits) return UNSURE;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-')) p++;
        const uint8_t *digits = p;
        while (p < end && *p >= '0' && *p <= '9') p++;
        if (p == digits) return UNSURE;
    }
    c->p = p;
    return SURE;
}

static int read_literal(Cursor *c, const char *word, size_t n) {
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n)) return UNSURE;
    c->p += n;
    return SURE;
}

static int read_value(Cursor *c, int depth);

/* An array or an object at c->p, whose members are read and dropped. */
static int read_container(Cursor *c, int depth) {
    uint8_t close = *c->p == '[' ? ']' : '}';
    if (depth >= MAX_DEPTH) return UNSURE;
    c->p++;
    skip_ws(c);
    if (c->p < c->end && *c->p == close) {
        c->p++;
        return SURE;
    }
    for (;;) {
        int err;
        if (close == '}') {
            if (c->p >= c->end || *c->p != '"') return UNSURE;
            if ((err = read_string(c, NULL))) return err;
            skip_ws(c);
            if (c->p >= c->end || *c->p != ':') return UNSURE;
            c->p++;
            skip_ws(c);
        }
        if ((err = read_value(c, depth + 1))) return err;
        skip_ws(c);
        if (c->p >= c->end) return UNSURE;
        if (*c->p == close) {
            c->p++;
            return SURE;
        }
        if (*c->p != ',') return UNSURE;
        c->p++;
        skip_ws(c);
    }
}

static int read_value(Cursor *c, int depth) {
    if (c->p >= c->end) return UNSURE;
    switch (*c->p) {
    case '"': return read_string(c, NULL);
    case '{': case '[': return read_container(c, depth);
    case 't': return read_literal(c, "true", 4);
    case 'f': return read_literal(c, "false", 5);
    case 'n': return read_literal(c, "null", 4);
    default: return read_number(c);
    }
}

/* -- a line to its key ----------------------------------------------------------------------------- */

#define FIELDS 4 /* kind, query, positive, negative: store.ExampleKey */
static const char *const FIELD_NAMES[FIELDS] = {"kind", "query", "positive", "negative"};
static const size_t FIELD_LENGTHS[FIELDS] = {4, 5, 8, 8};

typedef struct {
    Buf text[FIELDS]; /* each field's text, decoded */
    Buf key;          /* the canonical bytes */
} Scratch;

static void scratch_free(Scratch *s) {
    for (int i = 0; i < FIELDS; i++) PyMem_Free(s->text[i].data);
    PyMem_Free(s->key.data);
}

/* The field a member name (raw, between its quotes) is, or -1. A name with an escape is unsure (-2). */
static int field_of(const uint8_t *name, size_t n) {
    if (memchr(name, '\\', n)) return -2;
    for (int i = 0; i < FIELDS; i++)
        if (n == FIELD_LENGTHS[i] && !memcmp(name, FIELD_NAMES[i], n)) return i;
    return -1;
}

/* The canonical bytes of the line's key (its first `fields` fields) into s->key, or UNSURE. */
static int line_key(const uint8_t *line, const uint8_t *end, int fields, Scratch *s) {
    enum { ABSENT, TEXT, NUL } state[FIELDS] = {ABSENT, ABSENT, ABSENT, ABSENT};
    Cursor c = {line, end};
    int err;
    skip_ws(&c);
    if (c.p >= c.end || *c.p != '{') return UNSURE;
    c.p++;
    skip_ws(&c);
    for (;;) {
        if (c.p >= c.end || *c.p != '"') return UNSURE;
        const uint8_t *name = c.p + 1;
        if ((err = read_string(&c, NULL))) return err;
        int field = field_of(name, (size_t)(c.p - 1 - name));
        if (field == -2) return UNSURE;
        skip_ws(&c);
        if (c.p >= c.end || *c.p != ':') return UNSURE;
        c.p++;
        skip_ws(&c);
        if (field < 0) {
            if ((err = read_value(&c, 1))) return err;
        } else if (state[field] != ABSENT) {
            return UNSURE; /* a field twice */
        } else if (c.p < c.end && *c.p == '"') {
            s->text[field].len = 0;
            if ((err = read_string(&c, &s->text[field]))) return err;
            state[field] = TEXT;
        } else if (field == 3 && read_literal(&c, "null", 4) == SURE) {
            state[field] = NUL;
        } else {
            return UNSURE; /* not a string: not an example, as msgspec will say */
        }
        skip_ws(&c);
        if (c.p >= c.end) return UNSURE;
        if (*c.p == '}') break;
        if (*c.p != ',') return UNSURE;
        c.p++;
        skip_ws(&c);
    }
    c.p++;
    skip_ws(&c);
    if (c.p != c.end || state[0] != TEXT || state[1] != TEXT || state[2] != TEXT) return UNSURE;
    s->key.len = 0;
    for (int i = 0; i < fields; i++) {
        uint8_t head[9];
        if (state[i] != TEXT) {
            head[0] = 0;
            if (buf_put(&s->key, head, 1)) return NO_MEMORY;
            continue;
        }
        uint64_t n = s->text[i].len;
        head[0] = 1;
        for (int b = 0; b < 8; b++) head[1 + b] = (uint8_t)(n >> (8 * b));
        if (buf_put(&s->key, head, 9) || buf_put(&s->key, s->text[i].data, n)) return NO_MEMORY;
    }
    return SURE;
}

static inline int is_blank(const uint8_t *p, const uint8_t *end) { /* bytes.isspace */
    for (; p < end; p++)
        if (!(*p == ' ' || (*p >= '\t' && *p <= '\r'))) return 0;
    return 1;
}

PyDoc_STRVAR(scan_doc,
"scan(data, fields) -> (ends, lines, digests, deferred, blank)\n\n"
"Split `data` into lines as bytes.splitlines(keepends=True) does and digest the key (the first `fields`\n"
"of kind, query, positive, negative) of each line it is sure of. ends: where each line ends (int64);\n"
"lines: the numbers of the lines digested (int64) and digests: their 16-byte digests, in line order;\n"
"deferred: the numbers of the lines left to the caller (int64); blank: how many lines are blank.");

static PyObject *scan(PyObject *self, PyObject *args) {
    Py_buffer view;
    int fields;
    if (!PyArg_ParseTuple(args, "y*i:scan", &view, &fields)) return NULL;
    if (fields < 2 || fields > FIELDS) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "fields must be 2 to 4");
        return NULL;
    }
    const uint8_t *data = view.buf, *end = data + view.len, *line = data;
    Buf ends = {0}, lines = {0}, digests = {0}, deferred = {0};
    Scratch s = {0};
    Py_ssize_t blank = 0;
    int64_t number = 0, failed = 0;
    while (line < end && !failed) {
        /* the line's terminator, or the end: a \n, or a \r before it (memchr is vectorised) */
        const uint8_t *stop = memchr(line, '\n', (size_t)(end - line));
        if (!stop) stop = end;
        const uint8_t *cr = memchr(line, '\r', (size_t)(stop - line));
        if (cr) stop = cr;
        const uint8_t *next = stop;
        if (next < end) next += (*next == '\r' && next + 1 < end && next[1] == '\n') ? 2 : 1;
        failed = buf_put_i64(&ends, (int64_t)(next - data));
        if (!failed && is_blank(line, next)) {
            blank++;
        } else if (!failed) {
            int err = line_key(line, stop, fields, &s);
            if (err == SURE) {
                uint64_t digest[2];
                uint8_t bytes[16];
                murmur3_128(s.key.data, s.key.len, digest);
                for (int b = 0; b < 8; b++) {
                    bytes[b] = (uint8_t)(digest[0] >> (8 * b));
                    bytes[8 + b] = (uint8_t)(digest[1] >> (8 * b));
                }
                failed = buf_put_i64(&lines, number) || buf_put(&digests, bytes, 16);
            } else {
                failed = err == NO_MEMORY || buf_put_i64(&deferred, number);
            }
        }
        number++;
        line = next;
    }
    PyBuffer_Release(&view);
    PyObject *result = failed ? PyErr_NoMemory()
                              : Py_BuildValue("(NNNNn)", buf_bytes(&ends), buf_bytes(&lines), buf_bytes(&digests),
                                              buf_bytes(&deferred), blank);
    PyMem_Free(ends.data);
    PyMem_Free(lines.data);
    PyMem_Free(digests.data);
    PyMem_Free(deferred.data);
    scratch_free(&s);
    return result;
}

PyDoc_STRVAR(digest_doc, "digest(data) -> bytes\n\nThe 16-byte MurmurHash3_x64_128 digest of `data` (seed 0).");

static PyObject *digest(PyObject *self, PyObject *args) {
    Py_buffer view;
    if (!PyArg_ParseTuple(args, "y*:digest", &view)) return NULL;
    uint64_t h[2];
    uint8_t bytes[16];
    murmur3_128(view.buf, (size_t)view.len, h);
    PyBuffer_Release(&view);
    for (int b = 0; b < 8; b++) {
        bytes[b] = (uint8_t)(h[0] >> (8 * b));
        bytes[8 + b] = (uint8_t)(h[1] >> (8 * b));
    }
    return PyBytes_FromStringAndSize((const char *)bytes, 16);
}

/* -- the table of digests seen --------------------------------------------------------------------- */

/* Open addressing with linear probing in rows of two uint64, held by the caller (a numpy array whose
 * length is a power of two). A digest's low word is stored with its lowest bit set, so that an all-zero
 * row is always an empty slot. */

#define PREFETCH_AHEAD 16
#if defined(__GNUC__) || defined(__clang__)
#define prefetch(address) __builtin_prefetch(address, 1)
#else
#define prefetch(address) ((void)0)
#endif

static inline int table_add(uint64_t *slots, uint64_t mask, uint64_t hi, uint64_t lo) {
    lo |= 1;
    for (uint64_t at = hi & mask;; at = (at + 1) & mask) {
        uint64_t *row = slots + 2 * at;
        if (!row[0] && !row[1]) {
            row[0] = hi;
            row[1] = lo;
            return 0;
        }
        if (row[0] == hi && row[1] == lo) return 1;
    }
}

static int table_view(PyObject *table, Py_buffer *view, uint64_t *rows) {
    if (PyObject_GetBuffer(table, view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS)) return -1;
    *rows = (uint64_t)view->len / 16;
    if (*rows == 0 || (*rows & (*rows - 1)) || view->len % 16) {
        PyBuffer_Release(view);
        PyErr_SetString(PyExc_ValueError, "the table must be a power-of-two number of 16-byte rows");
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(add_doc,
"add(table, digests) -> (repeats, added)\n\n"
"Add 16-byte digests, in order, to the table (a writable buffer of a power of two of 16-byte rows,\n"
"which the caller has grown so that empty rows remain after these: a full table would be probed for\n"
"ever). repeats: the positions (int64) of the digests it held already,\n"
"an earlier one of these included; added: how many rows were taken.");

static PyObject *add(PyObject *self, PyObject *args) {
    PyObject *table;
    Py_buffer view, keys;
    uint64_t rows;
    if (!PyArg_ParseTuple(args, "Oy*:add", &table, &keys)) return NULL;
    if (table_view(table, &view, &rows)) {
        PyBuffer_Release(&keys);
        return NULL;
    }
    Buf repeats = {0};
    Py_ssize_t added = 0, n = keys.len / 16;
    int failed = 0;
    const uint8_t *k = keys.buf;
    uint64_t *slots = view.buf, mask = rows - 1;
    for (Py_ssize_t i = 0; i < n && !failed; i++) {
        /* Each key's slot is a cache miss: ask for the slot of a key a few ahead while this one is probed. */
        if (i + PREFETCH_AHEAD < n) prefetch(slots + 2 * (load_le64(k + 16 * (i + PREFETCH_AHEAD)) & mask));
        if (table_add(slots, mask, load_le64(k + 16 * i), load_le64(k + 16 * i + 8))) failed = buf_put_i64(&repeats, i);
        else added++;
    }
    PyBuffer_Release(&view);
    PyBuffer_Release(&keys);
    PyObject *result = failed ? PyErr_NoMemory() : Py_BuildValue("(Nn)", buf_bytes(&repeats), added);
    PyMem_Free(repeats.data);
    return result;
}

PyDoc_STRVAR(rehash_doc, "rehash(old, new)\n\nMove every row of one table into another, larger one.");

static PyObject *rehash(PyObject *self, PyObject *args) {
    PyObject *old, *new;
    Py_buffer from, to;
    uint64_t from_rows, to_rows;
    if (!PyArg_ParseTuple(args, "OO:rehash", &old, &new)) return NULL;
    if (table_view(old, &from, &from_rows)) return NULL;
    if (table_view(new, &to, &to_rows)) {
        PyBuffer_Release(&from);
        return NULL;
    }
    const uint64_t *rows = from.buf;
    for (uint64_t i = 0; i < from_rows; i++)
        if (rows[2 * i] || rows[2 * i + 1]) table_add(to.buf, to_rows - 1, rows[2 * i], rows[2 * i + 1]);
    PyBuffer_Release(&from);
    PyBuffer_Release(&to);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS, scan_doc},
    {"digest", digest, METH_VARARGS, digest_doc},
    {"add", add, METH_VARARGS, add_doc},
    {"rehash", rehash, METH_VARARGS, rehash_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_dedup_native",
                                    "The hot loops of synthgen dedup, compiled.", -1, methods};

PyMODINIT_FUNC PyInit__dedup_native(void) { return PyModule_Create(&module); }
