// The puller's pure decisions (cloud/pull_policy.hpp): cursors, next poll, backoff, "more".
#include "cloud/pull_policy.hpp"

#include <doctest/doctest.h>

using namespace lanesync;
using namespace lanesync::cloud;
using namespace std::chrono_literals;

namespace {

protocol::catalog_scope_state st(const std::string& scope, std::int64_t through,
                                 bool snapshot = false, const std::string& source = "cloud",
                                 const std::string& resume = "", std::int64_t applied_at = 0) {
    protocol::catalog_scope_state s;
    s.scope = scope;
    s.through = through;
    s.snapshot_active = snapshot;
    s.source = source;
    s.resume = resume;
    s.applied_at_ms = applied_at;
    return s;
}

} // namespace

TEST_CASE("cursors: through, the cloud's resume token, restarts and stale peer snapshots") {
    const std::int64_t now = 10'000'000;
    auto c = pull::cursors_for({st("prices", 120), st("products", 40, true, "cloud", "tok"),
                                st("customers", 7, true, "L2", "", now - 1000),
                                st("promos", 9, true, "L3", "", now - pull::stale_snapshot.count()),
                                st("stock", 50), st("tax", 3, true, "cloud", "")},
                               {"stock"}, now);
    REQUIRE(c.size() == 6);
    CHECK(c[0].through == 120);
    CHECK(c[0].resume.empty());
    CHECK(c[1].through == 40); // our snapshot goes on
    CHECK(c[1].resume == "tok");
    CHECK(c[2].through == 7); // a peer's snapshot under way: left to the peer
    CHECK(c[2].resume.empty());
    CHECK(c[3].through == 0); // a stalled peer snapshot: the cloud starts one
    CHECK(c[4].through == 0); // restart asked (bad resume token, refused page)
    CHECK(c[5].through == 0); // a snapshot of ours without a token cannot go on
    CHECK(c[5].resume.empty());
    CHECK(pull::cursors_for({}, {}, now).empty());
}

TEST_CASE("after a success: at once when more, else the interval") {
    CHECK(pull::after_success(true, 30000ms).delay == 0ms);
    CHECK(pull::after_success(false, 30000ms).delay == 30000ms);
    CHECK(pull::after_success(false, 30000ms).failures == 0);
}

TEST_CASE("after a failure: full jitter from base/backoff, capped by max and the interval") {
    // random % (cap + 1): 0 -> 0 ms, raised to the 1 ms floor; cap -> the cap.
    auto low = pull::after_failure(0, 1000ms, 60000ms, 30000ms, 0);
    CHECK(low.delay == 1ms);
    CHECK(low.failures == 1);
    CHECK(pull::after_failure(0, 1000ms, 60000ms, 30000ms, 1000).delay == 1000ms);
    CHECK(pull::after_failure(0, 1000ms, 60000ms, 30000ms, 1001).delay == 1ms); // wraps to 0
    CHECK(pull::after_failure(3, 1000ms, 60000ms, 300000ms, 8000).delay == 8000ms);
    CHECK(pull::after_failure(3, 1000ms, 60000ms, 300000ms, 4321).delay == 4321ms);
    CHECK(pull::after_failure(30, 1000ms, 60000ms, 300000ms, 60000).delay == 60000ms);
    // Never later than the next regular poll.
    CHECK(pull::after_failure(30, 1000ms, 60000ms, 5000ms, 60000).delay == 5000ms);
    CHECK(pull::after_failure(7, 1000ms, 60000ms, 5000ms, 1).failures == 8);
}

TEST_CASE("a 400 restarts the snapshots whose resume token was sent") {
    auto r = pull::restart_after_bad_request({{"prices", 10, ""}, {"products", 0, "t"}});
    CHECK(r == std::set<std::string>{"products"});
}
