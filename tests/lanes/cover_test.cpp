// The lane's liveness / takeover / cloud_through state without sockets (lanes/cover.hpp).
#include "lanes/cover.hpp"

#include <doctest/doctest.h>

using namespace lanesync;

namespace {

outbox::origin_summary origin(std::string o, bool own, std::uint64_t hwm, std::uint64_t cloud) {
    outbox::origin_summary s;
    s.origin = std::move(o);
    s.own = own;
    s.hwm = hwm;
    s.held = hwm;
    s.to_upload = hwm - cloud;
    s.cloud_through = cloud;
    return s;
}

const std::vector<outbox::origin_summary> held = {
    origin("L1", true, 20, 3), origin("L2", false, 10, 0), origin("L3", false, 5, 5)};

} // namespace

TEST_SUITE("cover state") {
    TEST_CASE("rows above cloud_through that all failed are nothing to hold: a peer takes over") {
        lanes::cover_state c("L1", 0, 1000);
        auto stuck = origin("L3", false, 10, 4); // seq 5 failed, 6..10 cloud_ack here
        stuck.to_upload = 0;
        std::vector<outbox::origin_summary> mine = {origin("L1", true, 1, 0), stuck};
        c.on_news("L2", {{"L3", 5000}}, {}, {"L3"}, 6000); // L2 holds L3's 11, 12
        c.tick({"L2"}, mine, 6000);
        CHECK(c.news(6000).holds.empty());
        CHECK(c.covering().empty()); // L2 is the lowest holder now, not L1
        mine[1].to_upload = 2;       // L1 receives 11 and 12 too
        c.tick({"L2"}, mine, 6000);
        CHECK(c.news(6000).holds == std::vector<std::string>{"L3"});
        CHECK(c.covering() == std::vector<std::string>{"L3"});
    }

    TEST_CASE("a silent origin is covered by the lowest live lane; news of it ends the cover") {
        lanes::cover_state c("L1", 0, 1000);
        auto t = c.tick({"L2"}, held, 500);
        CHECK(t.started.empty());
        CHECK(c.covering().empty());
        // L2 silent for 1500 ms >= 1000: L1 is the lowest live lane and holds L2's messages.
        t = c.tick({}, held, 2000);
        CHECK(t.started == std::vector<std::string>{"L2"});
        CHECK(t.news_due);
        CHECK(c.covering() == std::vector<std::string>{"L2"});
        // L3 is silent too, but everything of it is in the cloud: nothing to upload.
        auto views = c.origins(held);
        REQUIRE(views.size() == 3);
        CHECK(views[1].covered_by == "L1");
        CHECK(views[2].covered_by.empty());
        CHECK(views[0].own);
        CHECK_FALSE(views[0].last_seen_ms);
        CHECK(views[1].last_seen_ms == 500);
        // A peer heard from L2 just now: L2 is alive, the cover stops.
        c.on_news("L4", {{"L2", 0}}, {}, {"L2"}, 2100);
        t = c.tick({"L4"}, held, 2200);
        CHECK(t.stopped == std::vector<std::string>{"L2"});
        CHECK(c.covering().empty());
    }

    TEST_CASE("a lower live lane that holds the origin covers instead; its cover list shows") {
        lanes::cover_state c("L2", 0, 1000);
        std::vector<outbox::origin_summary> mine = {origin("L2", true, 1, 0),
                                                    origin("L3", false, 9, 2)};
        c.on_news("L1", {{"L3", 5000}}, {"L3"}, {"L3"}, 6000);
        auto t = c.tick({"L1"}, mine, 6000);
        CHECK(t.started.empty()); // L1 < L2 is alive and holds L3: it takes L3
        CHECK(c.covering().empty());
        auto v = c.origins(mine);
        CHECK(v[1].covered_by == "L1");
        c.peer_gone("L1");
        CHECK(c.origins(mine)[1].covered_by.empty());
    }

    TEST_CASE("a lower live lane that holds nothing of the origin is passed over") {
        lanes::cover_state c("L2", 0, 1000);
        std::vector<outbox::origin_summary> mine = {origin("L2", true, 1, 0),
                                                    origin("L3", false, 9, 2)};
        // L1 is alive but holds nothing of L3 (a fresh lane, or all of it in the cloud).
        c.on_news("L1", {{"L3", 5000}}, {}, {}, 6000);
        auto t = c.tick({"L1"}, mine, 6000);
        CHECK(t.started == std::vector<std::string>{"L3"});
        CHECK(c.covering() == std::vector<std::string>{"L3"});
        CHECK(c.news(6000).cover == std::vector<std::string>{"L3"});
        // Its next news says it holds L3 now: the lowest holder takes over, this lane stops.
        c.on_news("L1", {{"L3", 5100}}, {}, {"L3"}, 6100);
        t = c.tick({"L1"}, mine, 6100);
        CHECK(t.stopped == std::vector<std::string>{"L3"});
        CHECK(c.covering().empty());
    }

    TEST_CASE("a holder whose sessions all ended is forgotten: the next holder takes over") {
        lanes::cover_state c("L2", 0, 1000);
        std::vector<outbox::origin_summary> mine = {origin("L2", true, 1, 0),
                                                    origin("L3", false, 9, 2)};
        c.on_news("L1", {{"L3", 5000}}, {"L3"}, {"L3"}, 6000);
        CHECK(c.tick({"L1"}, mine, 6000).started.empty());
        c.peer_gone("L1"); // L1 is still seen within after, but no longer known as a holder
        auto t = c.tick({}, mine, 6100);
        CHECK(t.started == std::vector<std::string>{"L3"});
        // A new session's news brings its holds back.
        c.on_news("L1", {}, {}, {"L3"}, 6200);
        CHECK(c.tick({"L1"}, mine, 6200).stopped == std::vector<std::string>{"L3"});
    }

    TEST_CASE("holds: origins above cloud_through as this lane knows it, never its own") {
        lanes::cover_state c("L1", 0, 1000);
        auto t = c.tick({"L2"}, held, 100);
        CHECK(t.news_due);
        CHECK(c.news(100).holds == std::vector<std::string>{"L2"}); // L3 all in the cloud
        CHECK_FALSE(c.tick({"L2"}, held, 200).news_due);            // nothing changed
        // A peer says L2 is in the cloud up to its hwm: nothing of it is held above that.
        CHECK(c.take_cloud_through("L2", 10));
        t = c.tick({"L2"}, held, 300);
        CHECK(t.news_due);
        CHECK(c.news(300).holds.empty());
        // Nor is it covered once silent: there is nothing to upload.
        CHECK(c.tick({}, held, 5000).started.empty());
        CHECK(c.covering().empty());
        // More of L2 arrives: held again, and news is due.
        auto more = held;
        more[1].hwm = 12;
        t = c.tick({}, more, 5100);
        CHECK(t.news_due);
        CHECK(c.news(5100).holds == std::vector<std::string>{"L2"});
        CHECK(t.started == std::vector<std::string>{"L2"});
    }

    TEST_CASE("news: ages, cloud_through per origin (own too), the cover list") {
        lanes::cover_state c("L1", 0, 1000);
        c.tick({"L2"}, held, 100);
        auto n = c.news(400);
        CHECK(n.seen.at("L2") == 300);
        CHECK_FALSE(n.seen.count("L1"));
        CHECK(n.cloud.at("L1") == 3);
        CHECK(n.cloud.at("L3") == 5);
        CHECK_FALSE(n.cloud.count("L2")); // 0: nothing known
        CHECK(n.cover.empty());
        CHECK(n.holds == std::vector<std::string>{"L2"});
    }

    TEST_CASE("a peer's cloud_through is written only when it is news here") {
        lanes::cover_state c("L1", 0, 1000);
        c.tick({}, held, 100);
        CHECK_FALSE(c.take_cloud_through("L3", 5)); // the outbox knows 5 already
        CHECK(c.take_cloud_through("L3", 7));
        CHECK_FALSE(c.take_cloud_through("L3", 7)); // applied once
        CHECK(c.take_cloud_through("L9", 1));       // an origin not held yet
        CHECK_FALSE(c.take_cloud_through("L9", 1));
        auto t = c.tick({}, held, 200); // the outbox still says 5: the applied 7 stands
        CHECK(c.news(200).cloud.at("L3") == 7);
        (void)t;
    }
}
