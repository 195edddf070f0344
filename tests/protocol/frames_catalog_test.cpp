// Unit tests for the v3 catalog frames in protocol/frames.hpp (catalog_have, catalog): round
// trips, and the strict shapes and limits decode_frame() enforces.

#include "protocol/catalog_sync.hpp"
#include "protocol/frames.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <string>
#include <variant>

using namespace lanesync::protocol;
using json = nlohmann::json;

namespace {

template <class F> F decoded(const std::string& text, const frame_limits& lim = {}) {
    auto r = decode_frame(text, lim);
    if (auto* e = std::get_if<decode_error>(&r))
        FAIL(e->reason);
    auto f = std::get<frame>(r);
    REQUIRE(std::holds_alternative<F>(f));
    return std::get<F>(f);
}

std::string refused(const json& j, const frame_limits& lim = {}) {
    auto r = decode_frame(j.dump(), lim);
    REQUIRE(std::holds_alternative<decode_error>(r));
    CHECK(std::get<decode_error>(r).close_code == close_code::policy_violation);
    return std::get<decode_error>(r).reason;
}

json a_have() {
    return json{{"type", "catalog_have"},
                {"acked", 3},
                {"scopes",
                 {{{"scope", "prices"}, {"through", 120}, {"horizon", 0}},
                  {{"scope", "products"}, {"through", 7}, {"horizon", 5}, {"snapshot", "busy"}}}}};
}

json a_change(const std::string& key, std::int64_t v, json data = json{{"price_cents", 199}}) {
    return json{{"key", key},
                {"version", v},
                {"deleted", data.is_null()},
                {"data", data},
                {"changed_at_ms", 1764633600000}};
}

json a_page() {
    return json{{"type", "catalog"},
                {"n", 1},
                {"scope", "prices"},
                {"since", 100},
                {"reset", false},
                {"continues_snapshot", false},
                {"done", true},
                {"through", 130},
                {"head", 130},
                {"changes", {a_change("sku-1", 125), a_change("sku-2", 126, nullptr)}}};
}

json with(json j, const std::string& k, json v) {
    j[k] = std::move(v);
    return j;
}

json change_with(const std::string& k, json v) {
    auto p = a_page();
    p["changes"][0][k] = std::move(v);
    return p;
}

} // namespace

TEST_SUITE("frames catalog") {

    TEST_CASE("catalog_have round trips, snapshot states included") {
        auto h = decoded<catalog_have_frame>(a_have().dump());
        CHECK(h.acked == 3);
        REQUIRE(h.scopes.size() == 2);
        CHECK(h.scopes[0] == catalog_have_entry{"prices", 120, 0});
        CHECK(h.scopes[1].snapshot == catalog_have_entry::snapshot_state::busy);
        h.scopes[0].snapshot = catalog_have_entry::snapshot_state::yours;
        auto back = decoded<catalog_have_frame>(encode(h));
        CHECK(back.scopes == h.scopes);
        CHECK(
            encode(catalog_have_frame{0, {{"p", 1, 0}}}) ==
            R"({"acked":0,"scopes":[{"horizon":0,"scope":"p","through":1}],"type":"catalog_have"})");
        CHECK(decoded<catalog_have_frame>(encode(catalog_have_frame{})).scopes.empty());
    }

    TEST_CASE("catalog_have: strict fields and limits") {
        CHECK(refused(with(a_have(), "x", 1)) == "catalog_have has unknown fields");
        CHECK(refused(with(a_have(), "acked", -1)) == "field acked must be an integer >= 0");
        CHECK(refused(with(a_have(), "scopes", json::object())) == "field scopes must be an array");
        auto j = a_have();
        j["scopes"][0]["scope"] = "Prices";
        CHECK(refused(j) == "catalog_have scope is invalid");
        j = a_have();
        j["scopes"][1]["scope"] = "prices";
        CHECK(refused(j) == "catalog_have names a scope twice");
        j = a_have();
        j["scopes"][0]["through"] = 1.5;
        CHECK(refused(j) == "field through must be an integer >= 0");
        j = a_have();
        j["scopes"][0]["snapshot"] = true;
        CHECK(refused(j) == "catalog_have snapshot must be \"busy\" or \"yours\"");
        j = a_have();
        j["scopes"][0]["extra"] = 0;
        CHECK(refused(j) == "catalog_have scope has unknown fields");
        j = a_have();
        j["scopes"][0] = "prices";
        CHECK(refused(j) == "catalog_have scopes must be objects");
        frame_limits lim;
        lim.max_scopes = 1;
        CHECK(refused(a_have(), lim) == "catalog_have has too many scopes");
        j = a_have();
        j["scopes"][0]["scope"] = std::string(65, 'a');
        CHECK(refused(j) == "catalog_have scope is invalid");
    }

    TEST_CASE("catalog page round trips with canonical data") {
        auto p = a_page();
        p["changes"][0]["data"] = json::parse(R"({"z":1,"a":[true,null]})");
        auto f = decoded<catalog_frame>(p.dump());
        CHECK(f.n == 1);
        CHECK(f.since == 100);
        CHECK(f.page.scope == "prices");
        CHECK(f.page.through == 130);
        CHECK(f.page.done);
        REQUIRE(f.page.changes.size() == 2);
        CHECK(f.page.changes[0].data == R"({"a":[true,null],"z":1})");
        CHECK(f.page.changes[0].scope == "prices");
        CHECK(f.page.changes[1].deleted);
        CHECK(f.page.changes[1].data == "null");
        auto back = decoded<catalog_frame>(encode(f));
        CHECK(back.page.changes == f.page.changes);
        CHECK(back.since == f.since);
        CHECK(back.page.resume.empty()); // never sent between lanes
        // a scalar is a valid upsert value
        CHECK(decoded<catalog_frame>(change_with("data", 5).dump()).page.changes[0].data == "5");
    }

    TEST_CASE("catalog page: strict fields") {
        CHECK(refused(with(a_page(), "resume", "")) == "catalog has unknown fields");
        CHECK(refused(with(a_page(), "n", 0)) == "field n must be an integer >= 1");
        CHECK(refused(with(a_page(), "scope", "a b")) == "catalog scope is invalid");
        CHECK(refused(with(a_page(), "through", 0)) == "field through must be an integer >= 1");
        CHECK(refused(with(a_page(), "reset", 1)) == "field reset must be a boolean");
        CHECK(refused(with(a_page(), "head", -1)) == "field head must be an integer >= 0");
        CHECK(refused(with(a_page(), "changes", json::object())) ==
              "field changes must be an array");
        CHECK(refused(change_with("key", "")) ==
              "catalog change key must be 1-256 bytes without control characters");
        CHECK(refused(change_with("key", std::string(257, 'k'))) ==
              "catalog change key must be 1-256 bytes without control characters");
        CHECK(decoded<catalog_frame>(change_with("key", std::string(256, 'k')).dump())
                  .page.changes[0]
                  .key.size() == 256);
        CHECK(refused(change_with("version", 0)) == "field version must be an integer >= 1");
        CHECK(refused(change_with("version", 18446744073709551615ull)) ==
              "field version must be an integer >= 1");
        CHECK(refused(change_with("deleted", true)) ==
              "catalog change data must be null exactly when deleted");
        CHECK(refused(change_with("data", nullptr)) ==
              "catalog change data must be null exactly when deleted");
        CHECK(refused(change_with("extra", 1)) == "catalog change has unknown fields");
        auto p = a_page();
        p["changes"][0].erase("data");
        CHECK(refused(p) == "catalog change has no data");
        frame_limits lim;
        lim.max_catalog_data_bytes = 10;
        CHECK(refused(change_with("data", json{{"name", "a long product name"}}), lim) ==
              "catalog change data over the size limit");
        lim = {};
        lim.max_catalog_changes = 1;
        CHECK(refused(a_page(), lim) == "catalog page has too many changes");
        json deep = 1;
        for (int i = 0; i < 70; ++i)
            deep = json::array({deep});
        CHECK(refused(change_with("data", deep)) == "catalog change data nests too deep");
    }

    TEST_CASE("catalog page: shape rules of catch-up pages") {
        CHECK(refused(with(a_page(), "through", 100)) ==
              "catalog page through must be above since");
        CHECK(refused(change_with("version", 100)) ==
              "catalog change version must be above since and at most through");
        auto p = a_page();
        p["changes"] = {a_change("b", 126), a_change("a", 125)};
        CHECK(refused(p) == "catalog changes must be in version order");
        p["changes"] = {a_change("a", 125), a_change("a", 126)};
        CHECK(refused(p) == "catalog page names a key twice");
        p["changes"] = {a_change("a", 125), a_change("b", 125)}; // one version, several keys
        CHECK(decoded<catalog_frame>(p.dump()).page.changes.size() == 2);
        // changes above through are not (the store refuses them in a catch-up too)
        p["changes"] = {a_change("a", 150)};
        CHECK(refused(p) == "catalog change version must be above since and at most through");
        p["changes"] = {a_change("a", 130)};
        CHECK(decoded<catalog_frame>(p.dump()).page.changes[0].version == 130);
        p["changes"] = json::array(); // an empty page moves through
        CHECK(decoded<catalog_frame>(p.dump()).page.changes.empty());
    }

    TEST_CASE("catalog page: shape rules of snapshot pages") {
        auto p = with(with(a_page(), "reset", true), "since", 0);
        p["changes"] = {a_change("a", 125), a_change("b", 90)}; // key order, any version
        CHECK(decoded<catalog_frame>(p.dump()).page.reset);
        CHECK(refused(with(p, "continues_snapshot", true)) ==
              "catalog page cannot both reset and continue a snapshot");
        CHECK(refused(with(p, "since", 5)) == "catalog snapshot page must have since 0");
        auto q = p;
        q["changes"] = {a_change("b", 125), a_change("a", 90)};
        CHECK(refused(q) == "catalog snapshot page keys must be in strictly increasing order");
        q["changes"] = {a_change("a", 125), a_change("a", 126)};
        CHECK(refused(q) == "catalog snapshot page keys must be in strictly increasing order");
        q["changes"] = {a_change("a", 125, nullptr)};
        CHECK(refused(q) == "catalog snapshot page holds a tombstone");
        auto c = with(with(p, "reset", false), "continues_snapshot", true);
        CHECK(decoded<catalog_frame>(c.dump()).page.continues_snapshot);
    }

    TEST_CASE("keys: any bytes but control characters") {
        CHECK(decoded<catalog_frame>(change_with("key", "sku 1/é").dump()).page.changes[0].key ==
              "sku 1/é");
        CHECK(refused(change_with("key", "a\tb")) ==
              "catalog change key must be 1-256 bytes without control characters");
    }

} // TEST_SUITE
