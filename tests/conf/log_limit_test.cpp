// base/log_limit.hpp: at most N warning lines per key per window, one "suppressing" line when
// the limit is reached, and the count of dropped lines reported when the next window opens.
#include "base/log_limit.hpp"

#include <doctest/doctest.h>

using lanesync::log::rate_limiter;

TEST_CASE("rate_limiter: N lines per key per window, then one suppressing mark") {
    rate_limiter l(3, 60'000);
    for (int i = 0; i < 3; ++i) {
        auto v = l.admit("timeout", 1000 + i);
        CHECK(v.write);
        CHECK_FALSE(v.now_suppressing);
        CHECK(v.suppressed == 0);
    }
    auto v = l.admit("timeout", 1010);
    CHECK_FALSE(v.write);
    CHECK(v.now_suppressing);
    for (int i = 0; i < 1000; ++i) {
        v = l.admit("timeout", 1020 + i);
        CHECK_FALSE(v.write);
        CHECK_FALSE(v.now_suppressing);
    }
    // Another key has its own budget.
    CHECK(l.admit("wrong_secret", 1100).write);
    CHECK(l.keys() == 2);
}

TEST_CASE("rate_limiter: the next window writes again and reports what was dropped") {
    rate_limiter l(2, 60'000);
    CHECK(l.admit("k", 0).write);
    CHECK(l.admit("k", 1).write);
    CHECK_FALSE(l.admit("k", 2).write);
    CHECK_FALSE(l.admit("k", 59'999).write);
    auto v = l.admit("k", 60'000);
    CHECK(v.write);
    CHECK(v.suppressed == 2);
    // Nothing dropped in that window: nothing to report in the one after.
    v = l.admit("k", 200'000);
    CHECK(v.write);
    CHECK(v.suppressed == 0);
}

TEST_CASE("rate_limiter: a clock going backwards opens a new window instead of blocking") {
    rate_limiter l(1, 60'000);
    CHECK(l.admit("k", 100'000).write);
    CHECK_FALSE(l.admit("k", 100'001).write);
    auto v = l.admit("k", 5);
    CHECK(v.write);
    CHECK(v.suppressed == 1);
}

TEST_CASE("rate_limiter: a zero budget writes nothing and marks once per window") {
    rate_limiter l(0, 1000);
    auto v = l.admit("k", 0);
    CHECK_FALSE(v.write);
    CHECK(v.now_suppressing);
    CHECK_FALSE(l.admit("k", 1).now_suppressing);
    v = l.admit("k", 1000);
    CHECK(v.suppressed == 2);
    CHECK(v.now_suppressing);
}
