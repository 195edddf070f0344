// Unit tests for protocol v2 marks in protocol/frames.hpp: ready and ack marks that name the
// id of the message at each seq, and the strict shapes around them.

#include "protocol/frames.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <string>
#include <variant>

using namespace lanesync::protocol;
using json = nlohmann::json;

namespace {

const std::string id1 = "0190a5d3-ac96-7f4b-bcce-b302099a8057";

template <class F> F decoded(const std::string& text) {
    auto r = decode_frame(text, frame_limits{});
    REQUIRE(std::holds_alternative<frame>(r));
    auto f = std::get<frame>(r);
    REQUIRE(std::holds_alternative<F>(f));
    return std::get<F>(f);
}

std::string refused(const json& j) {
    auto r = decode_frame(j.dump(), frame_limits{});
    REQUIRE(std::holds_alternative<decode_error>(r));
    CHECK(std::get<decode_error>(r).close_code == close_code::policy_violation);
    return std::get<decode_error>(r).reason;
}

} // namespace

TEST_SUITE("frames v2") {

    TEST_CASE("v2 ready and ack marks carry the tip id; seq 0 carries none") {
        ready_frame r{{{"L1", 150}, {"L2", 0}}, {{"L1", id1}}, true};
        CHECK(encode(r) ==
              R"({"hwm":{"L1":{"id":")" + id1 + R"(","seq":150},"L2":{"seq":0}},"type":"ready"})");
        auto back = decoded<ready_frame>(encode(r));
        CHECK(back.v2);
        CHECK(back.hwm == r.hwm);
        CHECK(back.ids == r.ids);
        ack_frame a{4, {{"L3", 9}}, {{"L3", id1}}, true};
        auto ab = decoded<ack_frame>(encode(a));
        CHECK(ab.v2);
        CHECK(ab.n == 4);
        CHECK(ab.ids.at("L3") == id1);
    }

    TEST_CASE("v1 marks stay plain numbers") {
        CHECK(encode(ready_frame{{{"L1", 5}}, {{"L1", id1}}, false}) ==
              R"({"hwm":{"L1":5},"type":"ready"})");
        auto back = decoded<ready_frame>(R"({"type":"ready","hwm":{"L1":5}})");
        CHECK_FALSE(back.v2);
        CHECK(back.ids.empty());
    }

    TEST_CASE("ids are normalized to lowercase") {
        std::string upper = "0190A5D3-AC96-7F4B-BCCE-B302099A8057";
        auto r = decoded<ready_frame>(
            json{{"type", "ready"}, {"hwm", {{"L1", {{"seq", 1}, {"id", upper}}}}}}.dump());
        CHECK(r.ids.at("L1") == id1);
    }

    TEST_CASE("bad v2 marks are refused") {
        auto ready = [](json marks) { return json{{"type", "ready"}, {"hwm", std::move(marks)}}; };
        CHECK(refused(ready({{"L1", {{"seq", 1}}}, {"L2", 3}})) ==
              "field hwm mixes v1 and v2 marks");
        CHECK(refused(ready({{"L1", 3}, {"L2", {{"seq", 1}}}})) ==
              "field hwm values must be non-negative integers");
        CHECK(refused(ready({{"L1", {{"seq", -1}}}})) ==
              "marks must be objects with a non-negative integer seq");
        CHECK(refused(ready({{"L1", {{"id", id1}}}})) ==
              "marks must be objects with a non-negative integer seq");
        CHECK(refused(ready({{"L1", {{"seq", 1}, {"id", "nope"}}}})) ==
              "mark id must be a UUID (and seq at least 1)");
        CHECK(refused(ready({{"L1", {{"seq", 0}, {"id", id1}}}})) ==
              "mark id must be a UUID (and seq at least 1)");
        CHECK(refused(ready({{"L1", {{"seq", 1}, {"id", id1}, {"x", 1}}}})) ==
              "mark has unknown fields");
        CHECK(refused(ready({{"L1", {{"seq", 1}, {"x", 1}}}})) == "mark has unknown fields");
        CHECK(refused(ready({{"bad id!", {{"seq", 1}}}})) == "field hwm has an invalid origin id");
        CHECK(refused(json{{"type", "ack"}, {"n", 1}, {"hwm", {{"L1", {{"seq", "1"}}}}}}) ==
              "marks must be objects with a non-negative integer seq");
    }

    TEST_CASE("the origin limit holds for v2 marks") {
        frame_limits lim;
        lim.max_origins = 1;
        json two = {{"L1", {{"seq", 1}}}, {"L2", {{"seq", 1}}}};
        auto r = decode_frame(json{{"type", "ready"}, {"hwm", two}}.dump(), lim);
        REQUIRE(std::holds_alternative<decode_error>(r));
        CHECK(std::get<decode_error>(r).reason == "field hwm has too many origins");
    }

} // TEST_SUITE
