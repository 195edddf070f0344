// Waiting for acks (docs/api.md "Waiting for acks"): POST /v1/messages?wait=… and
// GET /v1/messages/{id}?wait=… against a real outbox whose commit listener wakes the API, as in
// agent/node.cpp. Acks are made by calling the outbox directly (there is no gossip here).
#include "agent_test_util.hpp"

#include "agent/api_test_hooks.hpp"
#include "base/metrics.hpp"

using namespace lanesync::agent::test;
namespace agent = lanesync::agent;
namespace metrics = lanesync::metrics;
namespace outbox = lanesync::outbox;

namespace {

std::string body(int n, const std::string& id = "") {
    json j = {{"topic", "sale"}, {"data", {{"n", n}}}};
    if (!id.empty())
        j["id"] = id;
    return j.dump();
}

/// Blocks until the jobs queued on the outbox reader thread before this call have run (the
/// registration read of a wait, among them).
void drain_reader(outbox::store& s) {
    std::promise<void> p;
    s.post_read([&p] { p.set_value(); });
    p.get_future().wait();
}

/// A wait registered in the API and its first read done: only a wake can end it now.
void await_registered(api_fixture& f, double n = 1) {
    REQUIRE(eventually([&] { return waiting() == n; }));
    drain_reader(*f.store);
}

void cloud_answer(outbox::store& s, const std::string& id, outbox::cloud_result::kind k) {
    outbox::cloud_result r;
    r.id = id;
    r.k = k;
    r.error = k == outbox::cloud_result::rejected ? "unknown topic" : "";
    std::promise<outbox::cloud_outcome> p;
    s.cloud_acked({r}, [&p](outbox::cloud_outcome o) { p.set_value(o); });
    REQUIRE(p.get_future().get().ok);
}

} // namespace

TEST_SUITE("api_wait") {
    TEST_CASE("bad wait and timeout_ms values are 400 and store nothing") {
        api_fixture f(8192, true);
        for (std::string q : {"wait=pending", "wait=failed", "wait=PEER_ACK", "wait=", "wait=x",
                              "wait=peer_ack&timeout_ms=0", "wait=peer_ack&timeout_ms=60001",
                              "wait=peer_ack&timeout_ms=-5", "wait=peer_ack&timeout_ms=1.5",
                              "wait=peer_ack&timeout_ms=", "wait=peer_ack&timeout_ms=abc",
                              "timeout_ms=100", "wait=peer_ack&wait=cloud_ack",
                              "wait=peer_ack&timeout_ms=5&timeout_ms=6", "wait=peer_ack&x=1"}) {
            CAPTURE(q);
            auto r = once(f.port(), post("/v1/messages?" + q, body(1)));
            CHECK(r.result_int() == 400);
            CHECK(body_json(r)["error"].is_string());
            auto g = once(f.port(), get("/v1/messages/0190c3a2-7d1e-7b3c-8a4f-1234567890ab?" + q));
            CHECK(g.result_int() == 400);
        }
        CHECK(f.total() == 0);
        CHECK(waiting() == 0);
    }

    TEST_CASE("wait=peer_ack on a lane without peers is 400 and stores nothing") {
        api_fixture f;
        auto r = once(f.port(), post("/v1/messages?wait=peer_ack", body(1)));
        CHECK(r.result_int() == 400);
        CHECK(contains(body_json(r)["error"].get<std::string>(), "cloud_ack"));
        CHECK(f.total() == 0);
        // cloud_ack is the wait of a lane without peers: it times out here (no cloud).
        auto c = once(f.port(), post("/v1/messages?wait=cloud_ack&timeout_ms=20", body(2)));
        CHECK(c.result_int() == 202);
        CHECK(body_json(c)["state"] == "pending");
        CHECK(f.total() == 1);
    }

    TEST_CASE("POST ?wait=peer_ack answers 201 peer_ack once the peer_ack commit wakes it") {
        api_fixture f(8192, true);
        client c(f.port());
        c.write_request(post("/v1/messages?wait=peer_ack&timeout_ms=60000", body(1)));
        await_registered(f);
        CHECK(f.total() == 1); // durable before the wait
        peer_acked(*f.store, 1);
        auto r = c.read_response();
        REQUIRE(r);
        CHECK(r->result_int() == 201);
        auto j = body_json(*r);
        CHECK(j["state"] == "peer_ack");
        CHECK(j["seq"] == 1);
        CHECK(j["origin"] == "L1");
        CHECK(eventually([] { return waiting() == 0; }));
        // The connection is still usable (keep-alive) after a waited answer.
        CHECK(c.request(get("/v1/messages/" + j["id"].get<std::string>())).result_int() == 200);
    }

    TEST_CASE("POST ?wait=peer_ack answers 202 pending after timeout_ms; the message is stored") {
        api_fixture f(8192, true);
        auto t0 = std::chrono::steady_clock::now();
        auto r = once(f.port(), post("/v1/messages?wait=peer_ack&timeout_ms=80", body(1)));
        CHECK(std::chrono::steady_clock::now() - t0 >= 80ms);
        CHECK(r.result_int() == 202);
        auto j = body_json(r);
        CHECK(j["state"] == "pending");
        CHECK(f.total() == 1);
        auto got = f.store->get(j["id"].get<std::string>());
        REQUIRE(got);
        CHECK(got->st == outbox::state::pending);
        CHECK(eventually([] { return waiting() == 0; }));
    }

    TEST_CASE("wait=cloud_ack: peer_ack is not enough, cloud_ack reaches it; 202 peer_ack on time "
              "out") {
        api_fixture f(8192, true);
        client c(f.port());
        c.write_request(post("/v1/messages?wait=cloud_ack&timeout_ms=60000", body(1)));
        await_registered(f);
        peer_acked(*f.store, 1);
        drain_reader(*f.store); // the wake's read (peer_ack: not there yet) has run
        auto id = f.store->list(outbox::state::peer_ack, 10).at(0).msg.id;
        cloud_answer(*f.store, id, outbox::cloud_result::stored);
        auto r = c.read_response();
        REQUIRE(r);
        CHECK(r->result_int() == 201);
        CHECK(body_json(*r)["state"] == "cloud_ack");

        auto t = once(f.port(), post("/v1/messages?wait=cloud_ack&timeout_ms=30", body(2)));
        peer_acked(*f.store, 2);
        auto g = once(f.port(), get("/v1/messages/" + body_json(t)["id"].get<std::string>() +
                                    "?wait=cloud_ack&timeout_ms=30"));
        CHECK(g.result_int() == 202);
        CHECK(body_json(g)["state"] == "peer_ack");
    }

    TEST_CASE("a duplicate POST waits the same way and keeps its 200; cloud_ack satisfies "
              "peer_ack") {
        api_fixture f(8192, true);
        const std::string id = "0190c3a2-7d1e-7b3c-8a4f-1234567890ab";
        REQUIRE(once(f.port(), post("/v1/messages", body(1, id))).result_int() == 201);
        client c(f.port());
        c.write_request(post("/v1/messages?wait=peer_ack&timeout_ms=60000", body(1, id)));
        await_registered(f);
        peer_acked(*f.store, 1);
        auto r = c.read_response();
        REQUIRE(r);
        CHECK(r->result_int() == 200);
        CHECK(body_json(*r)["state"] == "peer_ack");

        cloud_answer(*f.store, id, outbox::cloud_result::stored);
        auto again =
            once(f.port(), post("/v1/messages?wait=peer_ack&timeout_ms=60000", body(1, id)));
        CHECK(again.result_int() == 200);
        CHECK(body_json(again)["state"] == "cloud_ack");
        // A conflict is still a conflict, wait or not.
        CHECK(once(f.port(), post("/v1/messages?wait=peer_ack", body(2, id))).result_int() == 409);
        CHECK(f.total() == 1);
        CHECK(waiting() == 0);
    }

    TEST_CASE("failed answers at once: 202 with state failed, before and during a wait") {
        api_fixture f(8192, true);
        const std::string id = "0190c3a2-7d1e-7b3c-8a4f-1234567890ab";
        REQUIRE(once(f.port(), post("/v1/messages", body(1, id))).result_int() == 201);
        client c(f.port());
        c.write_request(get("/v1/messages/" + id + "?wait=cloud_ack&timeout_ms=60000"));
        await_registered(f);
        cloud_answer(*f.store, id, outbox::cloud_result::rejected);
        auto r = c.read_response(); // the client's 5 s deadline: long before the 60 s timeout
        REQUIRE(r);
        CHECK(r->result_int() == 202);
        CHECK(body_json(*r)["state"] == "failed");
        CHECK(body_json(*r)["last_error"] == "unknown topic");

        auto p = once(f.port(), post("/v1/messages?wait=peer_ack&timeout_ms=60000", body(1, id)));
        CHECK(p.result_int() == 202);
        CHECK(body_json(p)["state"] == "failed");
    }

    TEST_CASE("GET ?wait long-polls: 404 unknown, 200 when reached, 202 on time out") {
        api_fixture f(8192, true);
        CHECK(once(f.port(), get("/v1/messages/0190c3a2-7d1e-7b3c-8a4f-1234567890ab?wait=peer_ack"))
                  .result_int() == 404);
        auto p = once(f.port(), post("/v1/messages", body(1)));
        auto id = body_json(p)["id"].get<std::string>();
        auto t = once(f.port(), get("/v1/messages/" + id + "?wait=peer_ack&timeout_ms=20"));
        CHECK(t.result_int() == 202);
        CHECK(body_json(t)["state"] == "pending");
        CHECK(body_json(t)["data"] == json{{"n", 1}}); // the full record, as without wait

        client c(f.port());
        c.write_request(get("/v1/messages/" + id + "?wait=peer_ack&timeout_ms=60000"));
        await_registered(f);
        peer_acked(*f.store, 1);
        auto r = c.read_response();
        REQUIRE(r);
        CHECK(r->result_int() == 200);
        CHECK(body_json(*r)["state"] == "peer_ack");
        CHECK(body_json(*r)["peer_acked_at"].is_string());
        // Already there: at once.
        CHECK(once(f.port(), get("/v1/messages/" + id + "?wait=peer_ack")).result_int() == 200);
    }

    TEST_CASE("over the waiter cap a wait is 503 with Retry-After and stores nothing; a closed "
              "client gives its place back") {
        agent::test_hooks::set_api_max_waiters(1);
        api_fixture f(8192, true);
        agent::test_hooks::set_api_max_waiters(0);
        auto p = once(f.port(), post("/v1/messages", body(1)));
        auto id = body_json(p)["id"].get<std::string>();
        {
            client holder(f.port());
            holder.write_request(get("/v1/messages/" + id + "?wait=peer_ack&timeout_ms=60000"));
            await_registered(f);
            auto r = once(f.port(), post("/v1/messages?wait=peer_ack", body(2)));
            CHECK(r.result_int() == 503);
            CHECK(r[http::field::retry_after] == "1");
            CHECK(contains(body_json(r)["error"].get<std::string>(), "too many waits"));
            CHECK(f.total() == 1);
            // Without wait the lane still accepts.
            CHECK(once(f.port(), post("/v1/messages", body(3))).result_int() == 201);
            holder.stream.socket().close(); // the client leaves mid-wait
        }
        CHECK(eventually([] { return waiting() == 0; }));
        // Its place is free again: a new wait is accepted (and times out).
        auto r = once(f.port(), post("/v1/messages?wait=peer_ack&timeout_ms=10", body(4)));
        CHECK(r.result_int() == 202);
        CHECK(f.total() == 3);
    }

    TEST_CASE("stopping the API answers a wait with its current state and closes") {
        api_fixture f(8192, true);
        client c(f.port());
        c.write_request(post("/v1/messages?wait=peer_ack&timeout_ms=60000", body(1)));
        await_registered(f);
        auto t0 = std::chrono::steady_clock::now();
        CHECK(f.stop());
        CHECK(std::chrono::steady_clock::now() - t0 < 5s);
        auto r = c.read_response();
        REQUIRE(r);
        CHECK(r->result_int() == 202);
        CHECK(body_json(*r)["state"] == "pending");
        CHECK_FALSE(r->keep_alive());
        CHECK(waiting() == 0);
    }
}
