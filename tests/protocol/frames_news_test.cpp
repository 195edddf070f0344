// Unit tests for the frames of issue 9 part 2 in protocol/frames.hpp: the ready's v2 fields
// "inc" and "rebuild", and the news frame, with their strict shapes and limits.

#include "protocol/frames.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <string>
#include <variant>

using namespace lanesync::protocol;
using json = nlohmann::json;

namespace {

const std::string id1 = "0190a5d3-ac96-7f4b-bcce-b302099a8057";
const std::string inc1 = "0123456789abcdef0123456789abcdef";

template <class F> F decoded(const std::string& text, const frame_limits& lim = {}) {
    auto r = decode_frame(text, lim);
    REQUIRE(std::holds_alternative<frame>(r));
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

json v2_marks() {
    return json{{"L1", {{"seq", 3}, {"id", id1}}}};
}

json a_news() {
    return json{{"type", "news"},
                {"seen", {{"L3", 1500}, {"L2", 0}}},
                {"cloud", {{"L1", 120}}},
                {"cover", {"L3"}},
                {"holds", {"L3", "L4"}}};
}

} // namespace

TEST_SUITE("frames news") {

    TEST_CASE("v2 ready: inc and rebuild round trip, absent by default") {
        ready_frame r{{{"L1", 3}}, {{"L1", id1}}, true, inc1, true};
        CHECK(encode(r) == R"({"hwm":{"L1":{"id":")" + id1 + R"(","seq":3}},"inc":")" + inc1 +
                               R"(","rebuild":true,"type":"ready"})");
        auto back = decoded<ready_frame>(encode(r));
        CHECK(back.v2);
        CHECK(back.inc == inc1);
        CHECK(back.rebuild);
        auto plain = decoded<ready_frame>(encode(ready_frame{{{"L1", 3}}, {{"L1", id1}}, true}));
        CHECK(plain.inc.empty());
        CHECK_FALSE(plain.rebuild);
        // rebuild false is never written; an empty map still carries the v2 fields.
        CHECK(encode(ready_frame{{}, {}, true, inc1, false}) ==
              R"({"hwm":{},"inc":")" + inc1 + R"(","type":"ready"})");
        auto empty = decoded<ready_frame>(encode(ready_frame{{}, {}, true, inc1, true}));
        CHECK(empty.inc == inc1);
        CHECK(empty.rebuild);
        CHECK(decoded<ready_frame>(
                  json{{"type", "ready"}, {"hwm", v2_marks()}, {"rebuild", false}}.dump())
                  .rebuild == false);
    }

    TEST_CASE("a v1 ready never carries inc or rebuild") {
        CHECK(encode(ready_frame{{{"L1", 3}}, {}, false, inc1, true}) ==
              R"({"hwm":{"L1":3},"type":"ready"})");
        CHECK(refused(json{{"type", "ready"}, {"hwm", {{"L1", 3}}}, {"inc", inc1}}) ==
              "ready mixes v1 marks and v2 fields");
        CHECK(refused(json{{"type", "ready"}, {"hwm", {{"L1", 3}}}, {"rebuild", true}}) ==
              "ready mixes v1 marks and v2 fields");
    }

    TEST_CASE("bad inc and rebuild fields are refused, unknown fields too") {
        auto ready = [](const char* key, json v) {
            return json{{"type", "ready"}, {"hwm", v2_marks()}, {key, std::move(v)}};
        };
        const std::string inc_err = "field inc must be 32 lowercase hex digits";
        CHECK(refused(ready("inc", "0123")) == inc_err);
        CHECK(refused(ready("inc", "0123456789ABCDEF0123456789ABCDEF")) == inc_err);
        CHECK(refused(ready("inc", inc1 + "00")) == inc_err);
        CHECK(refused(ready("inc", 5)) == inc_err);
        CHECK(refused(ready("rebuild", 1)) == "field rebuild must be a boolean");
        CHECK(refused(ready("rebuild", "true")) == "field rebuild must be a boolean");
        CHECK(refused(ready("incarnation", inc1)) == "ready has unknown fields");
        auto both = json{{"type", "ready"}, {"hwm", v2_marks()}, {"inc", inc1}, {"rebuild", true}};
        both["x"] = 1;
        CHECK(refused(both) == "ready has unknown fields");
    }

    TEST_CASE("news round trips") {
        news_frame n{{{{"L3", 1500}, {"L2", 0}}, {{"L1", 120}}, {"L3"}, {"L3", "L4"}}};
        CHECK(encode(n) == R"({"cloud":{"L1":120},"cover":["L3"],"holds":["L3","L4"],)"
                           R"("seen":{"L2":0,"L3":1500},"type":"news"})");
        auto back = decoded<news_frame>(encode(n));
        CHECK(back.seen == n.seen);
        CHECK(back.cloud == n.cloud);
        CHECK(back.cover == n.cover);
        CHECK(back.holds == n.holds);
        auto empty = decoded<news_frame>(encode(news_frame{}));
        CHECK(empty.seen.empty());
        CHECK(empty.cloud.empty());
        CHECK(empty.cover.empty());
        CHECK(empty.holds.empty());
        // holds is written in every news, empty too.
        CHECK(encode(news_frame{}) ==
              R"({"cloud":{},"cover":[],"holds":[],"seen":{},"type":"news"})");
        // A news is a news: built from the struct the lane fills.
        news plain{{{"L2", 7}}, {}, {}};
        CHECK(decoded<news_frame>(encode(news_frame{plain})).seen.at("L2") == 7);
    }

    TEST_CASE("news: every field is required and checked") {
        for (const char* key : {"seen", "cloud", "cover"}) {
            auto j = a_news();
            j.erase(key);
            CHECK_FALSE(refused(j).empty());
        }
        auto with = [](const char* key, json v) {
            auto j = a_news();
            j[key] = std::move(v);
            return j;
        };
        CHECK(refused(with("seen", json::array())) == "field seen must be an object");
        CHECK(refused(with("seen", {{"bad id!", 1}})) == "field seen has an invalid origin id");
        CHECK(refused(with("seen", {{"L2", -1}})) ==
              "field seen values must be non-negative integers");
        CHECK(refused(with("seen", {{"L2", 1.5}})) ==
              "field seen values must be non-negative integers");
        CHECK(refused(with("cloud", {{"L1", (std::uint64_t{1} << 53) + 1}})) ==
              "field cloud values must be at most 2^53");
        CHECK(decoded<news_frame>(with("cloud", {{"L1", std::uint64_t{1} << 53}}).dump())
                  .cloud.at("L1") == std::uint64_t{1} << 53);
        CHECK(refused(with("cover", {{"L1", 1}})) == "field cover must be an array");
        CHECK(refused(with("cover", {"L1", 3})) == "field cover has an invalid origin id");
        CHECK(refused(with("cover", {"no way"})) == "field cover has an invalid origin id");
        CHECK(refused(with("cover", {"L3", "L3"})) == "field cover names an origin twice");
        CHECK(refused(with("extra", 1)) == "news has unknown fields");
    }

    TEST_CASE("news: holds is optional (an earlier v2 sender), checked as cover when present") {
        auto full = a_news();
        CHECK(decoded<news_frame>(full.dump()).holds == std::vector<std::string>{"L3", "L4"});
        full.erase("holds");
        auto old = decoded<news_frame>(full.dump());
        CHECK(old.holds.empty()); // absent: holds nothing
        CHECK(old.cover == std::vector<std::string>{"L3"});
        CHECK(decoded<news_frame>(
                  R"({"type":"news","seen":{},"cloud":{},"cover":[],"holds":["L9","L1"]})")
                  .holds == std::vector<std::string>{"L9", "L1"}); // order as sent
        auto with = [](json v) {
            auto j = a_news();
            j["holds"] = std::move(v);
            return j;
        };
        CHECK(refused(with(nullptr)) == "field holds must be an array");
        CHECK(refused(with({{"L1", 1}})) == "field holds must be an array");
        CHECK(refused(with("L1")) == "field holds must be an array");
        CHECK(refused(with({"L1", 3})) == "field holds has an invalid origin id");
        CHECK(refused(with({"no way"})) == "field holds has an invalid origin id");
        CHECK(refused(with({"L3", "L4", "L3"})) == "field holds names an origin twice");
        // Still exactly the known fields: holds does not make room for another.
        auto extra = with({"L3"});
        extra["extra"] = 1;
        CHECK(refused(extra) == "news has unknown fields");
        extra.erase("holds");
        CHECK(refused(extra) == "news has unknown fields");
    }

    TEST_CASE("news: at most max_origins entries in each field") {
        frame_limits lim;
        lim.max_origins = 2;
        auto j = a_news();
        CHECK(std::holds_alternative<frame>(decode_frame(j.dump(), lim)));
        j["seen"] = {{"L1", 0}, {"L2", 0}, {"L3", 0}};
        CHECK(refused(j, lim) == "field seen has too many origins");
        j = a_news();
        j["cloud"] = {{"L1", 0}, {"L2", 0}, {"L3", 0}};
        CHECK(refused(j, lim) == "field cloud has too many origins");
        j = a_news();
        j["cover"] = {"L1", "L2", "L3"};
        CHECK(refused(j, lim) == "field cover has too many origins");
        j = a_news();
        j["holds"] = {"L1", "L2", "L3"};
        CHECK(refused(j, lim) == "field holds has too many origins");
        CHECK(frame_limits{}.max_origins == 1024);
    }

} // TEST_SUITE
