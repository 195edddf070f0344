// The local API of a lane that rebuilds (docs/api.md): POST /v1/messages 503 + Retry-After,
// /healthz 503 "rebuilding", the status's rebuild object, POST /v1/rebuild, and the start check
// holding a POST. A real outbox, a real gossip (its peer link points at nothing that answers).
#include "agent_test_util.hpp"

#include "lanes/gossip.hpp"
#include "protocol/message.hpp"

using namespace lanesync::agent::test;
namespace agent = lanesync::agent;
namespace conf = lanesync::conf;
namespace lanes = lanesync::lanes;
namespace outbox = lanesync::outbox;

namespace {

/// A TCP port nobody listens on right now.
std::uint16_t closed_port() {
    net::io_context ioc;
    tcp::acceptor a(ioc, tcp::endpoint(net::ip::make_address_v4("127.0.0.1"), 0));
    auto p = a.local_endpoint().port();
    a.close();
    return p;
}

/// An outbox, a gossip and the API on one io_context thread. `peer_port`: the one link.
struct lane_fixture {
    temp_dir dir;
    conf::config cfg;
    std::unique_ptr<outbox::store> store;
    net::io_context ioc{1};
    std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
    std::unique_ptr<lanes::gossip> gossip;
    std::unique_ptr<agent::api_server> api;
    std::thread thread;

    lane_fixture(std::uint16_t peer_port, const std::string& rebuild_reason)
        : cfg(test_config(dir.path)) {
        cfg.terminal_port = 0;
        cfg.terminal_bind = "127.0.0.1";
        auto u = conf::parse_peer_url("ws://127.0.0.1:" + std::to_string(peer_port) + "/v1/peer");
        REQUIRE(u);
        cfg.peers.push_back(*u);
        store = outbox::store::open({cfg.outbox_path, cfg.terminal_id, cfg.store_id, false});
        if (!rebuild_reason.empty()) {
            std::promise<outbox::count_outcome> p;
            store->begin_rebuild(rebuild_reason,
                                 [&](outbox::count_outcome o) { p.set_value(std::move(o)); });
            REQUIRE(p.get_future().get().ok);
        }
        gossip = std::make_unique<lanes::gossip>(ioc, *store, cfg);
        api = std::make_unique<agent::api_server>(
            ioc, agent::api_deps{&cfg, store.get(), gossip.get(), nullptr});
        gossip->start();
        api->start();
        work.emplace(ioc.get_executor());
        thread = std::thread([this] { ioc.run(); });
    }

    ~lane_fixture() {
        std::promise<void> a, g;
        api->stop([&] { a.set_value(); });
        a.get_future().wait_for(5s);
        gossip->stop([&] { g.set_value(); });
        g.get_future().wait_for(10s);
        work.reset();
        ioc.stop();
        thread.join();
        api.reset();
        gossip.reset();
        store->close();
    }

    std::string url() const { return cfg.peers.front().text; }
    std::uint64_t total() {
        auto c = store->get_counts();
        return c.pending + c.peer_ack + c.cloud_ack + c.failed;
    }
    std::uint16_t port() const { return api->port(); }
};

const std::string a_message = R"({"topic": "transaction", "data": {"total": 1}})";
const std::string batch_of_two =
    R"({"messages": [{"topic": "sale", "data": {"n": 1}}, {"topic": "sale", "data": {"n": 2}}]})";

} // namespace

TEST_SUITE("api rebuild") {
    TEST_CASE("while rebuilding: 503 with Retry-After, /healthz 503, status; --without ends it") {
        lane_fixture f(closed_port(), "peer holds seq 5 of L1 but this lane only 0");
        const auto old_inc = f.store->incarnation();

        auto r = once(f.port(), post("/v1/messages", a_message));
        CHECK(r.result_int() == 503);
        CHECK(r[http::field::retry_after] == "2");
        auto j = body_json(r);
        CHECK(j["error"] == "rebuilding: peer holds seq 5 of L1 but this lane only 0");
        CHECK(j["rebuild"]["active"] == true);
        CHECK(f.total() == 0);
        // A batch, and a wait for acks, are refused the same way (the wait's place given back).
        auto b = once(f.port(), post("/v1/messages?wait=peer_ack", batch_of_two));
        CHECK(b.result_int() == 503);
        CHECK(b[http::field::retry_after] == "2");
        CHECK(body_json(b)["rebuild"]["active"] == true);
        CHECK(f.total() == 0);

        auto h = once(f.port(), get("/healthz"));
        CHECK(h.result_int() == 503);
        auto hj = body_json(h);
        CHECK(hj["status"] == "rebuilding");
        CHECK(hj["reason"] == "peer holds seq 5 of L1 but this lane only 0");
        REQUIRE(hj["waiting_for"].size() == 1);
        CHECK(hj["waiting_for"][0] == f.url());

        auto s = body_json(once(f.port(), get("/v1/status")));
        CHECK(s["rebuild"]["active"] == true);
        CHECK(s["rebuild"]["waiting_for"][0] == f.url());
        CHECK(s["incarnation"] == old_inc);
        CHECK(s["origins"].is_array());

        // A GET still answers while rebuilding.
        auto g = once(f.port(), get("/v1/messages/0190c3a2-7d1e-7b3c-8a4f-1234567890ab"));
        CHECK(g.result_int() == 404);

        CHECK(once(f.port(), post("/v1/rebuild", "[1]")).result_int() == 400);
        CHECK(once(f.port(), post("/v1/rebuild", R"({"without": ["bad id!"]})")).result_int() ==
              400);
        CHECK(once(f.port(), post("/v1/rebuild", R"({"other": 1})")).result_int() == 400);
        auto ex = once(f.port(), post("/v1/rebuild", json{{"without", {f.url()}}}.dump()));
        CHECK(ex.result_int() == 200);

        REQUIRE(eventually([&] { return once(f.port(), get("/healthz")).result_int() == 200; }));
        auto p = once(f.port(), post("/v1/messages", a_message));
        CHECK(p.result_int() == 201);
        CHECK(body_json(p)["seq"] == 1);
        auto s2 = body_json(once(f.port(), get("/v1/status")));
        CHECK(s2["rebuild"]["active"] == false);
        CHECK(s2["incarnation"] != old_inc);
        CHECK(once(f.port(), post("/v1/rebuild", "{}")).result_int() == 409);
    }

    TEST_CASE("the start check holds a POST while a link has not answered, /healthz stays 200") {
        // A peer that accepts TCP connections and never answers: the link's attempt hangs in
        // the WebSocket handshake, so only the start check's deadline releases the POST.
        net::io_context silent;
        tcp::acceptor acc(silent, tcp::endpoint(net::ip::make_address_v4("127.0.0.1"), 0));
        lane_fixture f(acc.local_endpoint().port(), "");
        auto began = std::chrono::steady_clock::now();
        CHECK(once(f.port(), get("/healthz")).result_int() == 200);
        auto s = body_json(once(f.port(), get("/v1/status")));
        CHECK(s["rebuild"]["active"] == false);
        CHECK(s["rebuild"]["start_check"] == true);
        // A batch is held the same way (on its own connection, at the same time).
        std::optional<http::response<http::string_body>> b;
        std::chrono::steady_clock::duration batch_took{};
        std::thread batcher([&] {
            b = once(f.port(), post("/v1/messages", batch_of_two));
            batch_took = std::chrono::steady_clock::now() - began;
        });
        auto r = once(f.port(), post("/v1/messages", a_message));
        auto took = std::chrono::steady_clock::now() - began;
        batcher.join();
        CHECK(r.result_int() == 201);
        CHECK(took >= 2500ms);
        REQUIRE(b);
        CHECK(b->result_int() == 201);
        CHECK(batch_took >= 2500ms);
        CHECK(body_json(*b)["count"] == 2);
        CHECK(f.total() == 3);
    }
}
