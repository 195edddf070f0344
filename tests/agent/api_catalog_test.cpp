// Head office's data on the local API: GET /v1/catalog/{scope}/{key} and GET /v1/changes
// (with its long-poll), against a real outbox whose commit listener wakes the API as
// agent/node.cpp wires it; catalog pages are applied by calling the outbox directly. Plus the
// status document's `catalog` and `pull` parts.
#include "agent_test_util.hpp"

#include "agent/api_catalog.hpp"
#include "agent/status.hpp"
#include "agent/status_catalog.hpp"

using namespace lanesync::agent::test;
namespace agent = lanesync::agent;
namespace outbox = lanesync::outbox;
namespace protocol = lanesync::protocol;

namespace {

protocol::catalog_change chg(const std::string& key, std::int64_t v, bool deleted = false) {
    protocol::catalog_change c;
    c.key = key;
    c.version = v;
    c.deleted = deleted;
    c.data = deleted ? "null" : "{\"price_cents\":" + std::to_string(v) + "}";
    c.changed_at_ms = 1764633600000;
    return c;
}

void apply(outbox::store& s, const std::string& scope, std::int64_t through,
           std::vector<protocol::catalog_change> cs, std::int64_t head = 0) {
    protocol::catalog_page p;
    p.scope = scope;
    p.through = through;
    p.head = head;
    p.changes = std::move(cs);
    std::promise<outbox::catalog_outcome> done;
    s.apply_catalog(p, "cloud", [&](outbox::catalog_outcome o) { done.set_value(o); });
    REQUIRE(done.get_future().get().ok);
}

} // namespace

TEST_SUITE("api_catalog") {
    TEST_CASE("GET /v1/catalog/{scope}/{key}: the value, 404 for unknown or deleted, 400 input") {
        api_fixture f;
        apply(*f.store, "prices", 20, {chg("sku-1", 10), chg("sku/2", 12), chg("gone", 20, true)});
        auto r = once(f.port(), get("/v1/catalog/prices/sku-1"));
        CHECK(r.result_int() == 200);
        auto j = body_json(r);
        CHECK(j["scope"] == "prices");
        CHECK(j["key"] == "sku-1");
        CHECK(j["version"] == 10);
        CHECK(j["data"] == json{{"price_cents", 10}});
        CHECK(j["through"] == 20);
        CHECK(j["changed_at"].is_string());
        CHECK(body_json(once(f.port(), get("/v1/catalog/prices/sku%2F2")))["version"] == 12);
        auto gone = once(f.port(), get("/v1/catalog/prices/gone"));
        CHECK(gone.result_int() == 404);
        CHECK(body_json(gone)["deleted"] == true);
        CHECK(body_json(gone)["error"].get<std::string>().find("no such key") != std::string::npos);
        CHECK(once(f.port(), get("/v1/catalog/prices/nope")).result_int() == 404);
        auto unknown = once(f.port(), get("/v1/catalog/customers/c1"));
        CHECK(unknown.result_int() == 400);
        CHECK(body_json(unknown)["error"].get<std::string>().find("unknown scope 'customers'") !=
              std::string::npos);
        CHECK(once(f.port(), get("/v1/catalog/Prices/x")).result_int() == 400);
        CHECK(once(f.port(), get("/v1/catalog/prices")).result_int() == 400);
        CHECK(once(f.port(), get("/v1/catalog/prices/")).result_int() == 400);
        CHECK(once(f.port(), post("/v1/catalog/prices/sku-1", "{}")).result_int() == 405);
    }

    TEST_CASE("GET /v1/changes: version order after since, limit, more and next_since") {
        api_fixture f;
        apply(*f.store, "prices", 30, {chg("a", 10), chg("b", 20), chg("c", 30, true)}, 35);
        auto j = body_json(once(f.port(), get("/v1/changes?scope=prices&since=10")));
        CHECK(j["through"] == 30);
        CHECK(j["head"] == 35);
        CHECK(j["behind"] == 5);
        REQUIRE(j["changes"].size() == 2);
        CHECK(j["changes"][0]["key"] == "b");
        CHECK(j["changes"][1]["deleted"] == true);
        CHECK(j["changes"][1]["data"].is_null());
        CHECK(j["next_since"] == 30);
        CHECK(j["more"] == false);
        auto one = body_json(once(f.port(), get("/v1/changes?scope=prices&limit=1")));
        CHECK(one["changes"].size() == 1);
        CHECK(one["more"] == true);
        CHECK(one["next_since"] == 10);
        auto none = body_json(once(f.port(), get("/v1/changes?scope=prices&since=30")));
        CHECK(none["changes"].empty());
        CHECK(none["next_since"] == 30);
    }

    TEST_CASE("GET /v1/changes: bad input is a clear 400") {
        api_fixture f;
        apply(*f.store, "prices", 1, {chg("a", 1)});
        const std::vector<std::pair<std::string, std::string>> bad = {
            {"", "scope is required"},
            {"since=1", "scope is required"},
            {"scope=customers", "unknown scope 'customers'"},
            {"scope=Bad!", "invalid scope"},
            {"scope=prices&since=-1", "since must be"},
            {"scope=prices&since=x", "since must be"},
            {"scope=prices&since=9007199254740993", "since must be"},
            {"scope=prices&limit=0", "limit must be"},
            {"scope=prices&limit=1001", "limit must be"},
            {"scope=prices&limit=1.5", "limit must be"},
            {"scope=prices&timeout_ms=0", "timeout_ms must be"},
            {"scope=prices&timeout_ms=60001", "timeout_ms must be"},
            {"scope=prices&since=1&since=2", "since given twice"},
            {"scope=prices&wait=1", "unknown query parameter: wait"},
        };
        for (const auto& [q, why] : bad) {
            CAPTURE(q);
            auto r = once(f.port(), get("/v1/changes?" + q));
            CHECK(r.result_int() == 400);
            CHECK(body_json(r)["error"].get<std::string>().find(why) != std::string::npos);
        }
    }

    TEST_CASE("GET /v1/changes?timeout_ms: answered when a catalog page commits, else empty") {
        api_fixture f;
        apply(*f.store, "prices", 5, {chg("a", 5)});
        // Nothing comes: an empty answer after about the timeout.
        auto t0 = std::chrono::steady_clock::now();
        auto empty =
            body_json(once(f.port(), get("/v1/changes?scope=prices&since=5&timeout_ms=200")));
        auto waited = std::chrono::steady_clock::now() - t0;
        CHECK(empty["changes"].empty());
        CHECK(waited >= 190ms);
        // A page commits while the request waits: answered with it, long before the timeout.
        auto answer = std::async(std::launch::async, [&] {
            return once(f.port(), get("/v1/changes?scope=prices&since=5&timeout_ms=20000"));
        });
        // Once the wait is registered (its first read found nothing), only a wake can end it.
        REQUIRE(eventually([] {
            return lanesync::metrics::global()
                       .get_gauge("lanesync_api_changes_waiting", "")
                       .value() == 1;
        }));
        apply(*f.store, "prices", 9, {chg("b", 9)});
        REQUIRE(answer.wait_for(10s) == std::future_status::ready);
        auto r = answer.get();
        CHECK(r.result_int() == 200);
        auto j = body_json(r);
        REQUIRE(j["changes"].size() == 1);
        CHECK(j["changes"][0]["key"] == "b");
        CHECK(j["through"] == 9);
    }

    TEST_CASE("the status document has pull and catalog per scope") {
        api_fixture f;
        apply(*f.store, "prices", 40, {chg("a", 40)}, 50);
        auto s = body_json(once(f.port(), get("/v1/status")));
        REQUIRE(s["catalog"].is_array());
        REQUIRE(s["catalog"].size() == 1);
        auto c = s["catalog"][0];
        CHECK(c["scope"] == "prices");
        CHECK(c["through"] == 40);
        CHECK(c["head"] == 50);
        CHECK(c["behind"] == 10);
        CHECK(c["keys"] == 1);
        CHECK(c["snapshot_active"] == false);
        CHECK(c["applied_at"].is_string());
        CHECK(s["pull"]["enabled"] == false); // no SUPABASE_URL in the test config
        auto table = agent::status_table(s);
        CHECK(table.find("CATALOG") != std::string::npos);
        CHECK(table.find("prices") != std::string::npos);
    }
}

TEST_CASE("pull_json: a live puller's state, or what the configuration says") {
    lanesync::conf::config cfg;
    cfg.supabase_url = "http://127.0.0.1:1";
    auto off = agent::pull_json(cfg, std::nullopt);
    CHECK(off["enabled"] == true);
    CHECK(off["state"] == "on");
    CHECK(off["last_error"].is_null());
    lanesync::cloud::pull_status p;
    p.enabled = true;
    p.state = "backoff";
    p.last_error = "HTTP 503: database unavailable";
    p.last_ok_at_ms = 1764633600000;
    p.next_attempt_at_ms = 1764633601000;
    p.consecutive_failures = 2;
    auto live = agent::pull_json(cfg, p);
    CHECK(live["state"] == "backoff");
    CHECK(live["last_error"] == "HTTP 503: database unavailable");
    CHECK(live["last_ok_at"] == "2025-12-02T00:00:00.000Z");
    CHECK(live["next_attempt_at"] == "2025-12-02T00:00:01.000Z");
    CHECK(live["consecutive_failures"] == 2);
    cfg.cloud_pull_interval = std::chrono::milliseconds(0);
    CHECK(agent::pull_json(cfg, std::nullopt)["enabled"] == false);
}
