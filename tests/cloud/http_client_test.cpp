// cloud/http_client on its own, against the fake cloud: the uploader's post() and the general
// send() that other clients (the CLI's calls to the local API) use.

#include "cloud/http_client.hpp"

#include "fake_cloud.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>

#include <doctest/doctest.h>

#include <stdexcept>

using namespace lanesync;
using namespace lanesync::cloud_testing;
namespace net = boost::asio;

namespace {

net::awaitable<void> keep_result(net::awaitable<cloud::http_result> op,
                                 std::optional<cloud::http_result>* out) {
    *out = co_await std::move(op);
}

/// Runs one request to completion on `ioc` and returns its result.
cloud::http_result run_one(net::io_context& ioc, net::awaitable<cloud::http_result> op) {
    std::optional<cloud::http_result> out;
    net::co_spawn(ioc, keep_result(std::move(op), &out), net::detached);
    REQUIRE(run_until(ioc, [&] { return out.has_value(); }));
    return *out;
}

/// http://127.0.0.1:port with the uploader's target, built by hand (as the CLI does).
cloud::wire::endpoint local_endpoint(std::uint16_t port) {
    cloud::wire::endpoint ep;
    ep.host = "127.0.0.1";
    ep.host_is_ip = true;
    ep.port = port;
    ep.host_header = "127.0.0.1:" + std::to_string(port);
    ep.target = "/functions/v1/sync-pos-message";
    return ep;
}

struct client_rig {
    net::io_context ioc;
    fake_cloud server;
    std::unique_ptr<cloud::http_client> client;

    client_rig(fake_cloud::script s, const std::string& key) : server(ioc, std::move(s)) {
        client = std::make_unique<cloud::http_client>(ioc.get_executor(),
                                                      local_endpoint(server.port()), nullptr, key,
                                                      std::chrono::milliseconds(3000), 1u << 20);
    }
};

reply text_reply(int status, std::string body) {
    reply r;
    r.status = status;
    r.body = std::move(body);
    return r;
}

} // namespace

TEST_CASE("http_client::send: any method and target; no key means no auth headers") {
    client_rig r([](const seen_request&) { return text_reply(200, R"({"ok":true})"); }, "");
    r.client->set_user_agent("lanesync-cli/test");
    auto res = run_one(r.ioc, r.client->send("GET", "/v1/status"));
    CHECK(res.fail == cloud::http_result::failure::none);
    CHECK(res.status == 200);
    CHECK(res.body == R"({"ok":true})");
    REQUIRE(r.server.requests().size() == 1);
    const auto& q = r.server.requests()[0];
    CHECK(q.method == "GET");
    CHECK(q.target == "/v1/status");
    CHECK(q.headers.count("authorization") == 0);
    CHECK(q.headers.count("apikey") == 0);
    CHECK(q.headers.count("content-type") == 0);
    CHECK(q.headers.at("user-agent") == "lanesync-cli/test");
    CHECK(q.body.empty());
}

TEST_CASE("http_client::send: a body goes as JSON; a non-JWT key as apikey only; any status") {
    client_rig r([](const seen_request&) { return text_reply(409, R"({"error":"paused"})"); },
                 "sk_local_1");
    auto res = run_one(r.ioc, r.client->send("POST", "/v1/cloud/pause", R"({"x":1})"));
    CHECK(res.fail == cloud::http_result::failure::none);
    CHECK(res.status == 409);
    REQUIRE(r.server.requests().size() == 1);
    const auto& q = r.server.requests()[0];
    CHECK(q.method == "POST");
    CHECK(q.target == "/v1/cloud/pause");
    CHECK(q.body == R"({"x":1})");
    CHECK(q.headers.at("content-type") == "application/json");
    CHECK(q.headers.count("authorization") == 0); // not a JWT: no Bearer (cloud/key_format.hpp)
    CHECK(q.headers.at("apikey") == "sk_local_1");
    CHECK(q.headers.at("user-agent") == "lanesync/0.1.0");
}

TEST_CASE("http_client::send: a JWT-shaped key goes as apikey and as Authorization: Bearer") {
    const std::string jwt = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoic2VydmljZV9yb2xlIn0.c2lnbmF0dXJl";
    client_rig r([](const seen_request&) { return text_reply(200, "{}"); }, jwt);
    auto res = run_one(r.ioc, r.client->send("GET", "/v1/status"));
    CHECK(res.status == 200);
    REQUIRE(r.server.requests().size() == 1);
    const auto& q = r.server.requests()[0];
    CHECK(q.headers.at("authorization") == "Bearer " + jwt);
    CHECK(q.headers.at("apikey") == jwt);
}

TEST_CASE("http_client::send: an sb_secret_ key goes as apikey only") {
    const std::string key = "sb_secret_N7UND0UgjKTVK-Uodkm0Hg_xSvEMPvz";
    client_rig r([](const seen_request&) { return text_reply(200, "{}"); }, key);
    auto res = run_one(r.ioc, r.client->send("GET", "/v1/status"));
    CHECK(res.status == 200);
    REQUIRE(r.server.requests().size() == 1);
    const auto& q = r.server.requests()[0];
    CHECK(q.headers.count("authorization") == 0);
    CHECK(q.headers.at("apikey") == key);
}

TEST_CASE("http_client::post: the endpoint's target; one kept-alive connection for both calls") {
    client_rig r([](const seen_request& q) { return ack_all(q); }, "sk_local_2");
    auto a = run_one(r.ioc, r.client->post(R"({"messages":[]})"));
    auto b = run_one(r.ioc, r.client->send("GET", "/other"));
    CHECK(a.status == 200);
    CHECK(b.status == 200);
    REQUIRE(r.server.requests().size() == 2);
    CHECK(r.server.requests()[0].target == "/functions/v1/sync-pos-message");
    CHECK(r.server.requests()[0].method == "POST");
    CHECK(r.server.requests()[1].target == "/other");
    CHECK(r.client->connections_opened() == 1);
}

TEST_CASE("http_client::send: connection refused is a network failure, not an exception") {
    net::io_context ioc;
    std::uint16_t dead_port = 0;
    {
        fake_cloud gone(ioc, [](const seen_request& q) { return ack_all(q); });
        dead_port = gone.port();
    }
    cloud::http_client c(ioc.get_executor(), local_endpoint(dead_port), nullptr, "",
                         std::chrono::milliseconds(3000), 1u << 20);
    auto res = run_one(ioc, c.send("GET", "/v1/status"));
    CHECK(res.fail == cloud::http_result::failure::network);
    CHECK(res.error.find("connecting to http://127.0.0.1:" + std::to_string(dead_port)) == 0);
}

TEST_CASE("http_client::send: an unknown method is a programming error") {
    client_rig r([](const seen_request& q) { return ack_all(q); }, "");
    std::optional<cloud::http_result> out;
    bool threw = false;
    net::co_spawn(r.ioc, keep_result(r.client->send("NOT A VERB", "/"), &out),
                  [&](std::exception_ptr e) {
                      try {
                          if (e)
                              std::rethrow_exception(e);
                      } catch (const std::invalid_argument&) {
                          threw = true;
                      }
                  });
    CHECK(run_until(r.ioc, [&] { return threw; }));
    CHECK(r.server.requests().empty());
}
