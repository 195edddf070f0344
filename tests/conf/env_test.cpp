// Precedence between the env file and the inherited environment, and unknown-key warnings.
#include "conf_test_util.hpp"

#include <algorithm>
#include <set>

using namespace lanesync::conf;
using namespace lanesync::conf::test;

TEST_CASE("a value in the file wins over the environment") {
    auto c = ok("TERMINAL_ID=L1\nSTORE_ID=from-file\n",
                env({{"TERMINAL_ID", "L9"}, {"STORE_ID", "from-env"}}))
                 .cfg;
    CHECK(c.terminal_id == "L1");
    CHECK(c.store_id == "from-file");
}

TEST_CASE("keys absent from the file are taken from the environment") {
    auto c = ok("STORE_ID=s1\n", env({{"TERMINAL_ID", "L9"},
                                      {"TERMINAL_PORT", "8200"},
                                      {"LOG_FORMAT", "json"},
                                      {"PEER_TERMINALS", "ws://127.0.0.1:8201"},
                                      {"PEER_SECRET", "0123456789abcdef"}}))
                 .cfg;
    CHECK(c.terminal_id == "L9");
    CHECK(c.store_id == "s1");
    CHECK(c.terminal_port == 8200);
    CHECK(c.local_api_port == 9200);
    CHECK(c.outbox_path == "data/L9.db");
    CHECK(c.log_json);
    REQUIRE(c.peers.size() == 1);
    CHECK(c.peer_secret == "0123456789abcdef");
}

TEST_CASE("the environment can supply everything (empty file)") {
    CHECK(ok("", env({{"TERMINAL_ID", "L3"}})).cfg.terminal_id == "L3");
}

TEST_CASE("an empty value in the file still wins: it unsets an optional key") {
    auto c = ok("TERMINAL_ID=L1\nSUPABASE_URL=\n",
                env({{"SUPABASE_URL", "https://a.supabase.co"}, {"SUPABASE_SERVICE_KEY", "k"}}))
                 .cfg;
    CHECK_FALSE(c.cloud_enabled());
    CHECK(c.supabase_service_key == "k");
    // ...and is an error for a key that must have a value.
    CHECK(contains(err("TERMINAL_ID=L1\nSTORE_ID=\n", env({{"STORE_ID", "s"}})),
                   "t.env:2: STORE_ID: empty value"));
}

TEST_CASE("an empty environment variable counts as unset") {
    auto c = ok("TERMINAL_ID=L1\n", env({{"LOG_LEVEL", ""}, {"TERMINAL_PORT", ""}})).cfg;
    CHECK(c.log_level == "info");
    CHECK(c.terminal_port == 8123);
    CHECK(contains(err("", env({{"TERMINAL_ID", ""}})), "TERMINAL_ID: required"));
}

TEST_CASE("the environment is asked only for known keys the file does not set") {
    std::set<std::string> asked;
    env_lookup spy = [&](const std::string& key) -> std::optional<std::string> {
        asked.insert(key);
        return std::nullopt;
    };
    ok("TERMINAL_ID=L1\nPEER_TERMINAL=ws://x:1\nHOME=/root\n", spy);
    const auto& known = known_keys();
    for (const auto& k : asked)
        CHECK(std::find(known.begin(), known.end(), k) != known.end());
    CHECK(asked.count("TERMINAL_ID") == 0);
    CHECK(asked.count("PEER_TERMINAL") == 0);
    CHECK(asked.count("HOME") == 0);
    CHECK(asked.size() == known.size() - 1);
}

TEST_CASE("an invalid environment value names the key, no line, and says where it came from") {
    auto e = err("TERMINAL_ID=L1\n", env({{"TERMINAL_PORT", "80x"}}));
    CHECK(e ==
          "t.env: TERMINAL_PORT: \"80x\" is not a whole number (digits only: no sign, blanks or "
          "unit) (value from the environment; the env file does not set TERMINAL_PORT)");
    CHECK(contains(err("", env({{"TERMINAL_ID", "bad id"}})),
                   "t.env: TERMINAL_ID: \"bad id\" is not a valid lane id"));
}

TEST_CASE("file values are checked before environment values") {
    auto e = err("TERMINAL_ID=L1\nCLOUD_BATCH_SIZE=0\n", env({{"TERMINAL_PORT", "x"}}));
    CHECK(contains(e, "t.env:2: CLOUD_BATCH_SIZE"));
}

TEST_CASE("environment values combine with file values in cross-key rules") {
    // Peers from the file, quorum from the environment.
    auto e =
        err("TERMINAL_ID=L1\nPEER_TERMINALS=ws://127.0.0.1:8124\nPEER_SECRET=0123456789abcdef\n",
            env({{"PEER_ACK_QUORUM", "2"}}));
    CHECK(e == "t.env: PEER_ACK_QUORUM: 2 is more than the number of peers (1 in PEER_TERMINALS) "
               "(value from the environment; the env file does not set PEER_ACK_QUORUM)");
    // TERMINAL_PORT from the file, LOCAL_API_PORT from the environment.
    CHECK(contains(err("TERMINAL_ID=L1\nTERMINAL_PORT=9000\n", env({{"LOCAL_API_PORT", "9000"}})),
                   "t.env: LOCAL_API_PORT: must differ from TERMINAL_PORT (both are 9000)"));
}

// ---- unknown keys -------------------------------------------------------------------------

TEST_CASE("an unknown key is a warning with a suggestion when close") {
    auto l = ok("TERMINAL_ID=L1\nPEER_TERMINAL=ws://127.0.0.1:8124\n");
    CHECK(l.cfg.peers.empty()); // not applied
    REQUIRE(l.warnings.size() == 1);
    CHECK(l.warnings[0].text ==
          "t.env:2: unknown key PEER_TERMINAL (did you mean PEER_TERMINALS?)");
}

TEST_CASE("suggestions: typos within 3 edits and case mismatches") {
    struct row {
        std::string typo;
        std::string known;
    };
    const row rows[] = {
        {"LOG_LEVL", "LOG_LEVEL"},
        {"LOGLEVEL", "LOG_LEVEL"},
        {"terminal_id", "TERMINAL_ID"},
        {"Supabase_Url", "SUPABASE_URL"},
        {"PEER_SECERT", "PEER_SECRET"},
        {"SUPABASE_URI", "SUPABASE_URL"},
        {"CLOUD_BATCH", ""}, // 5 edits from CLOUD_BATCH_SIZE: too far for a suggestion
        {"OUTBOX_PAHT", "OUTBOX_PATH"},
        {"TERMINAL_PORTS", "TERMINAL_PORT"},
        {"SYNC_BACKOFF_MAX", "SYNC_BACKOFF_MAX_MS"},
        {"max_message_bytes", "MAX_MESSAGE_BYTES"},
    };
    for (const auto& r : rows) {
        CAPTURE(r.typo);
        auto l = ok("TERMINAL_ID=L1\n" + r.typo + "=1\n");
        REQUIRE(l.warnings.size() == 1);
        if (r.known.empty())
            CHECK(l.warnings[0].text == "t.env:2: unknown key CLOUD_BATCH (ignored)");
        else
            CHECK(l.warnings[0].text ==
                  "t.env:2: unknown key " + r.typo + " (did you mean " + r.known + "?)");
    }
}

TEST_CASE("an unrelated unknown key gets no suggestion") {
    auto l = ok("TERMINAL_ID=L1\nHOME=/root\nNODE_ENV=production\n");
    REQUIRE(l.warnings.size() == 2);
    CHECK(l.warnings[0].text == "t.env:2: unknown key HOME (ignored)");
    CHECK(l.warnings[1].text == "t.env:3: unknown key NODE_ENV (ignored)");
}

TEST_CASE("an error wins over warnings: nothing is returned") {
    // Warnings are only returned with a valid configuration; an error throws.
    CHECK(contains(err("PEER_TERMINAL=x\nTERMINAL_PORT=0\nTERMINAL_ID=L1\n"),
                   "t.env:2: TERMINAL_PORT"));
}
