// The status document and its table renderings (docs/api.md, docs/cli.md).
#include "agent_test_util.hpp"

#include "agent/status.hpp"
#include "protocol/message.hpp"

using namespace lanesync::agent::test;
namespace agent = lanesync::agent;
namespace outbox = lanesync::outbox;
namespace protocol = lanesync::protocol;

namespace {

outbox::publish_outcome publish(outbox::store& s, const std::string& topic) {
    auto req = protocol::make_publish_request(topic, "{}", std::nullopt, std::nullopt);
    REQUIRE(req.ok());
    return outbox::publish_sync(s, req.value());
}

json fixed_status() {
    return json::parse(R"({
      "terminal_id": "L1", "store_id": "store-1", "version": "0.1.0", "agent_running": true,
      "generated_at": "2026-11-22T03:57:20.000Z", "peer_ack_quorum": 1,
      "outbox": {"pending": 2, "peer_ack": 3, "cloud_ack": 120, "failed": 1,
                 "oldest_pending_age_s": 75.5, "oldest_peer_ack_age_s": 1.25, "last_seq": 126},
      "replicas": {"L2": 98, "L3": 101},
      "peers": [
        {"url": "ws://127.0.0.1:8124/v1/peer", "terminal_id": "L2", "connected": true,
         "acked_through_seq": 124, "last_ack_at": "2026-11-22T03:57:17.000Z", "lag": 2,
         "last_error": null, "next_attempt_at": null},
        {"url": "ws://127.0.0.1:8125/v1/peer", "terminal_id": null, "connected": false,
         "acked_through_seq": 0, "last_ack_at": null, "lag": 126,
         "last_error": "cannot connect: Connection refused",
         "next_attempt_at": "2026-11-22T03:57:22.000Z"}],
      "cloud": {"enabled": true, "url": "https://x.supabase.co", "function": "sync-pos-message",
                "paused": false, "last_success_at": "2026-11-22T03:57:10.000Z",
                "last_error": null, "next_attempt_at": null, "current_backoff_ms": 0,
                "last_http_status": 200}
    })");
}

} // namespace

TEST_SUITE("status") {

    TEST_CASE("status_table renders counts, ages, replicas, peers and the cloud line") {
        auto t = agent::status_table(fixed_status());
        CAPTURE(t);
        CHECK(contains(t, "lane L1"));
        CHECK(contains(t, "agent running"));
        CHECK(contains(t, "PENDING"));
        CHECK(contains(t, "120"));
        CHECK(contains(t, "1m15s")); // oldest pending
        CHECK(contains(t, "1.2s"));  // oldest peer_ack
        CHECK(contains(t, "L2 98, L3 101"));
        CHECK(contains(t, "PEERS (quorum 1)"));
        CHECK(contains(t, "ACKED THROUGH"));
        CHECK(contains(t, "ws://127.0.0.1:8124/v1/peer"));
        CHECK(contains(t, "3.0s ago")); // L2's last ack
        CHECK(contains(t, "in 2.0s"));  // next reconnect to the second peer
        CHECK(contains(t, "cannot connect: Connection refused"));
        CHECK(contains(t, "CLOUD     ok   https://x.supabase.co"));
        CHECK(contains(t, "last success 10s ago"));
        // Rows line up: the peer rows start with the terminal column.
        CHECK(contains(t, "\n  L2  "));

        auto down = fixed_status();
        down["agent_running"] = false;
        down["cloud"]["enabled"] = false;
        t = agent::status_table(down);
        CHECK(contains(t, "agent not running"));
        CHECK(contains(t, "CLOUD     off"));
    }

    TEST_CASE("status_table: a BACKLOG line with the levels that hold any, most urgent first") {
        auto s = fixed_status();
        CHECK_FALSE(contains(agent::status_table(s), "BACKLOG")); // no backlog member
        s["outbox"]["backlog"] = json::parse(R"({"critical": {"pending": 0, "peer_ack": 0},
            "high": {"pending": 2, "peer_ack": 1}, "normal": {"pending": 0, "peer_ack": 0},
            "low": {"pending": 0, "peer_ack": 2}})");
        auto t = agent::status_table(s);
        CAPTURE(t);
        CHECK(contains(t, "BACKLOG  high 2 pending + 1 peer_ack, low 0 pending + 2 peer_ack "
                          "(uploaded critical first)\n"));
        for (auto level : {"critical", "high", "normal", "low"})
            s["outbox"]["backlog"][level] = {{"pending", 0}, {"peer_ack", 0}};
        CHECK_FALSE(contains(agent::status_table(s), "BACKLOG"));
    }

    TEST_CASE("status_json: the backlog by priority from the outbox's counts") {
        temp_dir d;
        auto cfg = test_config(d.path);
        auto st = outbox::store::open({cfg.outbox_path, cfg.terminal_id, cfg.store_id, false});
        for (auto p :
             {protocol::priority::critical, protocol::priority::low, protocol::priority::low}) {
            auto req =
                protocol::make_publish_request("audit", "{}", std::nullopt, protocol::to_string(p));
            REQUIRE(req.ok());
            REQUIRE(outbox::publish_sync(*st, req.value()).k == outbox::publish_outcome::created);
        }
        auto j = agent::status_json(cfg, *st, nullptr, nullptr, false, protocol::now_ms());
        CHECK(j["outbox"]["backlog"]["critical"] == json{{"pending", 1}, {"peer_ack", 0}});
        CHECK(j["outbox"]["backlog"]["low"] == json{{"pending", 2}, {"peer_ack", 0}});
        CHECK(j["outbox"]["backlog"]["high"] == json{{"pending", 0}, {"peer_ack", 0}});
    }

    TEST_CASE("store_table: one row per lane, errors in a note column") {
        auto l1 = fixed_status();
        auto l2 = fixed_status();
        l2["terminal_id"] = "L2";
        l2["agent_running"] = false;
        json l3 = {{"env", "examples/store/L3.env"},
                   {"terminal_id", "L3"},
                   {"agent_running", false},
                   {"error", "no outbox at data/L3.db yet"}};
        auto t = agent::store_table({l1, l2, l3});
        CAPTURE(t);
        CHECK(t.starts_with("LANE  RUNNING  PENDING  PEER_ACK  CLOUD_ACK  FAILED  OLDEST PENDING  "
                            "PEERS UP  CLOUD"));
        CHECK(contains(t, "NOTE"));
        CHECK(contains(
            t,
            "\nL1    yes      2        3         120        1       1m15s           1/2       ok"));
        CHECK(contains(t, "\nL2    no"));
        CHECK(contains(t, "no outbox at data/L3.db yet"));
        // Without errors there is no NOTE column.
        CHECK(!contains(agent::store_table({l1}), "NOTE"));
    }

    TEST_CASE("format_age") {
        CHECK(agent::format_age(nullptr) == "-");
        CHECK(agent::format_age(0.0) == "0.0s");
        CHECK(agent::format_age(9.94) == "9.9s");
        CHECK(agent::format_age(42) == "42s");
        CHECK(agent::format_age(184) == "3m04s");
        CHECK(agent::format_age(7500) == "2h05m");
        CHECK(agent::format_age(3 * 86400 + 4 * 3600 + 5) == "3d04h");
    }

    TEST_CASE("status_json from a real outbox: counts, ages, peers from marks, no secrets") {
        temp_dir d;
        auto cfg = test_config(d.path);
        cfg.supabase_url = "https://user:pw@x.supabase.co";
        cfg.peers.push_back(*lanesync::conf::parse_peer_url("ws://127.0.0.1:8124/v1/peer"));
        auto store = outbox::store::open({cfg.outbox_path, cfg.terminal_id, cfg.store_id, false});
        REQUIRE(publish(*store, "a").k == outbox::publish_outcome::created);
        REQUIRE(publish(*store, "b").k == outbox::publish_outcome::created);

        auto now = protocol::now_ms() + 5000;
        // No marks yet: the configured URLs are listed, not connected.
        auto s = agent::status_json(cfg, *store, nullptr, nullptr, false, now);
        CHECK(s["agent_running"] == false);
        CHECK(s["outbox"]["pending"] == 2);
        CHECK(s["outbox"]["last_seq"] == 2);
        CHECK(s["outbox"]["oldest_pending_age_s"].get<double>() >= 5.0);
        CHECK(s["outbox"]["oldest_peer_ack_age_s"] == 0.0);
        REQUIRE(s["peers"].size() == 1);
        CHECK(s["peers"][0]["url"] == "ws://127.0.0.1:8124/v1/peer");
        CHECK(s["peers"][0]["connected"] == false);
        CHECK(s["peers"][0]["lag"] == 2);
        CHECK(s["cloud"]["enabled"] == true);
        CHECK(s["cloud"]["url"] == "https://x.supabase.co");
        CHECK(s["cloud"]["last_success_at"].is_null());

        // L2 confirmed seq 1: a mark, and (quorum 1) message 1 becomes peer_ack.
        std::promise<outbox::peer_ack_outcome> p;
        store->peer_acked("L2", 1, 1,
                          [&](outbox::peer_ack_outcome o) { p.set_value(std::move(o)); });
        REQUIRE(p.get_future().get().ok);
        s = agent::status_json(cfg, *store, nullptr, nullptr, false, now);
        CHECK(s["outbox"]["pending"] == 1);
        CHECK(s["outbox"]["peer_ack"] == 1);
        REQUIRE(s["peers"].size() == 1);
        CHECK(s["peers"][0]["terminal_id"] == "L2");
        CHECK(s["peers"][0]["acked_through_seq"] == 1);
        CHECK(s["peers"][0]["lag"] == 1);
        CHECK(s["peers"][0]["last_ack_at"].is_string());

        // A running agent's view: live peers and cloud.
        std::vector<lanesync::lanes::peer_status> peers(1);
        peers[0].url = "ws://127.0.0.1:8124/v1/peer";
        peers[0].terminal_id = "L2";
        peers[0].connected = true;
        peers[0].acked_through_seq = 2;
        lanesync::cloud::status cs;
        cs.enabled = true;
        cs.last_error = "HTTP 401 from the edge function";
        cs.last_http_status = 401;
        cs.current_backoff_ms = 2000;
        s = agent::status_json(cfg, *store, &peers, &cs, true, now);
        CHECK(s["agent_running"] == true);
        CHECK(s["peers"][0]["connected"] == true);
        CHECK(s["cloud"]["last_http_status"] == 401);
        CHECK(s["cloud"]["current_backoff_ms"] == 2000);
        CHECK(s["cloud"]["paused"] == false);

        auto text = s.dump() + agent::status_table(s);
        CHECK(!contains(text, cfg.peer_secret));
        CHECK(!contains(text, cfg.supabase_service_key));
        CHECK(!contains(text, "user:pw"));
        store->close();
    }

} // TEST_SUITE
