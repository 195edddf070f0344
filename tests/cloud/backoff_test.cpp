// The one backoff rule (base/backoff.hpp), as the uploader uses it: full jitter, saturating.
// Here because the uploader's copy of it lived here; base/ has no test binary of its own.

#include "base/backoff.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <random>

using namespace lanesync;

TEST_CASE("backoff::full_jitter_ms: full jitter in [0, min(max, base * 2^attempt)]") {
    std::mt19937_64 rng(42);
    for (std::uint32_t attempt = 0; attempt < 80; ++attempt) {
        std::int64_t cap = 10;
        for (std::uint32_t i = 0; i < attempt && cap < 100; ++i)
            cap = std::min<std::int64_t>(cap * 2, 100);
        std::int64_t hi = 0;
        for (int i = 0; i < 2000; ++i) {
            auto d = backoff::full_jitter_ms(10, 100, attempt, rng());
            REQUIRE(d >= 0);
            REQUIRE(d <= cap);
            hi = std::max(hi, d);
        }
        CHECK(hi >= cap * 9 / 10); // the whole range is used, not just the bottom
    }
    // The edges of the random input reach both ends of the range.
    CHECK(backoff::full_jitter_ms(1000, 60000, 0, 0) == 0);
    CHECK(backoff::full_jitter_ms(1000, 60000, 0, 1000) == 1000);
    CHECK(backoff::full_jitter_ms(1000, 60000, 3, 8000) == 8000);
    CHECK(backoff::full_jitter_ms(1000, 60000, 3, 8001) == 0);
    // Saturates at max without overflow, however many attempts.
    CHECK(backoff::full_jitter_ms(1000, 60000, 4'000'000'000u, 60000) == 60000);
    CHECK(backoff::full_jitter_ms(1000, 60000, 63, ~0ull) <= 60000);
    CHECK(backoff::full_jitter_ms(std::int64_t{1} << 62, std::int64_t{1} << 62, 70, ~0ull) <=
          std::int64_t{1} << 62);
    // Odd settings: max below base caps at max; zero means no delay.
    CHECK(backoff::full_jitter_ms(5000, 100, 0, 99999) <= 100);
    CHECK(backoff::full_jitter_ms(0, 100, 5, 12345) == 0);
    CHECK(backoff::full_jitter_ms(-5, -1, 5, 12345) == 0);
}
