// Unit tests for the rebuild, trust-cap and news rules of protocol/peer_machine.hpp, without
// sockets (docs/protocol.md "Lane rebuild", "Trust caps", "News"): hand-played lanes for
// single rules, two machines over in-memory outboxes for the handshakes.

#include "peer_machine_lanes.hpp"
#include "protocol/ending.hpp"

namespace {

const std::string inc_a = "0123456789abcdef0123456789abcdef";
const std::string inc_b = "fedcba9876543210fedcba9876543210";

peer_machine_config rebuilding_config(const std::string& me) {
    auto c = config(me);
    c.rebuilding = true;
    c.incarnation = inc_b;
    return c;
}

/// A v2 server machine "L1" with `cfg`, through a hand-played v2 client "PY" up to the data
/// phase: our ready went out (returned).
struct v2_server {
    peer_machine m;
    std::string nonce_s;
    explicit v2_server(peer_machine_config cfg) : m(std::move(cfg), peer_role::server) {}

    ready_frame open(const hwm_map& own = {}, const std::string& peer = "PY") {
        auto ch =
            sent_one<challenge_frame>(m.on_text(encode(hello_frame{2, store, peer, nonce_peer})));
        nonce_s = ch.nonce;
        m.on_text(encode(auth_frame{
            peer_mac(secret, peer_role::client, store, peer, "L1", nonce_peer, nonce_s)}));
        REQUIRE(has<read_hwm>(m.on_join("")));
        auto out = m.on_hwm(own, tips_of(own));
        return std::get<ready_frame>(frames(out).at(0));
    }
    /// The peer's ready; the hwm read answered with `own`.
    peer_actions ready(ready_frame r, const hwm_map& own = {}) {
        r.v2 = true;
        auto out = m.on_text(encode(r));
        REQUIRE(has<read_hwm>(out));
        return m.on_hwm(own, tips_of(own));
    }
};

/// L2 holds L1's messages 1..`l2_holds` (incarnation 0); L1 holds its own 1..`l1_holds` of
/// incarnation `l1_inc`. L1 (server) runs with `l1_cfg`, L2 (client) is an ordinary v2 lane.
struct pair_of_lanes {
    lane l1, l2;
    pair_of_lanes(peer_machine_config l1_cfg, std::uint64_t l2_holds, std::uint64_t l1_holds,
                  int l1_inc = 0)
        : l1("L1", peer_role::server, std::move(l1_cfg)), l2("L2", peer_role::client, 2) {
        l2.replicate("L1", l2_holds, 0);
        l1.publish(l1_holds, l1_inc);
        l1.m.on_sender(true);
        l2.m.on_sender(true);
        run(l2, l1, l2.m.start());
    }
};

} // namespace

TEST_SUITE("peer_machine rebuild") {

    // ---- ready --------------------------------------------------------------------------------

    TEST_CASE("a rebuilding lane's ready says rebuild and names its incarnation") {
        v2_server s(rebuilding_config("L1"));
        auto r = s.open({{"L1", 4}});
        CHECK(r.rebuild);
        CHECK(r.inc == inc_b);
        auto c = config("L1");
        c.incarnation = inc_a;
        v2_server normal(c);
        auto n = normal.open({{"L1", 4}});
        CHECK_FALSE(n.rebuild);
        CHECK(n.inc == inc_a);
    }

    TEST_CASE("a v1 session never sees inc or rebuild") {
        server_side s; // a v1 script against a rebuilding v2 lane with an incarnation
        s.m = peer_machine(rebuilding_config("L1"), peer_role::server);
        s.hello();
        s.m.on_text(encode(auth_frame{s.client_mac()}));
        s.m.on_join("");
        auto text = all<send_frame>(s.m.on_hwm({{"L1", 4}}))[0].text;
        CHECK(text == R"({"hwm":{"L1":4},"type":"ready"})");
    }

    TEST_CASE("the peer's incarnation is kept for status; v2 fields in a v1 session refused") {
        v2_server s(config("L1"));
        s.open();
        CHECK(s.m.incarnation_of_peer().empty());
        s.ready(ready_frame{{{"PY", 2}}, tips_of({{"PY", 2}}), true, inc_a});
        CHECK(s.m.incarnation_of_peer() == inc_a);
        server_side one; // v1
        one.open();
        auto c = closed(one.m.on_text(R"({"type":"ready","hwm":{},"inc":")" + inc_a + R"("})"));
        CHECK(c.reason == "malformed frame: v2 fields in a v1 session");
        server_side two;
        two.open();
        c = closed(two.m.on_text(R"({"type":"ready","hwm":{},"rebuild":true})"));
        CHECK(c.reason == "malformed frame: v2 fields in a v1 session");
    }

    // ---- not rebuilding: outbox lost starts a rebuild -------------------------------------------

    TEST_CASE("outbox lost closes 1001 rebuilding, cause outbox_lost, nothing promoted") {
        pair_of_lanes t(config("L1"), 100, 60);
        REQUIRE(t.l1.closes.size() == 1);
        const auto& c = t.l1.closes[0];
        CHECK(c.code == close_code::going_away);
        CHECK(c.reason == "rebuilding: peer holds seq 100 of L1 but this lane only 60");
        CHECK(c.cause == close_cause::outbox_lost);
        CHECK(t.l1.acked_through == 0);
        CHECK(t.l1.reports.empty()); // only a rebuilding lane reports
        auto e = classify_ending(session_stage::authenticated, c.code, c.reason, decided_by::peer,
                                 {2, {1, 2}});
        CHECK_FALSE(e.permanent());
        CHECK(e.retry_version == 2);
    }

    // ---- rebuilding: the whole handshake ------------------------------------------------------

    TEST_CASE("a wiped lane rebuilds from its peer: reported, restored, same ids") {
        pair_of_lanes t(rebuilding_config("L1"), 100, 0);
        CHECK(t.l1.closes.empty());
        CHECK(t.l2.closes.empty());
        REQUIRE(t.l1.reports.size() == 1); // once per session
        CHECK(t.l1.reports[0].peer == "L2");
        CHECK(t.l1.reports[0].seq == 100);
        CHECK(t.l1.reports[0].id == id_of("L1", 100, 0));
        REQUIRE(t.l1.held["L1"].size() == 100);
        CHECK(t.l1.held["L1"][99].id == id_of("L1", 100, 0));
        REQUIRE_FALSE(t.l1.stores.empty());
        for (const auto& s : t.l1.stores)
            CHECK(s.restore);
        CHECK(t.l2.m.serving_rebuild());
        CHECK(t.l2.reads.at(0).include_peer_origin);
        CHECK(t.l2.reads.at(0).after.at("L1") == 0);
        CHECK(t.l1.acked_through == 0); // nothing of ours was checked above our hwm
    }

    TEST_CASE("the rebuilding lane as the client: the same handshake, news after its ready") {
        lane l1("L1", peer_role::client, rebuilding_config("L1"));
        lane l2("L2", peer_role::server, 2);
        l2.replicate("L1", 30, 0);
        l2.publish(4, 0);
        l1.m.on_news(news{{{"L3", 5}}, {}, {}});
        l2.m.on_news(news{{}, {{"L1", 10}}, {}});
        l1.m.on_sender(true);
        l2.m.on_sender(true);
        run(l1, l2, l1.m.start());
        CHECK(l1.closes.empty());
        CHECK(l2.closes.empty());
        REQUIRE(l1.reports.size() == 1);
        CHECK(l1.reports[0].seq == 30);
        CHECK(l1.held["L1"].size() == 30); // restored
        CHECK(l1.held["L2"].size() == 4);  // and the peer's own messages as replicas
        REQUIRE(l2.news.size() == 1);
        CHECK(l2.news[0].seen.at("L3") == 5);
        REQUIRE(l1.news.size() == 1);
        CHECK(l1.news[0].own_cloud_through == 0); // L2's mark of L1 was above L1's hwm
        // ... but the cloud holds L1's 1..10: the rebuild must not hand those seqs out again.
        CHECK(l1.news[0].own_cloud_floor == 10);
        CHECK(l2.news[0].own_cloud_floor == 0); // only a rebuilding lane gets the floor
        CHECK(l2.m.incarnation_of_peer() == inc_b);
    }

    TEST_CASE("an old copy restored: the peer sends from the lane's own mark on") {
        pair_of_lanes t(rebuilding_config("L1"), 100, 60);
        CHECK(t.l1.closes.empty());
        CHECK(t.l2.closes.empty());
        CHECK(t.l1.reports.at(0).seq == 100);
        CHECK(t.l2.reads.at(0).after.at("L1") == 60); // the cursor at L1's verified mark
        CHECK(t.l1.held["L1"].size() == 100);
        CHECK(t.l1.held["L1"][99].id == id_of("L1", 100, 0));
    }

    TEST_CASE("issue 9 regression in rebuild mode: L2's old messages are a conflict, kept apart") {
        // The two lanes of peer_machine_v2_test: L1 handed out 150 new seqs over L2's 100.
        pair_of_lanes t(rebuilding_config("L1"), 100, 150, 1);
        CHECK(t.l1.acked_through == 0); // never promoted
        REQUIRE(t.l1.reports.size() == 1);
        CHECK(t.l1.reports[0].seq == 100);
        REQUIRE(t.l1.closes.size() == 1);
        const auto& c = t.l1.closes[0];
        CHECK(c.code == close_code::policy_violation);
        CHECK(c.cause == close_cause::incarnation_mismatch);
        CHECK(c.reason == "incarnation mismatch: peer holds L1:100 as " +
                              id_of("L1", 100, 0).substr(24) + ", this lane's is " +
                              id_of("L1", 100, 1).substr(24));
        CHECK(classify_ending(session_stage::authenticated, c.code, c.reason, decided_by::peer)
                  .permanent());
        CHECK(t.l2.held["L1"].size() == 100); // nothing of L1's new messages reached L2
        CHECK(t.l2.held["L1"][99].id == id_of("L1", 100, 0));
        CHECK(t.l1.held["L1"][99].id == id_of("L1", 100, 1)); // nor the other way
    }

    TEST_CASE("serving: a rebuilding peer whose own mark names another id is refused") {
        // L2 holds L1's 1..100 of incarnation 0; the rebuilding L1 says its 60 is another one.
        pair_of_lanes t(rebuilding_config("L1"), 100, 60, 1);
        REQUIRE_FALSE(t.l2.closes.empty());
        const auto& c = t.l2.closes[0];
        CHECK(c.cause == close_cause::incarnation_mismatch);
        CHECK(c.code == close_code::policy_violation);
        CHECK(c.reason == "incarnation mismatch: this lane holds L1:60 as " +
                              id_of("L1", 60, 0).substr(24) + ", L1 holds " +
                              id_of("L1", 60, 1).substr(24));
        CHECK(t.l2.reads.empty()); // nothing sent
        CHECK(t.l1.held["L1"].size() == 60);
    }

    TEST_CASE("serving, hand-played: the lookup comes first, then our own origin's check") {
        v2_server s(config("L1"));
        s.open({{"L1", 9}, {"PY", 40}});
        s.m.on_sender(true);
        auto out = s.ready(ready_frame{{{"PY", 30}, {"L1", 9}},
                                       {{"PY", id_of("PY", 30)}, {"L1", id_of("L1", 9)}},
                                       true,
                                       inc_a,
                                       true},
                           {{"L1", 9}, {"PY", 40}});
        auto om = only<read_origin_mark>(out);
        CHECK(om.origin == "PY");
        CHECK(om.seq == 30);
        CHECK_FALSE(has<read_own_mark>(out));
        CHECK(s.m.on_origin_mark("PY", 29, id_of("PY", 29)).empty()); // not the one asked
        out = s.m.on_origin_mark("PY", 30, id_of("PY", 30));
        CHECK(only<read_own_mark>(out).seq == 9);
        out = s.m.on_own_mark(9, 9, id_of("L1", 9));
        CHECK(only<peer_acked>(out).through == 9);
        auto rn = only<read_next_batch>(out);
        CHECK(rn.include_peer_origin);
        CHECK(rn.after == hwm_map{{"PY", 30}, {"L1", 9}});
        // Acks move the cursor of the peer's own origin too, while serving.
        s.m.on_next_batch({msg("PY", 31), msg("PY", 32)}, {});
        CHECK(s.m.cursor().at("PY") == 32);
    }

    TEST_CASE("serving a peer that holds nothing of its own: from seq 1, no lookup") {
        v2_server s(config("L1"));
        s.open({{"PY", 5}});
        s.m.on_sender(true);
        auto out = s.ready(ready_frame{{}, {}, true, inc_a, true}, {{"PY", 5}});
        CHECK_FALSE(has<read_origin_mark>(out));
        auto rn = only<read_next_batch>(out);
        CHECK(rn.include_peer_origin);
        CHECK(rn.after == hwm_map{{"PY", 0}});
    }

    TEST_CASE("not serving: an ordinary peer's origin is never sent back") {
        v2_server s(config("L1"));
        s.open({{"PY", 5}});
        s.m.on_sender(true);
        auto out =
            s.ready(ready_frame{{{"PY", 5}}, tips_of({{"PY", 5}}), true, inc_a}, {{"PY", 5}});
        auto rn = only<read_next_batch>(out);
        CHECK_FALSE(rn.include_peer_origin);
        CHECK(rn.after.count("PY") == 0);
        CHECK_FALSE(s.m.serving_rebuild());
    }

    // ---- the rebuilding side, hand-played -------------------------------------------------------

    TEST_CASE("rebuilding: a mark above our hwm is reported, not refused, not promoted") {
        v2_server s(rebuilding_config("L1"));
        s.open({{"L1", 3}});
        s.m.on_sender(true);
        auto out = s.ready(ready_frame{{{"L1", 80}}, {{"L1", id_of("L1", 80)}}}, {{"L1", 3}});
        auto rep = only<own_reported>(out);
        CHECK(rep.peer == "PY");
        CHECK(rep.seq == 80);
        CHECK(rep.id == id_of("L1", 80));
        CHECK_FALSE(has<close_link>(out));
        CHECK_FALSE(has<peer_acked>(out));
        CHECK(has<read_next_batch>(out)); // the data phase runs
        // A batch carrying our own origin is stored as a restore.
        auto st = only<store_batch>(s.m.on_text(encode(batch_frame{1, {msg("L1", 4)}, {}})));
        CHECK(st.restore);
        // On an ack, a mark still above our hwm is neither trusted nor refused.
        s.m.on_next_batch({msg("L3", 1)}, {});
        out = s.m.on_text(encode(ack_frame{1, {{"L1", 80}}, {{"L1", id_of("L1", 80)}}, true}));
        out = s.m.on_own_mark(80, 4, "");
        CHECK_FALSE(has<close_link>(out));
        CHECK_FALSE(has<peer_acked>(out));
    }

    TEST_CASE("rebuilding: a peer holding nothing of ours is reported with seq 0") {
        v2_server s(rebuilding_config("L1"));
        s.open();
        auto out = s.ready(ready_frame{{{"PY", 2}}, tips_of({{"PY", 2}})});
        auto rep = only<own_reported>(out);
        CHECK(rep.seq == 0);
        CHECK(rep.id.empty());
        CHECK_FALSE(has<read_own_mark>(out));
    }

    TEST_CASE("rebuilding: a mark at or below our hwm must name our message") {
        v2_server s(rebuilding_config("L1"));
        s.open({{"L1", 60}});
        auto out = s.ready(ready_frame{{{"L1", 50}}, {{"L1", id_of("L1", 50, 3)}}}, {{"L1", 60}});
        CHECK(only<own_reported>(out).seq == 50);
        CHECK(only<read_own_mark>(out).seq == 50);
        auto c = closed(s.m.on_own_mark(50, 60, id_of("L1", 50)));
        CHECK(c.cause == close_cause::incarnation_mismatch);
        CHECK(c.reason.find("incarnation mismatch: peer holds L1:50 as ") == 0);
        v2_server ok(rebuilding_config("L1"));
        ok.open({{"L1", 60}});
        ok.ready(ready_frame{{{"L1", 50}}, {{"L1", id_of("L1", 50)}}}, {{"L1", 60}});
        CHECK(only<peer_acked>(ok.m.on_own_mark(50, 60, id_of("L1", 50))).through == 50);
    }

    TEST_CASE("not rebuilding: batches never restore") {
        v2_server s(config("L1"));
        s.open();
        s.ready(ready_frame{});
        CHECK_FALSE(
            only<store_batch>(s.m.on_text(encode(batch_frame{1, {msg("PY", 1)}, {}}))).restore);
    }

    TEST_CASE("a rebuilding lane refuses a v1 session: a v1 lane cannot serve a rebuild") {
        server_side s;
        s.m = peer_machine(rebuilding_config("L1"), peer_role::server);
        s.open();
        auto c = closed(s.ready({{"L1", 5}}));
        CHECK(c.reason ==
              "rebuild needs protocol v2: this lane is rebuilding, the session speaks 1");
        CHECK(c.code == close_code::policy_violation);
        CHECK_FALSE(classify_ending(session_stage::authenticated, c.code, c.reason, decided_by::us)
                        .permanent());
    }

    // ---- trust caps ---------------------------------------------------------------------------

    TEST_CASE("trust cap: a lane left out of our rebuild is refused above the cap, no rebuild") {
        auto cfg = config("L1");
        cfg.trust_caps = {{"PY", 50}};
        v2_server s(cfg);
        s.open({{"L1", 70}});
        auto out = s.ready(ready_frame{{{"L1", 60}}, {{"L1", id_of("L1", 60, 0)}}}, {{"L1", 70}});
        auto c = closed(out);
        CHECK(c.code == close_code::policy_violation);
        CHECK(c.cause == close_cause::incarnation_mismatch);
        CHECK(c.reason ==
              "incarnation mismatch: PY was excluded from this lane's rebuild at seq 50");
        CHECK_FALSE(has<read_own_mark>(out));
        CHECK(classify_ending(session_stage::authenticated, c.code, c.reason, decided_by::peer)
                  .permanent());
    }

    TEST_CASE("trust cap: within the cap at ready, acks above it are checked by id; then lifted") {
        auto cfg = config("L1");
        cfg.trust_caps = {{"PY", 50}, {"L9", 0}};
        v2_server s(cfg);
        s.open({{"L1", 70}});
        s.m.on_sender(true);
        auto out = s.ready(ready_frame{{{"L1", 50}}, {{"L1", id_of("L1", 50)}}}, {{"L1", 70}});
        CHECK(only<read_own_mark>(out).seq == 50);
        out = s.m.on_own_mark(50, 70, id_of("L1", 50));
        CHECK(only<peer_acked>(out).through == 50);
        CHECK_FALSE(has<lift_trust_cap>(out)); // at the cap: nothing proved yet
        s.m.on_next_batch({msg("L1", 51)}, {});
        s.m.on_next_batch({msg("L1", 52)}, {});
        // Above the cap, the id decides: our own message at 51 -> trusted, and the cap goes.
        out = s.m.on_text(encode(ack_frame{1, {{"L1", 51}}, {{"L1", id_of("L1", 51)}}, true}));
        CHECK(only<read_own_mark>(out).seq == 51);
        out = s.m.on_own_mark(51, 70, id_of("L1", 51));
        CHECK(only<peer_acked>(out).through == 51);
        CHECK(only<lift_trust_cap>(out).peer == "PY");
        // Another id above it: the stale copy after all -> refused, nothing promoted.
        out = s.m.on_text(encode(ack_frame{2, {{"L1", 52}}, {{"L1", id_of("L1", 52, 1)}}, true}));
        out = s.m.on_own_mark(52, 70, id_of("L1", 52));
        CHECK(closed(out).cause == close_cause::incarnation_mismatch);
        CHECK_FALSE(has<peer_acked>(out));
    }

    TEST_CASE("trust cap: another id at or below the cap is a mismatch, never a rebuild") {
        auto cfg = config("L1");
        cfg.trust_caps = {{"PY", 50}};
        v2_server s(cfg);
        s.open({{"L1", 70}});
        auto out = s.ready(ready_frame{{{"L1", 40}}, {{"L1", id_of("L1", 40, 1)}}}, {{"L1", 70}});
        CHECK(only<read_own_mark>(out).seq == 40);
        out = s.m.on_own_mark(40, 70, id_of("L1", 40));
        auto c = closed(out);
        CHECK(c.cause == close_cause::incarnation_mismatch); // not outbox_lost: no rebuild
        CHECK(c.code == close_code::policy_violation);
        CHECK(c.reason == "incarnation mismatch: PY was excluded from this lane's rebuild at seq "
                          "50 and holds other messages of L1");
        CHECK_FALSE(has<peer_acked>(out));
    }

    // ---- news ---------------------------------------------------------------------------------

    TEST_CASE("news given before our ready goes out right after it, then on request") {
        news n{{{"L3", 1500}}, {{"L1", 120}}, {"L3"}, {"L3", "L4"}};
        v2_server s(config("L1"));
        CHECK(s.m.on_news(n).empty()); // before hello: the version is not known yet
        auto ch =
            sent_one<challenge_frame>(s.m.on_text(encode(hello_frame{2, store, "PY", nonce_peer})));
        CHECK(s.m.on_news(n).empty()); // still before our ready
        s.m.on_text(encode(auth_frame{
            peer_mac(secret, peer_role::client, store, "PY", "L1", nonce_peer, ch.nonce)}));
        CHECK(s.m.on_news(n).empty());
        s.m.on_join("");
        auto fs = frames(s.m.on_hwm({}));
        REQUIRE(fs.size() == 2);
        CHECK(std::holds_alternative<ready_frame>(fs[0]));
        auto sent = std::get<news_frame>(fs[1]);
        CHECK(sent.seen == n.seen);
        CHECK(sent.cloud == n.cloud);
        CHECK(sent.cover == n.cover);
        CHECK(sent.holds == std::vector<std::string>{"L3", "L4"});
        auto again = sent_one<news_frame>(s.m.on_news(news{{}, {{"L1", 121}}, {}}));
        CHECK(again.cloud.at("L1") == 121);
    }

    TEST_CASE("news in a v1 session: never sent, and malformed when received") {
        server_side s; // v1
        CHECK(s.m.on_news(news{}).empty());
        s.open();
        CHECK(s.m.on_news(news{{{"L2", 0}}, {}, {}}).empty());
        s.ready({});
        auto c = closed(s.m.on_text(encode(news_frame{})));
        CHECK(c.code == close_code::policy_violation);
        CHECK(c.reason == "malformed frame: news in a v1 session");
        CHECK(c.cause == close_cause::malformed);
    }

    TEST_CASE("news before the data phase is malformed") {
        peer_machine m(config("L1"), peer_role::server);
        auto c = closed(m.on_text(encode(news_frame{})));
        CHECK(c.reason == "malformed frame: news before the data phase");
        CHECK(c.code == close_code::policy_violation);
        client_side cl(2);
        cl.start();
        c = closed(cl.m.on_text(encode(news_frame{})));
        CHECK(c.reason == "malformed frame: news before the data phase");
        // Joined, but the peer's ready has not come yet.
        v2_server s(config("L1"));
        s.open();
        c = closed(s.m.on_text(encode(news_frame{})));
        CHECK(c.reason == "malformed frame: news before the data phase");
    }

    TEST_CASE("news_received: after the ready's check; own cloud_through capped at the mark") {
        v2_server s(config("L1"));
        s.open({{"L1", 9}});
        auto out = s.ready(ready_frame{{{"L1", 5}}, {{"L1", id_of("L1", 5)}}}, {{"L1", 9}});
        REQUIRE(has<read_own_mark>(out));
        // The peer's news right after its ready waits for the check.
        out = s.m.on_text(encode(
            news_frame{{{{"L3", 1500}, {"L1", 0}}, {{"L1", 9}, {"L3", 4}}, {"L3"}, {"L3"}}}));
        CHECK(out.empty());
        out = s.m.on_own_mark(5, 9, id_of("L1", 5));
        auto n = only<news_received>(out);
        CHECK(n.peer == "PY");
        CHECK(n.seen == std::map<std::string, std::uint64_t>{{"L1", 0}, {"L3", 1500}});
        CHECK(n.cloud == hwm_map{{"L3", 4}}); // never our own origin
        CHECK(n.cover == std::vector<std::string>{"L3"});
        CHECK(n.holds == std::vector<std::string>{"L3"});
        CHECK(n.own_cloud_through == 5); // the peer said 9, verified only 5
        CHECK(n.own_cloud_floor == 0);   // not rebuilding
        n = only<news_received>(s.m.on_text(encode(news_frame{{{}, {{"L1", 3}}, {}}})));
        CHECK(n.own_cloud_through == 3);
        CHECK(n.holds.empty()); // the latest news wins: it holds nothing now
        n = only<news_received>(s.m.on_text(encode(news_frame{{{}, {{"L3", 5}}, {}}})));
        CHECK(n.own_cloud_through == 0);
    }

    TEST_CASE("news_received: no verified mark, no own cloud_through") {
        v2_server s(config("L1"));
        s.open({{"L1", 9}});
        s.ready(ready_frame{{{"PY", 1}}, tips_of({{"PY", 1}})}, {{"L1", 9}});
        auto n = only<news_received>(s.m.on_text(encode(news_frame{{{}, {{"L1", 9}}, {}}})));
        CHECK(n.own_cloud_through == 0);
        // A mark without an id (nothing to compare) verifies nothing either.
        v2_server t(config("L1"));
        t.open({{"L1", 9}});
        t.ready(ready_frame{{{"L1", 5}}, {}}, {{"L1", 9}});
        t.m.on_own_mark(5, 9, id_of("L1", 5));
        n = only<news_received>(t.m.on_text(encode(news_frame{{{}, {{"L1", 9}}, {}}})));
        CHECK(n.own_cloud_through == 0);
    }

    TEST_CASE("two lanes exchange news after their readies") {
        lane l1("L1", peer_role::server, 2), l2("L2", peer_role::client, 2);
        l1.publish(5, 0);
        l1.m.on_news(news{{{"L3", 10}}, {{"L1", 5}}, {}});
        l2.m.on_news(news{{{"L3", 20}}, {{"L1", 4}, {"L3", 7}}, {"L3"}, {"L3"}});
        l1.m.on_sender(true);
        run(l2, l1, l2.m.start());
        CHECK(l1.closes.empty());
        CHECK(l2.closes.empty());
        REQUIRE(l1.news.size() == 1);
        CHECK(l1.news[0].peer == "L2");
        CHECK(l1.news[0].seen.at("L3") == 20);
        CHECK(l1.news[0].cloud == hwm_map{{"L3", 7}});
        CHECK(l1.news[0].holds == std::vector<std::string>{"L3"});
        CHECK(l1.news[0].own_cloud_through == 0); // L2 held nothing of L1 at its ready
        REQUIRE(l2.news.size() == 1);
        CHECK(l2.news[0].cloud == hwm_map{{"L1", 5}});
        CHECK(l2.news[0].holds.empty());
        CHECK(l1.acked_through == 5);
        // Now L2's mark of L1 (5) is verified: a later news counts up to it.
        auto later = l1.m.on_text(encode(news_frame{{{}, {{"L1", 9}}, {}}}));
        CHECK(only<news_received>(later).own_cloud_through == 5);
    }

} // TEST_SUITE
