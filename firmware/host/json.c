/* Minimal recursive-descent JSON reader; see json.h. */
#include "json.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *p;
    int depth;
} parser_t;

static void skip_ws(parser_t *ps)
{
    while (*ps->p == ' ' || *ps->p == '\t' || *ps->p == '\n' || *ps->p == '\r') ps->p++;
}

static json_t *parse_value(parser_t *ps);

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static char *parse_string(parser_t *ps)
{
    if (*ps->p != '"') return NULL;
    ps->p++;
    size_t cap = 16, n = 0;
    char *s = malloc(cap);
    while (s && *ps->p && *ps->p != '"') {
        unsigned c = (unsigned char)*ps->p++;
        if (c == '\\') {
            char e = *ps->p++;
            switch (e) {
            case 'n': c = '\n'; break;
            case 't': c = '\t'; break;
            case 'r': c = '\r'; break;
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case 'u': {
                unsigned v = 0;
                for (int i = 0; i < 4; i++) {
                    int h = hexval(*ps->p);
                    if (h < 0) {
                        free(s);
                        return NULL;
                    }
                    v = v * 16 + (unsigned)h;
                    ps->p++;
                }
                c = v < 0x80 ? v : '?'; /* non-ASCII escapes are not needed here */
                break;
            }
            case '"': case '\\': case '/': c = (unsigned char)e; break;
            default: free(s); return NULL;
            }
        }
        if (n + 2 > cap) {
            char *t = realloc(s, cap *= 2);
            if (!t) {
                free(s);
                return NULL;
            }
            s = t;
        }
        s[n++] = (char)c;
    }
    if (!s || *ps->p != '"') {
        free(s);
        return NULL;
    }
    ps->p++;
    s[n] = '\0';
    return s;
}

static json_t *parse_container(parser_t *ps, bool object)
{
    json_t *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    j->type = object ? JSON_OBJECT : JSON_ARRAY;
    ps->p++;
    skip_ws(ps);
    json_t **tail = &j->child;
    if (*ps->p == (object ? '}' : ']')) {
        ps->p++;
        return j;
    }
    for (;;) {
        char *key = NULL;
        skip_ws(ps);
        if (object) {
            key = parse_string(ps);
            skip_ws(ps);
            if (!key || *ps->p != ':') {
                free(key);
                json_free(j);
                return NULL;
            }
            ps->p++;
        }
        json_t *v = parse_value(ps);
        if (!v) {
            free(key);
            json_free(j);
            return NULL;
        }
        v->key = key;
        *tail = v;
        tail = &v->next;
        skip_ws(ps);
        if (*ps->p == ',') {
            ps->p++;
            continue;
        }
        if (*ps->p == (object ? '}' : ']')) {
            ps->p++;
            return j;
        }
        json_free(j);
        return NULL;
    }
}

static json_t *parse_value(parser_t *ps)
{
    skip_ws(ps);
    if (++ps->depth > 64) return NULL;
    json_t *j = NULL;
    char c = *ps->p;
    if (c == '{' || c == '[') {
        j = parse_container(ps, c == '{');
    } else if (c == '"') {
        char *s = parse_string(ps);
        if (s && (j = calloc(1, sizeof *j))) {
            j->type = JSON_STRING;
            j->string = s;
        } else {
            free(s);
        }
    } else if (!strncmp(ps->p, "true", 4) || !strncmp(ps->p, "false", 5) || !strncmp(ps->p, "null", 4)) {
        j = calloc(1, sizeof *j);
        if (j) {
            j->type = c == 'n' ? JSON_NULL : JSON_BOOL;
            j->boolean = c == 't';
            ps->p += c == 'f' ? 5 : 4;
        }
    } else if (c == '-' || (c >= '0' && c <= '9')) {
        char *end;
        double v = strtod(ps->p, &end);
        if (end != ps->p && (j = calloc(1, sizeof *j))) {
            j->type = JSON_NUMBER;
            j->number = v;
            ps->p = end;
        }
    }
    ps->depth--;
    return j;
}

json_t *json_parse(const char *text)
{
    parser_t ps = {text, 0};
    json_t *j = parse_value(&ps);
    skip_ws(&ps);
    if (j && *ps.p != '\0') {
        json_free(j);
        return NULL;
    }
    return j;
}

void json_free(json_t *j)
{
    while (j) {
        json_t *next = j->next;
        json_free(j->child);
        free(j->string);
        free(j->key);
        free(j);
        j = next;
    }
}

const json_t *json_get(const json_t *obj, const char *key)
{
    if (!obj || obj->type != JSON_OBJECT) return NULL;
    for (const json_t *c = obj->child; c; c = c->next)
        if (c->key && strcmp(c->key, key) == 0) return c;
    return NULL;
}

const char *json_get_string(const json_t *obj, const char *key)
{
    const json_t *v = json_get(obj, key);
    return v && v->type == JSON_STRING ? v->string : NULL;
}

bool json_get_number(const json_t *obj, const char *key, double *out)
{
    const json_t *v = json_get(obj, key);
    if (!v || v->type != JSON_NUMBER) return false;
    *out = v->number;
    return true;
}

size_t json_array_len(const json_t *arr)
{
    size_t n = 0;
    for (const json_t *c = arr ? arr->child : NULL; c; c = c->next) n++;
    return n;
}

long hex_decode(const char *hex, unsigned char *out, size_t cap)
{
    size_t len = strlen(hex);
    if (len % 2 || len / 2 > cap) return -1;
    for (size_t i = 0; i < len / 2; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) return -1;
        out[i] = (unsigned char)(hi * 16 + lo);
    }
    return (long)(len / 2);
}

void hex_encode(const unsigned char *data, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[data[i] >> 4];
        out[2 * i + 1] = digits[data[i] & 15];
    }
    out[2 * len] = '\0';
}
