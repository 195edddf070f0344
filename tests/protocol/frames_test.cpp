// Unit tests for protocol/frames.hpp: encode/decode of every peer frame, every decode
// rejection with its close code, HMAC peer proofs, random nonces and encoded_size.

#include "protocol/frames.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <limits>
#include <set>
#include <string>
#include <string_view>
#include <variant>

using namespace lanesync::protocol;
using namespace std::string_literals;
using json = nlohmann::json;

namespace {

const std::string nonce_a = "00112233445566778899aabbccddeeff";
const std::string nonce_b = "ffeeddccbbaa99887766554433221100";
const std::string mac64 = std::string(64, 'a');

/// A valid message of every field, data canonical.
message sample_message(std::uint64_t seq = 1, std::string origin = "L1") {
    message m;
    m.id = "0190a5d3-ac96-7f4b-bcce-b302099a8057";
    m.origin = std::move(origin);
    m.seq = seq;
    m.topic = "transaction";
    m.prio = priority::high;
    m.data = canonical_json(json::parse(R"({"total":12.5,"items":[{"sku":"A1","qty":2}]})"));
    m.created_at_ms = 1'795'319'840'123;
    return m;
}

/// The JSON object of one message as it appears inside a batch frame.
json message_obj() {
    return json{{"id", "0190a5d3-ac96-7f4b-bcce-b302099a8057"},
                {"origin", "L1"},
                {"seq", 1},
                {"topic", "transaction"},
                {"priority", "normal"},
                {"data", {{"a", 1}}},
                {"created_at", 1'700'000'000'000}};
}

json batch_with(const json& msg) {
    return json{{"type", "batch"}, {"n", 1}, {"messages", json::array({msg})}};
}

json hello_obj() {
    return json{
        {"type", "hello"}, {"v", 1}, {"store", "store-1"}, {"terminal", "L1"}, {"nonce", nonce_a}};
}

json challenge_obj() {
    return json{{"type", "challenge"}, {"v", 1},           {"store", "store-1"},
                {"terminal", "L2"},    {"nonce", nonce_b}, {"mac", mac64}};
}

template <class F> F decode_ok(std::string_view text, const frame_limits& lim = {}) {
    CAPTURE(text);
    auto r = decode_frame(text, lim);
    if (const auto* e = std::get_if<decode_error>(&r))
        FAIL("unexpected decode error " << e->close_code << ": " << e->reason);
    const auto& f = std::get<frame>(r);
    REQUIRE(std::holds_alternative<F>(f));
    return std::get<F>(f);
}

/// Decodes `text`, expects a refusal with `code`, and (when given) a reason equal to `reason`.
void expect_error(std::string_view text, std::uint16_t code, std::string_view reason = {},
                  const frame_limits& lim = {}) {
    CAPTURE(text);
    auto r = decode_frame(text, lim);
    REQUIRE(std::holds_alternative<decode_error>(r));
    const auto& e = std::get<decode_error>(r);
    CHECK(e.close_code == code);
    CHECK_FALSE(e.reason.empty());
    if (!reason.empty())
        CHECK(e.reason == reason);
    // A close reason must fit a WebSocket close frame (123 bytes) and be valid UTF-8.
    CHECK(e.reason.size() <= 123);
    CHECK_NOTHROW((void)json(e.reason).dump());
}

void expect_policy(const json& j, std::string_view reason, const frame_limits& lim = {}) {
    expect_error(j.dump(), 1008, reason, lim);
}

} // namespace

// ---------------------------------------------------------------------------------------------
// Round trips.

TEST_CASE("hello round trip") {
    hello_frame h{1, "store-1", "L1", nonce_a};
    std::string text = encode(h);
    auto back = decode_ok<hello_frame>(text);
    CHECK(back.version == 1);
    CHECK(back.store == "store-1");
    CHECK(back.terminal == "L1");
    CHECK(back.nonce == nonce_a);
    CHECK(encode(back) == text);
    CHECK(json::parse(text)["type"] == "hello");
    CHECK(json::parse(text)["v"] == 1);
}

TEST_CASE("hello round trip with unusual but valid values") {
    hello_frame h{7, std::string(64, 'S'), std::string(32, '_'), std::string(128, '0')};
    auto back = decode_ok<hello_frame>(encode(h));
    CHECK(back.version == 7); // decode does not judge the version; the session does
    CHECK(back.store == h.store);
    CHECK(back.terminal == h.terminal);
    CHECK(back.nonce == h.nonce);
    hello_frame v0{0, "s", "t", nonce_a};
    CHECK(decode_ok<hello_frame>(encode(v0)).version == 0);
}

TEST_CASE("challenge round trip") {
    std::string mac = peer_mac("secret-secret-secret", peer_role::server, "store-1", "L1", "L2",
                               nonce_a, nonce_b);
    challenge_frame c{1, "store-1", "L2", nonce_b, mac};
    std::string text = encode(c);
    auto back = decode_ok<challenge_frame>(text);
    CHECK(back.version == 1);
    CHECK(back.store == "store-1");
    CHECK(back.terminal == "L2");
    CHECK(back.nonce == nonce_b);
    CHECK(back.mac == mac);
    CHECK(encode(back) == text);
}

TEST_CASE("auth round trip") {
    std::string mac = peer_mac("secret-secret-secret", peer_role::client, "store-1", "L1", "L2",
                               nonce_a, nonce_b);
    std::string text = encode(auth_frame{mac});
    CHECK(text == R"({"mac":")" + mac + R"(","type":"auth"})");
    auto back = decode_ok<auth_frame>(text);
    CHECK(back.mac == mac);
    CHECK(encode(back) == text);
}

TEST_CASE("ready round trip: empty and several origins") {
    std::string empty = encode(ready_frame{});
    CHECK(empty == R"({"hwm":{},"type":"ready"})");
    CHECK(decode_ok<ready_frame>(empty).hwm.empty());

    ready_frame r;
    r.hwm = {{"L1", 0},
             {"L2", 123},
             {"lane_3-x", 1},
             {std::string(32, 'Z'),
              static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())},
             {"L9", std::numeric_limits<std::uint64_t>::max()}};
    std::string text = encode(r);
    auto back = decode_ok<ready_frame>(text);
    CHECK(back.hwm == r.hwm);
    CHECK(encode(back) == text);
}

TEST_CASE("batch round trip: several messages, unicode and nested data, a floor") {
    batch_frame b;
    b.n = 42;
    b.messages.push_back(sample_message(1, "L1"));
    message m2 = sample_message(2, "L1");
    m2.id = "0190a5d3-ac96-7f4b-bcce-b302099a8058";
    m2.prio = priority::critical;
    m2.topic = "stock.move_v2-x";
    m2.data = canonical_json(json::parse(
        "{\"name\":\"Caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xe2\x82\xac \xf0\x9f\x98\x80\","
        "\"ctl\":\"tab\\tnl\\n\\u0001 quote\\\" back\\\\\","
        "\"nest\":{\"z\":[1,2.5,-3,{\"deep\":{\"deeper\":[null,true,false,[]]}}],\"a\":{}},"
        "\"big\":18446744073709551615,\"neg\":-9223372036854775808,\"f\":0.1}"));
    m2.created_at_ms = 0;
    message m3 = sample_message(7, "L3");
    m3.id = "ffffffff-ffff-7fff-bfff-ffffffffffff";
    m3.prio = priority::low;
    m3.data = "{}";
    m3.created_at_ms = -5; // informational, a skewed clock is not an error
    message m4 = sample_message(
        static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()), std::string(32, 'o'));
    m4.prio = priority::normal;
    m4.topic = std::string(64, 't');
    b.messages.push_back(m2);
    b.messages.push_back(m3);
    b.messages.push_back(m4);
    b.floor = {{"L1", 1}, {"L3", 7}, {"L4", 0}};

    std::string text = encode(b);
    auto back = decode_ok<batch_frame>(text);
    CHECK(back.n == 42);
    REQUIRE(back.messages.size() == 4);
    for (std::size_t i = 0; i < 4; ++i) {
        CAPTURE(i);
        CHECK(back.messages[i] == b.messages[i]);
        // data is byte-identical canonical text after the trip
        CHECK(back.messages[i].data == b.messages[i].data);
        CHECK(canonical_json(json::parse(back.messages[i].data)) == back.messages[i].data);
    }
    CHECK(back.floor == b.floor);
    CHECK(encode(back) == text);
}

TEST_CASE("batch encode writes exactly what a json DOM of the frame dumps") {
    // The encoder writes the text directly (data verbatim); it must stay the library's text.
    batch_frame b;
    b.n = 9;
    message odd = sample_message(3, "L_2-x");
    odd.data = canonical_json(json::parse(R"({"q":"a\"b\\c\u0002","e":1e300,"u":"\u00e9"})"));
    odd.created_at_ms = -1;
    b.messages = {sample_message(1), sample_message(2), odd};
    for (bool with_floor : {false, true}) {
        CAPTURE(with_floor);
        b.floor = with_floor ? hwm_map{{"L1", 3}, {"L9", 0}} : hwm_map{};
        json msgs = json::array();
        for (const auto& m : b.messages)
            msgs.push_back(json{{"id", m.id},
                                {"origin", m.origin},
                                {"seq", m.seq},
                                {"topic", m.topic},
                                {"priority", std::string(to_string(m.prio))},
                                {"data", json::parse(m.data)},
                                {"created_at", m.created_at_ms}});
        json j{{"type", "batch"}, {"n", b.n}, {"messages", msgs}};
        if (with_floor)
            j["floor"] = json{{"L1", 3}, {"L9", 0}};
        CHECK(encode(b) == j.dump());
        CHECK(decode_ok<batch_frame>(encode(b)).messages == b.messages);
    }
    // Data that is not JSON (a damaged row) is refused by the sender, never sent half-made.
    for (const char* bad : {"", "{", R"({"a":1}, "x":2)", "not json"}) {
        CAPTURE(bad);
        b.messages[1].data = bad;
        CHECK_THROWS_AS(encode(b), std::invalid_argument);
    }
}

TEST_CASE("batch round trip: no floor means no floor field") {
    batch_frame b;
    b.n = 1;
    b.messages.push_back(sample_message());
    std::string text = encode(b);
    CHECK_FALSE(json::parse(text).contains("floor"));
    auto back = decode_ok<batch_frame>(text);
    CHECK(back.floor.empty());
    CHECK(back.messages == b.messages);
    // An explicit empty floor is accepted too.
    json j = json::parse(text);
    j["floor"] = json::object();
    CHECK(decode_ok<batch_frame>(j.dump()).floor.empty());
}

TEST_CASE("batch decode normalizes an uppercase message id") {
    json m = message_obj();
    m["id"] = "0190A5D3-AC96-7F4B-BCCE-B302099A8057";
    auto b = decode_ok<batch_frame>(batch_with(m).dump());
    REQUIRE(b.messages.size() == 1);
    CHECK(b.messages[0].id == "0190a5d3-ac96-7f4b-bcce-b302099a8057");
}

TEST_CASE("batch decode canonicalizes data written in another key order") {
    std::string text =
        R"({"messages":[{"created_at":1,"data":{ "b" : [ 1 , { "y" : 1 , "x" : 2 } ] , "a" : "\u00e9" },)"
        R"("id":"0190a5d3-ac96-7f4b-bcce-b302099a8057","origin":"L1","priority":"low","seq":3,"topic":"t"}],)"
        R"("n":1,"type":"batch"})";
    auto b = decode_ok<batch_frame>(text);
    REQUIRE(b.messages.size() == 1);
    CHECK(b.messages[0].data == "{\"a\":\"\xc3\xa9\",\"b\":[1,{\"x\":2,\"y\":1}]}");
    CHECK(b.messages[0].seq == 3);
    CHECK(b.messages[0].prio == priority::low);
    CHECK(b.messages[0].created_at_ms == 1);
}

TEST_CASE("ack round trip") {
    ack_frame a;
    a.n = 42;
    a.hwm = {{"L1", 10}, {"L2", 0}, {"L3", 99999}};
    std::string text = encode(a);
    auto back = decode_ok<ack_frame>(text);
    CHECK(back.n == 42);
    CHECK(back.hwm == a.hwm);
    CHECK(encode(back) == text);

    ack_frame big;
    big.n = std::numeric_limits<std::uint64_t>::max();
    CHECK(decode_ok<ack_frame>(encode(big)).n == std::numeric_limits<std::uint64_t>::max());
}

TEST_CASE("encoded frames are compact, sorted JSON objects") {
    std::string text = encode(hello_frame{1, "store-1", "L1", nonce_a});
    CHECK(text == R"({"nonce":")" + nonce_a +
                      R"(","store":"store-1","terminal":"L1","type":"hello","v":1})");
    CHECK(text.find(' ') == std::string::npos);
    CHECK(encode(ack_frame{3, {{"L1", 5}}}) == R"({"hwm":{"L1":5},"n":3,"type":"ack"})");
}

TEST_CASE("decode accepts field order and whitespace freely") {
    auto h = decode_ok<hello_frame>(
        "  {\n\"nonce\" : \"" + nonce_a +
        "\" , \"v\":1,\"terminal\":\"L1\",\t\"store\":\"s\",\"type\":\"hello\"}\n");
    CHECK(h.terminal == "L1");
    CHECK(h.store == "s");
}

// ---------------------------------------------------------------------------------------------
// 1007: not JSON / not UTF-8.

TEST_CASE("decode: not JSON is 1007") {
    expect_error("", 1007, "frame is not valid JSON");
    expect_error(" ", 1007, "frame is not valid JSON");
    expect_error("hello", 1007, "frame is not valid JSON");
    expect_error("{type:hello}", 1007, "frame is not valid JSON");
    expect_error(R"({"type":"auth","mac":"x",})", 1007, "frame is not valid JSON");
    expect_error(R"({"type":"auth"} {"type":"auth"})", 1007, "frame is not valid JSON");
    expect_error(std::string_view("{\"type\":\0\"auth\"}", 16), 1007, "frame is not valid JSON");
}

TEST_CASE("decode: every truncation of a valid frame is 1007") {
    batch_frame b;
    b.n = 1;
    b.messages.push_back(sample_message());
    b.floor = {{"L1", 0}};
    const std::string full = encode(b);
    REQUIRE(std::holds_alternative<frame>(decode_frame(full, {})));
    for (std::size_t n = 0; n < full.size(); ++n) {
        CAPTURE(n);
        auto r = decode_frame(std::string_view(full).substr(0, n), {});
        REQUIRE(std::holds_alternative<decode_error>(r));
        CHECK(std::get<decode_error>(r).close_code == 1007);
    }
}

TEST_CASE("decode: invalid UTF-8 is 1007") {
    for (std::string bad :
         {"\x80"s, "\xc3"s, "\xc0\xaf"s, "\xed\xa0\x80"s, "\xf4\x90\x80\x80"s, "\xff"s}) {
        CAPTURE(bad);
        expect_error("{\"type\":\"auth\",\"mac\":\"" + bad + "\"}", 1007,
                     "frame is not valid JSON");
        json m = message_obj();
        std::string t = batch_with(m).dump();
        auto pos = t.find("\"a\":1");
        REQUIRE(pos != std::string::npos);
        t.replace(pos, 5, "\"a\":\"x" + bad + "\"");
        expect_error(t, 1007, "frame is not valid JSON");
    }
    expect_error(R"({"type":"auth","mac":"\ud800"})", 1007, "frame is not valid JSON");
}

TEST_CASE("decode: very deep nesting does not crash") {
    constexpr std::size_t depth = 100'000;
    expect_error(std::string(depth, '['), 1007, "frame is not valid JSON");
    expect_error(std::string(depth, '{'), 1007, "frame is not valid JSON");
    expect_error(std::string(depth, '[') + std::string(depth, ']'), 1008,
                 "frame must be a JSON object");
    // Deep nesting in a field that must be a scalar or a flat map is refused by shape.
    std::string deep = std::string(depth, '[') + std::string(depth, ']');
    expect_error(R"({"type":"auth","mac":)" + deep + "}", 1008, "field mac must be a string");
    expect_error(R"({"type":"ready","hwm":{"L1":)" + deep + "}}", 1008,
                 "field hwm values must be non-negative integers");
}

// ---------------------------------------------------------------------------------------------
// 1008: shape.

TEST_CASE("decode: JSON that is not an object is 1008") {
    for (const char* t :
         {"[]", R"([{"type":"auth"}])", R"("hello")", "1", "-2.5", "true", "false", "null"}) {
        expect_error(t, 1008, "frame must be a JSON object");
    }
}

TEST_CASE("decode: missing, mistyped or unknown type is 1008") {
    expect_error("{}", 1008, "frame has no type");
    expect_error(R"({"mac":"aa"})", 1008, "frame has no type");
    for (const char* v : {"null", "1", "true", "[]", R"(["hello"])", "{}"})
        expect_error(R"({"type":)"s + v + "}", 1008, "frame has no type");
    for (const char* v :
         {"", "HELLO", "Hello", "hello ", "helo", "message", "ping", "acks", "nack"})
        expect_error(R"({"type":")"s + v + R"("})", 1008, "unknown frame type");
}

TEST_CASE("decode hello/challenge: bad version") {
    for (const char* type : {"hello", "challenge"}) {
        CAPTURE(type);
        json base = std::string(type) == "hello" ? hello_obj() : challenge_obj();
        for (json v : {json("1"), json(1.0), json(1.5), json(true), json(nullptr), json::array(),
                       json::object()}) {
            json j = base;
            j["v"] = v;
            expect_policy(j, "field v must be an integer");
        }
        json j = base;
        j.erase("v");
        expect_policy(j, "field v must be an integer");
        j = base;
        j["v"] = -1;
        expect_policy(j, "field v out of range");
        j["v"] = 1'000'001;
        expect_policy(j, "field v out of range");
        j["v"] = std::numeric_limits<std::uint64_t>::max();
        expect_policy(j, "field v out of range");
        j["v"] = 1'000'000;
        CHECK(std::holds_alternative<frame>(decode_frame(j.dump(), {})));
    }
}

TEST_CASE("decode hello/challenge: missing or mistyped store, terminal, nonce") {
    for (const char* type : {"hello", "challenge"}) {
        CAPTURE(type);
        json base = std::string(type) == "hello" ? hello_obj() : challenge_obj();
        for (const char* field : {"store", "terminal", "nonce"}) {
            CAPTURE(field);
            json j = base;
            j.erase(field);
            expect_policy(j, "field "s + field + " must be a string");
            for (json v : {json(1), json(nullptr), json::array(), json::object(), json(true)}) {
                j = base;
                j[field] = v;
                expect_policy(j, "field "s + field + " must be a string");
            }
        }
    }
}

TEST_CASE("decode hello/challenge: invalid store and terminal ids") {
    for (const char* type : {"hello", "challenge"}) {
        CAPTURE(type);
        json base = std::string(type) == "hello" ? hello_obj() : challenge_obj();
        for (std::string s : {""s, "store 1"s, "store/1"s, "st\xc3\xb6re"s, std::string(65, 's')}) {
            json j = base;
            j["store"] = s;
            expect_policy(j, "invalid store id");
        }
        for (std::string t : {""s, "L 1"s, "L.1"s, "L1\n"s,
                              "\xc5\x81"
                              "1"s,
                              std::string(33, 'L')}) {
            json j = base;
            j["terminal"] = t;
            expect_policy(j, "invalid terminal id");
        }
        json j = base;
        j["store"] = std::string(64, 's');
        j["terminal"] = std::string(32, 't');
        CHECK(std::holds_alternative<frame>(decode_frame(j.dump(), {})));
    }
}

TEST_CASE("decode hello/challenge: nonce must be 16-64 bytes of lowercase hex") {
    const std::string why = "nonce must be 16-64 bytes of lowercase hex";
    for (const char* type : {"hello", "challenge"}) {
        CAPTURE(type);
        json base = std::string(type) == "hello" ? hello_obj() : challenge_obj();
        auto with = [&](const std::string& nonce) {
            json j = base;
            j["nonce"] = nonce;
            return j;
        };
        expect_policy(with(""), why);
        expect_policy(with(std::string(30, 'a')), why);  // 15 bytes: too short
        expect_policy(with(std::string(31, 'a')), why);  // odd
        expect_policy(with(std::string(33, 'a')), why);  // odd
        expect_policy(with(std::string(127, 'a')), why); // odd
        expect_policy(with(std::string(130, 'a')), why); // 65 bytes: too long
        expect_policy(with(std::string(32, 'A')), why);  // uppercase
        expect_policy(with("00112233445566778899AABBCCDDEEFF"), why);
        expect_policy(with(std::string(31, 'a') + "g"), why);
        expect_policy(with(std::string(30, 'a') + "0x"), why);
        expect_policy(with(std::string(30, 'a') + " a"), why);
        expect_policy(with(std::string(30, 'a') + "\xc3\xa9"), why);
        // Boundaries accepted.
        CHECK(std::holds_alternative<frame>(decode_frame(with(std::string(32, 'f')).dump(), {})));
        CHECK(std::holds_alternative<frame>(decode_frame(with(std::string(128, '9')).dump(), {})));
        CHECK(std::holds_alternative<frame>(decode_frame(with(std::string(34, '0')).dump(), {})));
    }
}

TEST_CASE("decode hello: extra fields") {
    json j = hello_obj();
    j["mac"] = mac64; // a hello never carries a mac
    expect_policy(j, "hello has unknown fields");
    j = hello_obj();
    j["extra"] = nullptr;
    expect_policy(j, "hello has unknown fields");
}

TEST_CASE("decode challenge: mac") {
    const std::string why = "mac must be 32 bytes of lowercase hex";
    json j = challenge_obj();
    j.erase("mac");
    expect_policy(j, "field mac must be a string");
    for (json v : {json(1), json(nullptr), json::array()}) {
        j = challenge_obj();
        j["mac"] = v;
        expect_policy(j, "field mac must be a string");
    }
    for (std::string m : {""s, std::string(62, 'a'), std::string(63, 'a'), std::string(65, 'a'),
                          std::string(66, 'a'), std::string(128, 'a'), std::string(64, 'A'),
                          std::string(63, 'a') + "g", std::string(63, 'a') + " "}) {
        j = challenge_obj();
        j["mac"] = m;
        expect_policy(j, why);
    }
    j = challenge_obj();
    j["extra"] = 1;
    expect_policy(j, "challenge has unknown fields");
}

TEST_CASE("decode auth: mac and extra fields") {
    const std::string why = "mac must be 32 bytes of lowercase hex";
    expect_policy(json{{"type", "auth"}}, "field mac must be a string");
    expect_policy(json{{"type", "auth"}, {"mac", 5}}, "field mac must be a string");
    for (std::string m : {""s, std::string(62, 'a'), std::string(66, 'a'), std::string(64, 'A'),
                          std::string(63, 'a') + "z", std::string(63, 'a') + "-",
                          std::string(62, 'a') + "\xc3\xa9"}) {
        expect_policy(json{{"type", "auth"}, {"mac", m}}, why);
    }
    expect_policy(json{{"type", "auth"}, {"mac", mac64}, {"terminal", "L1"}},
                  "auth has unknown fields");
    CHECK(decode_ok<auth_frame>(json{{"type", "auth"}, {"mac", mac64}}.dump()).mac == mac64);
}

TEST_CASE("decode ready: hwm shape and values") {
    expect_policy(json{{"type", "ready"}}, "field hwm is missing");
    for (json v :
         {json::array(), json(json::array({1})), json("L1"), json(5), json(nullptr), json(true)}) {
        expect_policy(json{{"type", "ready"}, {"hwm", v}}, "field hwm must be an object");
    }
    for (json v : {json(-1), json(std::numeric_limits<std::int64_t>::min()), json(1.5), json(1.0),
                   json("5"), json(nullptr), json(true), json::array(), json::object()}) {
        CAPTURE(v.dump());
        expect_policy(json{{"type", "ready"}, {"hwm", {{"L1", 1}, {"L2", v}}}},
                      "field hwm values must be non-negative integers");
    }
    for (std::string origin : {""s, "L 1"s, "L.1"s, std::string(33, 'L'), "caf\xc3\xa9"s}) {
        expect_policy(json{{"type", "ready"}, {"hwm", {{origin, 1}}}},
                      "field hwm has an invalid origin id");
    }
    expect_policy(json{{"type", "ready"}, {"hwm", json::object()}, {"n", 1}},
                  "ready has unknown fields");
    // "-0" parses as integer zero and is accepted as 0.
    auto r = decode_ok<ready_frame>(R"({"type":"ready","hwm":{"L1":-0}})");
    CHECK(r.hwm.at("L1") == 0);
}

TEST_CASE("decode ready/ack/batch floor: too many origins") {
    frame_limits lim;
    lim.max_origins = 3;
    json three = {{"L1", 1}, {"L2", 1}, {"L3", 1}};
    json four = three;
    four["L4"] = 1;
    CHECK(decode_ok<ready_frame>(json{{"type", "ready"}, {"hwm", three}}.dump(), lim).hwm.size() ==
          3);
    expect_policy(json{{"type", "ready"}, {"hwm", four}}, "field hwm has too many origins", lim);
    CHECK(decode_ok<ack_frame>(json{{"type", "ack"}, {"n", 1}, {"hwm", three}}.dump(), lim)
              .hwm.size() == 3);
    expect_policy(json{{"type", "ack"}, {"n", 1}, {"hwm", four}}, "field hwm has too many origins",
                  lim);
    json b = batch_with(message_obj());
    b["floor"] = three;
    CHECK(decode_ok<batch_frame>(b.dump(), lim).floor.size() == 3);
    b["floor"] = four;
    expect_policy(b, "field floor has too many origins", lim);

    // Default limit: 1024.
    json many = json::object();
    for (int i = 0; i < 1024; ++i)
        many["o" + std::to_string(i)] = i;
    CHECK(decode_ok<ready_frame>(json{{"type", "ready"}, {"hwm", many}}.dump()).hwm.size() == 1024);
    many["o1024"] = 1;
    expect_policy(json{{"type", "ready"}, {"hwm", many}}, "field hwm has too many origins");
}

TEST_CASE("decode batch: n") {
    json b = batch_with(message_obj());
    b["n"] = 0;
    expect_policy(b, "batch n must be >= 1");
    for (json v :
         {json(-1), json(1.0), json(1.5), json("1"), json(nullptr), json(true), json::array()}) {
        b["n"] = v;
        expect_policy(b, "field n must be a non-negative integer");
    }
    b.erase("n");
    expect_policy(b, "field n must be a non-negative integer");
    b["n"] = std::numeric_limits<std::uint64_t>::max();
    CHECK(decode_ok<batch_frame>(b.dump()).n == std::numeric_limits<std::uint64_t>::max());
}

TEST_CASE("decode batch: messages array, empty, too many") {
    json b = batch_with(message_obj());
    b.erase("messages");
    expect_policy(b, "batch messages must be an array");
    for (json v : {json::object(), json("x"), json(1), json(nullptr), message_obj()}) {
        b["messages"] = v;
        expect_policy(b, "batch messages must be an array");
    }
    b["messages"] = json::array();
    expect_policy(b, "batch is empty");

    frame_limits lim;
    lim.max_messages = 4;
    json msgs = json::array();
    for (int i = 1; i <= 4; ++i) {
        json m = message_obj();
        m["seq"] = i;
        msgs.push_back(m);
    }
    b["messages"] = msgs;
    CHECK(decode_ok<batch_frame>(b.dump(), lim).messages.size() == 4);
    json m5 = message_obj();
    m5["seq"] = 5;
    b["messages"].push_back(m5);
    expect_policy(b, "batch has too many messages", lim);

    // The default limit (256) is enforced as well.
    json big = json::array();
    for (int i = 1; i <= 257; ++i) {
        json m = message_obj();
        m["seq"] = i;
        big.push_back(m);
    }
    b["messages"] = big;
    expect_policy(b, "batch has too many messages");
    big.erase(big.size() - 1);
    b["messages"] = big;
    CHECK(decode_ok<batch_frame>(b.dump()).messages.size() == 256);
}

TEST_CASE("decode batch: a message that is not an object") {
    for (json v : {json::array(), json("m"), json(1), json(nullptr)}) {
        json b = batch_with(message_obj());
        b["messages"].push_back(v);
        expect_policy(b, "batch messages must be objects");
    }
}

TEST_CASE("decode batch: each message field missing") {
    const std::pair<const char*, const char*> cases[] = {
        {"id", "field id must be a string"},
        {"origin", "field origin must be a string"},
        {"seq", "field seq must be a non-negative integer"},
        {"topic", "field topic must be a string"},
        {"priority", "field priority must be a string"},
        {"data", "message data must be an object"},
        {"created_at", "message created_at must be an integer (unix ms)"},
    };
    for (auto [field, why] : cases) {
        CAPTURE(field);
        json m = message_obj();
        m.erase(field);
        expect_policy(batch_with(m), why);
    }
}

TEST_CASE("decode batch: each message field of the wrong type") {
    const json wrong_types[] = {json(nullptr), json(true),    json(1),       json(1.5),
                                json("s"),     json::array(), json::object()};
    const std::pair<const char*, const char*> cases[] = {
        {"id", "field id must be a string"},
        {"origin", "field origin must be a string"},
        {"seq", "field seq must be a non-negative integer"},
        {"topic", "field topic must be a string"},
        {"priority", "field priority must be a string"},
        {"data", "message data must be an object"},
        {"created_at", "message created_at must be an integer (unix ms)"},
    };
    for (auto [field, why] : cases) {
        for (const json& v : wrong_types) {
            std::string f = field;
            bool right_type = ((f == "id" || f == "origin" || f == "topic" || f == "priority") &&
                               v.is_string()) ||
                              ((f == "seq" || f == "created_at") && v.is_number_integer()) ||
                              (f == "data" && v.is_object());
            if (right_type)
                continue;
            CAPTURE(field);
            CAPTURE(v.dump());
            json m = message_obj();
            m[field] = v;
            expect_policy(batch_with(m), why);
        }
    }
}

TEST_CASE("decode batch: invalid message field values") {
    auto with = [](const char* field, json v) {
        json m = message_obj();
        m[field] = std::move(v);
        return batch_with(m);
    };
    for (const char* id :
         {"", "x", "0190a5d3ac967f4bbcceb302099a8057", "0190a5d3-ac96-7f4b-bcce-b302099a805g",
          "0190a5d3-ac96-7f4b-bcce-b302099a80577"})
        expect_policy(with("id", id), "message id must be a UUID");
    for (std::string o : {""s, "L 1"s, "L/1"s, std::string(33, 'L'), "\xc5\x81"s})
        expect_policy(with("origin", o), "message origin is not a valid terminal id");
    expect_policy(with("seq", 0), "message seq must be between 1 and 2^63-1");
    expect_policy(with("seq", -1), "field seq must be a non-negative integer");
    expect_policy(
        with("seq", static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()) + 1),
        "message seq must be between 1 and 2^63-1");
    expect_policy(with("seq", std::numeric_limits<std::uint64_t>::max()),
                  "message seq must be between 1 and 2^63-1");
    for (std::string t : {""s, "Topic"s, "a b"s, "a/b"s, std::string(65, 't'), "caf\xc3\xa9"s})
        expect_policy(with("topic", t), "message topic is invalid");
    for (const char* p : {"", "urgent", "HIGH", "Normal", " low"})
        expect_policy(with("priority", p), "message priority is invalid");
    expect_policy(with("created_at", 1.0), "message created_at must be an integer (unix ms)");
    expect_policy(with("created_at", "1700000000000"),
                  "message created_at must be an integer (unix ms)");

    // Accepted extremes.
    auto b = decode_ok<batch_frame>(
        with("seq", static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())).dump());
    CHECK(b.messages[0].seq ==
          static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()));
    b = decode_ok<batch_frame>(with("created_at", std::numeric_limits<std::int64_t>::min()).dump());
    CHECK(b.messages[0].created_at_ms == std::numeric_limits<std::int64_t>::min());
}

TEST_CASE("decode batch: data over max_message_bytes") {
    // Limit applies to the canonical data text. {"a":"xxx..."}: 8 bytes of overhead.
    frame_limits lim;
    lim.max_message_bytes = 100;
    json m = message_obj();
    m["data"] = {{"a", std::string(100 - 8, 'x')}};
    REQUIRE(canonical_json(m["data"]).size() == 100);
    auto b = decode_ok<batch_frame>(batch_with(m).dump(), lim);
    CHECK(b.messages[0].data.size() == 100);
    m["data"] = {{"a", std::string(100 - 7, 'x')}};
    expect_policy(batch_with(m), "message data over the size limit", lim);

    // Whitespace in the sender's text does not count: only the canonical form is measured.
    std::string padded = batch_with(message_obj()).dump();
    auto pos = padded.find(R"({"a":1})");
    REQUIRE(pos != std::string::npos);
    padded.replace(pos, 7, "{  \"a\"  :  " + std::string(200, ' ') + "1  }");
    frame_limits tight;
    tight.max_message_bytes = 7;
    CHECK(decode_ok<batch_frame>(padded, tight).messages[0].data == R"({"a":1})");

    // Default limit 256 KiB.
    m["data"] = {{"a", std::string(262'144 - 8, 'y')}};
    CHECK(decode_ok<batch_frame>(batch_with(m).dump()).messages[0].data.size() == 262'144);
    m["data"] = {{"a", std::string(262'144 - 7, 'y')}};
    expect_policy(batch_with(m), "message data over the size limit");
}

TEST_CASE("decode batch: unknown message field and unknown batch field") {
    json m = message_obj();
    m["state"] = "pending";
    expect_policy(batch_with(m), "message has unknown fields");
    m = message_obj();
    m["extra"] = nullptr;
    expect_policy(batch_with(m), "message has unknown fields");

    json b = batch_with(message_obj());
    b["extra"] = 1;
    expect_policy(b, "batch has unknown fields");
}

TEST_CASE("decode batch: bad floor") {
    json b = batch_with(message_obj());
    for (json v : {json::array(), json(1), json("x"), json(nullptr)}) {
        b["floor"] = v;
        expect_policy(b, "field floor must be an object");
    }
    b["floor"] = {{"L1", -1}};
    expect_policy(b, "field floor values must be non-negative integers");
    b["floor"] = {{"L1", 1.5}};
    expect_policy(b, "field floor values must be non-negative integers");
    b["floor"] = {{"bad id", 1}};
    expect_policy(b, "field floor has an invalid origin id");
}

TEST_CASE("decode ack: missing or bad n and hwm") {
    expect_policy(json{{"type", "ack"}, {"n", 1}}, "field hwm is missing");
    expect_policy(json{{"type", "ack"}, {"hwm", json::object()}},
                  "field n must be a non-negative integer");
    expect_policy(json{{"type", "ack"}, {"n", -1}, {"hwm", json::object()}},
                  "field n must be a non-negative integer");
    expect_policy(json{{"type", "ack"}, {"n", "1"}, {"hwm", json::object()}},
                  "field n must be a non-negative integer");
    expect_policy(json{{"type", "ack"}, {"n", 1}, {"hwm", json::array()}},
                  "field hwm must be an object");
    expect_policy(json{{"type", "ack"}, {"n", 1}, {"hwm", {{"L1", -3}}}},
                  "field hwm values must be non-negative integers");
    expect_policy(json{{"type", "ack"}, {"n", 1}, {"hwm", {{"L1", "3"}}}},
                  "field hwm values must be non-negative integers");
    expect_policy(json{{"type", "ack"}, {"n", 1}, {"hwm", json::object()}, {"x", 0}},
                  "ack has unknown fields");
}

TEST_CASE("decode never throws on a mutated corpus") {
    // Flip / drop / duplicate single bytes of every frame type: each result must be either a
    // frame or a decode_error with 1007/1008, never an exception.
    batch_frame b;
    b.n = 3;
    b.messages.push_back(sample_message());
    b.floor = {{"L2", 4}};
    const std::string corpus[] = {
        encode(hello_frame{1, "store-1", "L1", nonce_a}),
        encode(challenge_frame{1, "store-1", "L2", nonce_b, mac64}),
        encode(auth_frame{mac64}),
        encode(ready_frame{{{"L1", 3}}}),
        encode(b),
        encode(ack_frame{3, {{"L1", 3}}}),
    };
    const char replacements[] = {'\0', '"', '{', '}', '[', ']',   ',',
                                 ':',  '-', '0', '9', 'A', '\xff'};
    std::size_t checked = 0;
    bool all_ok = true;
    for (const auto& text : corpus) {
        for (std::size_t i = 0; i < text.size(); ++i) {
            for (char c : replacements) {
                std::string t = text;
                t[i] = c;
                try {
                    auto r = decode_frame(t, {});
                    if (auto* e = std::get_if<decode_error>(&r))
                        all_ok &= (e->close_code == 1007 || e->close_code == 1008);
                } catch (...) {
                    all_ok = false;
                    FAIL_CHECK("decode_frame threw on: " << t);
                }
                ++checked;
            }
            std::string dropped = text;
            dropped.erase(i, 1);
            CHECK_NOTHROW((void)decode_frame(dropped, {}));
        }
    }
    CHECK(checked > 1000);
    CHECK(all_ok);
}

// ---------------------------------------------------------------------------------------------
// peer_mac, mac_equal, random_hex.

TEST_CASE("peer_mac: known-answer vectors (openssl dgst -sha256 -hmac)") {
    // printf 'lanesync-peer/1\nclient\nstore-1\nL1\nL2\n<nonce_a>\n<nonce_b>' |
    //     openssl dgst -sha256 -hmac 'correct horse battery staple'
    CHECK(peer_mac("correct horse battery staple", peer_role::client, "store-1", "L1", "L2",
                   nonce_a,
                   nonce_b) == "8f51a0373bb8dbf4a45f1ae7fbec734d19e09487294a2c5bfcaa96a41b5121fb");
    // Same with "server" in the role line.
    CHECK(peer_mac("correct horse battery staple", peer_role::server, "store-1", "L1", "L2",
                   nonce_a,
                   nonce_b) == "545666ba6a5b6f3ab649fdf1a1dec17e5468e31c935ac3b2deaf0647e105ccc5");
}

TEST_CASE("peer_mac: deterministic, lowercase hex, 64 chars") {
    auto mac = [] {
        return peer_mac("0123456789abcdef", peer_role::client, "store-1", "L1", "L2", nonce_a,
                        nonce_b);
    };
    std::string a = mac();
    CHECK(a == mac());
    CHECK(a.size() == 64);
    for (char c : a)
        CHECK(((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')));
    // A mac is acceptable in an auth frame as is.
    CHECK(decode_ok<auth_frame>(encode(auth_frame{a})).mac == a);
}

TEST_CASE("peer_mac: every input changes the result") {
    const std::string secret = "0123456789abcdef";
    const std::string base =
        peer_mac(secret, peer_role::client, "store-1", "L1", "L2", nonce_a, nonce_b);
    std::set<std::string> seen{base};
    auto differs = [&](const std::string& m) {
        CHECK(m != base);
        CHECK(seen.insert(m).second); // also different from every other variant
    };
    differs(peer_mac(secret, peer_role::server, "store-1", "L1", "L2", nonce_a, nonce_b));
    differs(peer_mac(secret, peer_role::client, "store-2", "L1", "L2", nonce_a, nonce_b));
    differs(peer_mac(secret, peer_role::client, "store-1", "L3", "L2", nonce_a, nonce_b));
    differs(peer_mac(secret, peer_role::client, "store-1", "L1", "L3", nonce_a, nonce_b));
    differs(peer_mac(secret, peer_role::client, "store-1", "L1", "L2", nonce_b, nonce_b));
    differs(peer_mac(secret, peer_role::client, "store-1", "L1", "L2", nonce_a, nonce_a));
    differs(
        peer_mac("0123456789abcdeF", peer_role::client, "store-1", "L1", "L2", nonce_a, nonce_b));
    differs(peer_mac(secret + "x", peer_role::client, "store-1", "L1", "L2", nonce_a, nonce_b));
    // Swapping the two terminals or the two nonces is a different proof.
    differs(peer_mac(secret, peer_role::client, "store-1", "L2", "L1", nonce_a, nonce_b));
    differs(peer_mac(secret, peer_role::client, "store-1", "L1", "L2", nonce_b, nonce_a));
    // One flipped nonce bit.
    std::string na = nonce_a;
    na.back() = '0';
    differs(peer_mac(secret, peer_role::client, "store-1", "L1", "L2", na, nonce_b));
}

TEST_CASE("peer_mac: both sides compute the same proofs") {
    const std::string secret = "store-wide-shared-secret";
    // Client and server each compute the other's expected mac from the same public inputs.
    std::string server_proof_by_server =
        peer_mac(secret, peer_role::server, "store-1", "L1", "L2", nonce_a, nonce_b);
    std::string server_proof_checked_by_client =
        peer_mac(secret, peer_role::server, "store-1", "L1", "L2", nonce_a, nonce_b);
    CHECK(mac_equal(server_proof_by_server, server_proof_checked_by_client));
    std::string client_proof =
        peer_mac(secret, peer_role::client, "store-1", "L1", "L2", nonce_a, nonce_b);
    // Reflection: a server proof never passes as a client proof.
    CHECK_FALSE(mac_equal(client_proof, server_proof_by_server));
}

TEST_CASE("mac_equal") {
    std::string a = peer_mac("k", peer_role::client, "s", "a", "b", "c", "d");
    std::string b = a;
    CHECK(mac_equal(a, b));
    CHECK(mac_equal("", ""));
    b.back() = b.back() == '0' ? '1' : '0';
    CHECK_FALSE(mac_equal(a, b));
    b = a;
    b.front() = b.front() == '0' ? '1' : '0';
    CHECK_FALSE(mac_equal(a, b));
    CHECK_FALSE(mac_equal(a, a.substr(0, 63)));
    CHECK_FALSE(mac_equal(a.substr(0, 63), a));
    CHECK_FALSE(mac_equal(a, a + "0"));
    CHECK_FALSE(mac_equal(a, ""));
    CHECK_FALSE(mac_equal("", a));
    CHECK_FALSE(mac_equal("abcdef", "ABCDEF")); // case-sensitive: macs are lowercase hex
    CHECK(mac_equal(std::string_view("a\0b", 3), std::string_view("a\0b", 3)));
    CHECK_FALSE(mac_equal(std::string_view("a\0b", 3), std::string_view("a\0c", 3)));
}

TEST_CASE("random_hex: length, charset, variety") {
    CHECK(random_hex(0).empty());
    for (std::size_t n : {1u, 2u, 16u, 32u, 64u, 1000u}) {
        CAPTURE(n);
        std::string h = random_hex(n);
        CHECK(h.size() == 2 * n);
        bool charset_ok = true;
        for (char c : h)
            charset_ok &= ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
        CHECK(charset_ok);
    }
    // 16-byte nonces never repeat in practice.
    std::set<std::string> seen;
    for (int i = 0; i < 1000; ++i)
        seen.insert(random_hex(16));
    CHECK(seen.size() == 1000);
    // Every hex digit shows up in 4 KiB of output.
    std::string big = random_hex(4096);
    for (char c : std::string("0123456789abcdef")) {
        CAPTURE(c);
        CHECK(big.find(c) != std::string::npos);
    }
    // A 16-byte random_hex is a valid nonce for hello.
    CHECK(decode_ok<hello_frame>(encode(hello_frame{1, "s", "L1", random_hex(16)})).nonce.size() ==
          32);
    CHECK(decode_ok<hello_frame>(encode(hello_frame{1, "s", "L1", random_hex(64)})).nonce.size() ==
          128);
}

// ---------------------------------------------------------------------------------------------
// encoded_size.
//
// What is checked: encoded_size(m) is used to cap a batch's bytes, so it must never be smaller
// than what the message really adds to an encoded batch. For a one-message batch
//     encode({n, {m}}).size() == envelope + object(m)
// where `envelope` is the batch text minus the message object (36 bytes for n = 1, no floor:
// `{"messages":[` + `],"n":1,"type":"batch"}`) and object(m) is the exact compact JSON object of
// the message. We check encoded_size(m) >= object(m) + 1 (the +1 is the ',' separating it from
// the next message in a multi-message batch), i.e. encoded_size(m) >= encode(batch).size() -
// envelope + 1, and that the estimate is not wasteful: at most 160 bytes above object(m).

namespace {

std::size_t message_object_size(const message& m) {
    batch_frame b;
    b.n = 1;
    b.messages.push_back(m);
    std::string text = encode(b);
    auto j = json::parse(text);
    std::size_t obj = j["messages"][0].dump().size();
    // The envelope is constant for n = 1 without a floor.
    CHECK(text.size() - obj == std::string(R"({"messages":[],"n":1,"type":"batch"})").size());
    return obj;
}

} // namespace

TEST_CASE("encoded_size bounds the real encoded size of a message") {
    std::vector<message> ms;
    ms.push_back(sample_message());
    message small = sample_message();
    small.origin = "L";
    small.topic = "t";
    small.data = "{}";
    small.prio = priority::low;
    small.created_at_ms = 0;
    ms.push_back(small);
    message worst = sample_message(
        static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()), std::string(32, 'O'));
    worst.topic = std::string(64, 't');
    worst.prio = priority::critical;
    worst.created_at_ms = std::numeric_limits<std::int64_t>::min();
    ms.push_back(worst);
    message uni = sample_message();
    uni.data = canonical_json(json::parse("{\"s\":\"\xf0\x9f\x98\x80\xe6\x97\xa5\",\"c\":"
                                          "\"\\u0001\\n\\\"\",\"n\":[1.5,-2,{\"x\":null}]}"));
    ms.push_back(uni);
    message large = sample_message();
    large.data = canonical_json(json{{"blob", std::string(200'000, 'z')}});
    ms.push_back(large);

    for (const auto& m : ms) {
        CAPTURE(m.origin);
        CAPTURE(m.topic);
        CAPTURE(m.data.size());
        std::size_t actual = message_object_size(m);
        std::size_t est = encoded_size(m);
        CAPTURE(actual);
        CAPTURE(est);
        CHECK(est >= actual + 1);
        CHECK(est <= actual + 160);
    }

    // Sum over a multi-message batch: the estimates plus the envelope cover the whole frame.
    batch_frame b;
    b.n = 1;
    b.messages = ms;
    std::size_t sum = 0;
    for (const auto& m : ms)
        sum += encoded_size(m);
    CHECK(sum + std::string(R"({"messages":[],"n":1,"type":"batch"})").size() >= encode(b).size());
}

TEST_CASE("encoded_size grows with data") {
    message a = sample_message();
    message b = a;
    b.data = canonical_json(json{{"k", std::string(1000, 'v')}});
    CHECK(encoded_size(b) > encoded_size(a));
    CHECK(encoded_size(b) - encoded_size(a) == b.data.size() - a.data.size());
}

TEST_CASE("regression: ack n = 0 is refused like batch n = 0") {
    expect_policy(json{{"type", "ack"}, {"n", 0}, {"hwm", json::object()}}, "ack n must be >= 1");
}

TEST_CASE("regression: created_at above INT64_MAX is refused, not wrapped") {
    json m = message_obj();
    m["created_at"] = std::numeric_limits<std::uint64_t>::max();
    expect_policy(batch_with(m), "message created_at must be an integer (unix ms)");
}

TEST_CASE("regression: deeply nested data in a batch message is refused without crashing") {
    constexpr std::size_t depth = 100'000;
    std::string nested = std::string(depth, '[') + std::string(depth, ']');
    json m = message_obj();
    m["data"] = json::object();
    std::string text = batch_with(m).dump();
    // Splice the deep array into data by text, so building the test input does not recurse.
    auto pos = text.find("\"data\":{}");
    REQUIRE(pos != std::string::npos);
    text.replace(pos, 9, "\"data\":{\"a\":" + nested + "}");
    expect_error(text, 1008, "message data nests too deep");
}
