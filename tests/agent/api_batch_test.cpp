// Batch publish (docs/api.md "Batches"): POST /v1/messages {"messages": [...]} in one durable
// commit, all or nothing, with per-message answers and errors by index; with ?wait= the answer
// waits for the whole batch.
#include "agent_test_util.hpp"

#include "base/metrics.hpp"
#include "base/tuning.hpp"

using namespace lanesync::agent::test;
namespace metrics = lanesync::metrics;
namespace outbox = lanesync::outbox;
namespace tuning = lanesync::tuning;

namespace {

json msg(int n, const std::string& id = "") {
    json j = {{"topic", "sale"}, {"data", {{"n", n}}}};
    if (!id.empty())
        j["id"] = id;
    return j;
}

std::string batch(const std::vector<json>& ms) {
    return json{{"messages", ms}}.dump();
}

const std::string id_a = "0190c3a2-7d1e-7b3c-8a4f-00000000000a";
const std::string id_b = "0190c3a2-7d1e-7b3c-8a4f-00000000000b";

} // namespace

TEST_SUITE("api_batch") {
    TEST_CASE("a batch is stored in order in one commit: 201 with id, seq, state, status each") {
        api_fixture f;
        REQUIRE(once(f.port(), post("/v1/messages", msg(0, id_a).dump())).result_int() == 201);
        std::vector<outbox::commit_info> commits;
        std::mutex m;
        f.store->set_commit_listener([&](const outbox::commit_info& ci) {
            std::lock_guard lk(m);
            commits.push_back(ci);
        });
        const auto accepted = metrics::global()
                                  .get_counter("lanesync_accepted_total",
                                               "Messages accepted (newly stored) through the "
                                               "local API")
                                  .value();
        auto r = once(f.port(), post("/v1/messages", batch({msg(1), msg(0, id_a), msg(2, id_b)})));
        REQUIRE(r.result_int() == 201);
        auto j = body_json(r);
        CHECK(j["origin"] == "L1");
        CHECK(j["count"] == 3);
        auto& list = j["messages"];
        REQUIRE(list.size() == 3);
        CHECK(list[0]["seq"] == 2);
        CHECK(list[0]["status"] == 201);
        CHECK(list[0]["state"] == "pending");
        CHECK(list[1]["id"] == id_a);
        CHECK(list[1]["seq"] == 1); // already stored with the same content
        CHECK(list[1]["status"] == 200);
        CHECK(list[2]["id"] == id_b);
        CHECK(list[2]["seq"] == 3);
        CHECK(list[2]["status"] == 201);
        CHECK(f.total() == 3);
        std::lock_guard lk(m);
        CHECK(commits.size() == 1); // one durable commit for the batch
        CHECK(metrics::global()
                  .get_counter("lanesync_accepted_total",
                               "Messages accepted (newly stored) through the local API")
                  .value() == accepted + 2);
    }

    TEST_CASE("one invalid message stores nothing: 400 with the errors by index") {
        api_fixture f;
        json bad_topic = {{"topic", "Bad Topic"}, {"data", json::object()}};
        json no_data = {{"topic", "t"}};
        auto r =
            once(f.port(), post("/v1/messages", batch({msg(1), bad_topic, msg(2), no_data, 7})));
        CHECK(r.result_int() == 400);
        auto j = body_json(r);
        CHECK(contains(j["error"].get<std::string>(), "nothing was stored"));
        REQUIRE(j["errors"].size() == 3);
        CHECK(j["errors"][0]["index"] == 1);
        CHECK(j["errors"][0]["error"] == "topic must be 1-64 characters of [a-z0-9_.-]");
        CHECK(j["errors"][1]["index"] == 3);
        CHECK(j["errors"][1]["error"] == "missing field: data");
        CHECK(j["errors"][2]["index"] == 4);
        CHECK(j["errors"][2]["error"] == "message must be a JSON object");
        CHECK(f.total() == 0);
    }

    TEST_CASE("a conflicting id stores nothing: 409 with the conflicts by index") {
        api_fixture f;
        REQUIRE(once(f.port(), post("/v1/messages", msg(0, id_a).dump())).result_int() == 201);
        // id_a with other content at index 1; id_b twice with different content at 2 and 3.
        auto r = once(f.port(), post("/v1/messages",
                                     batch({msg(1), msg(9, id_a), msg(2, id_b), msg(3, id_b)})));
        CHECK(r.result_int() == 409);
        auto j = body_json(r);
        REQUIRE(j["errors"].size() == 2);
        CHECK(j["errors"][0]["index"] == 1);
        CHECK(j["errors"][0]["id"] == id_a);
        CHECK(j["errors"][1]["index"] == 3);
        CHECK(j["errors"][1]["id"] == id_b);
        CHECK(f.total() == 1);
        CHECK_FALSE(f.store->get(id_b));
        // The seqs the undone batch would have taken are handed out next: no gap.
        auto next = once(f.port(), post("/v1/messages", msg(5).dump()));
        CHECK(body_json(next)["seq"] == 2);
    }

    TEST_CASE("malformed and oversized batches: 400, 413; nothing stored") {
        api_fixture f(256 << 10);
        for (const std::string b :
             {R"({"messages": []})", R"({"messages": {}})", R"({"messages": "x"})",
              R"({"messages": [{"topic": "t", "data": {}}], "topic": "t"})"}) {
            CAPTURE(b);
            auto r = once(f.port(), post("/v1/messages", b));
            CHECK(r.result_int() == 400);
            CHECK(body_json(r)["error"].is_string());
        }
        std::vector<json> many(tuning::api_batch_max_messages + 1, msg(1));
        auto r = once(f.port(), post("/v1/messages", batch(many)));
        CHECK(r.result_int() == 413);
        CHECK(contains(body_json(r)["error"].get<std::string>(), "more than 500"));
        many.pop_back();
        CHECK(once(f.port(), post("/v1/messages", batch(many))).result_int() == 201);
        CHECK(f.total() == tuning::api_batch_max_messages);
    }

    TEST_CASE("a batch body over MAX_MESSAGE_BYTES is 413 and stores nothing") {
        api_fixture f(4096);
        std::vector<json> ms;
        for (int i = 0; i < 40; ++i)
            ms.push_back({{"topic", "t"}, {"data", {{"pad", std::string(100, 'x')}}}});
        auto r = once(f.port(), post("/v1/messages", batch(ms)));
        CHECK(r.result_int() == 413);
        CHECK(f.total() == 0);
    }

    TEST_CASE("?wait=peer_ack waits for the whole batch: 202 with each state, then 201") {
        api_fixture f(8192, true);
        auto r = once(f.port(), post("/v1/messages?wait=peer_ack&timeout_ms=50",
                                     batch({msg(1), msg(2), msg(3)})));
        CHECK(r.result_int() == 202);
        auto j = body_json(r);
        REQUIRE(j["messages"].size() == 3);
        for (const auto& m : j["messages"])
            CHECK(m["state"] == "pending");
        CHECK(f.total() == 3);

        client c(f.port());
        c.write_request(
            post("/v1/messages?wait=peer_ack&timeout_ms=60000", batch({msg(4), msg(5)})));
        REQUIRE(eventually([] { return waiting() == 2; }));
        peer_acked(*f.store, 4); // seqs 1-4: the second batch is half there
        peer_acked(*f.store, 5);
        auto w = c.read_response();
        REQUIRE(w);
        CHECK(w->result_int() == 201);
        auto k = body_json(*w);
        REQUIRE(k["messages"].size() == 2);
        CHECK(k["messages"][0]["state"] == "peer_ack");
        CHECK(k["messages"][1]["state"] == "peer_ack");
        CHECK(k["messages"][1]["status"] == 201);
    }

    TEST_CASE("a body with messages and other fields is a malformed batch; single bodies work") {
        api_fixture f;
        auto r = once(f.port(), post("/v1/messages", R"({"topic":"t","data":{},"messages":[]})"));
        CHECK(r.result_int() == 400);
        CHECK(once(f.port(), post("/v1/messages", msg(1).dump())).result_int() == 201);
    }
}
