// protocol::parse_publish_body: one message exactly as parse_publish_request, or a batch
// {"messages": [...]} whose entries are checked one by one, errors by index.

#include "protocol/publish.hpp"

#include <doctest/doctest.h>

#include <string>

using namespace lanesync::protocol;

TEST_CASE("parse_publish_body: a single message is one request, with the single errors") {
    auto r = parse_publish_body(R"({"topic":"t","data":{"b":1,"a":2}})", 10);
    REQUIRE(r);
    CHECK_FALSE(r->batch);
    REQUIRE(r->requests.size() == 1);
    CHECK(r->requests[0].data == R"({"a":2,"b":1})");
    CHECK(r->errors.empty());
    for (const char* body :
         {"{nope", "[]", R"({"topic":"t"})", R"({"topic":"t","data":{},"x":1})"}) {
        CAPTURE(body);
        auto bad = parse_publish_body(body, 10);
        auto single = parse_publish_request(body);
        REQUIRE_FALSE(bad);
        REQUIRE_FALSE(single);
        CHECK(bad.error() == single.error());
    }
}

TEST_CASE("parse_publish_body: a batch keeps order and names each invalid entry by index") {
    auto r = parse_publish_body(
        R"({"messages":[{"topic":"a","data":{}},{"topic":"B","data":{}},{"topic":"c","data":{}},
            5,{"topic":"d","data":{},"id":"nope"}]})",
        10);
    REQUIRE(r);
    CHECK(r->batch);
    CHECK(r->batch_size == 5);
    REQUIRE(r->requests.size() == 2);
    CHECK(r->requests[0].topic == "a");
    CHECK(r->requests[1].topic == "c");
    REQUIRE(r->errors.size() == 3);
    CHECK(r->errors[0].index == 1);
    CHECK(r->errors[0].error == "topic must be 1-64 characters of [a-z0-9_.-]");
    CHECK(r->errors[1].index == 3);
    CHECK(r->errors[1].error == "message must be a JSON object");
    CHECK(r->errors[2].index == 4);
    CHECK(r->errors[2].error == "id must be a UUID (8-4-4-4-12 hex digits)");
}

TEST_CASE("parse_publish_body: malformed batches fail as a whole; a long one is not checked") {
    for (const char* body : {R"({"messages":[]})", R"({"messages":{}})", R"({"messages":null})",
                             R"({"messages":[{"topic":"t","data":{}}],"extra":1})"}) {
        CAPTURE(body);
        CHECK_FALSE(parse_publish_body(body, 10));
    }
    CHECK(parse_publish_body(R"({"messages":[],"x":1})", 10).error().find("unknown field: x") == 0);
    auto r = parse_publish_body(R"({"messages":[1,2,3]})", 2);
    REQUIRE(r);
    CHECK(r->batch_size == 3);
    CHECK(r->requests.empty());
    CHECK(r->errors.empty()); // over the limit: the caller refuses it before any entry is checked
}
