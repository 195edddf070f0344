// The status document from its inputs (pure), and read_status_inputs: what the API reads on
// the outbox reader thread gives the same document as the CLI's blocking path.
#include "agent_test_util.hpp"

#include "agent/status.hpp"
#include "protocol/message.hpp"

using namespace lanesync::agent::test;
namespace agent = lanesync::agent;
namespace outbox = lanesync::outbox;
namespace protocol = lanesync::protocol;

TEST_SUITE("status_inputs") {
    TEST_CASE("status_json from inputs is pure and matches the store overload") {
        temp_dir d;
        auto cfg = test_config(d.path);
        auto store = outbox::store::open({cfg.outbox_path, cfg.terminal_id, cfg.store_id, false});
        auto req = protocol::make_publish_request("t", "{}", std::nullopt, std::nullopt);
        REQUIRE(outbox::publish_sync(*store, req.value()).k == outbox::publish_outcome::created);
        std::promise<outbox::peer_ack_outcome> p;
        store->peer_acked("L2", 1, 1,
                          [&](outbox::peer_ack_outcome o) { p.set_value(std::move(o)); });
        REQUIRE(p.get_future().get().ok);

        const auto now = protocol::now_ms();
        auto in = agent::read_status_inputs(*store, nullptr, nullptr);
        CHECK(in.counts.peer_ack == 1);
        REQUIRE(in.marks.size() == 1);
        CHECK_FALSE(in.peers);
        CHECK_FALSE(in.cloud);
        CHECK(agent::status_json(cfg, in, false, now) ==
              agent::status_json(cfg, *store, nullptr, nullptr, false, now));

        // No store involved: made-up inputs give their own document.
        agent::status_inputs made;
        made.counts.pending = 7;
        made.counts.own_last_seq = 9;
        made.peers.emplace(1);
        made.peers->at(0).terminal_id = "L3";
        made.peers->at(0).connected = true;
        auto s = agent::status_json(cfg, made, true, now);
        CHECK(s["outbox"]["pending"] == 7);
        CHECK(s["outbox"]["last_seq"] == 9);
        REQUIRE(s["peers"].size() == 1);
        CHECK(s["peers"][0]["terminal_id"] == "L3");
        CHECK(s["cloud"]["last_success_at"].is_null());
    }
}
