/* The compiled hot path of the parse: three functions, each one pass over text.
 *
 * `split_records(text)` cuts a stream file's text into records (see reader.split_records).
 *
 * `classify_common(bodies)` types the records of the commonest shapes (platform lines, two
 * application messages: two thirds of all records, each a few microseconds of Python) as
 * `events.classify` does, and leaves every other record to it.
 *
 * `literal_json(text)` goes from a Node `util.inspect` object literal to the compact JSON stored in
 * `log_events.payload`. It reads the literal that starts at text[0] ('{' or '[') and returns
 * `(end, json)`: the index just past its closing bracket and its JSON, written as
 * `inspect_literal.to_json(parse_literal(text).value)` writes it (fractional numbers as strings of
 * their exact digits, keys in order, orjson's escapes; integers of at most 18 digits). It returns None for anything outside the
 * common subset it knows (undefined, NaN, placeholders, class names, exponents, unusual escapes,
 * duplicate keys, deep nesting, malformed text); the caller then takes the general Python path,
 * which handles or explains those. It never raises for bad input.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#define MAX_DEPTH 64
#define MAX_KEYS 64

typedef struct {
    char *data;
    Py_ssize_t size;
    Py_ssize_t capacity;
} Buffer;

typedef struct {
    const unsigned char *text;
    Py_ssize_t length;
    Py_ssize_t pos;
    Buffer out;
} Parser;

/* 0: give up (not in the fast subset, or out of memory); 1: done. */
static int parse_value(Parser *p, int depth);

static int reserve(Buffer *b, Py_ssize_t extra) {
    if (b->size + extra <= b->capacity) return 1;
    Py_ssize_t capacity = b->capacity * 2 + extra;
    char *data = PyMem_Realloc(b->data, (size_t)capacity);
    if (data == NULL) return 0;
    b->data = data;
    b->capacity = capacity;
    return 1;
}

static int put(Buffer *b, const char *bytes, Py_ssize_t n) {
    if (!reserve(b, n)) return 0;
    memcpy(b->data + b->size, bytes, (size_t)n);
    b->size += n;
    return 1;
}

static int put_char(Buffer *b, char c) { return put(b, &c, 1); }

static void skip_space(Parser *p) {
    while (p->pos < p->length) {
        unsigned char c = p->text[p->pos];
        if (c != ' ' && c != '\n' && c != '\r' && c != '\t') return;
        p->pos++;
    }
}

static int is_identifier_start(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '$';
}

static int is_identifier_char(unsigned char c) {
    return is_identifier_start(c) || (c >= '0' && c <= '9');
}

static int hex_value(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int read_hex(Parser *p, int digits, Py_UCS4 *value) {
    if (p->pos + digits > p->length) return 0;
    *value = 0;
    for (int i = 0; i < digits; i++) {
        int v = hex_value(p->text[p->pos + i]);
        if (v < 0) return 0;
        *value = *value * 16 + (Py_UCS4)v;
    }
    p->pos += digits;
    return 1;
}

/* A code point as JSON string content, escaped as orjson escapes it. */
static int put_code_point(Buffer *b, Py_UCS4 c) {
    char bytes[8];
    switch (c) {
        case '"': return put(b, "\\\"", 2);
        case '\\': return put(b, "\\\\", 2);
        case '\b': return put(b, "\\b", 2);
        case '\t': return put(b, "\\t", 2);
        case '\n': return put(b, "\\n", 2);
        case '\f': return put(b, "\\f", 2);
        case '\r': return put(b, "\\r", 2);
        default: break;
    }
    if (c < 0x20) {
        snprintf(bytes, sizeof bytes, "\\u%04x", (unsigned)c);
        return put(b, bytes, 6);
    }
    if (c < 0x80) return put_char(b, (char)c);
    if (c < 0x800) {
        bytes[0] = (char)(0xC0 | (c >> 6));
        bytes[1] = (char)(0x80 | (c & 0x3F));
        return put(b, bytes, 2);
    }
    if (c >= 0xD800 && c <= 0xDFFF) return 0; /* a lone surrogate: the general path decides */
    if (c < 0x10000) {
        bytes[0] = (char)(0xE0 | (c >> 12));
        bytes[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        bytes[2] = (char)(0x80 | (c & 0x3F));
        return put(b, bytes, 3);
    }
    bytes[0] = (char)(0xF0 | (c >> 18));
    bytes[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    bytes[2] = (char)(0x80 | ((c >> 6) & 0x3F));
    bytes[3] = (char)(0x80 | (c & 0x3F));
    return put(b, bytes, 4);
}

/* Whether the key just written at b->data[start:] repeats one of keys[0:count] (the keys of one
 * object, as offsets into b). Python's dict would keep one value where JSON text keeps two, so the
 * caller gives up and leaves the text to the Python path. */
static int repeated_key(Buffer *b, Py_ssize_t start, Py_ssize_t *keys, Py_ssize_t *lengths,
                        int count) {
    Py_ssize_t length = b->size - start;
    for (int k = 0; k < count; k++)
        if (lengths[k] == length && memcmp(b->data + keys[k], b->data + start, (size_t)length) == 0)
            return 1;
    return 0;
}

/* A quoted string ('...', "..." or `...`) at p->pos, written as a JSON string. */
static int parse_string(Parser *p) {
    unsigned char quote = p->text[p->pos++];
    if (!put_char(&p->out, '"')) return 0;
    while (p->pos < p->length) {
        unsigned char c = p->text[p->pos];
        if (c == quote) {
            p->pos++;
            return put_char(&p->out, '"');
        }
        if (c >= 0x80) { /* UTF-8 sequences are copied as they are (the text came from a str) */
            Py_ssize_t start = p->pos++;
            while (p->pos < p->length && (p->text[p->pos] & 0xC0) == 0x80) p->pos++;
            if (!put(&p->out, (const char *)p->text + start, p->pos - start)) return 0;
            continue;
        }
        if (c < 0x20) return 0; /* Node escapes control characters; raw ones are not JSON */
        p->pos++;
        if (c != '\\') {
            if (!put_code_point(&p->out, c)) return 0;
            continue;
        }
        if (p->pos >= p->length) return 0;
        unsigned char escaped = p->text[p->pos++];
        Py_UCS4 code;
        switch (escaped) {
            case 'n': code = '\n'; break;
            case 't': code = '\t'; break;
            case 'r': code = '\r'; break;
            case 'b': code = '\b'; break;
            case 'f': code = '\f'; break;
            case '\\': case '\'': case '"': case '`': code = escaped; break;
            case 'x':
                if (!read_hex(p, 2, &code)) return 0;
                break;
            case 'u':
                if (!read_hex(p, 4, &code)) return 0;
                break;
            default:
                return 0;
        }
        if (!put_code_point(&p->out, code)) return 0;
    }
    return 0; /* not closed */
}

/* A number: integers as they are, fractions as strings of their digits (Python's str(Decimal)). */
static int parse_number(Parser *p) {
    const unsigned char *t = p->text;
    Py_ssize_t start = p->pos, i = p->pos;
    if (i < p->length && t[i] == '-') i++;
    Py_ssize_t integer_start = i;
    while (i < p->length && t[i] >= '0' && t[i] <= '9') i++;
    Py_ssize_t integer_digits = i - integer_start;
    if (integer_digits == 0) return 0;
    int zero_integer = t[integer_start] == '0';
    if (zero_integer && integer_digits > 1) return 0; /* leading zeros */
    int fraction = 0;
    Py_ssize_t fraction_digits = 0, leading_zeros = 0;
    if (i < p->length && t[i] == '.') {
        fraction = 1;
        i++;
        Py_ssize_t fraction_start = i;
        while (i < p->length && t[i] >= '0' && t[i] <= '9') i++;
        fraction_digits = i - fraction_start;
        if (fraction_digits == 0) return 0;
        while (leading_zeros < fraction_digits && t[fraction_start + leading_zeros] == '0')
            leading_zeros++;
    }
    if (i < p->length && (is_identifier_char(t[i]) || t[i] == '.')) return 0; /* 1e5, 10n, ... */
    if (!fraction) {
        if (zero_integer && t[start] == '-') return 0; /* -0 is 0 once read as an integer */
        if (integer_digits > 18) return 0; /* so that any 64-bit JSON reader reads it exactly */
        p->pos = i;
        return put(&p->out, (const char *)t + start, i - start);
    }
    /* str(Decimal) switches to exponent notation below 1e-6: leave those to the general path. */
    if (zero_integer) {
        Py_ssize_t adjusted =
            leading_zeros == fraction_digits ? -fraction_digits : -(leading_zeros + 1);
        if (adjusted < -6) return 0;
    }
    p->pos = i;
    return put_char(&p->out, '"') && put(&p->out, (const char *)t + start, i - start) &&
           put_char(&p->out, '"');
}

static int parse_key(Parser *p) {
    unsigned char c = p->text[p->pos];
    if (c == '\'' || c == '"') return parse_string(p);
    if (!is_identifier_start(c)) return 0;
    Py_ssize_t start = p->pos;
    while (p->pos < p->length && is_identifier_char(p->text[p->pos])) p->pos++;
    return put_char(&p->out, '"') &&
           put(&p->out, (const char *)p->text + start, p->pos - start) && put_char(&p->out, '"');
}

static int parse_object(Parser *p, int depth) {
    Py_ssize_t key_start[MAX_KEYS], key_length[MAX_KEYS];
    int keys = 0;
    p->pos++; /* '{' */
    if (!put_char(&p->out, '{')) return 0;
    skip_space(p);
    if (p->pos < p->length && p->text[p->pos] == '}') {
        p->pos++;
        return put_char(&p->out, '}');
    }
    for (;;) {
        if (p->pos >= p->length || keys == MAX_KEYS) return 0;
        Py_ssize_t start = p->out.size;
        if (!parse_key(p)) return 0;
        if (repeated_key(&p->out, start, key_start, key_length, keys)) return 0;
        key_start[keys] = start;
        key_length[keys++] = p->out.size - start;
        skip_space(p);
        if (p->pos >= p->length || p->text[p->pos] != ':') return 0;
        p->pos++;
        skip_space(p);
        if (!put_char(&p->out, ':') || !parse_value(p, depth + 1)) return 0;
        skip_space(p);
        if (p->pos >= p->length) return 0;
        unsigned char c = p->text[p->pos++];
        if (c == '}') return put_char(&p->out, '}');
        if (c != ',' || !put_char(&p->out, ',')) return 0;
        skip_space(p);
    }
}

static int parse_array(Parser *p, int depth) {
    p->pos++; /* '[' */
    if (!put_char(&p->out, '[')) return 0;
    skip_space(p);
    if (p->pos < p->length && p->text[p->pos] == ']') {
        p->pos++;
        return put_char(&p->out, ']');
    }
    for (;;) {
        if (!parse_value(p, depth + 1)) return 0;
        skip_space(p);
        if (p->pos >= p->length) return 0;
        unsigned char c = p->text[p->pos++];
        if (c == ']') return put_char(&p->out, ']');
        if (c != ',' || !put_char(&p->out, ',')) return 0;
        skip_space(p);
    }
}

static int parse_keyword(Parser *p) {
    static const char *const words[] = {"true", "false", "null"};
    for (size_t w = 0; w < sizeof words / sizeof *words; w++) {
        Py_ssize_t n = (Py_ssize_t)strlen(words[w]);
        if (p->pos + n <= p->length && memcmp(p->text + p->pos, words[w], (size_t)n) == 0 &&
            (p->pos + n == p->length || !is_identifier_char(p->text[p->pos + n]))) {
            p->pos += n;
            return put(&p->out, words[w], n);
        }
    }
    return 0; /* undefined, NaN, Infinity, a class name, a placeholder word */
}

static int parse_value(Parser *p, int depth) {
    if (depth > MAX_DEPTH || p->pos >= p->length) return 0;
    unsigned char c = p->text[p->pos];
    if (c == '{') return parse_object(p, depth);
    if (c == '[') return parse_array(p, depth);
    if (c == '\'' || c == '"' || c == '`') return parse_string(p);
    if (c == '-' || (c >= '0' && c <= '9')) return parse_number(p);
    return parse_keyword(p);
}

static PyObject *literal_json(PyObject *module, PyObject *text) {
    (void)module;
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "literal_json() takes a str");
        return NULL;
    }
    Py_ssize_t length;
    const char *utf8 = PyUnicode_AsUTF8AndSize(text, &length);
    if (utf8 == NULL) { /* lone surrogates cannot be UTF-8: the general path decides */
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    if (length == 0 || (utf8[0] != '{' && utf8[0] != '[')) Py_RETURN_NONE;
    Parser p = {(const unsigned char *)utf8, length, 0, {NULL, 0, 0}};
    p.out.capacity = length + 16;
    p.out.data = PyMem_Malloc((size_t)p.out.capacity);
    if (p.out.data == NULL) return PyErr_NoMemory();
    PyObject *result = NULL;
    if (parse_value(&p, 0)) {
        Py_ssize_t end = p.pos;
        if (!PyUnicode_IS_ASCII(text)) { /* a byte offset into UTF-8 -> an index of code points */
            end = 0;
            for (Py_ssize_t i = 0; i < p.pos; i++) end += (utf8[i] & 0xC0) != 0x80;
        }
        PyObject *json = PyUnicode_DecodeUTF8(p.out.data, p.out.size, "strict");
        if (json != NULL) {
            result = Py_BuildValue("(nN)", end, json);
        }
    } else {
        result = Py_NewRef(Py_None);
    }
    PyMem_Free(p.out.data);
    return result;
}


/* ---- records ------------------------------------------------------------------------------------ */

#define XRAY "XRAY TraceId: "
#define XRAY_LENGTH 14

static int is_digit_at(int kind, const void *data, Py_ssize_t n, Py_ssize_t i) {
    if (i >= n) return 0;
    Py_UCS4 c = PyUnicode_READ(kind, data, i);
    return c >= '0' && c <= '9';
}

static int is_char_at(int kind, const void *data, Py_ssize_t n, Py_ssize_t i, Py_UCS4 c) {
    return i < n && PyUnicode_READ(kind, data, i) == c;
}

/* Whether a record starts at `i` (a line start): an ISO timestamp and a space, or `XRAY TraceId: `.
 * Returns 1 for a timestamp (the space at *space), 2 for XRAY, 0 for neither. */
static int record_start(int kind, const void *data, Py_ssize_t n, Py_ssize_t i, Py_ssize_t *space) {
    /* yyyy-mm-ddThh:mm:ss: digits at these offsets, these characters at the others */
    static const char shape[] = "dddd-dd-ddTdd:dd:dd";
    if (is_char_at(kind, data, n, i, 'X')) {
        for (Py_ssize_t k = 0; k < XRAY_LENGTH; k++)
            if (!is_char_at(kind, data, n, i + k, (Py_UCS4)XRAY[k])) return 0;
        return 2;
    }
    for (Py_ssize_t k = 0; k < (Py_ssize_t)sizeof shape - 1; k++) {
        if (shape[k] == 'd' ? !is_digit_at(kind, data, n, i + k)
                            : !is_char_at(kind, data, n, i + k, (Py_UCS4)shape[k]))
            return 0;
    }
    Py_ssize_t j = i + (Py_ssize_t)sizeof shape - 1;
    if (is_char_at(kind, data, n, j, '.')) {
        Py_ssize_t digits = 0;
        while (is_digit_at(kind, data, n, j + 1 + digits)) digits++;
        if (digits < 1 || digits > 9) return 0;
        j += 1 + digits;
    }
    if (!is_char_at(kind, data, n, j, 'Z') || !is_char_at(kind, data, n, j + 1, ' ')) return 0;
    *space = j + 1;
    return 1;
}

static Py_ssize_t find_newline(int kind, const void *data, Py_ssize_t n, Py_ssize_t i) {
    if (kind == PyUnicode_1BYTE_KIND) {
        const char *found = memchr((const char *)data + i, '\n', (size_t)(n - i));
        return found == NULL ? -1 : found - (const char *)data;
    }
    for (; i < n; i++)
        if (PyUnicode_READ(kind, data, i) == '\n') return i;
    return -1;
}

typedef struct {
    PyObject *text, *lines, *stamps, *bodies;
    PyObject *previous; /* the last timestamp: XRAY lines take it (borrowed from `stamps`) */
} Records;

/* Append the record in text[start:end) (its separating newline excluded) starting on `line`. */
static int add_record(Records *r, int kind, const void *data, Py_ssize_t start, Py_ssize_t end,
                      int shape, Py_ssize_t space, Py_ssize_t line) {
    while (end > start) { /* trailing newlines and carriage returns are not part of the body */
        Py_UCS4 c = PyUnicode_READ(kind, data, end - 1);
        if (c != '\n' && c != '\r') break;
        end--;
    }
    PyObject *stamp, *body;
    if (shape == 2) {
        stamp = Py_NewRef(r->previous != NULL ? r->previous : Py_None);
        body = PyUnicode_Substring(r->text, start, end);
    } else {
        stamp = PyUnicode_Substring(r->text, start, space);
        body = PyUnicode_Substring(r->text, space + 1, end > space + 1 ? end : space + 1);
        r->previous = stamp;
    }
    PyObject *number = PyLong_FromSsize_t(line);
    int ok = stamp != NULL && body != NULL && number != NULL &&
             PyList_Append(r->lines, number) == 0 && PyList_Append(r->stamps, stamp) == 0 &&
             PyList_Append(r->bodies, body) == 0;
    Py_XDECREF(stamp);
    Py_XDECREF(body);
    Py_XDECREF(number);
    return ok;
}

static PyObject *split_records(PyObject *module, PyObject *text) {
    (void)module;
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "split_records() takes a str");
        return NULL;
    }
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    Records r = {text, PyList_New(0), PyList_New(0), PyList_New(0), NULL};
    PyObject *result = NULL;
    if (r.lines == NULL || r.stamps == NULL || r.bodies == NULL) goto done;
    Py_ssize_t head_end = n, start = -1, start_line = 0, space = 0, line = 1, position = 0;
    int shape = 0;
    for (;;) {
        Py_ssize_t next_space = 0;
        int next_shape = record_start(kind, data, n, position, &next_space);
        if (next_shape) {
            if (start < 0) {
                head_end = position;
            } else if (!add_record(&r, kind, data, start, position - 1, shape, space, start_line)) {
                goto done;
            }
            start = position, start_line = line, shape = next_shape, space = next_space;
        }
        Py_ssize_t newline = find_newline(kind, data, n, position);
        if (newline < 0) break;
        position = newline + 1;
        line++;
    }
    if (start >= 0 && !add_record(&r, kind, data, start, n, shape, space, start_line)) goto done;
    result = Py_BuildValue("(nOOO)", head_end, r.lines, r.stamps, r.bodies);
done:
    Py_XDECREF(r.lines);
    Py_XDECREF(r.stamps);
    Py_XDECREF(r.bodies);
    return result;
}

/* ---- the commonest records ------------------------------------------------------------------------ */

/* Python's str.isspace() for ASCII characters (what str.strip() removes). */
static int is_py_space(char c) {
    return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1C && c <= 0x1F);
}

static int starts_with(const char *s, Py_ssize_t n, const char *prefix) {
    Py_ssize_t k = (Py_ssize_t)strlen(prefix);
    return n >= k && memcmp(s, prefix, (size_t)k) == 0;
}

static const char *find_char(const char *s, Py_ssize_t n, char c) {
    return memchr(s, c, (size_t)n);
}

typedef struct {
    const char *kind; /* an interned kind name, NULL: leave the record to events.classify */
    const char *level, *request_id, *message;
    Py_ssize_t level_length, request_id_length, message_length;
    Buffer *payload; /* its JSON when has_payload (a buffer reused from record to record) */
    int has_payload;
} Common;

/* A JSON string of ASCII text, escaped as orjson escapes it. */
static int put_json_text(Buffer *b, const char *s, Py_ssize_t n) {
    int ok = put_char(b, '"');
    for (Py_ssize_t i = 0; ok && i < n; i++) ok = put_code_point(b, (unsigned char)s[i]);
    return ok && put_char(b, '"');
}

static void strip(const char **start, const char **end) {
    while (*start < *end && is_py_space(**start)) (*start)++;
    while (*end > *start && is_py_space((*end)[-1])) (*end)--;
}

/* Where " Version: " starts in [s, end), NULL if nowhere (events._split_version). */
static const char *find_version(const char *s, const char *end) {
    for (const char *v = s; v + 10 <= end; v++)
        if (memcmp(v, " Version: ", 10) == 0) return v;
    return NULL;
}

/* START and END: `RequestId: <id>[ Version: <v>]`, read as events._request_id reads it. */
static int platform_line(const char *s, Py_ssize_t n, Common *c) {
    Py_ssize_t skip = starts_with(s, n, "START ") ? 6 : starts_with(s, n, "END ") ? 4 : 0;
    if (skip == 0 || !starts_with(s + skip, n - skip, "RequestId: ")) return 0;
    c->kind = skip == 6 ? "start" : "end";
    const char *newline = find_char(s, n, '\n');
    c->message = s;
    c->message_length = newline ? newline - s : n;
    const char *value = s + skip + 11, *end = s + n;
    const char *tab = find_char(value, end - value, '\t');
    if (tab) end = tab;
    strip(&value, &end);
    const char *version = find_version(value, end);
    c->request_id = value;
    c->request_id_length = (version ? version : end) - value;
    return 1;
}

#define MAX_FIELDS 32
#define MAX_KEY 64

typedef struct {
    Buffer *json;
    Py_ssize_t keys[MAX_FIELDS], lengths[MAX_FIELDS]; /* where each key is in json */
    int count;
} Fields;

/* `"key":"value"` (after a comma when not the first); 0 when full, repeated or out of memory. */
static int put_field(Fields *f, const char *key, Py_ssize_t key_length, const char *value,
                     Py_ssize_t value_length) {
    Buffer *b = f->json;
    if (f->count == MAX_FIELDS || (f->count && !put_char(b, ','))) return 0;
    Py_ssize_t start = b->size;
    if (!put_json_text(b, key, key_length) ||
        repeated_key(b, start, f->keys, f->lengths, f->count))
        return 0;
    f->keys[f->count] = start;
    f->lengths[f->count++] = b->size - start;
    return put_char(b, ':') && put_json_text(b, value, value_length);
}

static int is_number_text(const char *s, const char *end) { /* events._NUMBER: -?\d+(\.\d+)? */
    if (s < end && *s == '-') s++;
    const char *digits = s;
    while (s < end && *s >= '0' && *s <= '9') s++;
    if (s == digits) return 0;
    if (s < end && *s == '.') {
        const char *fraction = ++s;
        while (s < end && *s >= '0' && *s <= '9') s++;
        if (s == fraction) return 0;
    }
    return s == end;
}

/* REPORT, INIT_START, INIT_REPORT and XRAY lines: tab-separated `Name: value` items, read as
 * events._platform_fields reads them, into the JSON payload. */
static int platform_fields(const char *s, Py_ssize_t n, Common *c) {
    static const char *const names[] = {"REPORT ", "INIT_START ", "INIT_REPORT ", "XRAY "};
    static const char *const kinds[] = {"report", "init_start", "init_report", "xray"};
    int which = -1;
    for (int k = 0; k < 4 && which < 0; k++)
        if (starts_with(s, n, names[k])) which = k;
    if (which < 0) return 0;
    for (Py_ssize_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 && s[i] != '\t') return 0; /* one line, nothing unusual */
    Buffer *b = c->payload;
    Fields fields = {.json = b};
    int seen_request_id = 0;
    b->size = 0;
    if (!put_char(b, '{')) return 0;
    const char *item = s + strlen(names[which]), *end = s + n;
    while (item <= end) {
        const char *item_end = find_char(item, end - item, '\t');
        if (item_end == NULL) item_end = end;
        const char *separator = NULL;
        for (const char *p = item; p + 1 < item_end; p++) {
            if (p[0] == ':' && p[1] == ' ') {
                separator = p;
                break;
            }
        }
        if (separator != NULL) {
            const char *name = item, *name_end = separator;
            const char *value = separator + 2, *value_end = item_end;
            char key[MAX_KEY + 4];
            Py_ssize_t key_length = 0;
            if (name_end - name == 9 && memcmp(name, "RequestId", 9) == 0) {
                memcpy(key, "request_id", 10);
                key_length = 10;
            } else {
                strip(&name, &name_end);
                if (name_end - name > MAX_KEY) return 0;
                for (const char *p = name; p < name_end; p++)
                    key[key_length++] = *p == ' ' ? '_' : (char)Py_TOLOWER(*p);
            }
            strip(&value, &value_end);
            if (key_length == 10 && memcmp(key, "request_id", 10) == 0) {
                if (seen_request_id++) return 0;
                const char *version = find_version(value, value_end);
                c->request_id = value;
                c->request_id_length = (version ? version : value_end) - value;
                if (version != NULL) { /* "version": what follows " Version: ", stripped */
                    const char *v = version + 10, *v_end = value_end;
                    strip(&v, &v_end);
                    if (v < v_end && !put_field(&fields, "version", 7, v, v_end - v)) return 0;
                }
            } else {
                const char *space = NULL;
                if (value_end - value >= 3 && (memcmp(value_end - 3, " ms", 3) == 0 ||
                                               memcmp(value_end - 3, " MB", 3) == 0)) {
                    for (const char *p = value_end - 1; p >= value; p--)
                        if (*p == ' ') {
                            space = p;
                            break;
                        }
                }
                if (space != NULL && is_number_text(value, space)) {
                    key[key_length++] = '_';
                    key[key_length++] = (char)Py_TOLOWER(space[1]);
                    key[key_length++] = (char)Py_TOLOWER(space[2]);
                    value_end = space;
                }
                if (!put_field(&fields, key, key_length, value, value_end - value)) return 0;
            }
        }
        item = item_end + 1;
    }
    if (!put_char(b, '}')) return 0;
    c->kind = kinds[which];
    c->message = s;
    c->message_length = n;
    c->has_payload = 1;
    return 1;
}

/* `<timestamp>\t<request id>\t<LEVEL>\t<message>` as events._APP_LINE reads it, for two messages. */
static int app_line(const char *s, Py_ssize_t n, Common *c) {
    static const char shape[] = "dddd-dd-ddT";
    Py_ssize_t i = 0;
    for (; i < (Py_ssize_t)sizeof shape - 1; i++) {
        if (i >= n || (shape[i] == 'd' ? !(s[i] >= '0' && s[i] <= '9') : s[i] != shape[i])) return 0;
    }
    Py_ssize_t time_start = i;
    while (i < n && ((s[i] >= '0' && s[i] <= '9') || s[i] == ':' || s[i] == '.')) i++;
    if (i == time_start || i + 1 >= n || s[i] != 'Z' || s[i + 1] != '\t') return 0;
    i += 2;
    Py_ssize_t id_start = i;
    while (i < n && s[i] != '\t' && s[i] != '\n') i++;
    if (i == id_start || i >= n || s[i] != '\t') return 0;
    c->request_id = s + id_start;
    c->request_id_length = i - id_start;
    if (c->request_id_length == 9 && memcmp(c->request_id, "undefined", 9) == 0) c->request_id = NULL;
    Py_ssize_t level_start = ++i;
    while (i < n && s[i] >= 'A' && s[i] <= 'Z') i++;
    if (i == level_start || i >= n || s[i] != '\t') return 0;
    c->level = s + level_start;
    c->level_length = i - level_start;
    c->message = s + i + 1;
    c->message_length = n - i - 1;
    if (starts_with(c->message, c->message_length, "Processing message")) {
        const char *value = c->message + 18, *end = c->message + c->message_length;
        strip(&value, &end);
        c->kind = "sqs_message";
        c->payload->size = 0;
        c->has_payload = put(c->payload, "{\"message_id\":", 14) &&
                         put_json_text(c->payload, value, end - value) && put_char(c->payload, '}');
        return c->has_payload;
    }
    if (starts_with(c->message, c->message_length, "SubscriptionBalanceUpdated event published")) {
        c->kind = "sync_published";
        return 1;
    }
    return 0;
}

static PyObject *ascii_text(const char *s, Py_ssize_t n) {
    return PyUnicode_FromStringAndSize(s, n); /* ASCII: bodies are claimed only when all ASCII */
}

/* Put a new reference in a list slot that holds None. */
static int replace_none(PyObject *list, Py_ssize_t index, PyObject *value) {
    if (value == NULL) return 0;
    PyList_SET_ITEM(list, index, value);
    Py_DECREF(Py_None);
    return 1;
}

static PyObject *classify_common(PyObject *module, PyObject *bodies) {
    (void)module;
    if (!PyList_Check(bodies)) {
        PyErr_SetString(PyExc_TypeError, "classify_common() takes a list of str");
        return NULL;
    }
    Py_ssize_t count = PyList_GET_SIZE(bodies);
    PyObject *columns[5] = {NULL};
    PyObject *others = PyList_New(0), *result = NULL;
    Buffer payload = {NULL, 0, 0};
    if (others == NULL) return NULL;
    for (int k = 0; k < 5; k++) {
        columns[k] = PyList_New(count);
        if (columns[k] == NULL) goto done;
        for (Py_ssize_t i = 0; i < count; i++) PyList_SET_ITEM(columns[k], i, Py_NewRef(Py_None));
    }
    payload.capacity = 256;
    payload.data = PyMem_Malloc((size_t)payload.capacity);
    if (payload.data == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *body = PyList_GET_ITEM(bodies, i);
        const Common fresh = {.payload = &payload};
        Common c = fresh;
        int claimed = 0;
        if (PyUnicode_Check(body) && PyUnicode_IS_ASCII(body)) {
            const char *s = (const char *)PyUnicode_DATA(body);
            Py_ssize_t n = PyUnicode_GET_LENGTH(body);
            /* an attempt given up half-way may have set fields: each one starts afresh */
            claimed = platform_line(s, n, &c);
            if (!claimed) c = fresh, claimed = platform_fields(s, n, &c);
            if (!claimed) c = fresh, claimed = app_line(s, n, &c);
        }
        if (!claimed) {
            PyObject *index = PyLong_FromSsize_t(i);
            int ok = index != NULL && PyList_Append(others, index) == 0;
            Py_XDECREF(index);
            if (!ok) goto done;
            continue;
        }
        if (!replace_none(columns[0], i, PyUnicode_InternFromString(c.kind)) ||
            (c.level != NULL && !replace_none(columns[1], i, ascii_text(c.level, c.level_length))) ||
            (c.request_id != NULL &&
             !replace_none(columns[2], i, ascii_text(c.request_id, c.request_id_length))) ||
            !replace_none(columns[3], i, ascii_text(c.message, c.message_length)) ||
            (c.has_payload &&
             !replace_none(columns[4], i, ascii_text(payload.data, payload.size))))
            goto done;
    }
    result = Py_BuildValue("(OOOOOO)", columns[0], columns[1], columns[2], columns[3], columns[4],
                           others);
done:
    PyMem_Free(payload.data);
    for (int k = 0; k < 5; k++) Py_XDECREF(columns[k]);
    Py_DECREF(others);
    return result;
}

static PyMethodDef methods[] = {
    {"classify_common", classify_common, METH_O,
     "classify_common(bodies, /)\n--\n\n"
     "(kinds, levels, request_ids, messages, payloads, others) for the records of the commonest\n"
     "shapes (START, END, REPORT, INIT_START, INIT_REPORT, XRAY, Processing message,\n"
     "SubscriptionBalanceUpdated event published), exactly as events.classify types them; a record\n"
     "of any other shape has kind None and its index in others."},
    {"split_records", split_records, METH_O,
     "split_records(text, /)\n--\n\n"
     "(head_end, lines, timestamps, bodies): where the first record starts, and each record's first\n"
     "line number, export timestamp (an XRAY line's is the one before it, None if none) and text."},
    {"literal_json", literal_json, METH_O,
     "literal_json(text, /)\n--\n\n"
     "(end, json) for the Node object literal at the start of text, or None outside the fast subset."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_native",
    .m_doc = "The compiled hot path of the parse: records, common shapes and literals.",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC PyInit__native(void) { return PyModule_Create(&module); }
