// The env file syntax: every accepted form and every rejected line.
#include "conf_test_util.hpp"

using namespace lanesync::conf;
using namespace lanesync::conf::test;

// ---- accepted forms -----------------------------------------------------------------------

TEST_CASE("plain KEY=VALUE lines") {
    auto l = ok("TERMINAL_ID=L1\nSTORE_ID=shop-7\n");
    CHECK(l.cfg.terminal_id == "L1");
    CHECK(l.cfg.store_id == "shop-7");
    CHECK(l.warnings.empty());
    CHECK(l.cfg.source == "t.env");
}

TEST_CASE("comments, blank lines and blank-only lines are skipped") {
    auto c =
        ok("# a lane\n\n   \n\t\n  # indented comment with = sign\nTERMINAL_ID=L1\n#STORE_ID=x\n")
            .cfg;
    CHECK(c.terminal_id == "L1");
    CHECK(c.store_id == "store-1");
}

TEST_CASE("export prefix") {
    CHECK(ok("export TERMINAL_ID=L1\n").cfg.terminal_id == "L1");
    CHECK(ok("export\tTERMINAL_ID=L1\n").cfg.terminal_id == "L1");
    CHECK(ok("  export    TERMINAL_ID = L1\n").cfg.terminal_id == "L1");
}

TEST_CASE("a key merely starting with 'export' is a key, not a prefix") {
    auto l = ok("TERMINAL_ID=L1\nexportTERMINAL_ID=L2\nexport=1\n");
    CHECK(l.cfg.terminal_id == "L1");
    REQUIRE(l.warnings.size() == 2);
    CHECK(contains(l.warnings[0].text, "unknown key exportTERMINAL_ID"));
    CHECK(contains(l.warnings[1].text, "unknown key export"));
}

TEST_CASE("blanks around the key and the '=' are tolerated") {
    auto c = ok("  TERMINAL_ID  =  L1  \n\tSTORE_ID\t=\ts1\t\n").cfg;
    CHECK(c.terminal_id == "L1");
    CHECK(c.store_id == "s1");
}

TEST_CASE("unquoted values: trailing blanks trimmed, ' #' starts a comment, '#' in a word kept") {
    CHECK(good("STORE_ID", "s1   \t").store_id == "s1");
    CHECK(good("STORE_ID", "s1 # the store").store_id == "s1");
    CHECK(good("STORE_ID", "s1\t# tab then comment").store_id == "s1");
    CHECK(good("OUTBOX_PATH", "a#b.db").outbox_path == "a#b.db");
    CHECK(good("OUTBOX_PATH", "#x.db").outbox_path == "#x.db");
    CHECK(good("OUTBOX_PATH", "a=b.db").outbox_path == "a=b.db");
    CHECK(good("OUTBOX_PATH", "my lane.db").outbox_path == "my lane.db");
    CHECK(good("OUTBOX_PATH", "a\"b'.db").outbox_path == "a\"b'.db");
    CHECK(good("OUTBOX_PATH", "$HOME/x.db").outbox_path == "$HOME/x.db"); // no expansion
    // Only a comment after '=': the value is empty (cloud off).
    CHECK(good("SUPABASE_URL", " # cloud off for now").supabase_url.empty());
}

TEST_CASE("single quotes are literal") {
    CHECK(good("OUTBOX_PATH", R"('a\nb $x #c "q".db')").outbox_path == R"(a\nb $x #c "q".db)");
    CHECK(good("OUTBOX_PATH", "'  padded  '").outbox_path == "  padded  ");
    CHECK(good("OUTBOX_PATH", "'x.db' # comment").outbox_path == "x.db");
    CHECK(good("OUTBOX_PATH", "'x.db'#comment").outbox_path == "x.db");
    CHECK(good("OUTBOX_PATH", "  'x.db'  ").outbox_path == "x.db");
}

TEST_CASE("double quotes: escapes \\n \\t \\\" \\\\ \\$") {
    CHECK(good("OUTBOX_PATH", R"("a\nb\tc\"d\\e\$f.db")").outbox_path == "a\nb\tc\"d\\e$f.db");
    CHECK(good("OUTBOX_PATH", R"("$HOME 'q' #x.db")").outbox_path == "$HOME 'q' #x.db");
    CHECK(good("OUTBOX_PATH", "\"  padded  \"").outbox_path == "  padded  ");
    CHECK(good("OUTBOX_PATH", "\"x.db\" # comment").outbox_path == "x.db");
    CHECK(good("OUTBOX_PATH", "\"x.db\"#comment").outbox_path == "x.db");
    CHECK(good("SUPABASE_URL", "\"\"").supabase_url.empty());
    CHECK(good("SUPABASE_URL", "''").supabase_url.empty());
}

TEST_CASE("CRLF line endings are accepted") {
    auto c = ok("# lane\r\nTERMINAL_ID=L1\r\n\r\nSTORE_ID=s1 # c\r\nOUTBOX_PATH=\"q.db\"\r\n").cfg;
    CHECK(c.terminal_id == "L1");
    CHECK(c.store_id == "s1");
    CHECK(c.outbox_path == "q.db");
}

TEST_CASE("no newline at the end, a UTF-8 byte order mark, UTF-8 values") {
    CHECK(ok("TERMINAL_ID=L1").cfg.terminal_id == "L1");
    CHECK(ok("\xEF\xBB\xBFTERMINAL_ID=L1\n").cfg.terminal_id == "L1");
    CHECK(good("OUTBOX_PATH", "données/é€😀.db").outbox_path == "données/é€😀.db");
}

// ---- rejected lines -----------------------------------------------------------------------

TEST_CASE("a line without '=' names file and line") {
    auto e = err("TERMINAL_ID=L1\n\nSTORE_ID shop\n");
    CHECK(e == "t.env:3: expected KEY=VALUE (this line has no '=')");
    CHECK(err("export TERMINAL_ID\n") == "t.env:1: expected KEY=VALUE (this line has no '=')");
    CHECK(err("export\n") == "t.env:1: expected KEY=VALUE (this line has no '=')");
}

TEST_CASE("a missing key name") {
    CHECK(err("=L1\n") == "t.env:1: missing key name before '='");
    CHECK(err("  = x\n") == "t.env:1: missing key name before '='");
    CHECK(err("export =x\n") == "t.env:1: missing key name before '='");
}

TEST_CASE("invalid key names") {
    auto e = err("TERMINAL_ID=L1\n1ABC=x\n");
    CHECK(contains(e, "t.env:2: invalid key name"));
    CHECK(contains(e, "must not start with a digit"));
    e = err("MY-KEY=x\n");
    CHECK(contains(e, "t.env:1: invalid key name starting \"MY\": '-' is not allowed"));
    e = err("MY KEY=x\n");
    CHECK(contains(e, "t.env:1: invalid key name starting \"MY\": blanks are not allowed"));
    CHECK(contains(err("KEY\xC3\xA9=x\n"), "t.env:1: invalid key name starting \"KEY\""));
    CHECK(contains(err("KEY.X=x\n"), "'.' is not allowed"));
    CHECK(contains(err("$KEY=x\n"), "invalid key name: '$' is not allowed"));
}

TEST_CASE("a key set twice names both lines") {
    auto e = err("TERMINAL_ID=L1\nSTORE_ID=a\n# c\nSTORE_ID=b\n");
    CHECK(e == "t.env:4: STORE_ID: set twice (first on line 2, again on line 4); keep one");
    // Also through the export prefix, with the same value, and for unknown keys.
    CHECK(contains(err("TERMINAL_ID=L1\nexport TERMINAL_ID=L1\n"),
                   "t.env:2: TERMINAL_ID: set twice (first on line 1"));
    CHECK(contains(err("TERMINAL_ID=L1\nFOO=1\nFOO=2\n"),
                   "t.env:3: FOO: set twice (first on line 2"));
}

TEST_CASE("keys are case-sensitive: a lowercase key is not a duplicate, it is unknown") {
    auto l = ok("TERMINAL_ID=L1\nterminal_id=L2\n");
    CHECK(l.cfg.terminal_id == "L1");
    REQUIRE(l.warnings.size() == 1);
}

TEST_CASE("unterminated quotes") {
    CHECK(bad("STORE_ID", "\"abc") ==
          "t.env:2: STORE_ID: unterminated double quote (the closing \" must be on the same line)");
    CHECK(bad("STORE_ID", "'abc") ==
          "t.env:2: STORE_ID: unterminated single quote (the closing ' must be on the same line)");
    CHECK(contains(bad("STORE_ID", R"("abc\")"), "unterminated double quote"));
    CHECK(contains(bad("STORE_ID", R"("abc\)"), "unterminated double quote"));
    CHECK(contains(bad("STORE_ID", "\""), "unterminated double quote"));
    // Values never span lines.
    CHECK(contains(err("TERMINAL_ID=L1\nOUTBOX_PATH=\"a\nb\"\n"),
                   "t.env:2: OUTBOX_PATH: unterminated double quote"));
}

TEST_CASE("text after a closing quote") {
    CHECK(bad("STORE_ID", "\"a\"b") ==
          "t.env:2: STORE_ID: unexpected text after the closing quote (only a # comment may "
          "follow)");
    CHECK(contains(bad("STORE_ID", "'a' b"), "unexpected text after the closing quote"));
    CHECK(contains(bad("STORE_ID", "\"a\"\"b\""), "unexpected text after the closing quote"));
}

TEST_CASE("unknown escapes in double quotes") {
    auto e = bad("OUTBOX_PATH", R"("C:\data\l1.db")");
    CHECK(contains(e, "t.env:2: OUTBOX_PATH: unknown escape sequence \\d in double quotes"));
    CHECK(contains(bad("OUTBOX_PATH", R"("a\r")"), "unknown escape sequence \\r"));
    CHECK(contains(bad("OUTBOX_PATH", R"("a\'")"), "unknown escape sequence \\'"));
}

TEST_CASE("NUL bytes are rejected with the line") {
    std::string text = "TERMINAL_ID=L1\nSTORE_ID=a";
    text += '\0';
    text += "b\n";
    CHECK(err(text) == "t.env:2: NUL byte in the file (is this a binary file?)");
}

TEST_CASE("invalid UTF-8 is rejected with the line") {
    for (std::string bytes :
         {std::string("\xFF"), std::string("\xC3"), std::string("\xC0\xAF"),
          std::string("\xED\xA0\x80"), std::string("\xF4\x90\x80\x80"), std::string("\xE2\x82"),
          std::string("\x80"), std::string("\xF8\x88\x80\x80\x80")}) {
        CAPTURE(bytes.size());
        auto e = err("TERMINAL_ID=L1\n# ok\nOUTBOX_PATH=x" + bytes + ".db\n");
        CHECK(contains(e, "t.env:3: invalid UTF-8 (column 14)"));
    }
    // In a comment too: the whole file must be text.
    CHECK(contains(err("# caf\xE9\nTERMINAL_ID=L1\n"), "t.env:1: invalid UTF-8"));
}

TEST_CASE("carriage returns other than CRLF, control characters") {
    CHECK(contains(err("TERMINAL_ID=L1\rSTORE_ID=x\n"),
                   "t.env:1: carriage return in the middle of a line"));
    CHECK(contains(err("TERMINAL_ID=L1\r\r\n"), "t.env:1: carriage return in the middle"));
    CHECK(err("TERMINAL_ID=L1\nSTORE_ID=a\x01\n") ==
          "t.env:2: control character U+0001 (column 11)");
    CHECK(contains(err("TERMINAL_ID=L1\x7F\n"), "t.env:1: control character U+007F"));
    CHECK(contains(err("TERMINAL_ID=L1\x1B[0m\n"), "control character U+001B"));
}

TEST_CASE("text over 1 MiB is refused before parsing") {
    std::string text = "TERMINAL_ID=L1\n" + std::string((1u << 20), '#');
    auto e = err(text);
    CHECK(contains(e, "t.env: file is too large ("));
    CHECK(contains(e, "at most 1 MiB"));
    // Exactly 1 MiB is fine.
    std::string fits = "TERMINAL_ID=L1\n#";
    fits += std::string((1u << 20) - fits.size(), 'x');
    CHECK(ok(fits).cfg.terminal_id == "L1");
}

TEST_CASE("the first syntax error wins, in file order") {
    CHECK(contains(err("TERMINAL_ID=L1\nBAD LINE\nSTORE_ID=\"x\n"), "t.env:2:"));
}

TEST_CASE("syntax errors come before value errors further up") {
    // Line 1 has an invalid value, line 2 a syntax error: syntax is checked first.
    CHECK(contains(err("TERMINAL_PORT=abc\nNOEQUALS\n"), "t.env:2: expected KEY=VALUE"));
}
