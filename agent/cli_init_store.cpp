// `init-store`: writes the env files of a whole store, one per lane (docs/cli.md). The plan is
// pure (agent/init_store.cpp); this file checks nothing would be overwritten, then writes each
// file through a temporary file, mode 0600, owned by the `lanesync` user when that user exists.
#include "agent/cli.hpp"
#include "agent/cli_commands.hpp"
#include "agent/init_store.hpp"

#include <CLI/CLI.hpp>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <iostream>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

namespace lanesync::agent::cli {
namespace {

namespace fs = std::filesystem;

struct init_args {
    std::string dir;
    std::string lanes;
    std::string hosts;
    std::string store = "store-1";
    std::uint16_t port = 8123;
    std::uint16_t api_port = 9123;
    bool force = false;
};

/// The `lanesync` system user (the package creates it), when it exists and we may chown to it.
std::optional<std::pair<uid_t, gid_t>> lanesync_owner() {
    if (::geteuid() != 0)
        return std::nullopt;
    const passwd* pw = ::getpwnam("lanesync");
    if (pw == nullptr)
        return std::nullopt;
    return std::make_pair(pw->pw_uid, pw->pw_gid);
}

/// Writes `text` to `path` as 0600 (and chowns it) through a temporary file in the same folder,
/// renamed over the target only once it is complete and fsync'd. Returns an error text or "".
std::string write_private(const fs::path& path, const std::string& text,
                          const std::optional<std::pair<uid_t, gid_t>>& owner) {
    std::string tmpl = (path.parent_path() / ("." + path.filename().string() + ".XXXXXX")).string();
    int fd = ::mkstemp(tmpl.data()); // mode 0600
    if (fd < 0)
        return tmpl + ": " + std::strerror(errno);
    auto fail = [&](const std::string& what) {
        std::string why = what + ": " + std::strerror(errno);
        ::close(fd);
        ::unlink(tmpl.c_str());
        return why;
    };
    std::size_t off = 0;
    while (off < text.size()) {
        auto n = ::write(fd, text.data() + off, text.size() - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return fail("write " + tmpl);
        off += static_cast<std::size_t>(n);
    }
    if (::fchmod(fd, 0600) != 0)
        return fail("chmod " + tmpl);
    if (owner && ::fchown(fd, owner->first, owner->second) != 0)
        return fail("chown " + tmpl);
    if (::fsync(fd) != 0)
        return fail("fsync " + tmpl);
    if (::close(fd) != 0) {
        ::unlink(tmpl.c_str());
        return "close " + tmpl + ": " + std::strerror(errno);
    }
    if (::rename(tmpl.c_str(), path.c_str()) != 0) {
        std::string why = "rename to " + path.string() + ": " + std::strerror(errno);
        ::unlink(tmpl.c_str());
        return why;
    }
    return {};
}

int cmd_init_store(const init_args& a) {
    init_store_options o;
    o.lanes = split_list(a.lanes);
    if (!a.hosts.empty())
        o.hosts = split_list(a.hosts);
    o.store_id = a.store;
    o.peer_port = a.port;
    o.api_port = a.api_port;
    o.peer_secret = generate_peer_secret();
    std::string error;
    auto files = plan_store(o, error);
    if (!files) {
        std::cerr << "init-store: " << error << "\n";
        return exit_usage;
    }
    const fs::path dir(a.dir);
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec || !fs::is_directory(dir)) {
        std::cerr << "init-store: cannot create " << dir.string() << ": " << ec.message() << "\n";
        return exit_failure;
    }
    // Refuse before writing anything: either every file is written or none.
    if (!a.force) {
        bool exists = false;
        for (const auto& f : *files)
            if (fs::exists(dir / f.filename, ec)) {
                std::cerr << "init-store: " << (dir / f.filename).string()
                          << " exists (use --force to overwrite)\n";
                exists = true;
            }
        if (exists)
            return exit_usage;
    }
    const auto owner = lanesync_owner();
    fs::path dir_abs = fs::absolute(dir, ec);
    if (ec)
        dir_abs = dir; // only for the messages below
    for (const auto& f : *files) {
        if (auto why = write_private(dir / f.filename, f.text, owner); !why.empty()) {
            std::cerr << "init-store: " << why << "\n";
            return exit_failure;
        }
        std::cout << "wrote " << (dir_abs / f.filename).string() << ": lane " << f.lane
                  << ", peers dial " << f.peer_url << ", API 127.0.0.1:" << f.api_port << "\n";
    }
    std::cout << "mode 0600, owner " << (owner ? "lanesync" : "the current user")
              << "; one PEER_SECRET shared by the " << files->size()
              << (files->size() == 1 ? " lane" : " lanes") << " (not printed)\n"
              << "next: copy each file to its lane PC as /etc/lanesync/<lane>.env, check it "
                 "with `lanesync check-config --env FILE`, then `systemctl enable --now "
                 "lanesync@<lane>`\n";
    return exit_ok;
}

} // namespace

command add_init_store(CLI::App& app) {
    auto a = std::make_shared<init_args>();
    auto* sub = app.add_subcommand(
        "init-store", "Write one env file per lane of a store (ports, peers, a fresh PEER_SECRET)");
    sub->add_option("--dir", a->dir, "Folder for the env files (created if missing)")
        ->required()
        ->type_name("DIR");
    sub->add_option("--lanes", a->lanes, "Lane ids, comma-separated (e.g. L1,L2,L3)")
        ->required()
        ->type_name("L1,L2,...");
    sub->add_option("--hosts", a->hosts,
                    "Each lane's host name or IP address as its peers reach it, in --lanes order "
                    "(default: every lane on 127.0.0.1)")
        ->type_name("H1,H2,...");
    sub->add_option("--store", a->store, "STORE_ID of every lane")
        ->type_name("ID")
        ->capture_default_str();
    sub->add_option("--port", a->port,
                    "TERMINAL_PORT of the first lane on each host; the next lane on the same "
                    "host gets the next port")
        ->type_name("PORT")
        ->capture_default_str();
    sub->add_option("--api-port", a->api_port,
                    "LOCAL_API_PORT of the first lane on each host, likewise")
        ->type_name("PORT")
        ->capture_default_str();
    sub->add_flag("--force", a->force, "Overwrite env files that already exist");
    return {sub, [a] { return cmd_init_store(*a); }};
}

} // namespace lanesync::agent::cli
