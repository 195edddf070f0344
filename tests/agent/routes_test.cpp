// Request handling without sockets: targets, routing, publish checks (agent/api_routes.hpp),
// and the CLI's small helpers.
#include "agent_test_util.hpp"

#include "agent/api_publish.hpp"
#include "agent/api_routes.hpp"
#include "agent/cli.hpp"
#include "agent/dashboard.hpp"

#include <fstream>

using namespace lanesync::agent::test;
namespace api = lanesync::agent::api;
namespace agent = lanesync::agent;

TEST_SUITE("api_routes") {

    TEST_CASE("parse_target splits and decodes") {
        auto t = api::parse_target("/v1/messages?state=peer%5Fack&limit=3&&x=a+b");
        REQUIRE(t);
        CHECK(t->path == "/v1/messages");
        REQUIRE(t->query.size() == 3);
        CHECK(t->query[0] == std::pair<std::string, std::string>{"state", "peer_ack"});
        CHECK(t->query[1] == std::pair<std::string, std::string>{"limit", "3"});
        CHECK(t->query[2] == std::pair<std::string, std::string>{"x", "a b"});
        CHECK(api::parse_target("/a%2") == std::nullopt);
        CHECK(api::parse_target("/a?b=%g1") == std::nullopt);
        CHECK(api::parse_target("http://host/") == std::nullopt);
        CHECK(api::parse_target("*") == std::nullopt);
        CHECK(api::parse_target("/")->path == "/");
    }

    TEST_CASE("route_request") {
        CHECK(api::route_request("POST", "/v1/messages").r == api::route::publish);
        CHECK(api::route_request("GET", "/v1/messages").r == api::route::list_messages);
        auto m = api::route_request("GET", "/v1/messages/abc");
        CHECK(m.r == api::route::get_message);
        CHECK(m.id == "abc");
        CHECK(api::route_request("PUT", "/v1/messages/abc").allow == "GET");
        CHECK(api::route_request("PUT", "/v1/messages").allow == "GET, POST");
        CHECK(api::route_request("GET", "/v1/sync").r == api::route::wrong_method);
        CHECK(api::route_request("POST", "/v1/cloud/pause").r == api::route::cloud_pause);
        CHECK(api::route_request("GET", "/v1/status/").r == api::route::not_found);
        CHECK(api::route_request("HEAD", "/healthz").r == api::route::wrong_method);
    }

    TEST_CASE("is_json_media_type") {
        CHECK(api::is_json_media_type("application/json"));
        CHECK(api::is_json_media_type("application/json; charset=utf-8"));
        CHECK(api::is_json_media_type(" Application/JSON "));
        CHECK(api::is_json_media_type("application/vnd.pos+json"));
        CHECK(!api::is_json_media_type("text/plain"));
        CHECK(!api::is_json_media_type("application/x-www-form-urlencoded"));
        CHECK(!api::is_json_media_type(""));
    }

    TEST_CASE("check_publish_input: 415 before 413 before 400") {
        auto code = [](auto v) {
            auto* r = std::get_if<api::response>(&v);
            return r ? r->status : 0u;
        };
        CHECK(code(api::check_publish_input("text/plain", "{}", 10)) == 415);
        CHECK(code(api::check_publish_input(std::nullopt, std::string(11, ' '), 10)) == 413);
        CHECK(code(api::check_publish_input(std::nullopt, "{}", 10)) == 400);
        CHECK(code(api::check_publish_input("application/json", R"({"topic":"t","data":{}})",
                                            100)) == 0);
    }

    TEST_CASE("check_wait: wait and timeout_ms, bounds, peers; verdict: cloud_ack satisfies "
              "peer_ack") {
        using st = lanesync::outbox::state;
        auto q = [](const char* target, bool peers) {
            return api::check_wait(*api::parse_target(target), peers);
        };
        auto ok = std::get<api::wait_query>(q("/v1/messages?wait=peer_ack&timeout_ms=60000", true));
        CHECK(ok.target == st::peer_ack);
        CHECK(ok.timeout == 60000ms);
        auto dflt = std::get<api::wait_query>(q("/v1/messages?wait=cloud_ack", false));
        CHECK(dflt.timeout == 5000ms);
        CHECK_FALSE(std::get<api::wait_query>(q("/v1/messages", false)).target);
        CHECK(std::get<api::response>(q("/v1/messages?wait=peer_ack", false)).status == 400);
        CHECK(std::get<api::response>(q("/v1/messages?wait=peer_ack&timeout_ms=0", true)).status ==
              400);

        using v = api::wait_verdict;
        CHECK(api::verdict(st::peer_ack, st::pending) == v::not_yet);
        CHECK(api::verdict(st::peer_ack, st::peer_ack) == v::reached);
        CHECK(api::verdict(st::peer_ack, st::cloud_ack) == v::reached);
        CHECK(api::verdict(st::cloud_ack, st::peer_ack) == v::not_yet);
        CHECK(api::verdict(st::cloud_ack, st::failed) == v::failed);
        CHECK(api::verdict(st::peer_ack, std::nullopt) == v::not_yet);
        CHECK(api::verdict(st::peer_ack, {st::peer_ack, st::cloud_ack}) == v::reached);
        CHECK(api::verdict(st::peer_ack, {st::peer_ack, st::pending}) == v::not_yet);
        CHECK(api::verdict(st::peer_ack, {st::pending, st::failed}) == v::failed);
    }

    TEST_CASE("error_response is JSON with an error field") {
        auto r = api::error_response(409, "id already used with other content", {{"id", "x"}});
        CHECK(r.status == 409);
        auto j = json::parse(r.body);
        CHECK(j["error"] == "id already used with other content");
        CHECK(j["id"] == "x");
    }

    TEST_CASE("is_loopback_origin: plain-HTTP pages of this machine only") {
        for (auto o : {"http://127.0.0.1", "http://127.0.0.1:9123", "http://localhost:8080",
                       "http://[::1]:9123", "http://localhost"})
            CHECK_MESSAGE(api::is_loopback_origin(o), o);
        for (auto o : {"https://127.0.0.1:9123", "http://127.0.0.1.evil.example",
                       "http://127.0.0.1:9123.evil.example", "http://localhost.evil.example",
                       "http://127.0.0.1:", "http://127.0.0.1:1234567", "null", "",
                       "http://127.0.0.2:9123", "http://evil.example/http://127.0.0.1"})
            CHECK_MESSAGE(!api::is_loopback_origin(o), o);
    }

    TEST_CASE(
        "the dashboard: self-contained, and its CSP hashes match its inline script and style") {
        auto html = std::string(agent::dashboard::html());
        auto csp = agent::dashboard::content_security_policy();
        auto inner = [&](const std::string& open, const std::string& close) {
            auto a = html.find(open);
            REQUIRE(a != std::string::npos);
            a += open.size();
            return html.substr(a, html.find(close, a) - a);
        };
        CHECK(csp.find("'" + agent::dashboard::csp_hash(inner("<script>", "</script>")) + "'") !=
              std::string::npos);
        CHECK(csp.find("'" + agent::dashboard::csp_hash(inner("<style>", "</style>")) + "'") !=
              std::string::npos);
        CHECK(csp.find("default-src 'none'") != std::string::npos);
        CHECK(csp.find("unsafe") == std::string::npos);
        // Known vector: SHA-256 of the empty string.
        CHECK(agent::dashboard::csp_hash("") ==
              "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
        // Nothing external: no absolute URL is loaded (links in text are fine, none exist).
        for (auto needle : {"src=\"http", "href=\"http", "//cdn", "@import", "url(http"})
            CHECK_MESSAGE(html.find(needle) == std::string::npos, needle);
        auto r = api::root_page();
        CHECK(r.status == 200);
        CHECK(r.body == html);
    }

} // TEST_SUITE

TEST_SUITE("cli helpers") {

    TEST_CASE("read_data_arg: literal, @file, missing file") {
        std::string why;
        CHECK(agent::read_data_arg(R"({"a":1})", why) == std::optional<std::string>(R"({"a":1})"));
        temp_dir d;
        auto f = d.path / "d.json";
        std::ofstream(f) << R"({"total": 4})";
        CHECK(agent::read_data_arg("@" + f.string(), why) ==
              std::optional<std::string>(R"({"total": 4})"));
        CHECK(agent::read_data_arg("@" + (d.path / "missing.json").string(), why) == std::nullopt);
        CHECK(contains(why, "missing.json"));
    }

} // TEST_SUITE

TEST_CASE("regression: requests from outside this machine are refused (CSRF, DNS rebinding)") {
    using lanesync::agent::api::foreign_request;
    CHECK(foreign_request(std::string_view("127.0.0.1:9123"), std::nullopt).empty());
    CHECK(foreign_request(std::string_view("localhost:9123"), std::nullopt).empty());
    CHECK(foreign_request(std::string_view("[::1]:9123"), std::nullopt).empty());
    CHECK(foreign_request(std::string_view("localhost"), std::nullopt).empty());
    CHECK(foreign_request(std::nullopt, std::nullopt).empty());
    CHECK(foreign_request(std::string_view("127.0.0.1:9123"),
                          std::string_view("http://127.0.0.1:9124"))
              .empty());
    CHECK_FALSE(foreign_request(std::string_view("127.0.0.1:9123"),
                                std::string_view("https://evil.example"))
                    .empty());
    CHECK_FALSE(
        foreign_request(std::string_view("127.0.0.1:9123"), std::string_view("null")).empty());
    CHECK_FALSE(foreign_request(std::string_view("evil.example:9123"), std::nullopt).empty());
    CHECK_FALSE(foreign_request(std::string_view("127.0.0.1.evil.example"), std::nullopt).empty());
}
