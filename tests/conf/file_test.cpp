// conf::load on real files: reading, errors about the file itself, and the repository's own
// env files and documentation.
#include "conf_test_util.hpp"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

using namespace lanesync::conf;
using namespace lanesync::conf::test;
namespace fs = std::filesystem;

namespace {

/// A fresh directory under /tmp, removed at the end of the test.
struct temp_dir {
    fs::path path;
    temp_dir() {
        static int n = 0;
        path = fs::temp_directory_path() /
               ("lanesync-conf-" + std::to_string(::getpid()) + "-" + std::to_string(++n));
        fs::remove_all(path);
        fs::create_directories(path);
    }
    ~temp_dir() {
        std::error_code ec;
        fs::permissions(path, fs::perms::owner_all, ec);
        fs::remove_all(path, ec);
    }
    std::string write(const std::string& name, const std::string& text) const {
        auto p = path / name;
        std::ofstream(p, std::ios::binary) << text;
        return p.string();
    }
};

} // namespace

TEST_CASE("load reads the file and names it in the config") {
    temp_dir d;
    auto p = d.write("L1.env", "TERMINAL_ID=L1\nTERMINAL_PORT=8124\n");
    auto l = load(p, env());
    CHECK(l.cfg.source == p);
    CHECK(l.cfg.terminal_id == "L1");
    CHECK(l.cfg.terminal_port == 8124);
}

TEST_CASE("load: a CRLF file from Windows") {
    temp_dir d;
    auto p = d.write("L1.env",
                     "\xEF\xBB\xBF# lane 1\r\nexport TERMINAL_ID=L1\r\nLOG_LEVEL=debug # c\r\n");
    auto c = load(p, env()).cfg;
    CHECK(c.terminal_id == "L1");
    CHECK(c.log_level == "debug");
}

TEST_CASE("load: file values win over the environment, the environment fills the rest") {
    temp_dir d;
    auto p = d.write("L1.env", "TERMINAL_ID=L1\n");
    auto c = load(p, env({{"TERMINAL_ID", "L2"}, {"STORE_ID", "env-store"}})).cfg;
    CHECK(c.terminal_id == "L1");
    CHECK(c.store_id == "env-store");
}

TEST_CASE("load: errors name the file path and line") {
    temp_dir d;
    auto p = d.write("bad.env", "TERMINAL_ID=L1\nTERMINAL_PORT=x\n");
    try {
        load(p, env());
        FAIL("expected a config_error");
    } catch (const config_error& e) {
        CHECK(std::string(e.what()).starts_with(p + ":2: TERMINAL_PORT: "));
    }
}

TEST_CASE("load: a missing file") {
    temp_dir d;
    auto p = (d.path / "nope.env").string();
    CHECK_THROWS_WITH_AS(load(p, env()), (p + ": cannot open: No such file or directory").c_str(),
                         config_error);
}

TEST_CASE("load: a directory") {
    temp_dir d;
    CHECK_THROWS_WITH_AS(load(d.path.string(), env()),
                         (d.path.string() + ": cannot read: Is a directory").c_str(), config_error);
}

TEST_CASE("load: an unreadable file") {
    if (::geteuid() == 0)
        return; // root reads everything
    temp_dir d;
    auto p = d.write("L1.env", "TERMINAL_ID=L1\n");
    fs::permissions(p, fs::perms::none);
    CHECK_THROWS_WITH_AS(load(p, env()), (p + ": cannot open: Permission denied").c_str(),
                         config_error);
}

TEST_CASE("load: a file over 1 MiB") {
    temp_dir d;
    auto p = d.write("big.env", "TERMINAL_ID=L1\n" + std::string(3u << 20, '#'));
    try {
        load(p, env());
        FAIL("expected a config_error");
    } catch (const config_error& e) {
        CHECK(std::string(e.what()).starts_with(p + ": file is too large ("));
    }
}

TEST_CASE("load: an empty file needs TERMINAL_ID from somewhere") {
    temp_dir d;
    auto p = d.write("empty.env", "");
    CHECK_THROWS_AS(load(p, env()), config_error);
    CHECK(load(p, env({{"TERMINAL_ID", "L7"}})).cfg.outbox_path == "data/L7.db");
}

TEST_CASE("the repository's lane files load without errors or warnings") {
    fs::path lanes = fs::path(LANESYNC_SOURCE_DIR) / "lanes";
    if (!fs::exists(lanes))
        return;
    for (const auto& f : fs::directory_iterator(lanes)) {
        if (f.path().extension() != ".env")
            continue;
        CAPTURE(f.path().string());
        loaded l;
        CHECK_NOTHROW(l = load(f.path().string(), env()));
        for (const auto& w : l.warnings)
            FAIL_CHECK(w.text);
    }
}

TEST_CASE("docs/configuration.md documents every key") {
    fs::path doc = fs::path(LANESYNC_SOURCE_DIR) / "docs" / "configuration.md";
    std::ifstream in(doc);
    REQUIRE(in);
    std::stringstream ss;
    ss << in.rdbuf();
    for (const auto& k : known_keys()) {
        CAPTURE(k);
        CHECK(contains(ss.str(), "`" + k + "`"));
    }
}
