// The sync-pull wire (cloud/pull_wire.hpp): the request body, the answer read defensively
// (every malformed shape refused with a reason), and what one HTTP result means.
#include "cloud/pull_wire.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

using namespace lanesync;
using namespace lanesync::cloud;
using json = nlohmann::json;

namespace {

json good_scope() {
    return json::parse(R"({"scope": "prices", "reset": false, "continues_snapshot": false,
        "resume": "", "through": 130, "head": 130, "horizon": 0, "more": false,
        "changes": [{"key": "sku-1", "version": 125, "deleted": false,
                     "data": {"price_cents": 199, "a": [1, 2]}, "changed_at_ms": 1764633600000},
                    {"key": "sku-2", "version": 126, "deleted": true, "data": null,
                     "changed_at_ms": 1764633600001}]})");
}

json answer(json scope) {
    return json{{"head", 130}, {"scopes", json::array({std::move(scope)})}};
}

/// The error parse_response gives for `body` (fails the test when it parses).
std::string refusal(const std::string& body) {
    auto p = pull::parse_response(body);
    CHECK_FALSE(p.value);
    return p.error;
}

std::string refusal_of(const json& doc) {
    return refusal(doc.dump());
}

bool has(const std::string& s, const std::string& part) {
    return s.find(part) != std::string::npos;
}

} // namespace

TEST_CASE("the request carries store, terminal, limit and each scope's cursor") {
    auto body =
        pull::encode_request("S1", "L1", 500, {{"prices", 120, ""}, {"products", 0, "tok=="}});
    auto j = json::parse(body);
    CHECK(j["store_id"] == "S1");
    CHECK(j["terminal_id"] == "L1");
    CHECK(j["limit"] == 500);
    CHECK(j["cursors"]["prices"] == json{{"through", 120}});
    CHECK(j["cursors"]["products"] == json{{"through", 0}, {"resume", "tok=="}});
    CHECK(json::parse(pull::encode_request("S1", "L1", 1, {}))["cursors"] == json::object());
}

TEST_CASE("a good answer becomes one page per scope") {
    auto p = pull::parse_response(answer(good_scope()).dump());
    REQUIRE(p.value);
    CHECK(p.error.empty());
    CHECK(p.value->head == 130);
    REQUIRE(p.value->scopes.size() == 1);
    const auto& s = p.value->scopes[0];
    CHECK_FALSE(s.more);
    CHECK_FALSE(p.value->more());
    CHECK(s.page.scope == "prices");
    CHECK(s.page.through == 130);
    CHECK(s.page.head == 130);
    CHECK(s.page.done);
    CHECK_FALSE(s.page.reset);
    REQUIRE(s.page.changes.size() == 2);
    CHECK(s.page.changes[0].scope == "prices");
    CHECK(s.page.changes[0].data == R"({"a":[1,2],"price_cents":199})"); // canonical
    CHECK(s.page.changes[0].changed_at_ms == 1764633600000);
    CHECK(s.page.changes[1].deleted);
    CHECK(s.page.changes[1].data == "null");
}

TEST_CASE("snapshot pages: reset, resume, more; defaults for optional fields") {
    auto sc = json::parse(R"({"scope": "products", "reset": true, "resume": "t1", "through": 0,
        "more": true, "changes": [{"key": "b", "version": 900, "data": {"n": 1}}]})");
    auto p = pull::parse_response(answer(sc).dump());
    REQUIRE(p.value);
    const auto& s = p.value->scopes[0];
    CHECK(s.page.reset);
    CHECK_FALSE(s.page.done);
    CHECK(s.page.resume == "t1");
    CHECK(p.value->more());
    CHECK(s.page.changes[0].version == 900); // above through: fine in a snapshot
    CHECK_FALSE(s.page.changes[0].deleted);
    CHECK(s.page.changes[0].changed_at_ms == 0);
    auto empty = pull::parse_response(R"({"head": 0, "scopes": []})");
    REQUIRE(empty.value);
    CHECK(empty.value->scopes.empty());
}

TEST_CASE("malformed answers are refused with the first problem") {
    CHECK(has(refusal("not json"), "not JSON"));
    CHECK(has(refusal("[1,2]"), "not a JSON object"));
    CHECK(has(refusal(R"({"scopes": []})"), "\"head\" is missing"));
    CHECK(has(refusal(R"({"head": "1", "scopes": []})"), "\"head\" is not an integer"));
    CHECK(has(refusal(R"({"head": 1.5, "scopes": []})"), "\"head\" is not an integer"));
    CHECK(has(refusal(R"({"head": -1, "scopes": []})"), "out of range"));
    CHECK(has(refusal(R"({"head": 18446744073709551615, "scopes": []})"), "out of range"));
    CHECK(has(refusal(R"({"head": 9007199254740993, "scopes": []})"), "out of range"));
    CHECK(has(refusal(R"({"head": 1})"), "\"scopes\" is not an array"));
    CHECK(has(refusal(R"({"head": 1, "scopes": {}})"), "\"scopes\" is not an array"));
    CHECK(has(refusal(R"({"head": 1, "scopes": [3]})"), "scopes[0] is not an object"));

    auto with = [](auto edit) {
        auto s = good_scope();
        edit(s);
        return refusal_of(answer(s));
    };
    CHECK(has(with([](json& s) { s.erase("scope"); }), "\"scope\" is missing"));
    CHECK(has(with([](json& s) { s["scope"] = 7; }), "\"scope\" is not a string"));
    CHECK(has(with([](json& s) { s["scope"] = "Prices!"; }), "invalid scope name"));
    CHECK(has(with([](json& s) { s["scope"] = ""; }), "invalid scope name"));
    CHECK(has(with([](json& s) { s["reset"] = "yes"; }), "\"reset\" is not true or false"));
    CHECK(has(with([](json& s) { s["continues_snapshot"] = 1; }), "not true or false"));
    CHECK(has(with([](json& s) { s["reset"] = s["continues_snapshot"] = true; }),
              "both reset and continues_snapshot"));
    CHECK(has(with([](json& s) { s["resume"] = 5; }), "\"resume\" is not a string"));
    CHECK(has(with([](json& s) { s["resume"] = std::string(5000, 'r'); }), "longer than 4096"));
    CHECK(has(with([](json& s) { s.erase("through"); }), "\"through\" is missing"));
    CHECK(has(with([](json& s) { s["through"] = -3; }), "out of range"));
    CHECK(has(with([](json& s) { s["horizon"] = "0"; }), "\"horizon\" is not an integer"));
    CHECK(has(with([](json& s) { s.erase("more"); }), "\"more\" is missing"));
    CHECK(has(with([](json& s) {
                  s["reset"] = true;
                  s["more"] = true;
                  s["resume"] = "";
              }),
              "more but no resume token"));
    CHECK(has(with([](json& s) { s.erase("changes"); }), "\"changes\" is not an array"));
    CHECK(has(with([](json& s) { s["changes"] = "x"; }), "\"changes\" is not an array"));
    CHECK(has(with([](json& s) { s["changes"][0] = 1; }), "change 0 is not an object"));
    CHECK(has(with([](json& s) { s["changes"][1].erase("key"); }), "change 1: \"key\""));
    CHECK(has(with([](json& s) { s["changes"][0]["key"] = ""; }), "invalid key"));
    CHECK(
        has(with([](json& s) { s["changes"][0]["key"] = std::string(300, 'k'); }), "invalid key"));
    CHECK(has(with([](json& s) { s["changes"][0]["key"] = "a\nb"; }), "invalid key"));
    CHECK(has(with([](json& s) { s["changes"][0].erase("version"); }), "\"version\" is missing"));
    CHECK(has(with([](json& s) { s["changes"][0]["version"] = 0; }), "version must be > 0"));
    CHECK(has(with([](json& s) { s["changes"][0]["version"] = "125"; }), "not an integer"));
    CHECK(has(with([](json& s) { s["changes"][0]["deleted"] = "no"; }), "not true or false"));
    CHECK(has(with([](json& s) { s["changes"][0]["data"] = nullptr; }), "upsert without data"));
    CHECK(has(with([](json& s) { s["changes"][0].erase("data"); }), "upsert without data"));
    CHECK(has(with([](json& s) { s["changes"][0]["changed_at_ms"] = "x"; }), "not an integer"));
    CHECK(has(with([](json& s) { s["changes"][0]["version"] = 131; }),
              "change version 131 above through 130"));
    CHECK(has(refusal_of(json{{"head", 1}, {"scopes", json::array({good_scope(), good_scope()})}}),
              "answered twice"));
    // Data nested deeper than the limit.
    std::string deep(100, '[');
    deep += std::string(100, ']');
    CHECK(has(with([&](json& s) { s["changes"][0]["data"] = json::parse(deep); }), "too deep"));
}

TEST_CASE("what one HTTP result means") {
    using k = pull::outcome::kind;
    http_result ok{http_result::failure::none, 200, answer(good_scope()).dump(), ""};
    auto o = pull::read_result(ok);
    CHECK(o.k == k::ok);
    CHECK(o.label == "ok");
    REQUIRE(o.value);

    http_result garbage{http_result::failure::none, 200, "{\"head\":1}", ""};
    o = pull::read_result(garbage);
    CHECK(o.k == k::retry);
    CHECK(o.label == "malformed");
    CHECK(has(o.error, "malformed sync-pull answer"));

    http_result bad{http_result::failure::none, 400, R"({"error":"bad resume token"})", ""};
    o = pull::read_result(bad);
    CHECK(o.k == k::bad_request);
    CHECK(o.error == "HTTP 400: bad resume token");

    http_result auth{http_result::failure::none, 401, R"({"error":"unauthorized"})", ""};
    CHECK(pull::read_result(auth).k == k::auth_error);
    http_result down{http_result::failure::none, 503, R"({"error":"database unavailable"})", ""};
    o = pull::read_result(down);
    CHECK(o.k == k::retry);
    CHECK(o.label == "http_error");
    CHECK(o.http_status == 503);

    http_result net{http_result::failure::network, 0, "", "connection refused"};
    o = pull::read_result(net);
    CHECK(o.k == k::retry);
    CHECK(o.label == "network");
    CHECK(o.error == "connection refused");
    http_result cut{http_result::failure::cancelled, 0, "", "cancelled"};
    CHECK(pull::read_result(cut).k == k::cancelled);
}
