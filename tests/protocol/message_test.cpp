// Unit tests for protocol/message.hpp: id/topic/uuid validation, UUIDv7, canonical JSON,
// timestamps and priorities.

#include "protocol/message.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <limits>
#include <set>
#include <string>
#include <string_view>
#include <vector>

using namespace lanesync::protocol;
using namespace std::string_literals;

namespace {

bool is_lower_hex(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

/// Characters outside [A-Za-z0-9_-], one per class: punctuation, whitespace, control, NUL,
/// high bytes, a multi-byte UTF-8 sequence.
// clang-format off
const std::vector<std::string> forbidden_in_ids = {
    " ", "\t", "\n", "\r", "\x01"s, "\x7f"s, std::string(1, '\0'), ".", "/", "\\", ":", "@",
    "+", "=", "*", "!", "#", "$", "%", "&", "'", "\"", ",", ";", "<", ">", "?", "[", "]", "{",
    "}", "|", "~", "`", "^", "(", ")", "\xff"s, "\x80"s, "\xc3\xa9"s /* é */,
    "\xe2\x82\xac"s /* € */, "\xf0\x9f\x98\x80"s /* 😀 */};
// clang-format on

} // namespace

TEST_CASE("valid_terminal_id: length boundaries and character classes") {
    CHECK_FALSE(valid_terminal_id(""));
    CHECK(valid_terminal_id("L"));
    CHECK(valid_terminal_id("L1"));
    CHECK(valid_terminal_id("lane_01-east"));
    CHECK(valid_terminal_id("ABCXYZabcxyz0189_-"));
    CHECK(valid_terminal_id("_"));
    CHECK(valid_terminal_id("-"));
    CHECK(valid_terminal_id(std::string(32, 'a')));
    CHECK_FALSE(valid_terminal_id(std::string(33, 'a')));
    CHECK_FALSE(valid_terminal_id(std::string(1000, 'a')));

    for (const auto& bad : forbidden_in_ids) {
        CAPTURE(bad);
        CHECK_FALSE(valid_terminal_id(bad));
        CHECK_FALSE(valid_terminal_id("L" + bad));
        CHECK_FALSE(valid_terminal_id(bad + "L"));
        CHECK_FALSE(valid_terminal_id("L" + bad + "1"));
    }
    // A forbidden character at the very last allowed position of a max-length id.
    CHECK_FALSE(valid_terminal_id(std::string(31, 'a') + "."));
    // Unicode letters are not ASCII letters.
    CHECK_FALSE(valid_terminal_id("caf\xc3\xa9"));
    CHECK_FALSE(valid_terminal_id("\xef\xbc\xac\xef\xbc\x91")); // fullwidth "L1"
}

TEST_CASE("valid_store_id: length boundaries and character classes") {
    CHECK_FALSE(valid_store_id(""));
    CHECK(valid_store_id("s"));
    CHECK(valid_store_id("store-1"));
    CHECK(valid_store_id("Store_42-North"));
    CHECK(valid_store_id(std::string(32, 'S')));
    CHECK(valid_store_id(std::string(33, 'S'))); // longer than a terminal id is fine
    CHECK(valid_store_id(std::string(64, 'S')));
    CHECK_FALSE(valid_store_id(std::string(65, 'S')));
    for (const auto& bad : forbidden_in_ids) {
        CAPTURE(bad);
        CHECK_FALSE(valid_store_id(bad));
        CHECK_FALSE(valid_store_id("store" + bad + "1"));
    }
    CHECK_FALSE(valid_store_id(std::string(63, 's') + " "));
    CHECK_FALSE(valid_store_id("m\xc3\xbcnchen"));
}

TEST_CASE("valid_topic: length boundaries and character classes") {
    CHECK_FALSE(valid_topic(""));
    CHECK(valid_topic("t"));
    CHECK(valid_topic("transaction"));
    CHECK(valid_topic("stock.movement"));
    CHECK(valid_topic("customer_change-v2"));
    CHECK(valid_topic("0123456789"));
    CHECK(valid_topic("."));
    CHECK(valid_topic("..")); // the charset allows it; topics are not paths
    CHECK(valid_topic("_"));
    CHECK(valid_topic("-"));
    CHECK(valid_topic(std::string(64, 'a')));
    CHECK_FALSE(valid_topic(std::string(65, 'a')));

    // Uppercase is the one class that ids allow and topics do not.
    CHECK_FALSE(valid_topic("A"));
    CHECK_FALSE(valid_topic("Transaction"));
    CHECK_FALSE(valid_topic("transactioN"));
    CHECK_FALSE(valid_topic("TRANSACTION"));
    CHECK_FALSE(valid_topic(std::string(63, 'a') + "Z"));

    for (const auto& bad : forbidden_in_ids) {
        if (bad == ".")
            continue; // allowed in topics
        CAPTURE(bad);
        CHECK_FALSE(valid_topic(bad));
        CHECK_FALSE(valid_topic("sale" + bad + "done"));
    }
    CHECK_FALSE(valid_topic("sale done"));
    CHECK_FALSE(valid_topic("sale/done"));
    CHECK_FALSE(valid_topic("caf\xc3\xa9"));
}

TEST_CASE("valid_uuid: shape, case, and every near miss") {
    const std::string good = "0190a5d3-ac96-7f4b-bcce-b302099a8057";
    CHECK(valid_uuid(good));
    CHECK(valid_uuid("00000000-0000-0000-0000-000000000000"));
    CHECK(valid_uuid("ffffffff-ffff-ffff-ffff-ffffffffffff"));
    CHECK(valid_uuid("FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF"));
    CHECK(valid_uuid("0190A5D3-ac96-7F4b-BCCE-b302099a8057")); // mixed case
    // Any version/variant is accepted: only the textual shape is checked.
    CHECK(valid_uuid("123e4567-e89b-12d3-a456-426614174000"));

    CHECK_FALSE(valid_uuid(""));
    CHECK_FALSE(valid_uuid(good.substr(0, 35)));
    CHECK_FALSE(valid_uuid(good + "0"));
    CHECK_FALSE(valid_uuid(good + "-"));
    CHECK_FALSE(valid_uuid("0190a5d3ac967f4bbcceb302099a8057"));       // no dashes
    CHECK_FALSE(valid_uuid("{0190a5d3-ac96-7f4b-bcce-b302099a8057}")); // braces
    CHECK_FALSE(valid_uuid("urn:uuid:0190a5d3-ac96-7f4b-bcce-b302099a8057"));
    CHECK_FALSE(valid_uuid(" 0190a5d3-ac96-7f4b-bcce-b302099a805"));
    CHECK_FALSE(valid_uuid("0190a5d3-ac96-7f4b-bcce-b302099a805 "));

    // Every position: a dash where a hex digit belongs, a non-hex where a dash belongs, and
    // non-hex letters / punctuation / high bytes in hex positions.
    for (std::size_t i = 0; i < good.size(); ++i) {
        CAPTURE(i);
        bool dash = (i == 8 || i == 13 || i == 18 || i == 23);
        std::string s = good;
        if (dash) {
            s[i] = 'a';
            CHECK_FALSE(valid_uuid(s));
            s[i] = '_';
            CHECK_FALSE(valid_uuid(s));
        } else {
            for (char c : {'-', 'g', 'G', 'z', 'x', ' ', '.', '\0', '\xff'}) {
                s[i] = c;
                CHECK_FALSE(valid_uuid(s));
            }
        }
    }
    // Dashes shifted by one.
    CHECK_FALSE(valid_uuid("0190a5d-3ac96-7f4b-bcce-b302099a8057"));
    // 36 bytes of which some are a multi-byte character.
    CHECK_FALSE(valid_uuid("0190a5d3-ac96-7f4b-bcce-b302099a80\xc3\xa9"));
}

TEST_CASE("normalize_uuid lowercases hex and leaves everything else") {
    CHECK(normalize_uuid("0190A5D3-AC96-7F4B-BCCE-B302099A8057") ==
          "0190a5d3-ac96-7f4b-bcce-b302099a8057");
    CHECK(normalize_uuid("0190a5d3-ac96-7f4b-bcce-b302099a8057") ==
          "0190a5d3-ac96-7f4b-bcce-b302099a8057");
    CHECK(normalize_uuid("ABCDEFAB-CDEF-ABCD-EFAB-CDEFABCDEF01") ==
          "abcdefab-cdef-abcd-efab-cdefabcdef01");
    CHECK(normalize_uuid("") == "");
    auto n = normalize_uuid("0190A5D3-AC96-7F4B-BCCE-B302099A8057");
    CHECK(valid_uuid(n));
    CHECK(normalize_uuid(n) == n); // idempotent
}

TEST_CASE("new_uuid_v7: format, version, variant, uniqueness, time order") {
    constexpr int count = 10'000;
    std::vector<std::string> ids;
    ids.reserve(count);
    const std::int64_t before = now_ms();
    for (int i = 0; i < count; ++i)
        ids.push_back(new_uuid_v7());
    const std::int64_t after = now_ms();

    std::set<std::string> unique(ids.begin(), ids.end());
    CHECK(unique.size() == ids.size());

    std::uint64_t prev_ms = 0;
    bool all_ok = true;
    for (const auto& id : ids) {
        if (id.size() != 36 || !valid_uuid(id) || normalize_uuid(id) != id) {
            all_ok = false;
            FAIL_CHECK("bad uuid text: " << id);
            continue;
        }
        for (std::size_t i = 0; i < id.size(); ++i) {
            bool dash = (i == 8 || i == 13 || i == 18 || i == 23);
            if (dash ? id[i] != '-' : !is_lower_hex(id[i])) {
                all_ok = false;
                FAIL_CHECK("bad char in " << id << " at " << i);
            }
        }
        // Version nibble: first hex digit of the third group.
        if (id[14] != '7') {
            all_ok = false;
            FAIL_CHECK("version is not 7: " << id);
        }
        // Variant bits 10: first hex digit of the fourth group is 8, 9, a or b.
        char v = id[19];
        if (!(v == '8' || v == '9' || v == 'a' || v == 'b')) {
            all_ok = false;
            FAIL_CHECK("variant is not 10: " << id);
        }
        // 48-bit unix ms timestamp: the first 12 hex digits.
        std::string ts_hex = id.substr(0, 8) + id.substr(9, 4);
        std::uint64_t ms = std::stoull(ts_hex, nullptr, 16);
        if (ms < prev_ms) {
            all_ok = false;
            FAIL_CHECK("timestamp prefix went backwards at " << id);
        }
        if (static_cast<std::int64_t>(ms) < before || static_cast<std::int64_t>(ms) > after) {
            all_ok = false;
            FAIL_CHECK("timestamp prefix " << ms << " outside [" << before << ", " << after << "]");
        }
        prev_ms = ms;
    }
    CHECK(all_ok);
}

TEST_CASE("new_uuid_v7: random part varies within the same millisecond") {
    // Even if two ids share a timestamp, the 74 random bits make them different; the
    // random tail (last group) should almost never repeat across 1000 ids.
    std::set<std::string> tails;
    for (int i = 0; i < 1000; ++i)
        tails.insert(new_uuid_v7().substr(24));
    CHECK(tails.size() == 1000);
}

TEST_CASE("canonical_json: key order and whitespace independence") {
    auto a =
        nlohmann::json::parse(R"({"b":1,"a":{"y":[1,2,{"k":"v","c":null}],"x":true},"c":"s"})");
    auto b = nlohmann::json::parse(R"(
        {
          "c" : "s",
          "a" : { "x" : true, "y" : [ 1 , 2 , { "c" : null , "k" : "v" } ] },
          "b" : 1
        }
    )");
    CHECK(canonical_json(a) == canonical_json(b));
    CHECK(canonical_json(a) == R"({"a":{"x":true,"y":[1,2,{"c":null,"k":"v"}]},"b":1,"c":"s"})");

    // Array order is significant.
    CHECK(canonical_json(nlohmann::json::parse("[1,2]")) !=
          canonical_json(nlohmann::json::parse("[2,1]")));

    // Keys are sorted by bytes (uppercase before lowercase, shorter prefix first).
    CHECK(canonical_json(nlohmann::json::parse(R"({"b":0,"B":0,"aa":0,"a":0,"_":0})")) ==
          R"({"B":0,"_":0,"a":0,"aa":0,"b":0})");

    // Empty containers and scalars.
    CHECK(canonical_json(nlohmann::json::object()) == "{}");
    CHECK(canonical_json(nlohmann::json::array()) == "[]");
    CHECK(canonical_json(nlohmann::json::parse(" { } ")) == "{}");
    CHECK(canonical_json(nullptr) == "null");
}

TEST_CASE("canonical_json: strings, unicode and numbers") {
    // \u escapes of printable characters become raw UTF-8; control characters stay escaped.
    auto esc = nlohmann::json::parse(R"({"s":"caf\u00e9 \u20ac \ud83d\ude00"})");
    auto raw = nlohmann::json::parse("{\"s\":\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"}");
    CHECK(canonical_json(esc) == canonical_json(raw));
    CHECK(canonical_json(raw) == "{\"s\":\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"}");
    CHECK(canonical_json(nlohmann::json::parse(R"(["a\"b\\c\n\t\u0001\/"])")) ==
          R"(["a\"b\\c\n\t\u0001/"])");

    // Numbers: integers stay integers, floats keep a fraction, exponent forms collapse.
    CHECK(
        canonical_json(nlohmann::json::parse("[1, -0, 1.0, 1e2, 1.5E-1, 12345678901234567890]")) ==
        "[1,0,1.0,100.0,0.15,12345678901234567890]");

    // The canonical text is a fixed point: parse + canonical again gives the same bytes.
    for (const char* text : {R"({"z":{"b":[1,2.5,{"y":"日本 €"}],"a":null},"a":-7})",
                             R"({"n":[[],[{}],[[[]]]],"f":0.1,"big":-9223372036854775808})",
                             "{\"ctl\":\"\\u001f\\u0000x\"}"}) {
        CAPTURE(text);
        auto once = canonical_json(nlohmann::json::parse(text));
        CHECK(canonical_json(nlohmann::json::parse(once)) == once);
    }
}

TEST_CASE("canonical_json refuses a value holding invalid UTF-8 instead of emitting it") {
    nlohmann::json j = {{"s", "bad \xff byte"}};
    CHECK_THROWS_AS(canonical_json(j), nlohmann::json::type_error);
}

TEST_CASE("canonical_json handles moderately deep nesting") {
    std::string text = std::string(1000, '[') + std::string(1000, ']');
    auto once = canonical_json(nlohmann::json::parse(text));
    CHECK(once == text);
}

TEST_CASE("format_time_ms: known values") {
    CHECK(format_time_ms(0) == "1970-01-01T00:00:00.000Z");
    CHECK(format_time_ms(1) == "1970-01-01T00:00:00.001Z");
    CHECK(format_time_ms(999) == "1970-01-01T00:00:00.999Z");
    CHECK(format_time_ms(1000) == "1970-01-01T00:00:01.000Z");
    CHECK(format_time_ms(86'400'000) == "1970-01-02T00:00:00.000Z");
    CHECK(format_time_ms(1'795'319'840'123) == "2026-11-22T03:57:20.123Z");
    CHECK(format_time_ms(1'709'164'800'000) == "2024-02-29T00:00:00.000Z"); // leap day
    CHECK(format_time_ms(1'709'164'799'999) == "2024-02-28T23:59:59.999Z");
    CHECK(format_time_ms(2'147'483'647'999) == "2038-01-19T03:14:07.999Z");
    CHECK(format_time_ms(2'147'483'648'000) == "2038-01-19T03:14:08.000Z"); // past 32-bit time_t
    CHECK(format_time_ms(253'402'300'799'999) == "9999-12-31T23:59:59.999Z");
}

TEST_CASE("format_time_ms: negative milliseconds count back from the epoch") {
    CHECK(format_time_ms(-1) == "1969-12-31T23:59:59.999Z");
    CHECK(format_time_ms(-999) == "1969-12-31T23:59:59.001Z");
    CHECK(format_time_ms(-1000) == "1969-12-31T23:59:59.000Z");
    CHECK(format_time_ms(-1001) == "1969-12-31T23:59:58.999Z");
    CHECK(format_time_ms(-14'182'940'000) == "1969-07-20T20:17:40.000Z");
    CHECK(format_time_ms(-14'182'939'500) == "1969-07-20T20:17:40.500Z");
    CHECK(format_time_ms(-2'208'988'800'000) == "1900-01-01T00:00:00.000Z");
}

TEST_CASE("format_time_ms: extreme values do not crash and keep the shape") {
    for (std::int64_t v :
         {std::numeric_limits<std::int64_t>::max(), std::numeric_limits<std::int64_t>::min()}) {
        CAPTURE(v);
        std::string s = format_time_ms(v);
        REQUIRE_FALSE(s.empty());
        CHECK(s.back() == 'Z');
    }
}

TEST_CASE("format_time_ms(now_ms()) looks current") {
    std::int64_t now = now_ms();
    CHECK(now > 1'700'000'000'000); // after 2023-11
    std::string s = format_time_ms(now);
    CHECK(s.size() == 24);
    CHECK(s[4] == '-');
    CHECK(s[10] == 'T');
    CHECK(s[19] == '.');
    CHECK(s[23] == 'Z');
}

TEST_CASE("priority: to_string / parse_priority round trip") {
    for (auto p : {priority::critical, priority::high, priority::normal, priority::low}) {
        auto text = to_string(p);
        CAPTURE(text);
        auto back = parse_priority(text);
        REQUIRE(back.has_value());
        CHECK(*back == p);
    }
    CHECK(to_string(priority::critical) == "critical");
    CHECK(to_string(priority::high) == "high");
    CHECK(to_string(priority::normal) == "normal");
    CHECK(to_string(priority::low) == "low");
    CHECK(static_cast<int>(priority::critical) < static_cast<int>(priority::low));
    CHECK(message{}.prio == priority::normal);

    for (std::string_view bad : {"", "Critical", "HIGH", "Normal", " low", "low ", "urgent", "0",
                                 "2", "norm", "normal\n", "lowest"}) {
        CAPTURE(bad);
        CHECK_FALSE(parse_priority(bad).has_value());
    }
    CHECK_FALSE(parse_priority(std::string_view("low\0", 4)).has_value());
}

TEST_CASE("priority: an out-of-range value prints as normal") {
    CHECK(to_string(static_cast<priority>(9)) == "normal");
}

TEST_CASE("message equality compares every field") {
    message a{"0190a5d3-ac96-7f4b-bcce-b302099a8057", "L1", 1, "t", priority::high, "{}", 5};
    message b = a;
    CHECK(a == b);
    b.seq = 2;
    CHECK_FALSE(a == b);
    b = a;
    b.prio = priority::low;
    CHECK_FALSE(a == b);
    b = a;
    b.data = R"({"a":1})";
    CHECK_FALSE(a == b);
    b = a;
    b.created_at_ms = 6;
    CHECK_FALSE(a == b);
}
