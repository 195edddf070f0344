// Unit tests for protocol/publish.hpp: the local API body (parse_publish_request) and the CLI
// path (make_publish_request). Every rejected input is checked with its exact error text.

#include "protocol/publish.hpp"

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>

using namespace lanesync::protocol;
using namespace std::string_literals;

namespace {

const char* const err_not_json = "body is not valid JSON";
const char* const err_not_object = "body must be a JSON object";
const char* const err_missing_topic = "missing field: topic";
const char* const err_topic_type = "topic must be a string";
const char* const err_topic = "topic must be 1-64 characters of [a-z0-9_.-]";
const char* const err_missing_data = "missing field: data";
const char* const err_data = "data must be a JSON object";
const char* const err_id_type = "id must be a string";
const char* const err_id = "id must be a UUID (8-4-4-4-12 hex digits)";
const char* const err_prio_type = "priority must be a string";
const char* const err_prio = "priority must be one of critical, high, normal, low";
const char* const err_cli_data_json = "data is not valid JSON";

const std::string uuid_lower = "0190a5d3-ac96-7f4b-bcce-b302099a8057";
const std::string uuid_upper = "0190A5D3-AC96-7F4B-BCCE-B302099A8057";

/// Parses `body` and checks it is refused with exactly `why`.
void check_rejected(std::string_view body, std::string_view why) {
    CAPTURE(body);
    auto r = parse_publish_request(body);
    REQUIRE_FALSE(r.ok());
    CHECK_FALSE(static_cast<bool>(r));
    CHECK(r.error() == why);
}

/// {"topic":"transaction","data":{"a":1}} with one field replaced (or removed when `value` is
/// empty) — the rest of the body stays valid so only that field can cause the error.
std::string body_with(const std::string& field, const std::string& value) {
    nlohmann::json j = {{"topic", "transaction"}, {"data", {{"a", 1}}}};
    if (value.empty())
        j.erase(field);
    else
        j[field] = nlohmann::json::parse(value);
    return j.dump();
}

/// The error text must itself be safe to embed in a JSON error response.
void check_error_is_valid_utf8(const std::string& err) {
    CAPTURE(err);
    CHECK_NOTHROW((void)nlohmann::json(err).dump());
}

} // namespace

TEST_CASE("parse_publish_request: minimal body is accepted with defaults") {
    auto r =
        parse_publish_request(R"({"topic":"transaction","data":{"total":12.5,"items":[1,2]}})");
    REQUIRE(r.ok());
    CHECK(r.error().empty());
    CHECK(r->topic == "transaction");
    CHECK(r->data == R"({"items":[1,2],"total":12.5})");
    CHECK_FALSE(r->id.has_value());
    CHECK(r->prio == priority::normal);
}

TEST_CASE("parse_publish_request: all fields, any order, any whitespace") {
    auto r = parse_publish_request(
        "\n { \"priority\" : \"critical\" ,\t\"data\":{ \"b\" : 2, \"a\" : { \"y\":1,\"x\":0 } },"
        " \"id\": \"" +
        uuid_lower + "\", \"topic\":\"stock.move_v2-x\" } \n");
    REQUIRE(r.ok());
    CHECK(r->topic == "stock.move_v2-x");
    CHECK(r->data == R"({"a":{"x":0,"y":1},"b":2})");
    REQUIRE(r->id.has_value());
    CHECK(*r->id == uuid_lower);
    CHECK(r->prio == priority::critical);
}

TEST_CASE("parse_publish_request: uppercase UUID is normalized to lowercase") {
    auto r = parse_publish_request(R"({"topic":"t","data":{},"id":")" + uuid_upper + R"("})");
    REQUIRE(r.ok());
    REQUIRE(r->id.has_value());
    CHECK(*r->id == uuid_lower);
    auto mixed = parse_publish_request(
        R"({"topic":"t","data":{},"id":"0190a5D3-Ac96-7f4B-bCCe-B302099a8057"})");
    REQUIRE(mixed.ok());
    CHECK(*mixed->id == uuid_lower);
}

TEST_CASE("parse_publish_request: every priority value") {
    for (auto [text, p] :
         {std::pair{"critical", priority::critical}, std::pair{"high", priority::high},
          std::pair{"normal", priority::normal}, std::pair{"low", priority::low}}) {
        CAPTURE(text);
        auto r = parse_publish_request(body_with("priority", "\""s + text + "\""));
        REQUIRE(r.ok());
        CHECK(r->prio == p);
    }
}

TEST_CASE("apply_topic_priority: the request's priority wins, then the topic's default") {
    const topic_priorities defaults{{"transaction", priority::high}, {"audit", priority::low}};
    auto named = parse_publish_request(body_with("priority", R"("critical")"));
    REQUIRE(named.ok());
    CHECK(named->prio_given);
    apply_topic_priority(named.value(), defaults);
    CHECK(named->prio == priority::critical);
    // A request naming "normal" keeps normal, even where its topic defaults to high.
    auto normal = parse_publish_request(body_with("priority", R"("normal")"));
    REQUIRE(normal.ok());
    apply_topic_priority(normal.value(), defaults);
    CHECK(normal->prio == priority::normal);
    auto unnamed = parse_publish_request(body_with("priority", ""));
    REQUIRE(unnamed.ok());
    CHECK_FALSE(unnamed->prio_given);
    apply_topic_priority(unnamed.value(), defaults);
    CHECK(unnamed->prio == priority::high);
    auto other = parse_publish_request(R"({"topic":"stock","data":{}})");
    REQUIRE(other.ok());
    apply_topic_priority(other.value(), defaults);
    CHECK(other->prio == priority::normal);
    auto cli = make_publish_request("audit", "{}", std::nullopt, std::nullopt);
    REQUIRE(cli.ok());
    apply_topic_priority(cli.value(), defaults);
    CHECK(cli->prio == priority::low);
    auto cli_named = make_publish_request("audit", "{}", std::nullopt, "high");
    REQUIRE(cli_named.ok());
    apply_topic_priority(cli_named.value(), defaults);
    CHECK(cli_named->prio == priority::high);
}

TEST_CASE("parse_publish_request: null id and null priority mean absent") {
    auto r = parse_publish_request(R"({"topic":"t","data":{},"id":null,"priority":null})");
    REQUIRE(r.ok());
    CHECK_FALSE(r->id.has_value());
    CHECK(r->prio == priority::normal);
    CHECK_FALSE(r->prio_given);
}

TEST_CASE("parse_publish_request: data is stored in canonical form") {
    auto a = parse_publish_request(
        R"({"topic":"t","data":{"z":1,"a":{"d":[3,{"q":1,"p":2}],"c":"\u00e9"}}})");
    auto b =
        parse_publish_request("{\"data\" : { \"a\" : { \"c\" : \"\xc3\xa9\", \"d\" : [ 3 , { \"p\" "
                              ": 2 , \"q\" : 1 } ] } , \"z\" : 1 } , \"topic\" : \"t\"}");
    REQUIRE(a.ok());
    REQUIRE(b.ok());
    CHECK(a->data == b->data);
    CHECK(a->data == "{\"a\":{\"c\":\"\xc3\xa9\",\"d\":[3,{\"p\":2,\"q\":1}]},\"z\":1}");
    // Empty object is fine.
    auto e = parse_publish_request(R"({"topic":"t","data":{}})");
    REQUIRE(e.ok());
    CHECK(e->data == "{}");
}

TEST_CASE("parse_publish_request: topic length boundaries") {
    auto one = parse_publish_request(body_with("topic", R"("a")"));
    REQUIRE(one.ok());
    CHECK(one->topic == "a");
    auto max = parse_publish_request(body_with("topic", "\"" + std::string(64, 'a') + "\""));
    REQUIRE(max.ok());
    CHECK(max->topic == std::string(64, 'a'));
    check_rejected(body_with("topic", "\"" + std::string(65, 'a') + "\""), err_topic);
}

TEST_CASE("parse_publish_request: body that is not JSON") {
    check_rejected("", err_not_json);
    check_rejected(" ", err_not_json);
    check_rejected("hello", err_not_json);
    check_rejected("topic=t&data={}", err_not_json);
    check_rejected("{topic:\"t\",data:{}}", err_not_json);         // unquoted keys
    check_rejected("{'topic':'t','data':{}}", err_not_json);       // single quotes
    check_rejected(R"({"topic":"t","data":{},})", err_not_json);   // trailing comma
    check_rejected(R"({"topic":"t","data":{}} {})", err_not_json); // two values
    check_rejected(R"({"topic":"t","data":{}} x)", err_not_json);  // trailing garbage
    check_rejected(R"({"topic":"t","data":{"a":NaN}})", err_not_json);
    check_rejected(R"({"topic":"t","data":{"a":01}})", err_not_json);
    check_rejected(R"({"topic":"t","data":{"a":1}} // comment)", err_not_json);
    check_rejected(std::string_view("{\"topic\":\"t\",\0\"data\":{}}", 24), err_not_json);
}

TEST_CASE("parse_publish_request: truncated JSON") {
    const std::string full =
        R"({"topic":"transaction","data":{"a":[1,2,{"b":"c"}]},"priority":"low"})";
    REQUIRE(parse_publish_request(full).ok());
    // Every proper prefix is refused as not JSON.
    for (std::size_t n = 0; n < full.size(); ++n) {
        CAPTURE(n);
        auto r = parse_publish_request(std::string_view(full).substr(0, n));
        REQUIRE_FALSE(r.ok());
        CHECK(r.error() == err_not_json);
    }
}

TEST_CASE("parse_publish_request: JSON that is not an object") {
    check_rejected("[]", err_not_object);
    check_rejected(R"([{"topic":"t","data":{}}])", err_not_object);
    check_rejected(R"("{\"topic\":\"t\",\"data\":{}}")", err_not_object);
    check_rejected(R"("string")", err_not_object);
    check_rejected("42", err_not_object);
    check_rejected("-1.5e3", err_not_object);
    check_rejected("true", err_not_object);
    check_rejected("false", err_not_object);
    check_rejected("null", err_not_object);
}

TEST_CASE("parse_publish_request: topic missing or of the wrong type") {
    check_rejected("{}", err_missing_topic);
    check_rejected(R"({"data":{}})", err_missing_topic);
    check_rejected(body_with("topic", ""), err_missing_topic);
    for (const char* v : {"null", "1", "1.5", "true", "[]", R"(["t"])", R"({"t":1})"}) {
        CAPTURE(v);
        check_rejected(body_with("topic", v), err_topic_type);
    }
}

TEST_CASE("parse_publish_request: topic values outside [a-z0-9_.-]{1,64}") {
    for (std::string v :
         {R"("")", R"("Transaction")", R"("TRANSACTION")", R"("sale done")", R"(" sale")",
          R"("sale ")", R"("sale/done")", R"("sale\\done")", R"("sale:done")", R"("sale\tdone")",
          R"("sale\ndone")", R"("sale\u0000")", R"("caf\u00e9")", R"("\ud83d\ude00")",
          R"("sale+1")", R"("sale@x")", R"("sale,x")"}) {
        CAPTURE(v);
        check_rejected(body_with("topic", v), err_topic);
    }
    check_rejected("{\"topic\":\"caf\xc3\xa9\",\"data\":{}}", err_topic);
}

TEST_CASE("parse_publish_request: data missing or not an object") {
    check_rejected(R"({"topic":"t"})", err_missing_data);
    check_rejected(body_with("data", ""), err_missing_data);
    for (const char* v : {"[]", R"([{"a":1}])", R"("{}")", R"("text")", "null", "0", "1.5", "-3",
                          "true", "false"}) {
        CAPTURE(v);
        check_rejected(body_with("data", v), err_data);
    }
}

TEST_CASE("parse_publish_request: topic is checked before data") {
    check_rejected(R"({"topic":"BAD","data":[]})", err_topic);
    check_rejected(R"({"data":[]})", err_missing_topic);
}

TEST_CASE("parse_publish_request: id of the wrong type or not a UUID") {
    for (const char* v : {"1", "1.5", "true", "false", "[]",
                          R"([")"
                          "0190a5d3-ac96-7f4b-bcce-b302099a8057"
                          R"("])",
                          "{}"}) {
        CAPTURE(v);
        check_rejected(body_with("id", v), err_id_type);
    }
    for (std::string v :
         {R"("")", R"("abc")", R"("0190a5d3ac967f4bbcceb302099a8057")",
          R"("0190a5d3-ac96-7f4b-bcce-b302099a805")", R"("0190a5d3-ac96-7f4b-bcce-b302099a80577")",
          R"("0190a5d3-ac96-7f4b-bcce-b302099a805g")",
          R"("{0190a5d3-ac96-7f4b-bcce-b302099a8057}")",
          R"(" 0190a5d3-ac96-7f4b-bcce-b302099a8057")", R"("0190a5d3_ac96_7f4b_bcce_b302099a8057")",
          R"("12345")"}) {
        CAPTURE(v);
        check_rejected(body_with("id", v), err_id);
    }
}

TEST_CASE("parse_publish_request: priority of the wrong type or unknown") {
    for (const char* v : {"0", "2", "1.5", "true", "[]", R"(["high"])", R"({"p":"high"})"}) {
        CAPTURE(v);
        check_rejected(body_with("priority", v), err_prio_type);
    }
    for (const char* v : {R"("")", R"("urgent")", R"("HIGH")", R"("Normal")", R"(" low")",
                          R"("low ")", R"("medium")", R"("2")"}) {
        CAPTURE(v);
        check_rejected(body_with("priority", v), err_prio);
    }
}

TEST_CASE("parse_publish_request: unknown fields are refused and named") {
    check_rejected(R"({"topic":"t","data":{},"extra":1})", "unknown field: extra");
    check_rejected(R"({"topic":"t","data":{},"Topic":"t"})", "unknown field: Topic");
    check_rejected(R"({"topic":"t","data":{},"origin":"L1"})", "unknown field: origin");
    check_rejected(R"({"topic":"t","data":{},"seq":1})", "unknown field: seq");
    check_rejected(R"({"topic":"t","data":{},"":1})", "unknown field: ");
    check_rejected(R"({"topic":"t","data":{},"extra":null})", "unknown field: extra");
    // Unknown fields are reported before anything else is checked.
    check_rejected(R"({"zzz":1})", "unknown field: zzz");
    check_rejected(R"({"topic":"BAD","data":[],"aaa":1})", "unknown field: aaa");
    // A very long unknown name is not echoed back.
    std::string longname(500, 'x');
    check_rejected(R"({"topic":"t","data":{},")" + longname + R"(":1})",
                   "unknown field: (a long field name)");
}

TEST_CASE("parse_publish_request: unknown field names with unicode") {
    auto r = parse_publish_request("{\"topic\":\"t\",\"data\":{},\"caf\xc3\xa9\":1}");
    REQUIRE_FALSE(r.ok());
    CHECK(r.error() == "unknown field: (a field name with non-ASCII characters)");
    check_error_is_valid_utf8(r.error());
}

TEST_CASE("parse_publish_request: invalid UTF-8 anywhere is not valid JSON") {
    // Lone continuation byte, truncated sequence, overlong encoding, a surrogate encoded in
    // UTF-8, a code point above U+10FFFF, 0xFF.
    for (std::string bad : {"\x80"s, "\xc3"s, "\xc0\xaf"s, "\xed\xa0\x80"s, "\xf4\x90\x80\x80"s,
                            "\xff"s, "\xe2\x82"s}) {
        CAPTURE(bad);
        check_rejected("{\"topic\":\"t\",\"data\":{\"s\":\"" + bad + "\"}}", err_not_json);
        check_rejected("{\"topic\":\"t" + bad + "\",\"data\":{}}", err_not_json);
        check_rejected("{\"topic\":\"t\",\"data\":{\"k" + bad + "\":1}}", err_not_json);
    }
    // Lone surrogate escapes are refused too.
    check_rejected(R"({"topic":"t","data":{"s":"\ud800"}})", err_not_json);
    check_rejected(R"({"topic":"t","data":{"s":"\udc00"}})", err_not_json);
    check_rejected(R"({"topic":"t","data":{"s":"\ud800x"}})", err_not_json);
    // A raw control character inside a string is not JSON either.
    check_rejected("{\"topic\":\"t\",\"data\":{\"s\":\"a\x01z\"}}", err_not_json);
}

TEST_CASE("parse_publish_request: valid unicode data is kept as UTF-8") {
    auto r = parse_publish_request("{\"topic\":\"t\",\"data\":{\"name\":\"Caf\xc3\xa9 "
                                   "\xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x98\x80\","
                                   "\"esc\":\"\\u20ac\"}}");
    REQUIRE(r.ok());
    CHECK(r->data == "{\"esc\":\"\xe2\x82\xac\",\"name\":\"Caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac "
                     "\xf0\x9f\x98\x80\"}");
}

TEST_CASE("parse_publish_request: very deep nesting does not crash") {
    // 100k unclosed '[' (the parser must not recurse) and 100k closed '[]' pairs (parsing and
    // destroying the value must not recurse either). Both are refused.
    constexpr std::size_t depth = 100'000;
    check_rejected(std::string(depth, '['), err_not_json);
    check_rejected(std::string(depth, '[') + std::string(depth, ']'), err_not_object);
    check_rejected(std::string(depth, '{'), err_not_json);
    std::string objs;
    for (std::size_t i = 0; i < depth; ++i)
        objs += "{\"a\":";
    check_rejected(objs, err_not_json);
    // Deep but unclosed nesting inside data.
    check_rejected(R"({"topic":"t","data":{"a":)" + std::string(depth, '['), err_not_json);
}

TEST_CASE("parse_publish_request: nesting up to max_json_depth is accepted, deeper refused") {
    // data itself is level 1, so 63 more levels inside it reach the limit exactly.
    constexpr std::size_t inner = lanesync::protocol::max_json_depth - 1;
    std::string nested = std::string(inner, '[') + std::string(inner, ']');
    auto r = parse_publish_request(R"({"topic":"t","data":{"a":)" + nested + "}}");
    REQUIRE(r.ok());
    CHECK(r->data == R"({"a":)" + nested + "}");
    std::string deeper = std::string(inner + 1, '[') + std::string(inner + 1, ']');
    check_rejected(R"({"topic":"t","data":{"a":)" + deeper + "}}",
                   "data nests deeper than 64 levels");
}

TEST_CASE("regression: deeply nested data within the size limit does not crash") {
    // 100k levels fit in 200 KB; dump() would recurse 100k times.
    constexpr std::size_t depth = 100'000;
    std::string nested = std::string(depth, '[') + std::string(depth, ']');
    check_rejected(R"({"topic":"t","data":{"a":)" + nested + "}}",
                   "data nests deeper than 64 levels");
    auto r = make_publish_request("t", R"({"a":)" + nested + "}", std::nullopt, std::nullopt);
    CHECK_FALSE(r.ok());
}

TEST_CASE("parse_publish_request: duplicate keys keep the last value") {
    // nlohmann keeps the last occurrence; document the behaviour so a change is noticed.
    auto r = parse_publish_request(R"({"topic":"a","topic":"b","data":{}})");
    REQUIRE(r.ok());
    CHECK(r->topic == "b");
}

TEST_CASE("parse_publish_request: error texts are valid UTF-8 for every rejection above") {
    for (std::string body :
         {""s, "[]"s, "{}"s, R"({"topic":1})"s, R"({"topic":"X","data":{}})"s, R"({"topic":"t"})"s,
          R"({"topic":"t","data":1})"s, R"({"topic":"t","data":{},"id":1})"s,
          R"({"topic":"t","data":{},"id":"x"})"s, R"({"topic":"t","data":{},"priority":1})"s,
          R"({"topic":"t","data":{},"priority":"x"})"s, R"({"topic":"t","data":{},"x":1})"s}) {
        CAPTURE(body);
        auto r = parse_publish_request(body);
        REQUIRE_FALSE(r.ok());
        CHECK_FALSE(r.error().empty());
        check_error_is_valid_utf8(r.error());
    }
}

// ---------------------------------------------------------------------------------------------
// make_publish_request: the CLI path.

TEST_CASE("make_publish_request: accepted forms") {
    auto r = make_publish_request("transaction", R"({ "b" : 1, "a" : [true, null] })", std::nullopt,
                                  std::nullopt);
    REQUIRE(r.ok());
    CHECK(r->topic == "transaction");
    CHECK(r->data == R"({"a":[true,null],"b":1})");
    CHECK_FALSE(r->id.has_value());
    CHECK(r->prio == priority::normal);

    auto full = make_publish_request("stock.move", "{}", std::string_view(uuid_upper),
                                     std::string_view("low"));
    REQUIRE(full.ok());
    CHECK(full->topic == "stock.move");
    CHECK(full->data == "{}");
    REQUIRE(full->id.has_value());
    CHECK(*full->id == uuid_lower);
    CHECK(full->prio == priority::low);

    for (auto [text, p] :
         {std::pair{"critical", priority::critical}, std::pair{"high", priority::high},
          std::pair{"normal", priority::normal}, std::pair{"low", priority::low}}) {
        CAPTURE(text);
        auto q = make_publish_request("t", "{}", std::nullopt, std::string_view(text));
        REQUIRE(q.ok());
        CHECK(q->prio == p);
    }

    auto top = make_publish_request(std::string(64, 'z'), "{}", std::nullopt, std::nullopt);
    REQUIRE(top.ok());
    CHECK(top->topic == std::string(64, 'z'));
}

TEST_CASE("make_publish_request: gives the same result as the HTTP path") {
    auto cli = make_publish_request("sale", R"({"z":{"y":1,"x":2},"a":"\u00e9"})",
                                    std::string_view(uuid_upper), std::string_view("high"));
    auto http =
        parse_publish_request(R"({"topic":"sale","data":{"a":"é","z":{"x":2,"y":1}},"id":")" +
                              uuid_lower + R"(","priority":"high"})");
    REQUIRE(cli.ok());
    REQUIRE(http.ok());
    CHECK(cli->topic == http->topic);
    CHECK(cli->data == http->data);
    CHECK(cli->id == http->id);
    CHECK(cli->prio == http->prio);
}

TEST_CASE("make_publish_request: topic rejections") {
    auto check = [](std::string_view topic) {
        CAPTURE(topic);
        auto r = make_publish_request(topic, "{}", std::nullopt, std::nullopt);
        REQUIRE_FALSE(r.ok());
        CHECK(r.error() == err_topic);
    };
    check("");
    check(std::string(65, 'a'));
    check("Transaction");
    check("sale done");
    check("sale/done");
    check("caf\xc3\xa9");
    check("bad\xff");
    check(std::string_view("a\0b", 3));
}

TEST_CASE("make_publish_request: data rejections") {
    auto check = [](std::string_view data, std::string_view why) {
        CAPTURE(data);
        auto r = make_publish_request("t", data, std::nullopt, std::nullopt);
        REQUIRE_FALSE(r.ok());
        CHECK(r.error() == why);
    };
    check("", err_cli_data_json);
    check("{", err_cli_data_json);
    check(R"({"a":)", err_cli_data_json);
    check("{'a':1}", err_cli_data_json);
    check("{} {}", err_cli_data_json);
    check("{\"s\":\"\xff\"}", err_cli_data_json);
    check(R"({"s":"\ud800"})", err_cli_data_json);
    check(std::string(100'000, '['), err_cli_data_json);
    check("[]", err_data);
    check("null", err_data);
    check("1", err_data);
    check(R"("{}")", err_data);
    check("true", err_data);
    check(std::string(100'000, '[') + std::string(100'000, ']'), err_data);
}

TEST_CASE("make_publish_request: id rejections") {
    for (std::string_view id :
         {"", "abc", "0190a5d3ac967f4bbcceb302099a8057", "0190a5d3-ac96-7f4b-bcce-b302099a805g",
          "0190a5d3-ac96-7f4b-bcce-b302099a80577", "null"}) {
        CAPTURE(id);
        auto r = make_publish_request("t", "{}", id, std::nullopt);
        REQUIRE_FALSE(r.ok());
        CHECK(r.error() == err_id);
    }
}

TEST_CASE("make_publish_request: priority rejections") {
    for (std::string_view p : {"", "urgent", "HIGH", "Low", " normal", "null", "1"}) {
        CAPTURE(p);
        auto r = make_publish_request("t", "{}", std::nullopt, p);
        REQUIRE_FALSE(r.ok());
        CHECK(r.error() == err_prio);
    }
}

TEST_CASE("make_publish_request: which error wins when several parts are bad") {
    // Data JSON is parsed first, then the checks run in the HTTP order: topic, data, id, priority.
    auto a = make_publish_request("BAD", "not json", std::string_view("x"), std::string_view("x"));
    REQUIRE_FALSE(a.ok());
    CHECK(a.error() == err_cli_data_json);
    auto b = make_publish_request("BAD", "[]", std::string_view("x"), std::string_view("x"));
    REQUIRE_FALSE(b.ok());
    CHECK(b.error() == err_topic);
    auto c = make_publish_request("t", "[]", std::string_view("x"), std::string_view("x"));
    REQUIRE_FALSE(c.ok());
    CHECK(c.error() == err_data);
    auto d = make_publish_request("t", "{}", std::string_view("x"), std::string_view("x"));
    REQUIRE_FALSE(d.ok());
    CHECK(d.error() == err_id);
    auto e = make_publish_request("t", "{}", std::string_view(uuid_lower), std::string_view("x"));
    REQUIRE_FALSE(e.ok());
    CHECK(e.error() == err_prio);
}

TEST_CASE("result<T>: value and failure") {
    result<int> ok = 5;
    CHECK(ok.ok());
    CHECK(static_cast<bool>(ok));
    CHECK(ok.value() == 5);
    CHECK(ok.error().empty());
    auto bad = result<int>::failure("nope");
    CHECK_FALSE(bad.ok());
    CHECK_FALSE(static_cast<bool>(bad));
    CHECK(bad.error() == "nope");
}
