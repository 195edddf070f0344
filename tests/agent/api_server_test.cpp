// The local API over a real outbox and real sockets (docs/api.md).
#include "agent_test_util.hpp"

#include "agent/api_test_hooks.hpp"
#include "agent/cli.hpp"
#include "protocol/message.hpp"

#include <regex>
#include <set>
#include <sstream>

using namespace lanesync::agent::test;
namespace agent = lanesync::agent;

namespace {

const std::string uuid1 = "0190c3a2-7d1e-7b3c-8a4f-1234567890ab";

std::string publish_body(const std::string& topic, const json& data,
                         std::optional<std::string> id = std::nullopt) {
    json j = {{"topic", topic}, {"data", data}};
    if (id)
        j["id"] = *id;
    return j.dump();
}

} // namespace

TEST_SUITE("api_server") {

    TEST_CASE("publish answers 201 after the commit, 200 for the same content again, 409 for other "
              "content") {
        api_fixture f;
        auto r = once(f.port(),
                      post("/v1/messages", publish_body("transaction", {{"total", 5}}, uuid1)));
        REQUIRE(r.result_int() == 201);
        CHECK(r[http::field::content_type] == "application/json");
        auto j = body_json(r);
        CHECK(j["id"] == uuid1);
        CHECK(j["origin"] == "L1");
        CHECK(j["seq"] == 1);
        CHECK(j["state"] == "pending");
        CHECK(j["created_at"].is_string());
        CHECK(j.size() == 5);
        // Durable on accept: the record is readable as soon as 201 arrived.
        CHECK(f.store->get(uuid1).has_value());

        // Same id (other case), same content: 200 with the current state.
        std::string upper = uuid1;
        for (auto& ch : upper)
            ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
        r = once(f.port(),
                 post("/v1/messages", publish_body("transaction", {{"total", 5}}, upper)));
        CHECK(r.result_int() == 200);
        CHECK(body_json(r)["seq"] == 1);
        CHECK(body_json(r)["state"] == "pending");

        r = once(f.port(),
                 post("/v1/messages", publish_body("transaction", {{"total", 6}}, uuid1)));
        CHECK(r.result_int() == 409);
        CHECK(body_json(r)["error"] == "id already used with other content");
        CHECK(body_json(r)["id"] == uuid1);
        CHECK(f.total() == 1);
    }

    TEST_CASE("every malformed publish is 400 with a JSON error and writes nothing") {
        api_fixture f;
        const std::vector<std::string> cases = {
            "{not json",
            "",
            "[]",
            "\"text\"",
            R"({"data": {}})",
            R"({"topic": 5, "data": {}})",
            R"({"topic": "", "data": {}})",
            R"({"topic": "Bad Topic", "data": {}})",
            R"({"topic": ")" + std::string(65, 'x') + R"(", "data": {}})",
            R"({"topic": "t"})",
            R"({"topic": "t", "data": [1, 2]})",
            R"({"topic": "t", "data": "s"})",
            R"({"topic": "t", "data": {}, "id": "nope"})",
            R"({"topic": "t", "data": {}, "id": 7})",
            R"({"topic": "t", "data": {}, "priority": "urgent"})",
            R"({"topic": "t", "data": {}, "priority": 1})",
            R"({"topic": "t", "data": {}, "extra": 1})",
            "{\"topic\":\"t\",\"data\":{\"s\":\"\xff\xfe\"}}",
        };
        client c(f.port()); // all on one keep-alive connection: a 400 does not close it
        for (const auto& body : cases) {
            CAPTURE(body);
            auto r = c.request(post("/v1/messages", body));
            CHECK(r.result_int() == 400);
            auto j = body_json(r);
            CHECK(j["error"].is_string());
            CHECK(r.keep_alive());
        }
        CHECK(f.total() == 0);
    }

    TEST_CASE("a body over MAX_MESSAGE_BYTES is 413 and writes nothing; the server keeps serving") {
        api_fixture f(8192);
        // Exactly MAX_MESSAGE_BYTES is accepted.
        std::string prefix = R"({"topic":"t","data":{"blob":")";
        std::string suffix = R"("}})";
        std::string exact =
            prefix + std::string(8192 - prefix.size() - suffix.size(), 'x') + suffix;
        REQUIRE(exact.size() == 8192);
        auto r = once(f.port(), post("/v1/messages", exact));
        CHECK(r.result_int() == 201);
        CHECK(f.total() == 1);

        // One byte more: read whole (within the envelope room) and refused.
        std::string over = prefix + std::string(8193 - prefix.size() - suffix.size(), 'x') + suffix;
        r = once(f.port(), post("/v1/messages", over));
        CHECK(r.result_int() == 413);
        CHECK(body_json(r)["error"].is_string());

        // Far over: refused from the Content-Length alone; the answer still arrives intact.
        std::string huge = prefix + std::string(300000, 'x') + suffix;
        r = once(f.port(), post("/v1/messages", huge));
        CHECK(r.result_int() == 413);
        CHECK(contains(body_json(r)["error"].get<std::string>(), "MAX_MESSAGE_BYTES"));
        CHECK(!r.keep_alive());

        // Chunked, no Content-Length: refused while reading.
        {
            client c(f.port());
            auto req = post("/v1/messages", huge);
            req.chunked(true);
            auto ans = c.request(std::move(req));
            CHECK(ans.result_int() == 413);
        }
        CHECK(f.total() == 1);
        CHECK(
            once(f.port(), post("/v1/messages", publish_body("t", json::object()))).result_int() ==
            201);
    }

    TEST_CASE("Content-Type other than JSON is 415; JSON with parameters is fine; absent is fine") {
        api_fixture f;
        auto r =
            once(f.port(), post("/v1/messages", publish_body("t", json::object()), "text/plain"));
        CHECK(r.result_int() == 415);
        CHECK(body_json(r)["error"].is_string());
        CHECK(f.total() == 0);
        CHECK(once(f.port(), post("/v1/messages", publish_body("t", json::object()),
                                  "Application/JSON; charset=utf-8"))
                  .result_int() == 201);
        CHECK(once(f.port(), post("/v1/messages", publish_body("t", json::object()), std::nullopt))
                  .result_int() == 201);
        CHECK(f.total() == 2);
    }

    TEST_CASE("GET /v1/messages/{id}: the record; 404 unknown; 400 not a UUID") {
        api_fixture f;
        json body = {
            {"topic", "inventory"}, {"data", {{"sku", "A"}, {"delta", -2}}}, {"priority", "high"}};
        auto r = once(f.port(), post("/v1/messages", body.dump()));
        REQUIRE(r.result_int() == 201);
        std::string id = body_json(r)["id"];

        r = once(f.port(), get("/v1/messages/" + id));
        REQUIRE(r.result_int() == 200);
        auto m = body_json(r);
        CHECK(m["id"] == id);
        CHECK(m["origin"] == "L1");
        CHECK(m["seq"] == 1);
        CHECK(m["topic"] == "inventory");
        CHECK(m["priority"] == "high");
        CHECK(m["state"] == "pending");
        CHECK(m["data"] == json({{"sku", "A"}, {"delta", -2}}));
        CHECK(m["created_at"].is_string());
        CHECK(m["stored_at"].is_string());
        CHECK(m["peer_acked_at"].is_null());
        CHECK(m["cloud_acked_at"].is_null());
        CHECK(m["attempts"] == 0);
        CHECK(m["last_error"].is_null());
        CHECK(m["own"] == true);

        r = once(f.port(), get("/v1/messages/" + uuid1));
        CHECK(r.result_int() == 404);
        CHECK(body_json(r)["error"].is_string());
        r = once(f.port(), get("/v1/messages/not-a-uuid"));
        CHECK(r.result_int() == 400);
        CHECK(body_json(r)["error"].is_string());
    }

    TEST_CASE("GET /v1/messages?state=...&limit=N lists oldest first with the exact count") {
        api_fixture f;
        std::vector<std::string> ids;
        for (int i = 0; i < 5; ++i) {
            auto r = once(f.port(), post("/v1/messages", publish_body("t", {{"i", i}})));
            REQUIRE(r.result_int() == 201);
            ids.push_back(body_json(r)["id"]);
        }
        auto r = once(f.port(), get("/v1/messages?state=pending&limit=3"));
        REQUIRE(r.result_int() == 200);
        auto j = body_json(r);
        CHECK(j["state"] == "pending");
        CHECK(j["count"] == 5);
        REQUIRE(j["messages"].size() == 3);
        for (int i = 0; i < 3; ++i)
            CHECK(j["messages"][i]["id"] == ids[static_cast<std::size_t>(i)]);

        j = body_json(once(f.port(), get("/v1/messages?state=pending")));
        CHECK(j["messages"].size() == 5);
        j = body_json(once(f.port(), get("/v1/messages?limit=0&state=pending")));
        CHECK(j["count"] == 5);
        CHECK(j["messages"].empty());
        j = body_json(once(f.port(), get("/v1/messages?state=cloud_ack")));
        CHECK(j["count"] == 0);
        CHECK(j["messages"].empty());

        for (std::string bad :
             {"/v1/messages", "/v1/messages?state=bogus", "/v1/messages?state=pending&limit=abc",
              "/v1/messages?state=pending&limit=-1", "/v1/messages?state=pending&limit=10001",
              "/v1/messages?state=pending&foo=1", "/v1/messages?state=pending&state=failed",
              "/v1/messages?state=%zz"}) {
            CAPTURE(bad);
            auto b = once(f.port(), get(bad));
            CHECK(b.result_int() == 400);
            CHECK(body_json(b)["error"].is_string());
        }
    }

    TEST_CASE("/healthz, /, /v1/status, and cloud control without a cloud") {
        api_fixture f;
        auto r = once(f.port(), get("/healthz"));
        CHECK(r.result_int() == 200);
        CHECK(body_json(r)["ok"] == true);

        r = once(f.port(), get("/"));
        CHECK(r.result_int() == 200);
        CHECK(contains(std::string(r[http::field::content_type]), "text/html"));
        CHECK(contains(r.body(), "/v1/status"));
        CHECK(contains(r.body(), "/metrics"));
        auto csp = std::string(r["Content-Security-Policy"]);
        CHECK(contains(csp, "default-src 'none'"));
        CHECK(contains(csp, "script-src 'sha256-"));
        CHECK(std::string(r["X-Content-Type-Options"]) == "nosniff");

        REQUIRE(
            once(f.port(), post("/v1/messages", publish_body("t", json::object()))).result_int() ==
            201);
        r = once(f.port(), get("/v1/status"));
        REQUIRE(r.result_int() == 200);
        auto s = body_json(r);
        CHECK(s["terminal_id"] == "L1");
        CHECK(s["store_id"] == "store-1");
        CHECK(s["version"] == LANESYNC_VERSION);
        CHECK(s["agent_running"] == true);
        CHECK(s["outbox"]["pending"] == 1);
        CHECK(s["outbox"]["last_seq"] == 1);
        CHECK(s["cloud"]["enabled"] == false);
        CHECK(s["replicas"].is_object());
        CHECK(s["peers"].is_array());
        CHECK(!contains(r.body(), f.cfg.peer_secret));
        CHECK(!contains(r.body(), f.cfg.supabase_service_key));

        for (std::string path : {"/v1/sync", "/v1/cloud/pause", "/v1/cloud/resume"}) {
            auto c = once(f.port(), post(path, "", std::nullopt));
            CHECK(c.result_int() == 409);
            CHECK(body_json(c)["error"] == "cloud is not configured");
        }
    }

    TEST_CASE("/metrics is Prometheus text format, line by line") {
        api_fixture f;
        REQUIRE(
            once(f.port(), post("/v1/messages", publish_body("t", json::object()))).result_int() ==
            201);
        auto r = once(f.port(), get("/metrics"));
        REQUIRE(r.result_int() == 200);
        CHECK(contains(std::string(r[http::field::content_type]), "text/plain; version=0.0.4"));
        const std::regex help(R"(^# HELP [a-zA-Z_:][a-zA-Z0-9_:]* .*$)");
        const std::regex type(
            R"(^# TYPE [a-zA-Z_:][a-zA-Z0-9_:]* (counter|gauge|histogram|summary|untyped)$)");
        const std::regex sample(
            R"re(^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="[^"\\]*",?)*\})? [-+0-9.eEInfNa]+$)re");
        std::istringstream in(r.body());
        std::string line;
        int samples = 0;
        while (std::getline(in, line)) {
            CAPTURE(line);
            if (line.starts_with("# HELP"))
                CHECK(std::regex_match(line, help));
            else if (line.starts_with("# TYPE"))
                CHECK(std::regex_match(line, type));
            else {
                CHECK(std::regex_match(line, sample));
                ++samples;
            }
        }
        CHECK(samples > 0);
        CHECK(contains(r.body(), "\nlanesync_accepted_total "));
        CHECK(contains(r.body(), "lanesync_api_requests_total{code=\"201\"} "));
    }

    TEST_CASE("CORS: loopback origins may read /v1/status, /metrics, /healthz; nothing else") {
        api_fixture f;
        auto with_origin = [&](std::string target, std::string origin) {
            auto req = get(std::move(target));
            req.set(http::field::origin, origin);
            return once(f.port(), std::move(req));
        };
        for (std::string path : {"/v1/status", "/metrics", "/healthz"}) {
            CAPTURE(path);
            auto r = with_origin(path, "http://127.0.0.1:9124");
            CHECK(r.result_int() == 200);
            CHECK(std::string(r[http::field::access_control_allow_origin]) ==
                  "http://127.0.0.1:9124");
            CHECK(std::string(r[http::field::vary]) == "Origin");
            CHECK(r.count(http::field::access_control_allow_credentials) == 0);
            r = with_origin(path, "https://evil.example");
            CHECK(r.count(http::field::access_control_allow_origin) == 0);
            r = once(f.port(), get(path));
            CHECK(r.count(http::field::access_control_allow_origin) == 0);
        }
        for (std::string path : {"/", "/v1/messages?state=pending"}) {
            CAPTURE(path);
            auto r = with_origin(path, "http://127.0.0.1:9124");
            CHECK(r.count(http::field::access_control_allow_origin) == 0);
        }
    }

    TEST_CASE("wrong method is 405 with Allow; unknown route is 404") {
        api_fixture f;
        http::request<http::string_body> del{http::verb::delete_, "/v1/messages", 11};
        auto r = once(f.port(), del);
        CHECK(r.result_int() == 405);
        CHECK(r[http::field::allow] == "GET, POST");
        CHECK(body_json(r)["error"].is_string());

        r = once(f.port(), get("/v1/sync"));
        CHECK(r.result_int() == 405);
        CHECK(r[http::field::allow] == "POST");

        r = once(f.port(), post("/v1/status", "{}"));
        CHECK(r.result_int() == 405);
        CHECK(r[http::field::allow] == "GET");

        r = once(f.port(), get("/nope"));
        CHECK(r.result_int() == 404);
        CHECK(body_json(r)["error"].is_string());
        r = once(f.port(), get("/v1/messages/a/b"));
        CHECK(r.result_int() == 404);
    }

    TEST_CASE("garbage bytes get 400 and a close; the server still serves the next client") {
        api_fixture f;
        {
            client c(f.port());
            const char garbage[] = "\x00\x01\x02 garbage\r\n\r\n";
            REQUIRE(!c.write_raw(std::string(garbage, sizeof garbage - 1)));
            auto [got, ec] = c.read_until_closed();
            CHECK(ec != beast::error::timeout); // closed, not left hanging
            CHECK(contains(got, "HTTP/1.1 400"));
        }
        {
            client c(f.port());
            REQUIRE(!c.write_raw(
                "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: nope\r\n\r\n"));
            auto [got, ec] = c.read_until_closed();
            CHECK(ec != beast::error::timeout);
            CHECK(contains(got, "HTTP/1.1 400"));
        }
        CHECK(once(f.port(), get("/healthz")).result_int() == 200);
        CHECK(f.total() == 0);
    }

    TEST_CASE("an oversized header block is 431") {
        api_fixture f;
        auto req = get("/healthz");
        req.set("X-Big", std::string(20000, 'a'));
        client c(f.port());
        auto r = c.request(std::move(req));
        CHECK(r.result_int() == 431);
        CHECK(once(f.port(), get("/healthz")).result_int() == 200);
    }

    TEST_CASE("a keep-alive connection serves several requests in order") {
        api_fixture f;
        client c(f.port());
        auto r1 = c.request(post("/v1/messages", publish_body("t", {{"n", 1}})));
        CHECK(r1.result_int() == 201);
        CHECK(r1.keep_alive());
        auto r2 = c.request(get("/v1/messages/" + body_json(r1)["id"].get<std::string>()));
        CHECK(r2.result_int() == 200);
        auto r3 = c.request(get("/healthz"));
        CHECK(r3.result_int() == 200);

        // Two pipelined requests in one write are answered in order.
        REQUIRE(!c.write_raw("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET /nope "
                             "HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
        auto a = c.read_response();
        auto b = c.read_response();
        REQUIRE(a);
        REQUIRE(b);
        CHECK(a->result_int() == 200);
        CHECK(b->result_int() == 404);
    }

    TEST_CASE("Expect: 100-continue gets 100 Continue before the body is sent") {
        api_fixture f;
        client c(f.port());
        std::string body = publish_body("t", json::object());
        REQUIRE(!c.write_raw(
            "POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            "Expect: 100-continue\r\nContent-Length: " +
            std::to_string(body.size()) + "\r\n\r\n"));
        http::response_parser<http::empty_body> cont;
        boost::system::error_code ec;
        c.stream.expires_after(c.deadline);
        http::async_read_header(c.stream, c.buffer, cont,
                                [&](boost::system::error_code e, std::size_t) { ec = e; });
        c.run();
        REQUIRE(!ec);
        CHECK(cont.get().result() == http::status::continue_);
        REQUIRE(!c.write_raw(body));
        auto r = c.read_response();
        REQUIRE(r);
        CHECK(r->result_int() == 201);
    }

    TEST_CASE("a slow client that never finishes its headers is closed after the request timeout") {
        agent::test_hooks::set_api_request_timeout(300ms);
        api_fixture f;
        agent::test_hooks::set_api_request_timeout(0ms);
        client c(f.port());
        REQUIRE(!c.write_raw("GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"));
        auto t0 = std::chrono::steady_clock::now();
        auto [got, ec] = c.read_until_closed();
        auto waited = std::chrono::steady_clock::now() - t0;
        CHECK(ec != beast::error::timeout); // the server closed it, our 5 s deadline did not fire
        CHECK(got.empty());
        CHECK(waited < 3s);
        CHECK(once(f.port(), get("/healthz")).result_int() == 200);
    }

    TEST_CASE("storage failure is 503 and the server keeps serving") {
        api_fixture f;
        REQUIRE(
            once(f.port(), post("/v1/messages", publish_body("t", json::object()))).result_int() ==
            201);
        f.store->close(); // every write now fails with "outbox closed"
        auto r = once(f.port(), post("/v1/messages", publish_body("t", {{"n", 2}})));
        CHECK(r.result_int() == 503);
        CHECK(contains(body_json(r)["error"].get<std::string>(), "storage failure"));
        r = once(f.port(), get("/healthz"));
        CHECK(r.result_int() == 503);
        CHECK(once(f.port(), get("/nope")).result_int() == 404);
    }

    TEST_CASE("concurrent publishers get distinct gapless seqs") {
        api_fixture f;
        constexpr int threads = 8, per_thread = 40;
        std::vector<std::thread> ts;
        std::mutex m;
        std::set<std::uint64_t> seqs;
        std::atomic<int> failures{0};
        for (int t = 0; t < threads; ++t)
            ts.emplace_back([&, t] {
                client c(f.port());
                for (int i = 0; i < per_thread; ++i) {
                    auto r = c.try_request(
                        post("/v1/messages", publish_body("t", {{"t", t}, {"i", i}})));
                    if (!r || r->result_int() != 201) {
                        ++failures;
                        continue;
                    }
                    std::lock_guard lk(m);
                    seqs.insert(json::parse(r->body())["seq"].get<std::uint64_t>());
                }
            });
        for (auto& t : ts)
            t.join();
        CHECK(failures == 0);
        REQUIRE(seqs.size() == threads * per_thread);
        CHECK(*seqs.begin() == 1);
        CHECK(*seqs.rbegin() == threads * per_thread);
    }

    TEST_CASE("stop() closes idle keep-alive connections and then reports done") {
        api_fixture f;
        client c(f.port());
        CHECK(c.request(get("/healthz")).result_int() == 200);
        CHECK(f.stop());
        auto [got, ec] = c.read_until_closed();
        CHECK(ec != beast::error::timeout);
    }

    TEST_CASE("the CLI's local_http talks to the API; nothing listening is status 0") {
        api_fixture f;
        auto r = agent::local_http(f.port(), "GET", "/v1/status", 2000ms);
        CHECK(r.status == 200);
        CHECK(json::parse(r.body)["terminal_id"] == "L1");
        r = agent::local_http(f.port(), "POST", "/v1/sync", 2000ms);
        CHECK(r.status == 409);
        auto port = f.port();
        f.stop();
        r = agent::local_http(port, "GET", "/v1/status", 1000ms);
        CHECK(r.status == 0);
        CHECK(!r.error.empty());
    }

} // TEST_SUITE
