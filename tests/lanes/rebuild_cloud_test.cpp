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

/// A lane without links, with a cloud, started on an outbox with `own_hwm` own seqs.
struct peerless {
    recorder r;
    cloud k;
    lanes::rebuild_controller c{"L1", {}, r.effects()};
    explicit peerless(std::uint64_t own_hwm = 0) {
        c.set_cloud(k.fn());
        c.start(normal_state(), own_hwm, 1000);
    }
    /// A POST asks now.
    admission post() {
        admission a;
        a.ask(c);
        return a;
    }
};

constexpr std::int64_t retry_max_ms =
    std::chrono::duration_cast<std::chrono::milliseconds>(tuning::cloud_seq_retry_max).count();

} // namespace

TEST_SUITE("rebuild controller: cloud check") {
    TEST_CASE("a new lane the cloud does not know: POSTs wait for the answer, then go at seq 1") {
        peerless l;
        REQUIRE(l.k.asks.size() == 1);
        CHECK(l.c.view().start_check);
        CHECK_FALSE(l.c.rebuilding()); // within the start check's time /healthz stays 200
        auto a = l.post();
        CHECK_FALSE(a.answered());
        l.k.answer({}, 0);
        CHECK(a.admitted());
        CHECK(l.r.floors.empty());
        CHECK_FALSE(l.c.view().start_check);
        auto later = l.post();
        CHECK(later.admitted());
    }

    TEST_CASE("a wiped lane: the own hwm is raised to the cloud's highest seq before any POST") {
        peerless l;
        auto a = l.post();
        l.k.answer({}, 4200);
        REQUIRE(l.r.floors == std::vector<std::uint64_t>{4200});
        CHECK_FALSE(a.answered()); // not before the floor is committed
        l.r.commit_floor();
        CHECK(a.admitted());
    }

    TEST_CASE("the cloud cannot tell: refused past the start check, asked again, then admitted") {
        peerless l;
        auto held = l.post();
        l.k.answer("connect to 127.0.0.1:9: Connection refused", 0);
        CHECK_FALSE(held.answered()); // still within the start check's time
        l.c.start_check_over();
        REQUIRE(held.refused());
        auto v = l.c.view();
        CHECK(v.active);
        CHECK(l.c.rebuilding());
        CHECK(v.waiting_for == std::vector<std::string>{"cloud"});
        CHECK(v.progress.find("Connection refused") != std::string::npos);
        CHECK(v.progress.find("--without cloud") != std::string::npos);

        // The retry waits its backoff: the first tick schedules it, a tick past the cap asks.
        l.c.tick(2000);
        CHECK(l.k.asks.empty());
        l.c.tick(2000 + retry_max_ms);
        REQUIRE(l.k.asks.size() == 1);
        l.c.tick(2000 + 2 * retry_max_ms); // one query at a time
        CHECK(l.k.asks.size() == 1);
        l.k.answer({}, 7);
        l.r.commit_floor();
        CHECK_FALSE(l.c.rebuilding());
        auto now = l.post();
        CHECK(now.admitted());
    }

    TEST_CASE("a floor that failed to commit is asked and raised again") {
        peerless l;
        l.c.start_check_over();
        l.k.answer({}, 9);
        l.r.commit_floor("disk I/O error");
        CHECK(l.c.rebuilding());
        CHECK(l.c.view().progress.find("disk I/O error") != std::string::npos);
        l.c.tick(0);
        l.c.tick(retry_max_ms);
        l.k.answer({}, 9);
        CHECK(l.r.floors == std::vector<std::uint64_t>{9, 9});
        l.r.commit_floor();
        CHECK_FALSE(l.c.rebuilding());
    }

    TEST_CASE("the operator leaves the cloud out: seq 1 at once, a late answer is not used") {
        peerless l;
        l.c.start_check_over();
        auto refused = l.post();
        CHECK(refused.refused());
        CHECK(l.c.exclude({"L2"}).status == 400);          // no peers to leave out
        CHECK(l.c.exclude({"cloud", "L2"}).status == 400); // nothing changed
        CHECK(l.c.rebuilding());
        CHECK(l.c.exclude({"cloud"}).status == 200);
        CHECK_FALSE(l.c.rebuilding());
        auto a = l.post();
        CHECK(a.admitted());
        l.k.answer({}, 50); // the query that was out when the operator decided
        CHECK(l.r.floors.empty());
        CHECK(l.c.exclude({"cloud"}).status == 409);
    }

    TEST_CASE("no cloud check for an outbox with own messages, with links, or without a cloud") {
        cloud k;
        SUBCASE("own messages") {
            peerless l(3);
            CHECK(l.post().admitted());
            CHECK(l.k.asks.empty());
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

    TEST_CASE(
        "an inbound peer that holds our origin starts a rebuild: the cloud's seq is not used") {
        peerless l;
        l.c.outbox_lost("L2", "rebuilding: peer holds seq 40 of L1 but this lane only 0", 0, 1000);
        CHECK(l.c.rebuilding());
        CHECK(l.c.exclude({"cloud"}).status == 400); // "cloud" never names a peer
        l.k.answer({}, 50);
        CHECK(l.r.floors.empty()); // the highest seq cannot say which restored one is in the cloud
        CHECK(l.c.view().waiting_for == std::vector<std::string>{"L2"});
    }

    TEST_CASE("stopping answers the POSTs the cloud check holds with the 503") {
        peerless l;
        auto held = l.post();
        l.c.stopping();
        CHECK(held.refused());
    }
}
