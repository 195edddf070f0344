// Validation of every key of SPEC section 4: defaults, accepted values, and each rejected value.
#include "conf_test_util.hpp"

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

using namespace lanesync::conf;
using namespace lanesync::conf::test;
using namespace std::chrono_literals;

namespace {

constexpr const char* peers2 = "PEER_TERMINALS=ws://127.0.0.1:8124,ws://127.0.0.1:8125\n"
                               "PEER_SECRET=0123456789abcdef\n";

} // namespace

TEST_CASE("defaults") {
    auto l = ok("TERMINAL_ID=L1\n");
    const config& c = l.cfg;
    CHECK(l.warnings.empty());
    CHECK(c.terminal_id == "L1");
    CHECK(c.store_id == "store-1");
    CHECK(c.terminal_port == 8123);
    CHECK(c.terminal_bind == "0.0.0.0");
    CHECK(c.peers.empty());
    CHECK(c.peer_secret.empty());
    CHECK(c.peer_ack_quorum == 1);
    CHECK(c.local_api_port == 9123);
    CHECK(c.outbox_path == "data/L1.db");
    CHECK(c.supabase_url.empty());
    CHECK_FALSE(c.cloud_enabled());
    CHECK(c.supabase_service_key.empty());
    CHECK(c.supabase_function == "sync-pos-message");
    CHECK(c.supabase_ca_file.empty());
    CHECK(c.backoff_base == 1000ms);
    CHECK(c.backoff_max == 60000ms);
    CHECK(c.cloud_interval == 30000ms);
    CHECK(c.cloud_batch_size == 50);
    CHECK(c.retention == std::chrono::hours(24 * 30));
    CHECK(c.max_message_bytes == 262144);
    CHECK(c.log_level == "info");
    CHECK_FALSE(c.log_json);
}

TEST_CASE("a full file") {
    auto c = ok("TERMINAL_ID=L2\nSTORE_ID=store-9\nTERMINAL_PORT=8124\nTERMINAL_BIND=127.0.0.1\n"
                "PEER_TERMINALS=ws://127.0.0.1:8123, wss://lane3.local:8125/custom\n"
                "PEER_SECRET='correct horse battery staple'\nPEER_ACK_QUORUM=2\n"
                "LOCAL_API_PORT=9000\nOUTBOX_PATH=/var/lib/lanesync/L2.db\n"
                "SUPABASE_URL=https://abc.supabase.co/\nSUPABASE_SERVICE_KEY=eyJhbGciOi.x.y\n"
                "SUPABASE_FUNCTION=sync_v2\nSYNC_BACKOFF_BASE_MS=500\nSYNC_BACKOFF_MAX_MS=5000\n"
                "CLOUD_SYNC_INTERVAL_MS=1000\nCLOUD_BATCH_SIZE=200\nOUTBOX_RETENTION_DAYS=7\n"
                "MAX_MESSAGE_BYTES=1048576\nLOG_LEVEL=debug\nLOG_FORMAT=json\n")
                 .cfg;
    CHECK(c.terminal_id == "L2");
    CHECK(c.store_id == "store-9");
    CHECK(c.terminal_port == 8124);
    CHECK(c.terminal_bind == "127.0.0.1");
    REQUIRE(c.peers.size() == 2);
    CHECK(c.peers[0].text == "ws://127.0.0.1:8123");
    CHECK(c.peers[1].host == "lane3.local");
    CHECK(c.peers[1].tls);
    CHECK(c.peers[1].target == "/custom");
    CHECK(c.peer_secret == "correct horse battery staple");
    CHECK(c.peer_ack_quorum == 2);
    CHECK(c.local_api_port == 9000);
    CHECK(c.outbox_path == "/var/lib/lanesync/L2.db");
    CHECK(c.supabase_url == "https://abc.supabase.co");
    CHECK(c.cloud_enabled());
    CHECK(c.supabase_service_key == "eyJhbGciOi.x.y");
    CHECK(c.supabase_function == "sync_v2");
    CHECK(c.backoff_base == 500ms);
    CHECK(c.backoff_max == 5000ms);
    CHECK(c.cloud_interval == 1000ms);
    CHECK(c.cloud_batch_size == 200);
    CHECK(c.retention == std::chrono::hours(24 * 7));
    CHECK(c.max_message_bytes == 1048576);
    CHECK(c.log_level == "debug");
    CHECK(c.log_json);
}

TEST_CASE("known_keys lists every key of SPEC section 4 (plus peer TLS) in documentation order") {
    const std::vector<std::string> expected = {"TERMINAL_ID",
                                               "STORE_ID",
                                               "TERMINAL_PORT",
                                               "TERMINAL_BIND",
                                               "PEER_TERMINALS",
                                               "PEER_SECRET",
                                               "PEER_ACK_QUORUM",
                                               "PEER_TLS_CERT_FILE",
                                               "PEER_TLS_KEY_FILE",
                                               "PEER_CA_FILE",
                                               "PEER_MAX_CONNECTIONS",
                                               "LOCAL_API_PORT",
                                               "LOCAL_API_MAX_CONNECTIONS",
                                               "OUTBOX_PATH",
                                               "SUPABASE_URL",
                                               "SUPABASE_SERVICE_KEY",
                                               "SUPABASE_FUNCTION",
                                               "SUPABASE_CA_FILE",
                                               "SYNC_BACKOFF_BASE_MS",
                                               "SYNC_BACKOFF_MAX_MS",
                                               "CLOUD_SYNC_INTERVAL_MS",
                                               "CLOUD_BATCH_SIZE",
                                               "CLOUD_PULL_INTERVAL_MS",
                                               "CLOUD_HEARTBEAT_MS",
                                               "CLOUD_TAKEOVER_AFTER_S",
                                               "OUTBOX_RETENTION_DAYS",
                                               "CATALOG_TOMBSTONE_DAYS",
                                               "MAX_MESSAGE_BYTES",
                                               "TOPIC_PRIORITY",
                                               "LOG_LEVEL",
                                               "LOG_FORMAT"};
    CHECK(known_keys() == expected);
}

// ---- TERMINAL_ID --------------------------------------------------------------------------

TEST_CASE("TERMINAL_ID is required") {
    CHECK(err("STORE_ID=s\n") ==
          "t.env: TERMINAL_ID: required: this lane's id, 1 to 32 characters of A-Z a-z 0-9 _ - "
          "(e.g. TERMINAL_ID=L1)");
    CHECK(contains(err(""), "t.env: TERMINAL_ID: required"));
    CHECK(contains(err("# only comments\n"), "TERMINAL_ID: required"));
    CHECK(err("TERMINAL_ID=\n") == "t.env:1: TERMINAL_ID: empty value; this key is required (e.g. "
                                   "TERMINAL_ID=L1)");
    CHECK(contains(err("TERMINAL_ID=''\n"), "t.env:1: TERMINAL_ID: empty value"));
    CHECK(contains(err("TERMINAL_ID= # todo\n"), "t.env:1: TERMINAL_ID: empty value"));
}

TEST_CASE("TERMINAL_ID accepted forms") {
    CHECK(ok("TERMINAL_ID=a-B_9\n").cfg.terminal_id == "a-B_9");
    CHECK(ok("TERMINAL_ID=" + std::string(32, 'x') + "\n").cfg.terminal_id == std::string(32, 'x'));
    CHECK(ok("TERMINAL_ID=\"L1\"\n").cfg.terminal_id == "L1");
}

TEST_CASE("TERMINAL_ID rejected values") {
    for (std::string v :
         {std::string(33, 'x'), std::string("L 1"), std::string("L.1"), std::string("L/1"),
          std::string("L\xC3\xA9"), std::string("L:1"), std::string("L1\\t")}) {
        CAPTURE(v);
        auto e = err("TERMINAL_ID='" + v + "'\n");
        CHECK(contains(e, "t.env:1: TERMINAL_ID: \""));
        CHECK(contains(e, "is not a valid lane id (1 to 32 characters of A-Z a-z 0-9 _ -)"));
    }
}

// ---- STORE_ID -----------------------------------------------------------------------------

TEST_CASE("STORE_ID") {
    CHECK(good("STORE_ID", "Store_42-east").store_id == "Store_42-east");
    CHECK(good("STORE_ID", std::string(64, 's')).store_id == std::string(64, 's'));
    CHECK(bad("STORE_ID", "'store 1'") ==
          "t.env:2: STORE_ID: \"store 1\" is not a valid store id (1 to 64 characters of A-Z a-z "
          "0-9 _ -)");
    CHECK(contains(bad("STORE_ID", "store.1"), "is not a valid store id"));
    CHECK(contains(bad("STORE_ID", std::string(65, 's')), "is not a valid store id"));
    CHECK(bad("STORE_ID", "") ==
          "t.env:2: STORE_ID: empty value; leave the line out to use the default (store-1)");
}

// ---- integers (TERMINAL_PORT shows the shared number rules) -------------------------------

TEST_CASE("TERMINAL_PORT accepted") {
    CHECK(good("TERMINAL_PORT", "1").terminal_port == 1);
    CHECK(good("TERMINAL_PORT", "8200").terminal_port == 8200);
    CHECK(good("TERMINAL_PORT", "08200").terminal_port == 8200);
    CHECK(good("TERMINAL_PORT", "\"8200\"").terminal_port == 8200);
    CHECK(ok("TERMINAL_ID=L1\nTERMINAL_PORT=65535\nLOCAL_API_PORT=9000\n").cfg.terminal_port ==
          65535);
}

TEST_CASE("integers: digits only, no sign, blanks, unit or overflow") {
    CHECK(bad("TERMINAL_PORT", "0") == "t.env:2: TERMINAL_PORT: 0 is too small (1..65535)");
    CHECK(bad("TERMINAL_PORT", "65536") == "t.env:2: TERMINAL_PORT: 65536 is too large (1..65535)");
    CHECK(bad("TERMINAL_PORT", "12abc") ==
          "t.env:2: TERMINAL_PORT: \"12abc\" is not a whole number (digits only: no sign, blanks "
          "or unit)");
    CHECK(bad("TERMINAL_PORT", "99999999999999999999999") ==
          "t.env:2: TERMINAL_PORT: 99999999999999999999999 is too large (1..65535)");
    for (std::string v : {"-1", "+1", "abc", "1.5", "1e3", "0x10", "'8123 '", "' 8123'",
                          "\"8 123\"", "8123ms", "\"\\t8123\"", "１２３"}) {
        CAPTURE(v);
        CHECK(contains(bad("TERMINAL_PORT", v), "t.env:2: TERMINAL_PORT: \""));
        CHECK(contains(bad("TERMINAL_PORT", v), "is not a whole number"));
    }
    CHECK(bad("TERMINAL_PORT", "") ==
          "t.env:2: TERMINAL_PORT: empty value; leave the line out to use the default (8123)");
}

// ---- TERMINAL_BIND ------------------------------------------------------------------------

TEST_CASE("TERMINAL_BIND accepts IPv4 and IPv6 literals") {
    CHECK(good("TERMINAL_BIND", "0.0.0.0").terminal_bind == "0.0.0.0");
    CHECK(good("TERMINAL_BIND", "127.0.0.1").terminal_bind == "127.0.0.1");
    CHECK(good("TERMINAL_BIND", "192.168.1.20").terminal_bind == "192.168.1.20");
    CHECK(good("TERMINAL_BIND", "::").terminal_bind == "::");
    CHECK(good("TERMINAL_BIND", "::1").terminal_bind == "::1");
    CHECK(good("TERMINAL_BIND", "fe80::1").terminal_bind == "fe80::1");
    CHECK(good("TERMINAL_BIND", "[::1]").terminal_bind == "::1");
}

TEST_CASE("TERMINAL_BIND rejects host names and malformed addresses") {
    for (std::string v : {"localhost", "256.0.0.1", "1.2.3", "::g", "[::1", "fe80::1%eth0",
                          "127.0.0.1:8123", "0.0.0.0/0", "[127.0.0.1]x"}) {
        CAPTURE(v);
        auto e = bad("TERMINAL_BIND", v);
        CHECK(contains(e, "t.env:2: TERMINAL_BIND: \"" + v + "\" is not an IP address literal"));
    }
    CHECK(contains(bad("TERMINAL_BIND", ""), "TERMINAL_BIND: empty value"));
}

// ---- PEER_TERMINALS -----------------------------------------------------------------------

TEST_CASE("PEER_TERMINALS accepted forms") {
    auto c =
        ok("TERMINAL_ID=L1\nPEER_SECRET=0123456789abcdef\n"
           "PEER_TERMINALS=ws://127.0.0.1:8124 , ,wss://[::1]:8125/x/y,  ws://Lane-3.shop:9000/,\n")
            .cfg;
    REQUIRE(c.peers.size() == 3);
    CHECK(c.peers[0].text == "ws://127.0.0.1:8124");
    CHECK_FALSE(c.peers[0].tls);
    CHECK(c.peers[0].host == "127.0.0.1");
    CHECK(c.peers[0].port == 8124);
    CHECK(c.peers[0].target == "/v1/peer");
    CHECK(c.peers[1].tls);
    CHECK(c.peers[1].host == "::1");
    CHECK(c.peers[1].port == 8125);
    CHECK(c.peers[1].target == "/x/y");
    CHECK(c.peers[2].host == "Lane-3.shop");
    CHECK(c.peers[2].target == "/v1/peer");
}

TEST_CASE("PEER_TERMINALS with only blanks and commas means no peers") {
    for (std::string v : {"", "' '", "','", "' , ,, '", "\"\""}) {
        CAPTURE(v);
        auto c = good("PEER_TERMINALS", v);
        CHECK(c.peers.empty());
    }
}

TEST_CASE("PEER_TERMINALS rejected URLs name the item and the reason") {
    struct row {
        std::string url;
        std::string why;
    };
    const row rows[] = {
        {"http://127.0.0.1:8124", "scheme must be ws:// or wss://"},
        {"127.0.0.1:8124", "missing scheme"},
        {"ws://127.0.0.1", "missing port (expected ws://host:port)"},
        {"wss://lane2", "missing port (expected wss://host:port)"},
        {"ws://:8124", "missing host"},
        {"ws://", "missing host"},
        {"ws://user:pw@h:1", "user info"},
        {"ws://h:0", "port is out of range (1..65535)"},
        {"ws://h:70000", "port is out of range (1..65535)"},
        {"ws://h:99999999999999999999", "port is out of range (1..65535)"},
        {"ws://h:", "empty port after ':'"},
        {"ws://h:80a", "port is not a number"},
        {"ws://h:-1", "port is not a number"},
        {"ws://::1:8124", "an IPv6 address must be written in brackets"},
        {"ws://[::1:8124", "unclosed '['"},
        {"ws://[::1]8124", "unexpected text after ']'"},
        {"ws://[zz]:1", "not a valid IPv6 address"},
        {"ws://h:1?x=1", "a query or fragment is not allowed"},
        {"ws://h:1#frag", "a query or fragment is not allowed"},
        {"ws://h:1/p?q", "a query or fragment is not allowed"},
        {"ws://-bad:1", "must not start or end with '-'"},
        {"ws://a..b:1", "empty or over-long label"},
        {"ws://h%20x:1", "may contain only letters"},
        {"ws://999.1.1.1:1", "not a valid IPv4 address"},
        {"ws://10.0.1:1", "not a valid IPv4 address"},
        {"ws://h\xC3\xA9:1", "non-ASCII"},
        {"ws://h 1:2", "blank"},
        {"1ws://h:1", "malformed scheme"},
    };
    for (const auto& r : rows) {
        CAPTURE(r.url);
        auto e = err("TERMINAL_ID=L1\nPEER_SECRET=0123456789abcdef\nPEER_TERMINALS='ws://a:1, " +
                     r.url + "'\n");
        CHECK(contains(e, "t.env:3: PEER_TERMINALS: peer 2 \""));
        CHECK(contains(e, r.why));
    }
}

TEST_CASE("PEER_TERMINALS duplicates: same host (any case) and port") {
    auto e = err("TERMINAL_ID=L1\nPEER_SECRET=0123456789abcdef\n"
                 "PEER_TERMINALS=ws://a:1,ws://b:2,ws://a:1\n");
    CHECK(e == "t.env:3: PEER_TERMINALS: peer 3 \"ws://a:1\" repeats peer 1 (same host and port)");
    CHECK(contains(err("TERMINAL_ID=L1\nPEER_SECRET=0123456789abcdef\n"
                       "PEER_TERMINALS=ws://Lane2:1/v1/peer,wss://lane2:1/other\n"),
                   "peer 2 \"wss://lane2:1/other\" repeats peer 1"));
    // Same host, other port: two lanes on one machine, fine.
    CHECK(ok("TERMINAL_ID=L1\nPEER_SECRET=0123456789abcdef\nPEER_TERMINALS=ws://a:1,ws://a:2\n")
              .cfg.peers.size() == 2);
}

TEST_CASE("PEER_TERMINALS must not point at this lane itself") {
    auto e = err("TERMINAL_ID=L1\nPEER_SECRET=0123456789abcdef\n"
                 "PEER_TERMINALS=ws://127.0.0.1:8124,ws://localhost:8123\n");
    CHECK(e == "t.env:3: PEER_TERMINALS: \"ws://localhost:8123\" points at this lane itself "
               "(TERMINAL_PORT 8123)");
    CHECK(contains(err("TERMINAL_ID=L1\nTERMINAL_PORT=8200\nPEER_SECRET=0123456789abcdef\n"
                       "PEER_TERMINALS=ws://[::1]:8200\n"),
                   "points at this lane itself"));
    CHECK(contains(err("TERMINAL_ID=L1\nTERMINAL_BIND=10.0.0.5\nPEER_SECRET=0123456789abcdef\n"
                       "PEER_TERMINALS=ws://10.0.0.5:8123\n"),
                   "points at this lane itself"));
    // Another machine on the same port is a different lane.
    CHECK(ok("TERMINAL_ID=L1\nPEER_SECRET=0123456789abcdef\nPEER_TERMINALS=ws://10.0.0.6:8123\n")
              .cfg.peers.size() == 1);
}

// ---- PEER_SECRET --------------------------------------------------------------------------

TEST_CASE("PEER_SECRET is required when peers are set") {
    CHECK(err("TERMINAL_ID=L1\nPEER_TERMINALS=ws://127.0.0.1:8124\n") ==
          "t.env: PEER_SECRET: required when PEER_TERMINALS is set (a store-wide shared secret of "
          "at least 16 characters, the same on every lane)");
    CHECK(contains(err("TERMINAL_ID=L1\nPEER_TERMINALS=ws://127.0.0.1:8124\nPEER_SECRET=\n"),
                   "PEER_SECRET: required when PEER_TERMINALS is set"));
    // Not required without peers.
    CHECK(ok("TERMINAL_ID=L1\n").cfg.peer_secret.empty());
}

TEST_CASE("PEER_SECRET length is at least 16 characters") {
    CHECK(good("PEER_SECRET", "0123456789abcdef").peer_secret == "0123456789abcdef");
    CHECK(bad("PEER_SECRET", "short-secret") ==
          "t.env:2: PEER_SECRET: too short (12 chars, need at least 16)");
    CHECK(bad("PEER_SECRET", "0123456789abcde") ==
          "t.env:2: PEER_SECRET: too short (15 chars, need at least 16)");
    // Characters, not bytes: 8 two-byte characters are 8 chars.
    CHECK(bad("PEER_SECRET", "éééééééé") ==
          "t.env:2: PEER_SECRET: too short (8 chars, need at least 16)");
    CHECK(good("PEER_SECRET", "éééééééééééééééé").peer_secret == "éééééééééééééééé");
    // Also checked when no peers are set: a value that is there is validated.
    CHECK(contains(bad("PEER_SECRET", "x"), "too short (1 chars"));
}

// ---- PEER_ACK_QUORUM ----------------------------------------------------------------------

TEST_CASE("PEER_ACK_QUORUM") {
    std::string base = std::string("TERMINAL_ID=L1\n") + peers2;
    CHECK(ok(base).cfg.peer_ack_quorum == 1);
    CHECK(ok(base + "PEER_ACK_QUORUM=2\n").cfg.peer_ack_quorum == 2);
    CHECK(err(base + "PEER_ACK_QUORUM=3\n") ==
          "t.env:4: PEER_ACK_QUORUM: 3 is more than the number of peers (2 in PEER_TERMINALS)");
    CHECK(err(base + "PEER_ACK_QUORUM=0\n") ==
          "t.env:4: PEER_ACK_QUORUM: 0 is too small (1..65535)");
    CHECK(contains(err(base + "PEER_ACK_QUORUM=all\n"), "is not a whole number"));
    CHECK(contains(err(base + "PEER_ACK_QUORUM=-1\n"), "is not a whole number"));
    CHECK(contains(err(base + "PEER_ACK_QUORUM=\n"),
                   "empty value; leave the line out to use the default (1)"));
}

TEST_CASE("PEER_ACK_QUORUM without peers: 1 is silent, more is ignored with a warning") {
    auto l = ok("TERMINAL_ID=L1\nPEER_ACK_QUORUM=1\n");
    CHECK(l.warnings.empty());
    l = ok("TERMINAL_ID=L1\nPEER_ACK_QUORUM=2\n");
    CHECK(l.cfg.peer_ack_quorum == 1);
    REQUIRE(l.warnings.size() == 1);
    CHECK(l.warnings[0].text == "t.env:2: PEER_ACK_QUORUM: 2 has no effect without PEER_TERMINALS "
                                "(a single lane uploads directly); using 1");
    // Still a number.
    CHECK(contains(err("TERMINAL_ID=L1\nPEER_ACK_QUORUM=0\n"), "0 is too small"));
}

// ---- LOCAL_API_PORT -----------------------------------------------------------------------

TEST_CASE("LOCAL_API_PORT default is TERMINAL_PORT + 1000") {
    CHECK(ok("TERMINAL_ID=L1\nTERMINAL_PORT=8125\n").cfg.local_api_port == 9125);
    CHECK(ok("TERMINAL_ID=L1\nTERMINAL_PORT=64535\n").cfg.local_api_port == 65535);
    CHECK(err("TERMINAL_ID=L1\nTERMINAL_PORT=64536\n") ==
          "t.env:2: TERMINAL_PORT: 64536 leaves no default LOCAL_API_PORT (TERMINAL_PORT + 1000 = "
          "65536 is above 65535); set LOCAL_API_PORT");
    CHECK(ok("TERMINAL_ID=L1\nTERMINAL_PORT=65000\nLOCAL_API_PORT=8000\n").cfg.local_api_port ==
          8000);
}

TEST_CASE("LOCAL_API_PORT explicit values") {
    CHECK(good("LOCAL_API_PORT", "1").local_api_port == 1);
    CHECK(good("LOCAL_API_PORT", "65535").local_api_port == 65535);
    CHECK(good("LOCAL_API_PORT", "9123").local_api_port == 9123);
    CHECK(bad("LOCAL_API_PORT", "8123") ==
          "t.env:2: LOCAL_API_PORT: must differ from TERMINAL_PORT (both are 8123)");
    CHECK(bad("LOCAL_API_PORT", "0") == "t.env:2: LOCAL_API_PORT: 0 is too small (1..65535)");
    CHECK(bad("LOCAL_API_PORT", "65536") ==
          "t.env:2: LOCAL_API_PORT: 65536 is too large (1..65535)");
    CHECK(contains(bad("LOCAL_API_PORT", "http"), "is not a whole number"));
    CHECK(contains(bad("LOCAL_API_PORT", ""), "default (TERMINAL_PORT + 1000)"));
}

// ---- OUTBOX_PATH --------------------------------------------------------------------------

TEST_CASE("OUTBOX_PATH") {
    CHECK(ok("TERMINAL_ID=lane_7\n").cfg.outbox_path == "data/lane_7.db");
    CHECK(good("OUTBOX_PATH", "x/y.db").outbox_path == "x/y.db"); // kept relative
    CHECK(good("OUTBOX_PATH", "/abs/y.db").outbox_path == "/abs/y.db");
    CHECK(bad("OUTBOX_PATH", "data/") ==
          "t.env:2: OUTBOX_PATH: \"data/\" is a directory; OUTBOX_PATH names the SQLite file, e.g. "
          "data/L1.db");
    CHECK(contains(bad("OUTBOX_PATH", "/"), "is a directory"));
    CHECK(contains(bad("OUTBOX_PATH", LANESYNC_SOURCE_DIR), "is a directory"));
    CHECK(contains(bad("OUTBOX_PATH", ""),
                   "OUTBOX_PATH: empty value; leave the line out to use the "
                   "default (data/<TERMINAL_ID>.db)"));
}

// ---- SUPABASE_URL / SUPABASE_SERVICE_KEY --------------------------------------------------

TEST_CASE("SUPABASE_URL accepted forms are normalized") {
    auto url = [](const std::string& v) {
        return ok("TERMINAL_ID=L1\nSUPABASE_SERVICE_KEY=k\nSUPABASE_URL=" + v + "\n")
            .cfg.supabase_url;
    };
    CHECK(url("https://abc.supabase.co") == "https://abc.supabase.co");
    CHECK(url("https://abc.supabase.co/") == "https://abc.supabase.co");
    CHECK(url("HTTPS://abc.supabase.co:8443/") == "https://abc.supabase.co:8443");
    CHECK(url("http://127.0.0.1:54321") == "http://127.0.0.1:54321");
    CHECK(url("http://localhost:54321/") == "http://localhost:54321");
    CHECK(url("https://[::1]:54321") == "https://[::1]:54321");
    CHECK(url("https://10.1.2.3") == "https://10.1.2.3");
}

TEST_CASE("SUPABASE_URL empty means cloud off") {
    auto c = good("SUPABASE_URL", "");
    CHECK_FALSE(c.cloud_enabled());
    CHECK(c.supabase_url.empty());
}

TEST_CASE("SUPABASE_URL rejected forms") {
    struct row {
        std::string url;
        std::string why;
    };
    const row rows[] = {
        {"ftp://h", "scheme must be http:// or https://"},
        {"ws://h:1", "scheme must be http:// or https://"},
        {"abc.supabase.co", "missing scheme (expected https://host[:port])"},
        {"https://h/functions/v1", "must not have a path, query or fragment"},
        {"https://h//", "must not have a path"},
        {"https://h?x=1", "must not have a path"},
        {"https://h#f", "must not have a path"},
        {"https://h:0", "port is out of range"},
        {"https://h:65536", "port is out of range"},
        {"https://h:x", "port is not a number"},
        {"https://", "missing host"},
        {"https:///x", "missing host"},
        {"https://a b", "blank"},
        {"https://::1:5", "brackets"},
        {"https://bad_-.com", "must not start or end with '-'"},
    };
    for (const auto& r : rows) {
        CAPTURE(r.url);
        auto e = err("TERMINAL_ID=L1\nSUPABASE_SERVICE_KEY=k\nSUPABASE_URL='" + r.url + "'\n");
        CHECK(contains(e, "t.env:3: SUPABASE_URL: "));
        CHECK(contains(e, r.why));
    }
}

TEST_CASE("SUPABASE_URL with a password in it is refused without repeating it") {
    auto e = bad("SUPABASE_URL", "https://admin:hunter2@abc.supabase.co");
    CHECK(e ==
          "t.env:2: SUPABASE_URL: user info (user@ or user:password@) is not allowed in the URL");
    CHECK_FALSE(contains(e, "hunter2"));
}

TEST_CASE("SUPABASE_URL over plain http to a remote host is a warning") {
    auto l = ok("TERMINAL_ID=L1\nSUPABASE_URL=http://cloud.example.com\nSUPABASE_SERVICE_KEY=k\n");
    CHECK(l.cfg.supabase_url == "http://cloud.example.com");
    REQUIRE(l.warnings.size() == 1);
    CHECK(contains(l.warnings[0].text, "t.env:2: SUPABASE_URL: plain http:// to a host that is not "
                                       "loopback"));
    CHECK(ok("TERMINAL_ID=L1\nSUPABASE_URL=http://127.0.0.1:54321\nSUPABASE_SERVICE_KEY=k\n")
              .warnings.empty());
}

TEST_CASE("SUPABASE_SERVICE_KEY is required when SUPABASE_URL is set") {
    CHECK(err("TERMINAL_ID=L1\nSUPABASE_URL=https://a.supabase.co\n") ==
          "t.env: SUPABASE_SERVICE_KEY: required when SUPABASE_URL is set");
    CHECK(
        contains(err("TERMINAL_ID=L1\nSUPABASE_URL=https://a.supabase.co\nSUPABASE_SERVICE_KEY=\n"),
                 "SUPABASE_SERVICE_KEY: required when SUPABASE_URL is set"));
    // A key without a URL is fine (cloud off, key ready).
    CHECK(good("SUPABASE_SERVICE_KEY", "abc").supabase_service_key == "abc");
}

TEST_CASE("SUPABASE_SERVICE_KEY must be one header-safe token") {
    CHECK(bad("SUPABASE_SERVICE_KEY", "'abc def'") ==
          "t.env:2: SUPABASE_SERVICE_KEY: contains a blank or a control character (it is sent in "
          "an HTTP header; check that it was pasted whole and on one line)");
    CHECK(contains(bad("SUPABASE_SERVICE_KEY", "\"abc\\ndef\""), "contains a blank or a control"));
    CHECK(contains(bad("SUPABASE_SERVICE_KEY", "\"abc\\tdef\""), "contains a blank or a control"));
}

// ---- SUPABASE_FUNCTION --------------------------------------------------------------------

TEST_CASE("SUPABASE_FUNCTION") {
    CHECK(good("SUPABASE_FUNCTION", "my_fn-2").supabase_function == "my_fn-2");
    CHECK(good("SUPABASE_FUNCTION", std::string(64, 'f')).supabase_function ==
          std::string(64, 'f'));
    for (std::string v : {std::string("a/b"), std::string(65, 'f'), std::string("'fn name'"),
                          std::string("fn.v2"), std::string("fn?x")}) {
        CAPTURE(v);
        CHECK(contains(bad("SUPABASE_FUNCTION", v),
                       "is not a valid function name (1 to 64 characters"));
    }
    CHECK(contains(bad("SUPABASE_FUNCTION", ""), "default (sync-pos-message)"));
}

// ---- SUPABASE_CA_FILE ---------------------------------------------------------------------

TEST_CASE("SUPABASE_CA_FILE must be a readable file") {
    auto dir =
        std::filesystem::temp_directory_path() / ("lanesync-conf-ca-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    auto ca = dir / "ca.pem";
    std::ofstream(ca) << "-----BEGIN CERTIFICATE-----\n";
    CHECK(good("SUPABASE_CA_FILE", ca.string()).supabase_ca_file == ca.string());
    CHECK(good("SUPABASE_CA_FILE", "").supabase_ca_file.empty());

    auto missing = (dir / "nope.pem").string();
    CHECK(bad("SUPABASE_CA_FILE", missing) ==
          "t.env:2: SUPABASE_CA_FILE: cannot use \"" + missing + "\": No such file or directory");
    CHECK(bad("SUPABASE_CA_FILE", dir.string()) ==
          "t.env:2: SUPABASE_CA_FILE: \"" + dir.string() +
              "\" is not a regular file (a PEM CA bundle)");
    if (::geteuid() != 0) { // root reads everything
        std::filesystem::permissions(ca, std::filesystem::perms::none);
        CHECK(bad("SUPABASE_CA_FILE", ca.string()) ==
              "t.env:2: SUPABASE_CA_FILE: cannot read \"" + ca.string() + "\": Permission denied");
    }
    std::filesystem::remove_all(dir);
}

// ---- delays and sizes ---------------------------------------------------------------------

TEST_CASE("SYNC_BACKOFF_BASE_MS and SYNC_BACKOFF_MAX_MS") {
    CHECK(good("SYNC_BACKOFF_BASE_MS", "1").backoff_base == 1ms);
    CHECK(good("SYNC_BACKOFF_BASE_MS", "60000").backoff_base == 60000ms); // equal to the max
    CHECK(bad("SYNC_BACKOFF_BASE_MS", "0") ==
          "t.env:2: SYNC_BACKOFF_BASE_MS: 0 is too small (1..86400000)");
    CHECK(contains(bad("SYNC_BACKOFF_BASE_MS", "1s"), "is not a whole number"));
    CHECK(bad("SYNC_BACKOFF_BASE_MS", "60001") ==
          "t.env:2: SYNC_BACKOFF_BASE_MS: 60001 is above SYNC_BACKOFF_MAX_MS (default 60000); "
          "raise SYNC_BACKOFF_MAX_MS too");
    CHECK(good("SYNC_BACKOFF_MAX_MS", "1000").backoff_max == 1000ms); // equal to the base
    CHECK(good("SYNC_BACKOFF_MAX_MS", "86400000").backoff_max == 86400000ms);
    CHECK(bad("SYNC_BACKOFF_MAX_MS", "999") ==
          "t.env:2: SYNC_BACKOFF_MAX_MS: 999 is below SYNC_BACKOFF_BASE_MS (1000)");
    CHECK(bad("SYNC_BACKOFF_MAX_MS", "86400001") ==
          "t.env:2: SYNC_BACKOFF_MAX_MS: 86400001 is too large (1..86400000)");
    CHECK(bad("SYNC_BACKOFF_MAX_MS", "0") ==
          "t.env:2: SYNC_BACKOFF_MAX_MS: 0 is too small (1..86400000)");
    CHECK(contains(err("TERMINAL_ID=L1\nSYNC_BACKOFF_BASE_MS=5000\nSYNC_BACKOFF_MAX_MS=4000\n"),
                   "t.env:3: SYNC_BACKOFF_MAX_MS: 4000 is below SYNC_BACKOFF_BASE_MS (5000)"));
}

TEST_CASE("CLOUD_SYNC_INTERVAL_MS") {
    CHECK(good("CLOUD_SYNC_INTERVAL_MS", "100").cloud_interval == 100ms);
    CHECK(bad("CLOUD_SYNC_INTERVAL_MS", "99") ==
          "t.env:2: CLOUD_SYNC_INTERVAL_MS: 99 is too small (100..86400000)");
    CHECK(contains(bad("CLOUD_SYNC_INTERVAL_MS", "0"), "too small"));
    CHECK(contains(bad("CLOUD_SYNC_INTERVAL_MS", "86400001"), "too large"));
    CHECK(contains(bad("CLOUD_SYNC_INTERVAL_MS", "30s"), "is not a whole number"));
}

TEST_CASE("CLOUD_HEARTBEAT_MS: 0 = off, else 1000..86400000") {
    CHECK(ok("TERMINAL_ID=L1\n").cfg.cloud_heartbeat == 300000ms);
    CHECK(good("CLOUD_HEARTBEAT_MS", "0").cloud_heartbeat == 0ms);
    CHECK(good("CLOUD_HEARTBEAT_MS", "1000").cloud_heartbeat == 1000ms);
    CHECK(bad("CLOUD_HEARTBEAT_MS", "999") ==
          "t.env:2: CLOUD_HEARTBEAT_MS: 999 is too small (0 = off, or 1000..86400000)");
    CHECK(contains(bad("CLOUD_HEARTBEAT_MS", "86400001"), "too large"));
}

TEST_CASE("CLOUD_PULL_INTERVAL_MS: 0 = off, else 100..86400000") {
    CHECK(config{}.cloud_pull_interval == 30000ms);
    CHECK(good("CLOUD_PULL_INTERVAL_MS", "0").cloud_pull_interval == 0ms);
    CHECK(good("CLOUD_PULL_INTERVAL_MS", "100").cloud_pull_interval == 100ms);
    CHECK(bad("CLOUD_PULL_INTERVAL_MS", "99") ==
          "t.env:2: CLOUD_PULL_INTERVAL_MS: 99 is too small (0 = off, or 100..86400000)");
    CHECK(contains(bad("CLOUD_PULL_INTERVAL_MS", "86400001"), "too large"));
    CHECK(contains(bad("CLOUD_PULL_INTERVAL_MS", "-1"), "is not a whole number"));
}

TEST_CASE("CATALOG_TOMBSTONE_DAYS") {
    CHECK(config{}.catalog_tombstone_days == 30);
    CHECK(good("CATALOG_TOMBSTONE_DAYS", "1").catalog_tombstone_days == 1);
    CHECK(contains(bad("CATALOG_TOMBSTONE_DAYS", "0"), "too small"));
    CHECK(contains(bad("CATALOG_TOMBSTONE_DAYS", "36501"), "too large"));
}

TEST_CASE("CLOUD_BATCH_SIZE") {
    CHECK(good("CLOUD_BATCH_SIZE", "1").cloud_batch_size == 1);
    CHECK(good("CLOUD_BATCH_SIZE", "1000").cloud_batch_size == 1000);
    CHECK(bad("CLOUD_BATCH_SIZE", "0") == "t.env:2: CLOUD_BATCH_SIZE: 0 is too small (1..1000)");
    CHECK(bad("CLOUD_BATCH_SIZE", "1001") ==
          "t.env:2: CLOUD_BATCH_SIZE: 1001 is too large (1..1000)");
    CHECK(contains(bad("CLOUD_BATCH_SIZE", "-5"), "is not a whole number"));
}

TEST_CASE("OUTBOX_RETENTION_DAYS") {
    using std::chrono::milliseconds;
    CHECK(good("OUTBOX_RETENTION_DAYS", "1").retention == milliseconds(86'400'000));
    CHECK(good("OUTBOX_RETENTION_DAYS", "36500").retention == milliseconds(36'500LL * 86'400'000));
    CHECK(good("OUTBOX_RETENTION_DAYS", "0.001").retention == milliseconds(86'400));
    CHECK(good("OUTBOX_RETENTION_DAYS", "1.5").retention == milliseconds(129'600'000));
    CHECK(good("OUTBOX_RETENTION_DAYS", "0.0001").retention == milliseconds(8'640));
    CHECK(good("OUTBOX_RETENTION_DAYS", "000030").retention == milliseconds(30LL * 86'400'000));
    CHECK(good("OUTBOX_RETENTION_DAYS", "36500.000").retention ==
          milliseconds(36'500LL * 86'400'000));
    CHECK(bad("OUTBOX_RETENTION_DAYS", "0") ==
          "t.env:2: OUTBOX_RETENTION_DAYS: 0 is too small (0.0001..36500)");
    CHECK(contains(bad("OUTBOX_RETENTION_DAYS", "0.00009"), "too small"));
    CHECK(contains(bad("OUTBOX_RETENTION_DAYS", "36501"), "too large"));
    CHECK(contains(bad("OUTBOX_RETENTION_DAYS", "36500.5"), "too large"));
    CHECK(contains(bad("OUTBOX_RETENTION_DAYS", "4294967297"), "too large"));
    for (const char* v : {"7d", "1.", ".5", "1.2.3", "-1", "1e3", "0.0000001", "1,5"})
        CHECK_MESSAGE(contains(bad("OUTBOX_RETENTION_DAYS", v), "is not a number of days"), v);
}

TEST_CASE("days_text writes a retention the way the env file does") {
    using std::chrono::milliseconds;
    CHECK(days_text(milliseconds(30LL * 86'400'000)) == "30");
    CHECK(days_text(milliseconds(86'400)) == "0.001");
    CHECK(days_text(milliseconds(129'600'000)) == "1.5");
    CHECK(days_text(milliseconds(8'640)) == "0.0001");
    CHECK(days_text(milliseconds(86'399'999)) == "1"); // rounds up into the next day
}

TEST_CASE("MAX_MESSAGE_BYTES") {
    CHECK(good("MAX_MESSAGE_BYTES", "1024").max_message_bytes == 1024);
    CHECK(good("MAX_MESSAGE_BYTES", "16777216").max_message_bytes == 16777216);
    CHECK(bad("MAX_MESSAGE_BYTES", "1023") ==
          "t.env:2: MAX_MESSAGE_BYTES: 1023 is too small (1024..16777216)");
    CHECK(bad("MAX_MESSAGE_BYTES", "16777217") ==
          "t.env:2: MAX_MESSAGE_BYTES: 16777217 is too large (1024..16777216)");
    CHECK(contains(bad("MAX_MESSAGE_BYTES", "256KiB"), "is not a whole number"));
}

// ---- logging ------------------------------------------------------------------------------

TEST_CASE("LOG_LEVEL") {
    for (std::string v : {"trace", "debug", "info", "warn", "error"})
        CHECK(good("LOG_LEVEL", v).log_level == v);
    CHECK(good("LOG_LEVEL", "DEBUG").log_level == "debug");
    CHECK(good("LOG_LEVEL", "Warn").log_level == "warn");
    for (std::string v : {"warning", "off", "verbose", "fatal", "'info '", "1"}) {
        CAPTURE(v);
        CHECK(contains(bad("LOG_LEVEL", v),
                       "is not a log level (trace, debug, info, warn or error)"));
    }
    CHECK(bad("LOG_LEVEL", "verbose") ==
          "t.env:2: LOG_LEVEL: \"verbose\" is not a log level (trace, debug, info, warn or error)");
    CHECK(contains(bad("LOG_LEVEL", ""), "default (info)"));
}

TEST_CASE("LOG_FORMAT") {
    CHECK_FALSE(good("LOG_FORMAT", "text").log_json);
    CHECK(good("LOG_FORMAT", "json").log_json);
    CHECK(good("LOG_FORMAT", "JSON").log_json);
    CHECK(bad("LOG_FORMAT", "xml") ==
          "t.env:2: LOG_FORMAT: \"xml\" is not a log format (text or json)");
    CHECK(contains(bad("LOG_FORMAT", "jsonl"), "is not a log format"));
    CHECK(contains(bad("LOG_FORMAT", ""), "default (text)"));
}

// ---- order of problems --------------------------------------------------------------------

TEST_CASE("the first invalid value in the file is the one reported") {
    CHECK(contains(err("LOG_LEVEL=loud\nTERMINAL_ID=L1\nTERMINAL_PORT=0\n"), "t.env:1: LOG_LEVEL"));
    CHECK(contains(err("TERMINAL_PORT=0\nTERMINAL_ID=L1\nLOG_LEVEL=loud\n"),
                   "t.env:1: TERMINAL_PORT"));
    CHECK(
        contains(err("CLOUD_BATCH_SIZE=\nTERMINAL_ID=L 1\n"), "t.env:1: CLOUD_BATCH_SIZE: empty"));
}

TEST_CASE("peer TLS files: must be readable, and cert and key go together") {
    auto lookup = [](const std::string&) -> std::optional<std::string> { return std::nullopt; };
    CHECK_THROWS_WITH_AS(
        load_text("TERMINAL_ID=L1\nPEER_TLS_CERT_FILE=/nonexistent/cert.pem\n", "t.env", lookup),
        doctest::Contains("t.env:2: PEER_TLS_CERT_FILE"), config_error);
    CHECK_THROWS_WITH_AS(
        load_text("TERMINAL_ID=L1\nPEER_TLS_CERT_FILE=/etc/passwd\n", "t.env", lookup),
        doctest::Contains("go together"), config_error);
    CHECK_THROWS_WITH_AS(load_text("TERMINAL_ID=L1\nPEER_CA_FILE=/etc\n", "t.env", lookup),
                         doctest::Contains("not a regular file"), config_error);
    auto ok =
        load_text("TERMINAL_ID=L1\nPEER_TLS_CERT_FILE=/etc/passwd\nPEER_TLS_KEY_FILE=/etc/passwd\n",
                  "t.env", lookup);
    CHECK(ok.cfg.peer_tls_cert_file == "/etc/passwd");
}

TEST_CASE("TOPIC_PRIORITY: TOPIC:PRIORITY entries, each topic once") {
    using lanesync::protocol::priority;
    CHECK(ok("TERMINAL_ID=L1\n").cfg.topic_priority.empty());
    auto two = good("TOPIC_PRIORITY", "transaction:high, audit:LOW,").topic_priority;
    CHECK(two == lanesync::protocol::topic_priorities{{"transaction", priority::high},
                                                      {"audit", priority::low}});
    CHECK(good("TOPIC_PRIORITY", "sale.void:critical").topic_priority.at("sale.void") ==
          priority::critical);
    CHECK(bad("TOPIC_PRIORITY", "transaction") ==
          "t.env:2: TOPIC_PRIORITY: entry 1 \"transaction\" is not TOPIC:PRIORITY (e.g. "
          "transaction:high)");
    CHECK(bad("TOPIC_PRIORITY", "a:high,b:urgent") ==
          "t.env:2: TOPIC_PRIORITY: entry 2 \"b:urgent\": the priority must be critical, high, "
          "normal or low");
    CHECK(contains(bad("TOPIC_PRIORITY", "Sales:high"), "the topic must be 1-64 characters"));
    CHECK(contains(bad("TOPIC_PRIORITY", ":high"), "the topic must be"));
    CHECK(bad("TOPIC_PRIORITY", "a:high,a:low") ==
          "t.env:2: TOPIC_PRIORITY: entry 2 \"a:low\" names topic a a second time");
}
