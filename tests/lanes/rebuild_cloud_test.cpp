// The cloud check of the rebuild controller without sockets (lanes/rebuild_cloud.cpp): a lane
// without links whose outbox has no own message asks the cloud for its highest seq before it
// hands out seq 1; until the cloud told, or the operator left it out, no POST is admitted.
#include "rebuild_recorder.hpp"

#include "base/tuning.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

using namespace lanesync;
using namespace lanesync::rebuild_testing;

namespace {

/// The cloud as the controller sees it: each ask() is kept until the test answers it.
struct cloud {
    std::vector<std::function<void(std::string, std::uint64_t)>> asks;
    lanes::rebuild_controller::cloud_ask_fn fn() {
        return [this](auto done) { asks.push_back(std::move(done)); };
    }
    void answer(std::string error, std::uint64_t seq) {
        REQUIRE_FALSE(asks.empty());
        auto done = std::move(asks.back());
        asks.pop_back();
        done(std::move(error), seq);
    }
};

constexpr std::int64_t retry_max_ms =
    std::chrono::duration_cast<std::chrono::milliseconds>(tuning::cloud_seq_retry_max).count();

} // namespace

TEST_SUITE("rebuild controller: cloud check") {
    TEST_CASE("a new lane the cloud does not know: POSTs wait for the answer, then go at seq 1") {
        recorder r;
        cloud k;
        lanes::rebuild_controller c("L1", {}, r.effects());
        c.set_cloud(k.fn());
        c.start(normal_state(), 0, 1000);
        REQUIRE(k.asks.size() == 1);
        CHECK(c.view().start_check);
        CHECK_FALSE(c.rebuilding()); // within the start check's time /healthz stays 200
        admission a;
        a.ask(c);
        CHECK_FALSE(a.answered());
        k.answer({}, 0);
        CHECK(a.admitted());
        CHECK(r.floors.empty());
        CHECK_FALSE(c.view().start_check);
        admission later;
        later.ask(c);
        CHECK(later.admitted());
    }

    TEST_CASE("a wiped lane: the own hwm is raised to the cloud's highest seq before any POST") {
        recorder r;
        cloud k;
        lanes::rebuild_controller c("L1", {}, r.effects());
        c.set_cloud(k.fn());
        c.start(normal_state(), 0, 1000);
        admission a;
        a.ask(c);
        k.answer({}, 4200);
        REQUIRE(r.floors == std::vector<std::uint64_t>{4200});
        CHECK_FALSE(a.answered()); // not before the floor is committed
        r.commit_floor();
        CHECK(a.admitted());
    }

    TEST_CASE("the cloud cannot tell: refused past the start check, asked again, then admitted") {
        recorder r;
        cloud k;
        lanes::rebuild_controller c("L1", {}, r.effects());
        c.set_cloud(k.fn());
        c.start(normal_state(), 0, 1000);
        admission held;
        held.ask(c);
        k.answer("connect to 127.0.0.1:9: Connection refused", 0);
        CHECK_FALSE(held.answered()); // still within the start check's time
        c.start_check_over();
        REQUIRE(held.refused());
        auto v = c.view();
        CHECK(v.active);
        CHECK(c.rebuilding());
        CHECK(v.waiting_for == std::vector<std::string>{"cloud"});
        CHECK(v.progress.find("Connection refused") != std::string::npos);
        CHECK(v.progress.find("--without cloud") != std::string::npos);

        // The retry waits its backoff: the first tick schedules it, a tick past the cap asks.
        c.tick(2000);
        CHECK(k.asks.empty());
        c.tick(2000 + retry_max_ms);
        REQUIRE(k.asks.size() == 1);
        c.tick(2000 + 2 * retry_max_ms); // one query at a time
        CHECK(k.asks.size() == 1);
        k.answer({}, 7);
        r.commit_floor();
        CHECK_FALSE(c.rebuilding());
        admission now;
        now.ask(c);
        CHECK(now.admitted());
    }

    TEST_CASE("a floor that failed to commit is asked and raised again") {
        recorder r;
        cloud k;
        lanes::rebuild_controller c("L1", {}, r.effects());
        c.set_cloud(k.fn());
        c.start(normal_state(), 0, 1000);
        c.start_check_over();
        k.answer({}, 9);
        r.commit_floor("disk I/O error");
        CHECK(c.rebuilding());
        CHECK(c.view().progress.find("disk I/O error") != std::string::npos);
        c.tick(0);
        c.tick(retry_max_ms);
        k.answer({}, 9);
        CHECK(r.floors == std::vector<std::uint64_t>{9, 9});
        r.commit_floor();
        CHECK_FALSE(c.rebuilding());
    }

    TEST_CASE("the operator leaves the cloud out: seq 1 at once, a late answer is not used") {
        recorder r;
        cloud k;
        lanes::rebuild_controller c("L1", {}, r.effects());
        c.set_cloud(k.fn());
        c.start(normal_state(), 0, 1000);
        c.start_check_over();
        admission refused;
        refused.ask(c);
        CHECK(refused.refused());
        CHECK(c.exclude({"L2"}).status == 400); // no peers to leave out
        CHECK(c.exclude({"cloud"}).status == 200);
        CHECK_FALSE(c.rebuilding());
        admission a;
        a.ask(c);
        CHECK(a.admitted());
        k.answer({}, 50); // the query that was out when the operator decided
        CHECK(r.floors.empty());
        CHECK(c.exclude({"cloud"}).status == 409);
    }

    TEST_CASE("no cloud check for an outbox with own messages, with links, or without a cloud") {
        cloud k;
        SUBCASE("own messages") {
            recorder r;
            lanes::rebuild_controller c("L1", {}, r.effects());
            c.set_cloud(k.fn());
            c.start(normal_state(), 3, 1000);
            admission a;
            a.ask(c);
            CHECK(a.admitted());
        }
        SUBCASE("links: the peers are asked (the start check), not the cloud") {
            recorder r;
            lanes::rebuild_controller c("L1", {url2}, r.effects());
            c.set_cloud(k.fn());
            c.start(normal_state(), 0, 1000);
            c.link_answered(url2);
            admission a;
            a.ask(c);
            CHECK(a.admitted());
        }
        SUBCASE("no cloud") {
            recorder r;
            lanes::rebuild_controller c("L1", {}, r.effects());
            c.start(normal_state(), 0, 1000);
            admission a;
            a.ask(c);
            CHECK(a.admitted());
        }
        CHECK(k.asks.empty());
    }

    TEST_CASE("stopping answers the POSTs the cloud check holds with the 503") {
        recorder r;
        cloud k;
        lanes::rebuild_controller c("L1", {}, r.effects());
        c.set_cloud(k.fn());
        c.start(normal_state(), 0, 1000);
        admission held;
        held.ask(c);
        c.stopping();
        CHECK(held.refused());
    }
}
