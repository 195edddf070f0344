// The pure answers and renderings of a rebuild (docs/api.md, docs/cli.md): routes, the 503,
// /healthz, POST /v1/rebuild's body, the status object, the table line, `lanesync rebuild`.
#include "agent_test_util.hpp"

#include "agent/api_routes.hpp"
#include "agent/status.hpp"

using namespace lanesync::agent::test;
namespace agent = lanesync::agent;
namespace api = lanesync::agent::api;
namespace lanes = lanesync::lanes;
namespace outbox = lanesync::outbox;

namespace {

lanes::rebuild_view active_view() {
    lanes::rebuild_view v;
    v.active = true;
    v.reason = "peer holds seq 10000 of L1 but this lane only 0";
    v.since_ms = 1763783840123;
    v.restored = 3200;
    v.target = 10000;
    v.from = "L2";
    v.waiting_for = {"L3"};
    v.conflicts = {"L4: incarnation mismatch: peer holds L1:60 as aaa, this lane's is bbb"};
    v.progress = "rebuilding from L2: 3,200 of 10,000 (waiting for L3)";
    v.incarnation = std::string(32, 'c');
    return v;
}

std::string header(const api::response& r, const std::string& name) {
    for (const auto& [k, v] : r.headers)
        if (k == name)
            return v;
    return {};
}

} // namespace

TEST_SUITE("rebuild views") {
    TEST_CASE("POST /v1/rebuild is routed; other methods are 405") {
        CHECK(api::route_request("POST", "/v1/rebuild").r == api::route::rebuild);
        auto m = api::route_request("GET", "/v1/rebuild");
        CHECK(m.r == api::route::wrong_method);
        CHECK(m.allow == "POST");
    }

    TEST_CASE("the publish 503 names the reason, carries the progress and Retry-After: 2") {
        auto r = api::rebuilding_answer(active_view());
        CHECK(r.status == 503);
        CHECK(header(r, "Retry-After") == "2");
        auto j = json::parse(r.body);
        CHECK(j["error"] == "rebuilding: peer holds seq 10000 of L1 but this lane only 0");
        CHECK(j["rebuild"]["active"] == true);
        CHECK(j["rebuild"]["restored"] == 3200);
        CHECK(j["rebuild"]["target"] == 10000);
        CHECK(j["rebuild"]["waiting_for"] == json::array({"L3"}));
    }

    TEST_CASE("/healthz while rebuilding") {
        auto r = api::healthz_rebuilding(active_view());
        CHECK(r.status == 503);
        auto j = json::parse(r.body);
        CHECK(j["status"] == "rebuilding");
        CHECK(j["progress"] == "rebuilding from L2: 3,200 of 10,000 (waiting for L3)");
        CHECK(j["waiting_for"] == json::array({"L3"}));
    }

    TEST_CASE("POST /v1/rebuild bodies") {
        using list = std::vector<std::string>;
        auto ok = [](std::string_view body) {
            auto v = api::check_rebuild_body(body);
            REQUIRE(std::holds_alternative<list>(v));
            return std::get<list>(v);
        };
        auto bad = [](std::string_view body) {
            auto v = api::check_rebuild_body(body);
            REQUIRE(std::holds_alternative<api::response>(v));
            return std::get<api::response>(v).status;
        };
        CHECK(ok("").empty());
        CHECK(ok("{}").empty());
        CHECK(ok(R"({"without": []})").empty());
        CHECK(ok(R"({"without": ["L3", "ws://10.0.0.3:8125/v1/peer"]})") ==
              list{"L3", "ws://10.0.0.3:8125/v1/peer"});
        CHECK(bad("not json") == 400);
        CHECK(bad("[]") == 400);
        CHECK(bad(R"({"without": "L3"})") == 400);
        CHECK(bad(R"({"without": [3]})") == 400);
        CHECK(bad(R"({"without": [""]})") == 400);
        CHECK(bad(R"({"without": [], "x": 1})") == 400);
        CHECK(api::rebuild_answer({409, "not rebuilding"}, {}).status == 409);
        auto r = api::rebuild_answer({200, {}}, active_view());
        CHECK(r.status == 200);
        CHECK(json::parse(r.body)["active"] == true);
    }

    TEST_CASE("the rebuild object, active and not; a stopped lane's from its outbox") {
        auto j = agent::rebuild_json(active_view());
        CHECK(j["reason"] == "peer holds seq 10000 of L1 but this lane only 0");
        CHECK(j["since_ms"] == 1763783840123);
        CHECK(j["from"] == "L2");
        CHECK(j["conflicts"].size() == 1);
        lanes::rebuild_view idle;
        idle.incarnation = std::string(32, 'd');
        idle.trust_caps = {{"L3", 60}};
        auto k = agent::rebuild_json(idle);
        CHECK(k["active"] == false);
        CHECK(k["incarnation"] == std::string(32, 'd'));
        CHECK(k["trust_caps"]["L3"] == 60);
        CHECK_FALSE(k.contains("reason"));

        outbox::rebuild_state st;
        st.active = true;
        st.reason = "why";
        st.since_ms = 5;
        st.incarnation = std::string(32, 'e');
        auto v = agent::rebuild_view_of(st);
        CHECK(v.active);
        CHECK(v.reason == "why");
        CHECK(v.incarnation == st.incarnation);
    }

    TEST_CASE("the status table's REBUILD and ORIGINS lines; lanesync rebuild's text") {
        json s = {
            {"generated_at", "2026-11-22T03:57:20.000Z"},
            {"rebuild", agent::rebuild_json(active_view())},
            {"origins", agent::origins_json({{"L1", true, 3200, 3200, 0, {}, std::nullopt},
                                             {"L3", false, 90, 90, 40, "L2", 1795319837000}})}};
        auto lines = agent::rebuild_lines(s);
        CAPTURE(lines);
        CHECK(contains(lines, "REBUILD   rebuilding from L2: 3,200 of 10,000 (waiting for L3)"));
        CHECK(contains(lines, "reason: peer holds seq 10000"));
        CHECK(contains(lines, "conflict: L4: incarnation mismatch"));
        CHECK(contains(lines, "ORIGINS"));
        CHECK(contains(lines, "COVERED BY"));
        CHECK(contains(lines, "3.0s ago"));

        auto text = agent::rebuild_text(s["rebuild"]);
        CHECK(contains(text, "rebuilding from L2: 3,200 of 10,000"));
        CHECK(contains(text, "waiting for: L3"));
        CHECK(contains(text, "--without"));

        lanes::rebuild_view idle;
        idle.incarnation = "abc";
        idle.trust_caps = {{"L3", 60}};
        auto quiet = agent::rebuild_text(agent::rebuild_json(idle));
        CHECK(contains(quiet, "not rebuilding (incarnation abc)"));
        CHECK(contains(quiet, "L3 (its marks of this lane above seq 60 are refused)"));
        CHECK(agent::rebuild_lines({{"rebuild", agent::rebuild_json(idle)}}).empty());
    }
}
