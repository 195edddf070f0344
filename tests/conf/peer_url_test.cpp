// conf::parse_peer_url, the public helper behind PEER_TERMINALS.
#include "conf/config.hpp"

#include <doctest/doctest.h>

using lanesync::conf::parse_peer_url;

TEST_CASE("parse_peer_url: ws and wss with host and port") {
    auto u = parse_peer_url("ws://127.0.0.1:8124");
    REQUIRE(u);
    CHECK(u->text == "ws://127.0.0.1:8124");
    CHECK_FALSE(u->tls);
    CHECK(u->host == "127.0.0.1");
    CHECK(u->port == 8124);
    CHECK(u->target == "/v1/peer");

    u = parse_peer_url("wss://lane2.store.example:443/v1/peer");
    REQUIRE(u);
    CHECK(u->tls);
    CHECK(u->host == "lane2.store.example");
    CHECK(u->port == 443);
    CHECK(u->target == "/v1/peer");
}

TEST_CASE("parse_peer_url: path, default path, trailing slash") {
    CHECK(parse_peer_url("ws://h:1/")->target == "/v1/peer");
    CHECK(parse_peer_url("ws://h:1/custom/peer")->target == "/custom/peer");
    CHECK(parse_peer_url("ws://h:1/v1/peer/")->target == "/v1/peer/");
}

TEST_CASE("parse_peer_url: IPv6 in brackets, host stored without them") {
    auto u = parse_peer_url("ws://[::1]:8125");
    REQUIRE(u);
    CHECK(u->host == "::1");
    CHECK(u->port == 8125);
    u = parse_peer_url("wss://[fe80::1:2]:9/p");
    REQUIRE(u);
    CHECK(u->host == "fe80::1:2");
    CHECK(u->target == "/p");
}

TEST_CASE("parse_peer_url: scheme is case-insensitive, port bounds") {
    CHECK(parse_peer_url("WS://h:1")->port == 1);
    CHECK(parse_peer_url("WsS://h:65535")->tls);
    CHECK(parse_peer_url("ws://h_1:2")->host == "h_1");
    CHECK(parse_peer_url("ws://10.0.0.1:2")->host == "10.0.0.1");
}

TEST_CASE("parse_peer_url: malformed URLs give nullopt") {
    for (const char* bad : {"",
                            "ws://",
                            "ws://h",
                            "ws://h:",
                            "ws://h:0",
                            "ws://h:65536",
                            "ws://h:1x",
                            "ws://:1",
                            "http://h:1",
                            "https://h:1",
                            "h:1",
                            "//h:1",
                            "ws:/h:1",
                            "ws//h:1",
                            "ws://h:1?x",
                            "ws://h:1#x",
                            "ws://u@h:1",
                            "ws://u:p@h:1",
                            "ws://::1:1",
                            "ws://[::1:1",
                            "ws://[::1]",
                            "ws://[::1]x:1",
                            "ws://[::g]:1",
                            "ws://h 1:1",
                            " ws://h:1",
                            "ws://h:1 ",
                            "ws://-h:1",
                            "ws://h-:1",
                            "ws://a..b:1",
                            "ws://.a:1",
                            "ws://256.1.1.1:1",
                            "ws://h\t:1",
                            "ws://h:1\n",
                            "ws://h\xC3\xA9:1",
                            "ws://h:+1",
                            "ws://h:-1",
                            "ws://h:1/a b"}) {
        CAPTURE(bad);
        CHECK_FALSE(parse_peer_url(bad));
    }
}
