/* Tiny test framework: each TEST registers itself; CHECK records a failure and returns from the test. */
#ifndef FW_TEST_H
#define FW_TEST_H

#include <stdio.h>

typedef void (*test_fn)(void);
void test_register(const char *name, test_fn fn);
void test_fail(const char *file, int line, const char *expr);
extern int test_current_failed;

#define TEST(name)                                                                          \
    static void name(void);                                                                 \
    __attribute__((constructor)) static void name##_register(void) { test_register(#name, name); } \
    static void name(void)

#define CHECK(expr)                                       \
    do {                                                  \
        if (!(expr)) {                                    \
            test_fail(__FILE__, __LINE__, #expr);         \
            return;                                       \
        }                                                 \
    } while (0)

#define CHECK_EQ(a, b)                                                                             \
    do {                                                                                           \
        long long _a = (long long)(a), _b = (long long)(b);                                        \
        if (_a != _b) {                                                                            \
            fprintf(stderr, "    %s = %lld, expected %s = %lld\n", #a, _a, #b, _b);                \
            test_fail(__FILE__, __LINE__, #a " == " #b);                                           \
            return;                                                                                \
        }                                                                                          \
    } while (0)

#endif
