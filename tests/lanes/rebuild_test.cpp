// The lane's rebuild controller without sockets (lanes/rebuild.hpp): the start check, starting
// a rebuild on "outbox lost", reports, the finish, exclusions, resuming after a restart.
#include "rebuild_recorder.hpp"

#include <doctest/doctest.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

using namespace lanesync;

using namespace lanesync::rebuild_testing;

TEST_SUITE("rebuild controller") {
    TEST_CASE("without links there is no start check: POSTs go ahead at once") {
        recorder r;
        lanes::rebuild_controller c("L1", {}, r.effects());
        c.start(normal_state(), 10, 1000);
        admission a;
        a.ask(c);
        CHECK(a.admitted());
        CHECK_FALSE(c.rebuilding());
        CHECK(c.view().incarnation == inc_a);
    }

    TEST_CASE("the start check holds POSTs until every link answered once") {
        recorder r;
        lanes::rebuild_controller c("L1", {url2, url3}, r.effects());
        c.start(normal_state(), 10, 1000);
        CHECK(c.view().start_check);
        admission a;
        a.ask(c);
        CHECK_FALSE(a.answered());
        c.link_answered(url2);
        c.link_answered(url2); // twice is once
        CHECK_FALSE(a.answered());
        c.link_answered("ws://elsewhere:1/v1/peer"); // not a configured link
        CHECK_FALSE(a.answered());
        c.link_answered(url3);
        CHECK(a.admitted());
        CHECK_FALSE(c.view().start_check);
        admission later;
        later.ask(c);
        CHECK(later.admitted());
    }

    TEST_CASE("the start check ends after its time even if a link never answers") {
        recorder r;
        lanes::rebuild_controller c("L1", {url2, url3}, r.effects());
        c.start(normal_state(), 0, 1000);
        admission a;
        a.ask(c);
        c.link_answered(url2);
        CHECK_FALSE(a.answered());
        c.start_check_over();
        CHECK(a.admitted());
    }

    TEST_CASE("outbox lost during the start check: held POSTs get the rebuild 503") {
        recorder r;
        lanes::rebuild_controller c("L1", {url2}, r.effects());
        c.start(normal_state(), 0, 1000);
        auto before = c.mode();
        CHECK_FALSE(before.rebuilding);
        admission a;
        a.ask(c);
        c.outbox_lost("L2", "rebuilding: peer holds seq 100 of L1 but this lane only 0", 0, 2000);
        REQUIRE(a.refused());
        CHECK((*a.answer)->active);
        CHECK((*a.answer)->reason == "peer holds seq 100 of L1 but this lane only 0");
        REQUIRE(r.begun.size() == 1);
        CHECK(r.begun[0] == "peer holds seq 100 of L1 but this lane only 0");
        REQUIRE(r.closes.size() == 1);
        CHECK(r.closes[0] == "rebuilding: peer holds seq 100 of L1 but this lane only 0");
        // Sessions made before are in the wrong mode; new ones rebuild.
        CHECK_FALSE(c.current(before.generation));
        CHECK(c.mode().rebuilding);
        CHECK(c.view().since_ms == 2000);
        // A second detection changes nothing.
        c.outbox_lost("L2", "rebuilding: again", 0, 3000);
        CHECK(r.begun.size() == 1);
        CHECK(r.closes.size() == 1);
    }

    TEST_CASE("the rebuild finishes once every link reported and the own hwm reached the target") {
        recorder r;
        lanes::rebuild_controller c("L1", {url2, url3}, r.effects());
        c.start(normal_state(), 0, 1000);
        c.link_answered(url2);
        c.link_answered(url3);
        c.outbox_lost("L2", "peer holds seq 100 of L1 but this lane only 0", 0, 2000);
        c.report({url2, "L2", 100, "id-100"});
        c.own_hwm(60);
        CHECK(r.finishes.empty());
        auto v = c.view();
        CHECK(v.target == 100);
        CHECK(v.restored == 60);
        CHECK(v.from == "L2");
        REQUIRE(v.waiting_for.size() == 1);
        CHECK(v.waiting_for[0] == url3);
        c.report({{}, "L3", 80, "id-80"}); // inbound: not the link until its terminal is known
        c.link_terminal(url3, "L3");
        c.own_hwm(100);
        REQUIRE(r.finishes.size() == 1);
        CHECK(r.finishes[0].empty());
        CHECK(c.rebuilding()); // until the outbox committed
        admission during;
        during.ask(c);
        CHECK(during.refused());
        auto gen = c.mode().generation;
        r.commit_finish();
        CHECK_FALSE(c.rebuilding());
        CHECK(c.view().incarnation == inc_b);
        CHECK(c.mode().incarnation == inc_b);
        CHECK_FALSE(c.current(gen));
        REQUIRE(r.closes.size() == 2);
        CHECK(r.closes[1] == "rebuild finished");
        admission after;
        after.ask(c);
        CHECK(after.admitted());
    }

    TEST_CASE("a rebuild whose start failed to commit never finishes until tick() retried it") {
        recorder r;
        r.begin_fails = true;
        lanes::rebuild_controller c("L1", {url2}, r.effects());
        c.start(normal_state(), 0, 1000);
        c.link_answered(url2);
        c.outbox_lost("L2", "peer holds seq 10 of L1 but this lane only 0", 0, 2000);
        c.report({url2, "L2", 10, "id-10"});
        c.own_hwm(10);
        CHECK(r.finishes.empty()); // done, but finish_rebuild would find no rebuild to end
        c.tick(0);
        CHECK(r.begun.size() == 2); // retried, failed again
        CHECK(r.finishes.empty());
        r.begin_fails = false;
        c.tick(0);
        CHECK(r.begun.size() == 3);
        REQUIRE(r.finishes.size() == 1); // committed: the rebuild finishes
        CHECK(c.rebuilding());
    }

    TEST_CASE("a finish that failed to commit is tried again at the next tick") {
        recorder r;
        lanes::rebuild_controller c("L1", {url2}, r.effects());
        c.start(normal_state(), 0, 1000);
        c.link_answered(url2);
        c.outbox_lost("L2", "peer holds seq 10 of L1 but this lane only 0", 0, 2000);
        c.report({url2, "L2", 10, "id-10"});
        c.own_hwm(10);
        REQUIRE(r.finishes.size() == 1);
        auto done = std::move(r.finish_done);
        done("disk full", {});
        CHECK(c.rebuilding());
        c.tick(0);
        REQUIRE(r.finishes.size() == 2);
        r.commit_finish();
        CHECK_FALSE(c.rebuilding());
    }

    TEST_CASE("stopping answers the POSTs the start check holds") {
        recorder r;
        lanes::rebuild_controller c("L1", {url2}, r.effects());
        c.start(normal_state(), 0, 1000);
        admission held;
        held.ask(c);
        CHECK_FALSE(held.answered());
        c.stopping();
        CHECK(held.admitted());
    }

    TEST_CASE("a peer that never connected is left out by its terminal id; its cap is kept") {
        recorder r;
        lanes::rebuild_controller c("L1", {url2, url3}, r.effects());
        c.start(normal_state(), 0, 1000);
        CHECK(c.exclude({"L3"}).status == 409); // not rebuilding
        c.outbox_lost("L2", "peer holds seq 5 of L1 but this lane only 0", 0, 2000);
        c.link_terminal(url2, "L2");
        c.report({url2, "L2", 5, "id-5"});
        c.own_hwm(5);
        CHECK(r.finishes.empty()); // waiting for url3
        CHECK(c.exclude({"not a terminal!"}).status == 400);
        CHECK(c.exclude({"L1"}).status == 400); // this lane
        auto ok = c.exclude({"L3"});
        CHECK(ok.status == 200);
        REQUIRE(r.finishes.size() == 1);
        REQUIRE(r.finishes[0].size() == 1);
        CHECK(r.finishes[0][0] == "L3");
        r.commit_finish({{"L3", 5}});
        CHECK_FALSE(c.rebuilding());
        CHECK(c.mode().trust_caps.at("L3") == 5);
    }

    TEST_CASE("which link a never-seen terminal is cannot be told apart: the URL is needed") {
        recorder r;
        lanes::rebuild_controller c("L1", {url2, url3}, r.effects());
        outbox::rebuild_state st = normal_state();
        st.active = true;
        st.reason = "peer holds seq 5 of L1 but this lane only 0";
        st.since_ms = 500;
        c.start(st, 0, 1000);
        auto amb = c.exclude({"L3"});
        CHECK(amb.status == 400);
        CHECK(amb.error.find("give its PEER_TERMINALS URL") != std::string::npos);
        CHECK(c.exclude({url3}).status == 200);
        CHECK(c.view().waiting_for == std::vector<std::string>{url2});
    }

    TEST_CASE("an inbound-only peer that found the outbox behind must report or be left out") {
        recorder r;
        lanes::rebuild_controller c("L1", {}, r.effects());
        c.start(normal_state(), 1, 1000);
        c.outbox_lost("PY", "rebuilding: peer holds seq 1 of L1 as x but this lane's is y", 1,
                      2000);
        CHECK(r.finishes.empty()); // no link to wait for, but PY has not reported
        CHECK(c.view().waiting_for == std::vector<std::string>{"PY"});
        CHECK(c.exclude({"PZ"}).status == 400);
        CHECK(c.exclude({"PY"}).status == 200);
        REQUIRE(r.finishes.size() == 1);
        CHECK(r.finishes[0] == std::vector<std::string>{"PY"});
    }

    TEST_CASE("left out by terminal id before its link ever connected: the link is that peer") {
        recorder r;
        lanes::rebuild_controller c("L1", {url2}, r.effects());
        c.start(normal_state(), 150, 1000);
        c.link_answered(url2);
        // An inbound session from L2 found the outbox behind; L1's own link never got in.
        c.outbox_lost("L2", "rebuilding: peer holds seq 100 of L1 as x", 150, 2000);
        c.conflict("L2", "L2: incarnation mismatch");
        CHECK(c.exclude({"L2"}).status == 200);
        REQUIRE(r.finishes.size() == 1);
        CHECK(r.finishes[0] == std::vector<std::string>{"L2"});
    }

    TEST_CASE("a rebuild under way at start is resumed: no start check, POSTs refused") {
        recorder r;
        lanes::rebuild_controller c("L1", {url2}, r.effects());
        outbox::rebuild_state st = normal_state();
        st.active = true;
        st.reason = "peer holds seq 5 of L1 but this lane only 0";
        st.since_ms = 500;
        c.start(st, 3, 1000);
        CHECK(c.rebuilding());
        CHECK(c.mode().rebuilding);
        auto v = c.view();
        CHECK_FALSE(v.start_check);
        CHECK(v.since_ms == 500);
        CHECK(v.reason == st.reason);
        admission a;
        a.ask(c);
        CHECK(a.refused());
        CHECK(r.begun.empty()); // already persisted
        c.conflict("L2", "L2: incarnation mismatch: x");
        c.conflict("L2", "L2: incarnation mismatch: x");
        CHECK(c.view().conflicts.size() == 1);
        // L2 reported, everything is restored, but it holds other messages: no finish until
        // the operator leaves it out.
        c.link_terminal(url2, "L2");
        c.report({url2, "L2", 3, "id-3"});
        c.own_hwm(3);
        CHECK(r.finishes.empty());
        CHECK(c.exclude({"L2"}).status == 200);
        REQUIRE(r.finishes.size() == 1);
        CHECK(r.finishes[0] == std::vector<std::string>{"L2"});
    }
}
