// Unit tests for protocol/version.hpp: which version a hello is served with, the refusal
// texts, and the version a refused client tries next.

#include "protocol/version.hpp"

#include <doctest/doctest.h>

using namespace lanesync::protocol;

TEST_SUITE("version") {

    TEST_CASE("a v2 lane serves 1 and 2, refuses the others") {
        const version_range ours{1, 2};
        CHECK(serve_version(1, ours) == 1);
        CHECK(serve_version(2, ours) == 2);
        CHECK(serve_version(3, ours) == 0);
        CHECK(serve_version(0, ours) == 0);
        CHECK(serve_version(2, {1, 1}) == 0); // a v1 lane
    }

    TEST_CASE("refusal texts: above our range names it, below it is no version in common") {
        CHECK(version_refusal(3, {1, 2}) ==
              "unsupported protocol version 3 (this lane speaks 1-2)");
        CHECK(version_refusal(2, {1, 1}) == "unsupported protocol version 2 (this lane speaks 1)");
        CHECK(version_refusal(0, {1, 2}) ==
              "no version in common: peer offered 0, this lane speaks 1-2");
    }

    TEST_CASE("a v2 client refused by a v1 lane retries with 1") {
        CHECK(retry_version("unsupported protocol version 2 (this lane speaks 1)", 2, {1, 2}) == 1);
    }

    TEST_CASE("the highest version both speak, from a range") {
        CHECK(retry_version("unsupported protocol version 5 (this lane speaks 1-3)", 5, {1, 5}) ==
              3);
        CHECK(retry_version("unsupported protocol version 3 (this lane speaks 1-2)", 3, {2, 3}) ==
              2);
    }

    TEST_CASE("no retry: nothing in common, the same version again, or not a version refusal") {
        CHECK(retry_version("unsupported protocol version 2 (this lane speaks 5)", 2, {1, 2}) == 0);
        CHECK(retry_version("unsupported protocol version 2 (this lane speaks 3-4)", 2, {1, 2}) ==
              0);
        CHECK(retry_version("unsupported protocol version 1 (this lane speaks 1)", 1, {1, 2}) == 0);
        CHECK(retry_version("unsupported protocol version 2", 2, {1, 2}) == 0);
        CHECK(retry_version("unsupported protocol version 2 (this lane speaks x)", 2, {1, 2}) == 0);
        CHECK(retry_version("store mismatch: (this lane speaks 1)", 2, {1, 2}) == 0);
        CHECK(retry_version("unsupported protocol version 2 (this lane speaks 1", 2, {1, 2}) == 0);
    }

} // TEST_SUITE
