// The puller against a scripted fake sync-pull (fake_cloud.hpp) and a real outbox on a temp
// file. Waits are on conditions with deadlines.

#include "cloud/puller.hpp"

#include "base/metrics.hpp"
#include "fake_cloud.hpp"
#include "outbox/async.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <future>

using namespace lanesync;
using namespace lanesync::cloud_testing;
using json = nlohmann::json;

namespace {

const std::string test_key = "sk_test_NEVER_SHOW_ME_pull_77";

std::uint64_t pulls_with(const std::string& result) {
    return metrics::global()
        .get_counter("lanesync_pull_requests_total", "", "result=\"" + result + "\"")
        .value();
}

reply json_reply(const json& j, int status = 200) {
    reply r;
    r.status = status;
    r.body = j.dump();
    return r;
}

json scope(const std::string& name, std::int64_t through, bool more, json changes,
           bool reset = false, bool cont = false, const std::string& resume = "") {
    return {{"scope", name},    {"reset", reset},     {"continues_snapshot", cont},
            {"resume", resume}, {"through", through}, {"head", 200},
            {"horizon", 0},     {"more", more},       {"changes", std::move(changes)}};
}

json change(const std::string& key, std::int64_t version, int price) {
    return {{"key", key},
            {"version", version},
            {"deleted", false},
            {"data", {{"price_cents", price}}},
            {"changed_at_ms", 1764633600000}};
}

struct rig {
    temp_dir dir;
    boost::asio::io_context ioc;
    std::unique_ptr<outbox::store> store;
    std::unique_ptr<outbox::async_store> db;
    std::unique_ptr<fake_cloud> cloud;
    conf::config cfg;
    std::unique_ptr<cloud::puller> pull;

    explicit rig(fake_cloud::script s) {
        outbox::options o;
        o.path = dir.file("L1.db");
        o.terminal_id = "L1";
        o.store_id = "store-1";
        store = outbox::store::open(o);
        db = std::make_unique<outbox::async_store>(ioc.get_executor(), *store);
        cloud = std::make_unique<fake_cloud>(ioc, std::move(s));
        cfg.terminal_id = "L1";
        cfg.store_id = "store-1";
        cfg.supabase_url = cloud->url();
        cfg.supabase_service_key = test_key;
        cfg.backoff_base = std::chrono::milliseconds(10);
        cfg.backoff_max = std::chrono::milliseconds(50);
        cfg.cloud_pull_interval = std::chrono::milliseconds(60'000);
    }
    ~rig() {
        if (pull) {
            bool stopped = false;
            pull->stop([&] { stopped = true; });
            CHECK(run_until(ioc, [&] { return stopped; }));
            pull.reset();
        }
        cloud.reset();
        store->close();
    }
    cloud::puller& start() {
        cloud::pull_limits lim;
        lim.request_timeout = std::chrono::milliseconds(3000);
        pull = std::make_unique<cloud::puller>(ioc, *db, cfg, lim);
        pull->start();
        return *pull;
    }
    std::int64_t through(const std::string& s) {
        for (const auto& st : store->catalog_scopes())
            if (st.scope == s)
                return st.through;
        return -1;
    }
};

} // namespace

TEST_CASE("pulls with the contract's request, applies the page, and pulls again on more") {
    rig r([](const seen_request& req) {
        auto body = json::parse(req.body);
        if (req.index == 0) {
            CHECK(body["cursors"] == json::object());
            return json_reply(
                {{"head", 130},
                 {"scopes", {scope("prices", 125, true, {change("sku-1", 125, 199)})}}});
        }
        CHECK(body["cursors"]["prices"]["through"] == 125);
        return json_reply(
            {{"head", 130}, {"scopes", {scope("prices", 130, false, {change("sku-2", 130, 99)})}}});
    });
    auto ok_before = pulls_with("ok");
    r.start();
    REQUIRE(run_until(r.ioc, [&] { return r.pull->get_status().requests_ok == 2; }));
    const auto& req = r.cloud->requests().at(0);
    CHECK(req.method == "POST");
    CHECK(req.target == "/functions/v1/sync-pull");
    CHECK(req.headers.at("apikey") == test_key);
    auto body = json::parse(req.body);
    CHECK(body["store_id"] == "store-1");
    CHECK(body["terminal_id"] == "L1");
    CHECK(body["limit"] == 500);
    CHECK(r.through("prices") == 130);
    auto row = r.store->catalog_get("prices", "sku-1");
    REQUIRE(row);
    CHECK(row->data == R"({"price_cents":199})");
    auto st = r.pull->get_status();
    CHECK(st.enabled);
    CHECK(st.state == "idle");
    CHECK(st.changes_applied == 2);
    CHECK(st.cloud_head == 130);
    CHECK(st.last_error.empty());
    CHECK(st.last_ok_at_ms);
    CHECK(pulls_with("ok") == ok_before + 2);
    // No "more": the next pull waits for the interval (60 s here).
    run_for(r.ioc, std::chrono::milliseconds(150));
    CHECK(r.cloud->requests().size() == 2);
}

TEST_CASE("a snapshot over two answers: the resume token goes back, unseen keys go") {
    rig r([](const seen_request& req) {
        auto body = json::parse(req.body);
        if (req.index == 0)
            return json_reply({{"head", 50},
                               {"scopes",
                                {scope("products", 0, true, {change("a", 10, 1)}, true, false,
                                       "as_of=50&after=a")}}});
        CHECK(body["cursors"]["products"]["resume"] == "as_of=50&after=a");
        return json_reply(
            {{"head", 50},
             {"scopes", {scope("products", 50, false, {change("c", 30, 3)}, false, true)}}});
    });
    // The lane held a stale key before (a catch-up from a peer long ago).
    protocol::catalog_page old;
    old.scope = "products";
    old.through = 5;
    protocol::catalog_change b;
    b.key = "b";
    b.version = 5;
    b.data = "{}";
    old.changes.push_back(b);
    std::promise<outbox::catalog_outcome> p;
    r.store->apply_catalog(old, "L2", [&](outbox::catalog_outcome o) { p.set_value(o); });
    REQUIRE(p.get_future().get().ok);
    r.start();
    REQUIRE(run_until(r.ioc, [&] { return r.pull->get_status().requests_ok == 2; }));
    CHECK(r.through("products") == 50);
    CHECK(r.store->catalog_get("products", "b")->deleted);
    CHECK_FALSE(r.store->catalog_get("products", "a")->deleted);
    CHECK_FALSE(r.store->catalog_get("products", "c")->deleted);
}

TEST_CASE("503 and malformed answers back off and retry; nothing of a bad answer is applied") {
    std::atomic<int> n{0};
    rig r([&](const seen_request&) {
        switch (n++) {
        case 0:
            return status_only(503, "database unavailable");
        case 1: // a good scope, then one with a bad change: nothing of the answer applies
            return json_reply({{"head", 9},
                               {"scopes",
                                {scope("prices", 9, false, {change("x", 9, 1)}),
                                 scope("stock", 9, false, {change("", 9, 1)})}}});
        default:
            return json_reply(
                {{"head", 9}, {"scopes", {scope("prices", 9, false, json::array())}}});
        }
    });
    auto http_before = pulls_with("http_error");
    auto bad_before = pulls_with("malformed");
    r.start();
    REQUIRE(run_until(r.ioc, [&] { return r.pull->get_status().requests_failed == 1; }));
    auto st = r.pull->get_status();
    CHECK(st.last_error == "HTTP 503: database unavailable");
    CHECK(st.last_http_status == 503);
    REQUIRE(run_until(r.ioc, [&] { return r.pull->get_status().requests_failed == 2; }));
    CHECK(r.pull->get_status().last_error.find("malformed") != std::string::npos);
    CHECK_FALSE(r.store->catalog_get("prices", "x"));
    REQUIRE(run_until(r.ioc, [&] { return r.pull->get_status().requests_ok == 1; }));
    st = r.pull->get_status();
    CHECK(st.last_error.empty());
    CHECK(st.consecutive_failures == 0);
    CHECK(r.through("prices") == 9);
    CHECK(pulls_with("http_error") == http_before + 1);
    CHECK(pulls_with("malformed") == bad_before + 1);
    CHECK(st.last_error.find(test_key) == std::string::npos);
}

TEST_CASE("pull_now pulls at once instead of waiting for the interval") {
    rig r([](const seen_request&) { return json_reply({{"head", 0}, {"scopes", json::array()}}); });
    r.start();
    REQUIRE(run_until(r.ioc, [&] { return r.pull->get_status().requests_ok == 1; }));
    r.pull->pull_now();
    REQUIRE(run_until(r.ioc, [&] { return r.pull->get_status().requests_ok == 2; }));
    CHECK(r.cloud->requests().size() == 2);
}

TEST_CASE("off: no cloud, or CLOUD_PULL_INTERVAL_MS=0, pulls nothing") {
    for (bool no_cloud : {true, false}) {
        rig r([](const seen_request&) { return status_only(500); });
        if (no_cloud) {
            r.cfg.supabase_url.clear();
            r.cfg.cloud.reset();
        } else {
            r.cfg.cloud_pull_interval = std::chrono::milliseconds(0);
        }
        r.start();
        r.pull->pull_now();
        run_for(r.ioc, std::chrono::milliseconds(100));
        CHECK(r.cloud->requests().empty());
        CHECK_FALSE(r.pull->get_status().enabled);
        CHECK(r.pull->get_status().state == "off");
    }
}

TEST_CASE("reconfigure (a live reload): pulls at once with the rotated key") {
    rig r([](const seen_request&) { return json_reply({{"head", 0}, {"scopes", json::array()}}); });
    r.start();
    REQUIRE(run_until(r.ioc, [&] { return r.pull->get_status().requests_ok == 1; }));
    const std::string rotated = "sk_test_ROTATED_pull_NEVER_SHOW_ME";
    r.cfg.supabase_service_key = rotated; // the interval stays 60 s: only the reload pulls
    r.pull->reconfigure(r.cfg);
    REQUIRE(run_until(r.ioc, [&] { return r.pull->get_status().requests_ok == 2; }));
    REQUIRE(r.cloud->requests().size() == 2);
    CHECK(r.cloud->requests()[0].headers.at("apikey") == test_key);
    CHECK(r.cloud->requests()[1].headers.at("apikey") == rotated);
}
