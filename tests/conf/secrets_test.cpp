// Secrets (PEER_SECRET, SUPABASE_SERVICE_KEY) never appear in an error or a warning.
#include "conf_test_util.hpp"

using namespace lanesync::conf;
using namespace lanesync::conf::test;

namespace {

/// Loads text that must fail and checks that none of `secrets` leaks into the message.
void fails_without(const std::string& text, const std::vector<std::string>& secrets,
                   const std::string& expected_part, env_lookup lookup = env()) {
    auto e = err(text, std::move(lookup));
    CAPTURE(e);
    CHECK(contains(e, expected_part));
    for (const auto& s : secrets)
        CHECK_FALSE(contains(e, s));
}

} // namespace

TEST_CASE("a short PEER_SECRET: length, not value") {
    fails_without("TERMINAL_ID=L1\nPEER_SECRET=s3cr3t-h0rse\n", {"s3cr3t-h0rse", "s3cr3t"},
                  "t.env:2: PEER_SECRET: too short (12 chars, need at least 16)");
}

TEST_CASE("a short PEER_SECRET from the environment") {
    fails_without("TERMINAL_ID=L1\n", {"s3cr3t-h0rse"},
                  "t.env: PEER_SECRET: too short (12 chars, need at least 16) (value from the "
                  "environment",
                  env({{"PEER_SECRET", "s3cr3t-h0rse"}}));
}

TEST_CASE("syntax errors on secret lines do not show the value") {
    const std::string secret = "Very$ecretValue-42";
    fails_without("TERMINAL_ID=L1\nPEER_SECRET=\"" + secret + "\n", {secret, "ecretValue"},
                  "t.env:2: PEER_SECRET: unterminated double quote");
    fails_without("TERMINAL_ID=L1\nPEER_SECRET='" + secret + "\n", {secret, "ecretValue"},
                  "t.env:2: PEER_SECRET: unterminated single quote");
    fails_without("TERMINAL_ID=L1\nPEER_SECRET=\"" + secret + "\"tail\n", {secret, "tail"},
                  "unexpected text after the closing quote");
    // The unknown escape character is shown for ordinary keys but not for secrets.
    fails_without("TERMINAL_ID=L1\nSUPABASE_SERVICE_KEY=\"ab\\qcd" + secret + "\"\n",
                  {secret, "\\q", "ab"},
                  "t.env:2: SUPABASE_SERVICE_KEY: unknown escape sequence in");
    fails_without("TERMINAL_ID=L1\nPEER_SECRET=" + secret + "\nPEER_SECRET=" + secret + "\n",
                  {secret}, "t.env:3: PEER_SECRET: set twice (first on line 2");
    fails_without("TERMINAL_ID=L1\nPEER_SECRET=" + secret + "\x01\n", {secret},
                  "t.env:2: control character U+0001");
    fails_without("TERMINAL_ID=L1\nPEER_SECRET=" + secret + "\xFF\n", {secret},
                  "t.env:2: invalid UTF-8");
    std::string nul = "TERMINAL_ID=L1\nPEER_SECRET=" + secret;
    nul += '\0';
    fails_without(nul + "\n", {secret}, "t.env:2: NUL byte");
    fails_without("TERMINAL_ID=L1\nPEER_SECRET=" + secret + "\rX=1\n", {secret},
                  "t.env:2: carriage return");
}

TEST_CASE("a secret typed after a wrong separator is not echoed as a key") {
    const std::string secret = "hunter2hunter2hunter2";
    fails_without("TERMINAL_ID=L1\nPEER_SECRET:" + secret + "=x\n", {secret, "hunter"},
                  "t.env:2: invalid key name starting \"PEER_SECRET\": ':' is not allowed");
    fails_without("TERMINAL_ID=L1\nPEER_SECRET " + secret + "\n", {secret, "hunter"},
                  "t.env:2: expected KEY=VALUE");
    fails_without("TERMINAL_ID=L1\nSUPABASE_SERVICE_KEY " + secret + "=\n", {secret, "hunter"},
                  "blanks are not allowed inside a key");
}

TEST_CASE("a malformed SUPABASE_SERVICE_KEY: no value in the message") {
    const std::string key = "eyJhbGciOiJIUzI1NiJ9 .payload.sig";
    fails_without("TERMINAL_ID=L1\nSUPABASE_SERVICE_KEY='" + key + "'\n",
                  {key, "eyJhbGci", "payload"}, "t.env:2: SUPABASE_SERVICE_KEY: contains a blank");
    fails_without("TERMINAL_ID=L1\n", {"eyJhbGci", "payload"},
                  "SUPABASE_SERVICE_KEY: contains a blank", env({{"SUPABASE_SERVICE_KEY", key}}));
}

TEST_CASE("errors on other keys do not drag secrets along") {
    const std::string secret = "0123456789abcdef-SECRET";
    const std::string key = "service-key-SECRET-value";
    std::string head =
        "TERMINAL_ID=L1\nPEER_SECRET=" + secret + "\nSUPABASE_SERVICE_KEY=" + key + "\n";
    for (std::string tail : {"PEER_TERMINALS=http://x:1\n", "SUPABASE_URL=ftp://x\n",
                             "PEER_TERMINALS=ws://127.0.0.1:8124\nPEER_ACK_QUORUM=5\n",
                             "TERMINAL_PORT=0\n", "BAD LINE\n", "LOG_LEVEL=\"x\n"}) {
        CAPTURE(tail);
        auto e = err(head + tail);
        CHECK_FALSE(contains(e, secret));
        CHECK_FALSE(contains(e, "SECRET-value"));
        CHECK_FALSE(contains(e, key));
    }
}

TEST_CASE("warnings do not contain secrets") {
    const std::string secret = "0123456789abcdef-SECRET";
    auto l =
        ok("TERMINAL_ID=L1\nPEER_SECRET=" + secret + "\nPEER_SECRETS=" + secret +
           "\nPEER_ACK_QUORUM=3\nSUPABASE_URL=http://example.com\nSUPABASE_SERVICE_KEY=" + secret +
           "\n");
    REQUIRE(l.warnings.size() == 3);
    for (const auto& w : l.warnings) {
        CAPTURE(w.text);
        CHECK_FALSE(contains(w.text, secret));
    }
    CHECK(l.warnings[0].text == "t.env:3: unknown key PEER_SECRETS (did you mean PEER_SECRET?)");
}
