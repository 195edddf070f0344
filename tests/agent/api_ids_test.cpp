// One id on two lanes through the local API (docs/api.md): an id held only as a replica of
// another lane is a new own message; GET answers the own copy; priority is not content.
#include "agent_test_util.hpp"

#include "protocol/message.hpp"

#include <future>

using namespace lanesync::agent::test;
namespace outbox = lanesync::outbox;
namespace protocol = lanesync::protocol;

namespace {

const std::string retried = "0190c3a2-7d1e-7b3c-8a4f-00000000abcd";

/// Stores L2's message `retried` (seq 1) as a replica in the fixture's outbox.
void hold_replica(api_fixture& f, const std::string& data) {
    protocol::message m;
    m.id = retried;
    m.origin = "L2";
    m.seq = 1;
    m.topic = "transaction";
    m.data = data;
    m.created_at_ms = 1'700'000'000'000;
    std::promise<outbox::replicas_outcome> p;
    auto done = p.get_future();
    f.store->store_replicas({m}, {}, [&p](outbox::replicas_outcome o) { p.set_value(o); });
    REQUIRE(done.get().inserted == 1);
}

std::string body(const json& data, const std::string& priority = "normal") {
    return json{{"topic", "transaction"}, {"data", data}, {"id", retried}, {"priority", priority}}
        .dump();
}

} // namespace

TEST_SUITE("api_ids") {

    TEST_CASE("an id held only as another lane's replica is accepted as a new own message") {
        api_fixture f;
        hold_replica(f, R"({"total":5})");
        auto g = once(f.port(), get("/v1/messages/" + retried));
        REQUIRE(g.result_int() == 200);
        CHECK(body_json(g)["origin"] == "L2");
        CHECK(body_json(g)["own"] == false);

        // The POS retried here after L2 did not answer: 201, this lane's origin and seq.
        auto r = once(f.port(), post("/v1/messages", body({{"total", 5}})));
        REQUIRE(r.result_int() == 201);
        CHECK(body_json(r)["origin"] == "L1");
        CHECK(body_json(r)["seq"] == 1);
        g = once(f.port(), get("/v1/messages/" + retried));
        CHECK(body_json(g)["origin"] == "L1");
        CHECK(body_json(g)["own"] == true);

        // Now the own copy decides: same topic and data (any priority) 200, other data 409.
        r = once(f.port(), post("/v1/messages", body({{"total", 5}}, "critical")));
        CHECK(r.result_int() == 200);
        CHECK(body_json(r)["seq"] == 1);
        r = once(f.port(), post("/v1/messages", body({{"total", 6}})));
        CHECK(r.result_int() == 409);
        CHECK(f.total() == 1);
    }

    TEST_CASE("other content than the replica is a new own message too (the cloud decides)") {
        api_fixture f;
        hold_replica(f, R"({"total":5})");
        auto r = once(f.port(), post("/v1/messages", body({{"total", 7}})));
        REQUIRE(r.result_int() == 201);
        auto g = once(f.port(), get("/v1/messages/" + retried));
        CHECK(body_json(g)["data"] == json{{"total", 7}});
        CHECK(f.store->get_counts().replicas.at("L2") == 1);
    }
}
