// base/text.hpp: the one copy of lower/upper, the loopback-host test (PEER_TERMINALS'
// self-peering rule and SUPABASE_URL's plain-http warning use it) and exception text.
#include "base/text.hpp"

#include <doctest/doctest.h>

#include <stdexcept>

using namespace lanesync;

TEST_CASE("text::lower and text::upper fold ASCII only") {
    CHECK(text::lower("PEER_Secret-1") == "peer_secret-1");
    CHECK(text::upper("peer_terminal") == "PEER_TERMINAL");
    CHECK(text::lower("ÄB") == "Äb"); // UTF-8 bytes are left alone
    CHECK(text::lower("").empty());
}

TEST_CASE("text::is_loopback_host: localhost, 127.0.0.0/8 and ::1") {
    for (const char* h :
         {"localhost", "LocalHost", "127.0.0.1", "127.8.9.10", "::1", "0:0:0:0:0:0:0:1"})
        CHECK_MESSAGE(text::is_loopback_host(h), h);
    for (const char* h : {"", "128.0.0.1", "10.0.0.1", "::", "::2", "[::1]", "localhost.",
                          "my-localhost", "127.0.0.1.example.com"})
        CHECK_FALSE_MESSAGE(text::is_loopback_host(h), h);
}

TEST_CASE("text::what: the message of any exception, empty for none") {
    CHECK(text::what(nullptr).empty());
    CHECK(text::what(std::make_exception_ptr(std::runtime_error("disk full"))) == "disk full");
    CHECK(text::what(std::make_exception_ptr(42)) == "unknown exception");
}

TEST_CASE("text::join: items with a separator, nothing for none") {
    CHECK(text::join({}).empty());
    CHECK(text::join({"L2"}) == "L2");
    CHECK(text::join({"L2", "L3", "ws://h:1/v1/peer"}) == "L2, L3, ws://h:1/v1/peer");
    CHECK(text::join({"a", "b"}, "|") == "a|b");
}
