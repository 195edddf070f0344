// Unit tests for protocol/rebuild.hpp: when a lane rebuild may finish, exclusions by URL or
// terminal, and the progress text shown in status.

#include "protocol/rebuild.hpp"

#include <doctest/doctest.h>

using namespace lanesync::protocol;

namespace {

const std::string u2 = "wss://lane2.local:7443";
const std::string u3 = "wss://lane3.local:7443";
using strings = std::vector<std::string>;

} // namespace

TEST_SUITE("rebuild progress") {

    TEST_CASE("thousands separators") {
        CHECK(thousands(0) == "0");
        CHECK(thousands(999) == "999");
        CHECK(thousands(1000) == "1,000");
        CHECK(thousands(3200) == "3,200");
        CHECK(thousands(10000) == "10,000");
        CHECK(thousands(123456789) == "123,456,789");
        CHECK(thousands(18446744073709551615ull) == "18,446,744,073,709,551,615");
    }

    TEST_CASE("done only when every link reported and the hwm reached the target") {
        rebuild_progress p({u2, u3}, 0);
        CHECK_FALSE(p.done());
        CHECK(p.waiting_for() == strings{u2, u3});
        p.report({u2, "L2", 10000, "id-10000"});
        CHECK(p.target() == 10000);
        CHECK(p.from() == "L2");
        CHECK(p.waiting_for() == strings{u3});
        p.own_hwm(10000);
        CHECK_FALSE(p.done()); // L3 has not reported
        p.report({u3, "L3", 9000, "id-9000"});
        CHECK(p.waiting_for().empty());
        CHECK(p.done());
        CHECK(p.restored() == 10000);
    }

    TEST_CASE("all reported, hwm short of the target: not done") {
        rebuild_progress p({u2}, 0);
        p.report({u2, "L2", 100, "x"});
        p.own_hwm(99);
        CHECK_FALSE(p.done());
        p.own_hwm(50); // an older answer never moves it back
        CHECK(p.hwm() == 99);
        p.own_hwm(100);
        CHECK(p.done());
    }

    TEST_CASE("several reports of one peer keep the highest; inbound reports count for links") {
        rebuild_progress p({u2, u3}, 0);
        p.link_terminal(u3, "L3");
        p.report({"", "L3", 70, "a"}); // L3 connected to us: no link
        CHECK(p.waiting_for() == strings{u2});
        p.report({u3, "L3", 40, "b"});
        CHECK(p.target() == 70);
        p.report({u2, "L2", 20, "c"});
        CHECK(p.from() == "L3");
        CHECK(p.waiting_for().empty());
        // A report of a lane no link names counts towards the target.
        p.report({"", "L9", 90, "d"});
        CHECK(p.target() == 90);
    }

    TEST_CASE("exclude by URL or by terminal: the rebuild may finish without it") {
        rebuild_progress by_url({u2, u3}, 0);
        by_url.report({u2, "L2", 100, "x"});
        by_url.own_hwm(100);
        by_url.exclude(u3);
        CHECK(by_url.waiting_for().empty());
        CHECK(by_url.done());
        CHECK(by_url.excluded() == strings{u3}); // its terminal was never known

        rebuild_progress by_id({u2, u3}, 0);
        by_id.link_terminal(u3, "L3");
        by_id.report({u2, "L2", 100, "x"});
        by_id.own_hwm(100);
        CHECK(by_id.waiting_for() == strings{"L3"}); // the terminal once known
        by_id.exclude("L3");
        CHECK(by_id.done());
        CHECK(by_id.excluded() == strings{"L3"});
    }

    TEST_CASE("an excluded peer's report neither sets the target nor names the source") {
        rebuild_progress p({u2, u3}, 10);
        p.report({u2, "L2", 100, "x"});
        p.report({u3, "L3", 5000, "y"});
        CHECK(p.target() == 5000);
        p.exclude("L3");
        CHECK(p.target() == 100);
        CHECK(p.from() == "L2");
        p.own_hwm(100);
        CHECK(p.done());
        CHECK(p.restored() == 90);
        rebuild_progress q({u2, u3}, 0);
        q.report({u3, "L3", 5000, "y"});
        q.exclude(u3); // by the URL: the report came over that link
        CHECK(q.target() == 0);
        CHECK(q.excluded() == strings{"L3"});
        q.report({"", "L3", 6000, "z"}); // and over an inbound session
        CHECK(q.target() == 0);
    }

    TEST_CASE("no link configured: done at once; reporting zero is a report") {
        rebuild_progress none({}, 0);
        CHECK(none.done());
        rebuild_progress p({u2}, 0);
        p.report({u2, "L2", 0, ""});
        CHECK(p.done());
        CHECK(p.from().empty());
    }

    TEST_CASE("conflicts are kept once each") {
        rebuild_progress p({u2}, 0);
        p.conflict("incarnation mismatch: peer holds L1:100 as a, this lane's is b");
        p.conflict("incarnation mismatch: peer holds L1:100 as a, this lane's is b");
        CHECK(p.conflicts().size() == 1);
    }

    TEST_CASE("text") {
        rebuild_progress p({u2, u3}, 0);
        CHECK(p.text() == "rebuilding: 0 of 0 (waiting for " + u2 + ", " + u3 + ")");
        p.link_terminal(u3, "L3");
        p.report({u2, "L2", 10000, "x"});
        p.own_hwm(3200);
        CHECK(p.text() == "rebuilding from L2: 3,200 of 10,000 (waiting for L3)");
        p.report({u3, "L3", 9000, "y"});
        CHECK(p.text() == "rebuilding from L2: 3,200 of 10,000");
    }

} // TEST_SUITE
