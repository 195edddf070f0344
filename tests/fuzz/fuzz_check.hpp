#pragma once
// A property check of the fuzz targets: a broken property aborts, which libFuzzer reports as a
// crash with the input that broke it (kept in build-fuzz/crashes/).

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            std::fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #cond);       \
            std::abort();                                                                          \
        }                                                                                          \
    } while (0)
