// conf::parse_cloud_url and conf::cloud_url_of: SUPABASE_URL parsed once, into the typed value
// cloud/ builds its endpoint from (these cases moved here from tests/cloud/wire_test.cpp when
// cloud::wire lost its own parser).
#include "conf_test_util.hpp"

using namespace lanesync::conf;
using namespace lanesync::conf::test;

TEST_CASE("parse_cloud_url: the URL forms SUPABASE_URL takes") {
    auto a = parse_cloud_url("https://abc.supabase.co");
    REQUIRE(a);
    CHECK(a->tls);
    CHECK(a->host == "abc.supabase.co");
    CHECK(a->port == 443);
    CHECK_FALSE(a->host_is_ip);
    CHECK(a->base_path.empty());
    CHECK(a->text == "https://abc.supabase.co");

    auto b = parse_cloud_url("http://127.0.0.1:54321/");
    REQUIRE(b);
    CHECK_FALSE(b->tls);
    CHECK(b->port == 54321);
    CHECK(b->host_is_ip);
    CHECK(b->text == "http://127.0.0.1:54321");

    auto c = parse_cloud_url("HTTPS://[::1]:8443/");
    REQUIRE(c);
    CHECK(c->tls);
    CHECK(c->host == "::1");
    CHECK(c->host_is_ip);
    CHECK(c->port == 8443);
    CHECK(c->text == "https://[::1]:8443");

    auto d = parse_cloud_url("http://Cloud.Example.com");
    REQUIRE(d);
    CHECK(d->port == 80);
    CHECK(d->host == "Cloud.Example.com"); // as written; DNS is case-insensitive
}

TEST_CASE("parse_cloud_url: rejected forms say why and never repeat the URL") {
    for (const char* bad :
         {"", "ftp://x", "https://", "https://user:key@host", "http://h:0", "http://h:65536",
          "http://h:x", "http://h?x=1", "http://h#f", "http://[::1", "http://ho st",
          "http://h:", "https://[::1]:8443/base/path//"}) {
        CAPTURE(bad);
        std::string why;
        CHECK_FALSE(parse_cloud_url(bad, &why));
        CHECK_FALSE(why.empty());
        if (std::string_view(bad).size() > 8)
            CHECK_FALSE(contains(why, bad));
    }
    CHECK_FALSE(parse_cloud_url("https://h/x")); // no `why` wanted: still fine
}

TEST_CASE("load fills the typed cloud URL beside its display text") {
    auto c = ok("TERMINAL_ID=L1\nSUPABASE_SERVICE_KEY=k\nSUPABASE_URL=HTTPS://[::1]:8443/\n").cfg;
    REQUIRE(c.cloud);
    CHECK(c.supabase_url == "https://[::1]:8443");
    CHECK(c.cloud->text == c.supabase_url);
    CHECK(c.cloud->host == "::1");
    CHECK(c.cloud->port == 8443);
    CHECK_FALSE(good("SUPABASE_URL", "").cloud);
}

TEST_CASE("cloud_url_of: the loaded value, or the text of a config built in code parsed now") {
    std::string why;
    config off;
    CHECK_FALSE(cloud_url_of(off, why));
    CHECK_FALSE(why.empty());

    config loaded = ok("TERMINAL_ID=L1\nSUPABASE_SERVICE_KEY=k\nSUPABASE_URL=https://a.b\n").cfg;
    auto u = cloud_url_of(loaded, why);
    REQUIRE(u);
    CHECK(u->host == "a.b");

    // Edited after load: the text wins (the typed value is its parse).
    loaded.supabase_url = "http://127.0.0.1:9";
    u = cloud_url_of(loaded, why);
    REQUIRE(u);
    CHECK(u->host == "127.0.0.1");
    CHECK(u->port == 9);

    config by_hand;
    by_hand.supabase_url = "https://user:pw@x.supabase.co";
    why.clear();
    CHECK_FALSE(cloud_url_of(by_hand, why));
    CHECK(contains(why, "user info"));
    CHECK_FALSE(contains(why, "pw"));
}
