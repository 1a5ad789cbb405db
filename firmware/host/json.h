/* Minimal JSON reader (DOM) for the twin's request lines and the protocol test vectors. */
#ifndef HOST_JSON_H
#define HOST_JSON_H

#include <stdbool.h>
#include <stddef.h>

typedef enum { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT } json_type_t;

typedef struct json {
    json_type_t type;
    bool boolean;
    double number;
    char *string;         /* JSON_STRING (decoded, NUL-terminated) */
    char *key;            /* member name when inside an object */
    struct json *child;   /* first element / member */
    struct json *next;    /* next sibling */
} json_t;

/** Parse text; NULL on a syntax error. Free with json_free. */
json_t *json_parse(const char *text);
void json_free(json_t *j);
const json_t *json_get(const json_t *obj, const char *key);
const char *json_get_string(const json_t *obj, const char *key); /* NULL when missing or not a string */
bool json_get_number(const json_t *obj, const char *key, double *out);
size_t json_array_len(const json_t *arr);

/** Decode lower/upper-case hex into out (capacity cap). Returns the byte count or -1. */
long hex_decode(const char *hex, unsigned char *out, size_t cap);
/** Encode len bytes as lower-case hex into out (2*len+1 bytes). */
void hex_encode(const unsigned char *data, size_t len, char *out);

#endif
