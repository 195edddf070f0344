// Unit tests for protocol v3 in protocol/peer_machine.hpp with protocol/catalog_sync.hpp,
// without sockets: two lanes' catalogs converge over the catalog frames (catch-up, snapshots
// below the horizon, both directions, one page in flight per scope), the machine's rules about
// those frames, and version negotiation: v3 with v2 and v1 lanes keeps replicating messages and
// never shows them a catalog frame.

#include "peer_machine_catalog.hpp"
#include "protocol/ending.hpp"

namespace {

/// L1 (server) and L2 (client), both v3.
struct pair3 {
    cat_lane l1{"L1", peer_role::server, 3};
    cat_lane l2{"L2", peer_role::client, 3};
};

void fill(mem_catalog& c, const std::string& scope, int n, std::int64_t first_version) {
    for (int i = 0; i < n; ++i)
        c.put(scope, "sku-" + std::to_string(1000 + i), first_version + i, false);
}

} // namespace

TEST_SUITE("peer_machine catalog") {

    TEST_CASE("v3: an empty lane gets every change, page by page, one in flight per scope") {
        pair3 t;
        fill(t.l1.cat, "prices", 50, 1);
        t.l1.cat.put("prices", "sku-1003", 60, true); // a delete travels as a tombstone
        t.l1.lim.page_changes = 7;
        wire_log wire;
        run_catalog(t.l2, t.l1, &wire);
        CHECK(t.l1.base.closes.empty());
        CHECK(t.l2.base.closes.empty());
        CHECK(t.l2.cat.live("prices") == t.l1.cat.live("prices"));
        CHECK(t.l2.cat.live("prices").size() == 49);
        REQUIRE(t.l2.cat.state("prices"));
        CHECK(t.l2.cat.state("prices")->through == 60);
        CHECK(t.l2.cat.rows["prices"]["sku-1003"].deleted);
        CHECK(t.l1.max_in_flight == 1);
        CHECK(wire.types["catalog"] == 8); // ceil(50 / 7)
        for (auto v : t.l2.verdicts)
            CHECK(v == page_verdict::apply);
        CHECK(t.l1.base.m.version() == 3);
    }

    TEST_CASE("v3: a lane below the horizon gets a snapshot that drops keys deleted since") {
        pair3 t;
        fill(t.l1.cat, "prices", 20, 100);
        t.l1.cat.scopes["prices"].horizon = 110; // tombstones up to 110 purged
        t.l1.lim.page_changes = 6;
        // L2 is at 50 and still holds a key L1 deleted (its tombstone is gone) and an old price.
        t.l2.cat.put("prices", "gone", 40, false);
        t.l2.cat.put("prices", "sku-1000", 45, false);
        t.l2.cat.scopes["prices"].through = 50;
        run_catalog(t.l2, t.l1);
        CHECK(t.l2.base.closes.empty());
        CHECK(t.l2.cat.live("prices") == t.l1.cat.live("prices"));
        CHECK_FALSE(t.l2.cat.live("prices").contains("gone"));
        CHECK(t.l2.cat.state("prices")->through == 119);
        CHECK_FALSE(t.l2.cat.state("prices")->snapshot_active);
        REQUIRE_FALSE(t.l2.received.empty());
        CHECK(t.l2.received.front().page.reset);
        CHECK(t.l2.received.back().page.done);
        CHECK(t.l2.owned.empty());
    }

    TEST_CASE("v3: each side sends the scopes it is ahead in") {
        pair3 t;
        fill(t.l1.cat, "prices", 5, 10);
        fill(t.l2.cat, "products", 4, 20);
        fill(t.l2.cat, "prices", 2, 10); // behind: 10, 11
        run_catalog(t.l2, t.l1);
        CHECK(t.l1.cat.live("products") == t.l2.cat.live("products"));
        CHECK(t.l2.cat.live("prices") == t.l1.cat.live("prices"));
        CHECK(t.l1.cat.state("products")->through == 23);
        CHECK(t.l2.cat.state("prices")->through == 14);
        // L2 was asked only for what it lacked: the page started above its through
        REQUIRE_FALSE(t.l2.received.empty());
        CHECK(t.l2.received.front().since == 11);
    }

    TEST_CASE("v3: a scope mid-snapshot from the cloud is neither served nor sent to") {
        pair3 t;
        fill(t.l1.cat, "prices", 5, 10);
        fill(t.l1.cat, "products", 3, 30);
        t.l1.cat.scopes["products"].snapshot_active = true; // L1's own cloud snapshot
        t.l1.cat.scopes["products"].source = "cloud";
        t.l2.cat.scopes["prices"] = catalog_scope_state{"prices", 0, 0, 0, true, 0, 0, "", "cloud"};
        wire_log wire;
        run_catalog(t.l2, t.l1, &wire);
        CHECK(wire.types["catalog"] == 0);
        CHECK(t.l2.cat.live("products").empty());
        CHECK(t.l2.cat.live("prices").empty());
        CHECK(wire.types["catalog_have"] == 2);
    }

    TEST_CASE("v3 with a v2 lane: served as v2, messages replicate, no catalog frame") {
        cat_lane l1("L1", peer_role::server, 3);
        cat_lane l2("L2", peer_role::client, 2);
        fill(l1.cat, "prices", 5, 10);
        fill(l2.cat, "products", 5, 10);
        l1.base.publish(30, 0);
        l2.base.publish(7, 0);
        l1.base.m.on_sender(true);
        l2.base.m.on_sender(true);
        wire_log wire;
        run_catalog(l2, l1, &wire);
        CHECK(l1.base.m.version() == 2);
        CHECK(l1.base.closes.empty());
        CHECK(l2.base.closes.empty());
        CHECK(l2.base.held["L1"].size() == 30);
        CHECK(l1.base.held["L2"].size() == 7);
        CHECK(l1.base.acked_through == 30);
        CHECK(wire.types["catalog_have"] == 0);
        CHECK(wire.types["catalog"] == 0);
        CHECK(wire.types["news"] == 0); // no news was asked for in this script
        CHECK(l2.cat.live("prices").empty());
    }

    TEST_CASE("v3 client and a v2 server: one refused attempt, then v2 replicates") {
        cat_lane v2("L1", peer_role::server, 2);
        cat_lane l2("L2", peer_role::client, 3);
        run_catalog(l2, v2);
        REQUIRE(v2.base.closes.size() == 1);
        const auto& refusal = v2.base.closes[0];
        CHECK(refusal.reason == "unsupported protocol version 3 (this lane speaks 1-2)");
        auto e = classify_ending(session_stage::authenticating, refusal.code, refusal.reason,
                                 decided_by::peer, {3, {1, 3}});
        CHECK_FALSE(e.permanent());
        CHECK(e.retry_version == 2);
        cat_lane again("L2", peer_role::client, 3, e.retry_version);
        cat_lane v2b("L1", peer_role::server, 2);
        fill(again.cat, "prices", 3, 1);
        again.base.publish(12, 0);
        again.base.m.on_sender(true);
        wire_log wire;
        run_catalog(again, v2b, &wire);
        CHECK(v2b.base.closes.empty());
        CHECK(v2b.base.held["L2"].size() == 12);
        CHECK(wire.types["catalog_have"] == 0);
        CHECK(wire.types["catalog"] == 0);
    }

    TEST_CASE("v3 with a v1 lane, both roles: v1 frames and rules, messages replicate") {
        cat_lane v1("L1", peer_role::server, 1);
        cat_lane l2("L2", peer_role::client, 3, 1); // the link fell back to 1
        l2.base.publish(9, 0);
        l2.base.m.on_sender(true);
        fill(l2.cat, "prices", 3, 1);
        wire_log wire;
        run_catalog(l2, v1, &wire);
        CHECK(v1.base.closes.empty());
        CHECK(v1.base.held["L2"].size() == 9);
        CHECK(l2.base.acked_through == 9);
        CHECK(wire.types["catalog_have"] + wire.types["catalog"] == 0);
        // a v3 server serves a v1 hello as v1
        cat_lane s3("L1", peer_role::server, 3);
        cat_lane c1("L2", peer_role::client, 1);
        s3.base.publish(4, 0);
        s3.base.m.on_sender(true);
        fill(s3.cat, "prices", 3, 1);
        wire_log w2;
        run_catalog(c1, s3, &w2);
        CHECK(s3.base.m.version() == 1);
        CHECK(c1.base.held["L1"].size() == 4);
        CHECK(w2.types["catalog_have"] + w2.types["catalog"] == 0);
    }

    TEST_CASE("catalog frames in a v2 session, or before the ready, are malformed") {
        server_side s; // a v2 lane, the client offers 2
        s.v = 2;
        s.open();
        auto out = s.m.on_text(encode(catalog_have_frame{}));
        CHECK(closed(out).reason == "malformed frame: catalog_have in a v2 session");
        CHECK(closed(out).code == close_code::policy_violation);

        peer_machine m3(offer_config("L1", 0), peer_role::server);
        auto cfg = config("L1");
        cfg.version = 3;
        peer_machine before(cfg, peer_role::server);
        out = before.on_text(encode(catalog_have_frame{}));
        CHECK(closed(out).reason == "malformed frame: catalog_have before the data phase");
    }

    TEST_CASE("v3 machine: pages in order, one per scope until acked, acked counts done pages") {
        auto cfg = config("L2");
        cfg.version = 3;
        cat_lane srv("L1", peer_role::server, 3);
        // Drive a v3 client machine by hand against a real v3 server machine up to the data
        // phase, then feed the client hand-made pages.
        cat_lane cli("L2", peer_role::client, 3);
        run_catalog(cli, srv);
        REQUIRE(cli.base.m.authenticated());
        auto& m = cli.base.m;
        catalog_frame p1{1, 0, {}};
        p1.page.scope = "prices";
        p1.page.through = 5;
        auto p2 = p1;
        p2.n = 2;
        p2.page.scope = "products";
        auto out = m.on_text(encode(p1));
        CHECK(only<catalog_page_received>(out).page.n == 1);
        out = m.on_text(encode(p2));
        CHECK(only<catalog_page_received>(out).page.page.scope == "products");
        // page 2 done first: the ack waits for page 1
        m.on_catalog_done(2);
        CHECK(sent_one<catalog_have_frame>(m.on_catalog_have({})).acked == 0);
        m.on_catalog_done(1);
        CHECK(sent_one<catalog_have_frame>(m.on_catalog_have({})).acked == 2);
        auto p3 = p1;
        p3.n = 3;
        out = m.on_text(encode(p3));
        REQUIRE(has<catalog_page_received>(out));
        auto p4 = p1;
        p4.n = 4; // prices again before page 3 was acked
        out = m.on_text(encode(p4));
        CHECK(closed(out).reason ==
              "malformed frame: second catalog page of scope prices before the ack");
    }

    TEST_CASE("v3 machine: a page out of order is malformed; v2 never sends catalog frames") {
        cat_lane srv("L1", peer_role::server, 3);
        cat_lane cli("L2", peer_role::client, 3);
        run_catalog(cli, srv);
        catalog_frame p{2, 0, {}};
        p.page.scope = "prices";
        p.page.through = 5;
        auto out = cli.base.m.on_text(encode(p));
        CHECK(closed(out).reason == "malformed frame: catalog page 2 out of order");
        cat_lane v2s("L1", peer_role::server, 3);
        cat_lane v2c("L2", peer_role::client, 2);
        run_catalog(v2c, v2s);
        REQUIRE(v2s.base.m.version() == 2);
        CHECK(v2s.base.m.on_catalog_have({{"prices", 1, 0}}).empty());
        CHECK(v2s.base.m.on_catalog_send(p).empty());
    }

} // TEST_SUITE
