// Unit tests for protocol v2 in protocol/peer_machine.hpp, without sockets: marks that name
// their tip id, the outbox-lost rule checked at the peer's ready and on every ack, and version
// negotiation against a v1 lane. The two-lane regression of issue 9 runs two machines over
// in-memory outboxes.

#include "peer_machine_lanes.hpp"
#include "protocol/ending.hpp"

namespace {

/// Issue 9: L2 holds 100 old messages of L1; L1 was wiped and handed out 150 new seqs.
struct two_lanes {
    lane l1, l2;
    explicit two_lanes(int version)
        : l1("L1", peer_role::server, version), l2("L2", peer_role::client, version) {
        for (std::uint64_t s = 1; s <= 100; ++s)
            l2.held["L1"].push_back(msg("L1", s, 0)); // the old incarnation
        l1.publish(150, 1);                           // after the wipe
        l1.m.on_sender(true);
        l2.m.on_sender(true);
        run(l2, l1, l2.m.start());
    }
};

} // namespace

TEST_SUITE("peer_machine v2") {

    TEST_CASE("issue 9 regression: a wiped lane past the peer's seq is refused, nothing promoted") {
        two_lanes t(2);
        CHECK(t.l1.acked_through == 0); // no new message of L1 becomes peer_ack
        REQUIRE(t.l1.closes.size() == 1);
        CHECK(t.l1.closes[0].cause == close_cause::outbox_lost);
        CHECK(t.l1.closes[0].code == close_code::going_away);
        CHECK(t.l1.closes[0].reason == "rebuilding: peer holds seq 100 of L1 as " +
                                           id_of("L1", 100, 0).substr(24) + " but this lane's is " +
                                           id_of("L1", 100, 1).substr(24) + " (hwm 150)");
        CHECK(t.l2.held["L1"].size() == 100); // L2 never took L1's new 101..150
        CHECK(t.l2.held["L1"][99].id == id_of("L1", 100, 0));
        // Both lanes reconnect at once, L1 in rebuild mode (peer_machine_rebuild_test.cpp).
        auto e = classify_ending(session_stage::authenticated, t.l1.closes[0].code,
                                 t.l1.closes[0].reason, decided_by::peer, {2, {1, 2}});
        CHECK_FALSE(e.permanent());
        CHECK(e.retry_version == 2);
        CHECK(e.text == "rebuilding");
    }

    TEST_CASE("issue 9, the same two lanes under v1 rules: the false peer_ack v2 removes") {
        two_lanes t(1);
        CHECK(t.l1.closes.empty());
        CHECK(t.l1.acked_through == 150); // 1..100 promoted though L2 holds other messages
    }

    TEST_CASE("two v2 lanes with one history: matching tips promote") {
        lane l1("L1", peer_role::server, 2), l2("L2", peer_role::client, 2);
        l1.publish(120, 1);
        for (std::uint64_t s = 1; s <= 100; ++s)
            l2.held["L1"].push_back(msg("L1", s, 1));
        l1.m.on_sender(true);
        run(l2, l1, l2.m.start());
        CHECK(l1.closes.empty());
        CHECK(l2.closes.empty());
        CHECK(l1.acked_through == 120);
        CHECK(l2.held["L1"].size() == 120);
    }

    TEST_CASE("v2 frames: hello offers 2, ready and acks carry tip ids") {
        client_side c(2);
        CHECK(c.start().version == 2);
        server_side s;
        s.v = 2;
        CHECK(s.hello().version == 2); // served as v2
        s.m.on_text(encode(auth_frame{s.client_mac()}));
        s.m.on_join("");
        auto r = sent_one<ready_frame>(s.m.on_hwm({{"L1", 3}}, {{"L1", id_of("L1", 3)}}));
        CHECK(r.v2);
        CHECK(r.ids == tip_ids{{"L1", id_of("L1", 3)}});
        s.ready({{"PY", 0}}, {{"L1", 3}});
        s.m.on_text(encode(batch_frame{1, {msg("PY", 1)}, {}}));
        auto out = s.m.on_stored(1, stored_outcome{true, "", false, "", 1, {{"PY", 1}, {"L1", 3}}});
        CHECK(all<send_frame>(out).empty()); // the ack waits for the tip ids
        CHECK(only<read_tip_ids>(out).at == hwm_map{{"PY", 1}, {"L1", 3}});
        auto ack = sent_one<ack_frame>(s.m.on_ack_ids(1, tips_of({{"PY", 1}, {"L1", 3}})));
        CHECK(ack.v2);
        CHECK(ack.hwm == hwm_map{{"PY", 1}, {"L1", 3}});
        CHECK(ack.ids.at("PY") == id_of("PY", 1));
    }

    TEST_CASE("v2 ready: the peer's tip of our origin is checked against our own message") {
        server_side s;
        s.v = 2;
        s.open({{"L1", 9}});
        s.m.on_sender(true);
        auto out = s.ready({{"L1", 5}}, {{"L1", 9}}, {{"L1", id_of("L1", 5)}});
        CHECK(only<read_own_mark>(out).seq == 5);
        CHECK_FALSE(has<peer_acked>(out));
        CHECK_FALSE(has<read_next_batch>(out)); // nothing is sent before the check
        out = s.m.on_own_mark(5, 9, id_of("L1", 5));
        CHECK(only<peer_acked>(out).through == 5);
        CHECK(only<read_next_batch>(out).after == hwm_map{{"L1", 5}});
    }

    TEST_CASE("v2 ready: another id at the peer's seq is outbox lost, never promoted") {
        server_side s;
        s.v = 2;
        s.open({{"L1", 9}});
        s.m.on_sender(true);
        s.ready({{"L1", 5}}, {{"L1", 9}}, {{"L1", id_of("L1", 5, 3)}});
        auto out = s.m.on_own_mark(5, 9, id_of("L1", 5));
        auto c = closed(out);
        CHECK(c.cause == close_cause::outbox_lost);
        CHECK(c.refusal);
        CHECK(c.reason.find("rebuilding: peer holds seq 5 of L1 as ") == 0);
        CHECK(c.log.at(2) == std::pair<std::string, std::string>{"peer_tip_id", id_of("L1", 5, 3)});
        CHECK_FALSE(has<peer_acked>(out));
        CHECK_FALSE(has<read_next_batch>(out));
    }

    TEST_CASE("v2 ready: a seq above ours is refused as before, without a lookup") {
        server_side s;
        s.v = 2;
        s.open({{"L1", 5}});
        auto out = s.ready({{"L1", 30}}, {{"L1", 5}}, {{"L1", id_of("L1", 30)}});
        CHECK(closed(out).reason == "rebuilding: peer holds seq 30 of L1 but this lane only 5");
        CHECK_FALSE(has<read_own_mark>(out));
    }

    TEST_CASE("v2: a mark without an id, or one we no longer hold, promotes nothing") {
        server_side s;
        s.v = 2;
        s.open({{"L1", 9}});
        s.ready({{"L1", 5}}, {{"L1", 9}}, {});
        auto out = s.m.on_own_mark(5, 9, id_of("L1", 5));
        CHECK(only<peer_acked>(out).through == 0);
        CHECK_FALSE(has<close_link>(out));
    }

    /// A v2 server L1 whose peer checked out at seq 5, with batch 1 (L1 6..8) in flight.
    struct sending {
        server_side s;
        sending() {
            s.v = 2;
            s.open({{"L1", 8}});
            s.m.on_sender(true);
            s.ready({{"L1", 5}}, {{"L1", 8}}, {{"L1", id_of("L1", 5)}});
            s.m.on_own_mark(5, 8, id_of("L1", 5));
            s.m.on_next_batch({msg("L1", 6), msg("L1", 7), msg("L1", 8)}, {});
        }
        peer_actions ack(std::uint64_t n, std::uint64_t seq, const std::string& id) {
            return s.m.on_text(encode(ack_frame{n, {{"L1", seq}}, {{"L1", id}}, true}));
        }
    };

    TEST_CASE("v2 ack: a matching tip promotes; the same mark again needs no lookup") {
        sending t;
        auto out = t.ack(1, 8, id_of("L1", 8));
        CHECK(only<read_own_mark>(out).seq == 8);
        CHECK_FALSE(has<peer_acked>(out));
        CHECK(only<peer_acked>(t.s.m.on_own_mark(8, 8, id_of("L1", 8))).through == 8);
        t.s.m.on_next_batch({msg("L3", 1)}, {});
        out = t.ack(2, 8, id_of("L1", 8));
        CHECK(only<peer_acked>(out).through == 8);
        CHECK_FALSE(has<read_own_mark>(out));
    }

    TEST_CASE("v2 ack: a tip mismatch closes as outbox lost and promotes nothing") {
        sending t;
        t.ack(1, 8, id_of("L1", 8, 4));
        auto out = t.s.m.on_own_mark(8, 8, id_of("L1", 8));
        CHECK(closed(out).cause == close_cause::outbox_lost);
        CHECK_FALSE(has<peer_acked>(out));
    }

    TEST_CASE("v2 ack: a seq above our hwm closes as outbox lost") {
        sending t;
        t.ack(1, 12, id_of("L1", 12));
        auto c = closed(t.s.m.on_own_mark(12, 8, ""));
        CHECK(c.reason == "rebuilding: peer holds seq 12 of L1 but this lane only 8");
    }

    TEST_CASE("marks of the other version are malformed") {
        server_side s;
        s.v = 2;
        s.open();
        auto c = closed(s.m.on_text(encode(ready_frame{{{"PY", 1}}, {}, false})));
        CHECK(c.reason == "malformed frame: v1 marks in a v2 session");
        server_side one;
        one.open();
        c = closed(one.m.on_text(encode(ready_frame{{{"PY", 1}}, {{"PY", id_of("PY", 1)}}, true})));
        CHECK(c.reason == "malformed frame: v2 marks in a v1 session");
    }

    // ---- negotiation --------------------------------------------------------------------------

    TEST_CASE("a v1 hello is served as v1: v1 challenge, plain numbers, v1 rules") {
        server_side s; // the hand-played client speaks v1
        CHECK(s.hello().version == 1);
        s.m.on_text(encode(auth_frame{s.client_mac()}));
        CHECK_FALSE(only<read_hwm>(s.m.on_join("")).ids);
        auto text = all<send_frame>(s.m.on_hwm({{"L1", 4}}))[0].text;
        CHECK(text == R"({"hwm":{"L1":4},"type":"ready"})");
        CHECK(s.m.version() == 1);
        CHECK(has<read_hwm>(s.m.on_text(encode(ready_frame{{{"L1", 4}}}))));
        auto out = s.m.on_hwm({{"L1", 4}});
        CHECK(only<peer_acked>(out).through == 4); // no id lookup in v1
        CHECK_FALSE(has<read_own_mark>(out));
    }

    TEST_CASE("a v2 lane refused by a v1 lane reconnects with v1 and is served") {
        peer_machine_config old = config("L1");
        old.version = 1; // a v1 lane
        lane v1("L1", peer_role::server, old);
        lane l2("L2", peer_role::client, 2);
        run(l2, v1, l2.m.start());
        REQUIRE(v1.closes.size() == 1);
        const auto& refusal = v1.closes[0];
        CHECK(refusal.reason == "unsupported protocol version 2 (this lane speaks 1)");
        // The link classifies the peer's close: transient, again at once with v1.
        auto e = classify_ending(session_stage::authenticating, refusal.code, refusal.reason,
                                 decided_by::peer, {2, {1, 2}});
        CHECK_FALSE(e.permanent());
        CHECK(e.retry_version == 1);
        lane again("L2", peer_role::client, e.retry_version);
        lane v1b("L1", peer_role::server, old);
        run(again, v1b, again.m.start());
        CHECK(v1b.closes.empty());
        CHECK(again.closes.empty());
        CHECK(again.m.authenticated());
        CHECK(v1b.m.authenticated());
    }

} // TEST_SUITE
