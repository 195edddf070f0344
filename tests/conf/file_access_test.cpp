// conf/file_access: the warning for an env file holding secrets that others can read.

#include "conf/file_access.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sys/stat.h>

using lanesync::conf::check_secret_file;
using lanesync::conf::secret_file_warning;

namespace {

struct temp_file {
    std::filesystem::path path;
    temp_file(const std::string& text, mode_t mode) {
        std::random_device rd;
        path = std::filesystem::temp_directory_path() /
               ("lanesync-file-access-" + std::to_string(rd()) + ".env");
        std::ofstream(path) << text;
        REQUIRE(::chmod(path.c_str(), mode) == 0);
    }
    ~temp_file() {
        std::error_code ec;
        std::filesystem::remove(path, ec);
    }
};

} // namespace

TEST_CASE("secret_file_warning: only a file holding secrets and readable by others") {
    CHECK_FALSE(secret_file_warning("/etc/lanesync/L1.env", 0600, true));
    CHECK_FALSE(secret_file_warning("/etc/lanesync/L1.env", 0640, true)); // group lanesync
    CHECK_FALSE(secret_file_warning("/etc/lanesync/L1.env", 0644, false));
    auto w = secret_file_warning("/etc/lanesync/L1.env", 0644, true);
    REQUIRE(w);
    CHECK(*w == "/etc/lanesync/L1.env: holds secrets but is readable by others (mode 0644); run "
                "chmod 600 /etc/lanesync/L1.env (or 640 with group lanesync)");
    CHECK(secret_file_warning("x.env", 0604, true));
}

TEST_CASE("check_secret_file: reads the mode and whether the file itself sets a secret") {
    const std::string secret = "PEER_SECRET=do-not-print-this-secret-0123\n";
    {
        temp_file f("TERMINAL_ID=L1\n" + secret, 0644);
        auto w = check_secret_file(f.path.string());
        REQUIRE(w);
        CHECK(w->find(f.path.string()) == 0);
        CHECK(w->find("do-not-print") == std::string::npos);
    }
    {
        temp_file f("TERMINAL_ID=L1\nSUPABASE_SERVICE_KEY=sb_secret_abc\n", 0604);
        CHECK(check_secret_file(f.path.string()));
    }
    {
        temp_file f("TERMINAL_ID=L1\n" + secret, 0600);
        CHECK_FALSE(check_secret_file(f.path.string()));
    }
    {
        // Secrets from the environment (nothing secret in the file): fine to be world-readable.
        temp_file f("TERMINAL_ID=L1\nPEER_SECRET=\n", 0644);
        CHECK_FALSE(check_secret_file(f.path.string()));
    }
    {
        // A file that does not parse: load() reports it, not this check.
        temp_file f("PEER_SECRET\n", 0644);
        CHECK_FALSE(check_secret_file(f.path.string()));
    }
    CHECK_FALSE(check_secret_file("/nonexistent/lanesync/L1.env"));
}
