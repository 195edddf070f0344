// Live reload's decision and its answers without a running agent (agent/reload.hpp): what a
// re-read leads to, POST /v1/reload's statuses, the status document's `reload` and its line.
#include "agent/api_routes.hpp"
#include "agent/reload.hpp"
#include "agent/status.hpp"
#include "conf/config.hpp"

#include <doctest/doctest.h>

using namespace lanesync;
namespace api = lanesync::agent::api;
using agent::reload_result;

namespace {

conf::loaded load(const std::string& text) {
    return conf::load_text("TERMINAL_ID=L1\nLOCAL_API_PORT=9100\n" + text, "lane.env",
                           [](const std::string&) { return std::nullopt; });
}

} // namespace

TEST_CASE("decide_reload: applied, unchanged, refused, invalid") {
    const auto running = load("").cfg;
    SUBCASE("applied lists the keys") {
        auto d = agent::decide_reload(running, load("LOG_LEVEL=debug\nCLOUD_BATCH_SIZE=9\n"), "");
        CHECK(d.result.result == reload_result::outcome::applied);
        CHECK(d.result.changed == std::vector<std::string>{"CLOUD_BATCH_SIZE", "LOG_LEVEL"});
        CHECK(d.plan.log_level);
        CHECK(d.result.error.empty());
    }
    SUBCASE("the same file is unchanged") {
        auto d = agent::decide_reload(running, load(""), "");
        CHECK(d.result.result == reload_result::outcome::unchanged);
        CHECK(d.result.changed.empty());
    }
    SUBCASE("a fixed key refuses it whole: nothing is listed as changed") {
        auto d = agent::decide_reload(running, load("TERMINAL_PORT=9000\nLOG_LEVEL=debug\n"), "");
        CHECK(d.result.result == reload_result::outcome::refused);
        CHECK(d.result.changed.empty());
        CHECK(d.result.error.starts_with("TERMINAL_PORT cannot change while the agent runs"));
    }
    SUBCASE("a load error keeps the running configuration") {
        auto d = agent::decide_reload(running, std::nullopt,
                                      "lane.env:4: CLOUD_BATCH_SIZE: 0 is too small (1..1000)");
        CHECK(d.result.result == reload_result::outcome::invalid);
        CHECK(d.result.error == "lane.env:4: CLOUD_BATCH_SIZE: 0 is too small (1..1000) (the "
                                "running configuration stays)");
    }
    SUBCASE("the file's warnings are passed on") {
        auto d = agent::decide_reload(running, load("CLOUD_BATCH_SIZ=9\n"), "");
        CHECK(d.result.result == reload_result::outcome::unchanged);
        REQUIRE(d.result.warnings.size() == 1);
        CHECK(d.result.warnings[0].find("CLOUD_BATCH_SIZE") != std::string::npos);
    }
}

TEST_CASE("POST /v1/reload: the route and its statuses") {
    CHECK(api::route_request("POST", "/v1/reload").r == api::route::reload);
    auto wrong = api::route_request("GET", "/v1/reload");
    CHECK(wrong.r == api::route::wrong_method);
    CHECK(wrong.allow == "POST");

    reload_result r;
    r.trigger = "api";
    r.at_ms = 1796205600000;
    r.result = reload_result::outcome::applied;
    r.changed = {"LOG_LEVEL"};
    auto ok = api::reload_answer(&r);
    CHECK(ok.status == 200);
    auto body = nlohmann::json::parse(ok.body);
    CHECK(body["result"] == "applied");
    CHECK(body["changed"] == nlohmann::json::array({"LOG_LEVEL"}));
    CHECK(body["trigger"] == "api");
    CHECK(body["at_ms"] == 1796205600000);
    CHECK_FALSE(body.contains("error"));

    r.result = reload_result::outcome::refused;
    r.changed.clear();
    r.error = "TERMINAL_PORT cannot change while the agent runs (restart it to apply it); "
              "nothing was applied";
    auto refused = api::reload_answer(&r);
    CHECK(refused.status == 409);
    CHECK(nlohmann::json::parse(refused.body)["error"] == r.error);

    r.result = reload_result::outcome::invalid;
    CHECK(api::reload_answer(&r).status == 422);
    auto none = api::reload_answer(nullptr);
    CHECK(none.status == 409);
    CHECK(nlohmann::json::parse(none.body)["error"] == "reload is not available");
}

TEST_CASE("the status document's reload and its RELOAD line") {
    agent::status_inputs in;
    const auto cfg = load("").cfg;
    CHECK(agent::status_json(cfg, in, true, 1796205600000)["reload"].is_null());
    CHECK(agent::reload_line(nullptr).empty());

    reload_result r;
    r.result = reload_result::outcome::applied;
    r.changed = {"CLOUD_BATCH_SIZE", "LOG_LEVEL"};
    r.trigger = "SIGHUP";
    r.at_ms = 1796205600000;
    in.reload = r;
    auto doc = agent::status_json(cfg, in, true, 1796205600000);
    CHECK(doc["reload"]["result"] == "applied");
    CHECK(agent::reload_line(doc["reload"]) ==
          "RELOAD: applied at 2026-12-02T10:00:00.000Z (SIGHUP): CLOUD_BATCH_SIZE, LOG_LEVEL\n");
    CHECK(agent::status_table(doc).find("RELOAD: applied") != std::string::npos);

    r.result = reload_result::outcome::invalid;
    r.changed.clear();
    r.error = "lane.env:4: CLOUD_BATCH_SIZE: 0 is too small (1..1000)";
    in.reload = r;
    CHECK(agent::reload_line(agent::status_json(cfg, in, true, 1796205600000)["reload"]) ==
          "RELOAD: invalid at 2026-12-02T10:00:00.000Z (SIGHUP): lane.env:4: CLOUD_BATCH_SIZE: 0 "
          "is too small (1..1000)\n");
}
