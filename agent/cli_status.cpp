// `lanesync status`: one lane (from its running agent, else from its outbox file) or every
// lane of a folder; optionally redrawn until Ctrl-C.
#include "agent/cli.hpp"
#include "agent/cli_commands.hpp"

#include "agent/status.hpp"
#include "agent/views.hpp"
#include "protocol/message.hpp"

#include <CLI/CLI.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <thread>

namespace lanesync::agent::cli {

using nlohmann::json;

namespace {

/// How long `status` waits for a running agent before reading the outbox file itself.
constexpr auto probe_timeout = std::chrono::milliseconds(1000);

std::atomic<bool> interrupted{false};

extern "C" void on_interrupt(int) {
    interrupted = true;
}

struct status_options {
    std::string env;
    std::string store_dir;
    bool as_json = false;
    double watch_secs = 0;
    bool watch = false;
};

/// The status document of one lane: from its running agent if one answers, else read from
/// the outbox file. On failure returns nullopt with `why`.
std::optional<json> lane_status(const conf::config& cfg, std::string& why) {
    auto reply = local_http(cfg.local_api_port, "GET", "/v1/status", probe_timeout);
    if (reply.status == 200) {
        json j = json::parse(reply.body, nullptr, false);
        // Something else could listen on that port; only our lane's agent counts.
        if (j.is_object() && j.value("terminal_id", std::string()) == cfg.terminal_id)
            return j;
    }
    std::error_code ec;
    if (!std::filesystem::exists(cfg.outbox_path, ec)) {
        why = "agent not running on " + agent_address(cfg) + " and no outbox at " +
              cfg.outbox_path + " yet";
        return std::nullopt;
    }
    try {
        auto store = outbox::store::open({cfg.outbox_path, cfg.terminal_id, cfg.store_id, true});
        return status_json(cfg, *store, nullptr, nullptr, false);
    } catch (const std::exception& e) {
        why = std::string("agent not running on ") + agent_address(cfg) + "; " + e.what();
        return std::nullopt;
    }
}

/// Every *.env file of a folder, sorted.
std::vector<std::filesystem::path> env_files(const std::string& dir) {
    std::vector<std::filesystem::path> out;
    for (const auto& e : std::filesystem::directory_iterator(dir))
        if (e.is_regular_file() && e.path().extension() == ".env")
            out.push_back(e.path());
    std::sort(out.begin(), out.end());
    return out;
}

/// One rendering of `status --env`; returns the exit code it would have.
int render_lane(const status_options& o, std::string& out) {
    // Configuration was validated before the first rendering; a later edit that breaks it
    // shows as an error here.
    auto l = load_config(o.env);
    if (!l)
        return exit_usage;
    std::string why;
    auto s = lane_status(l->cfg, why);
    if (!s) {
        out = why + "\n";
        return exit_failure;
    }
    out = o.as_json ? s->dump(2) + "\n" : status_table(*s);
    return exit_ok;
}

/// One rendering of `status --store`; returns the exit code it would have.
int render_store(const status_options& o, std::string& out) {
    std::vector<json> lanes;
    int rc = exit_ok;
    for (const auto& f : env_files(o.store_dir)) {
        std::optional<conf::loaded> l;
        try {
            l = conf::load(f.string());
        } catch (const conf::config_error& e) {
            lanes.push_back({{"env", f.string()}, {"error", e.what()}});
            rc = exit_usage;
            continue;
        }
        std::string why;
        auto s = lane_status(l->cfg, why);
        if (s) {
            (*s)["env"] = f.string();
            lanes.push_back(std::move(*s));
        } else {
            lanes.push_back({{"env", f.string()},
                             {"terminal_id", l->cfg.terminal_id},
                             {"agent_running", false},
                             {"error", why}});
            if (rc == exit_ok)
                rc = exit_failure;
        }
    }
    if (lanes.empty()) {
        out = "no *.env files in " + o.store_dir + "\n";
        return exit_failure;
    }
    out = o.as_json ? json(lanes).dump(2) + "\n" : store_table(lanes);
    return rc;
}

int render_status(const status_options& o, std::string& out) {
    return o.env.empty() ? render_store(o, out) : render_lane(o, out);
}

/// --watch: redraw in place (cursor home + clear screen) until Ctrl-C.
int watch_status(const status_options& o) {
    std::signal(SIGINT, on_interrupt);
    std::signal(SIGTERM, on_interrupt);
    auto period = std::chrono::milliseconds(static_cast<std::int64_t>(o.watch_secs * 1000));
    while (!interrupted) {
        std::string out;
        render_status(o, out);
        char head[64];
        std::snprintf(head, sizeof head, "every %.1fs, Ctrl-C to stop", o.watch_secs);
        std::cout << "\x1b[H\x1b[2J" << protocol::format_time_ms(protocol::now_ms()) << "  " << head
                  << "\n\n"
                  << out << std::flush;
        auto until = std::chrono::steady_clock::now() + period;
        while (!interrupted && std::chrono::steady_clock::now() < until)
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    std::cout << "\n";
    return exit_ok;
}

int cmd_status(const status_options& o) {
    if (o.env.empty() == o.store_dir.empty()) {
        std::cerr << "status: give exactly one of --env FILE or --store DIR\n";
        return exit_usage;
    }
    if (!o.store_dir.empty()) {
        std::error_code ec;
        if (!std::filesystem::is_directory(o.store_dir, ec)) {
            std::cerr << "status: " << o.store_dir << " is not a folder\n";
            return exit_usage;
        }
    } else if (!load_cli_config(o.env)) {
        return exit_usage;
    }
    if (o.watch)
        return watch_status(o);
    std::string out;
    int rc = render_status(o, out);
    (rc == exit_ok ? std::cout : std::cerr) << out;
    return rc;
}

} // namespace

command add_status(CLI::App& app) {
    auto o = std::make_shared<status_options>();
    auto* sub = app.add_subcommand(
        "status", "Show a lane's outbox, peers and cloud (or every lane of a folder)");
    auto* env = sub->add_option("--env", o->env, "The lane's env file")->type_name("FILE");
    auto* store =
        sub->add_option("--store", o->store_dir, "A folder: one table for every *.env file in it")
            ->type_name("DIR");
    env->excludes(store);
    sub->add_flag("--json", o->as_json, "Print the status document as JSON");
    auto* watch = sub->add_option("--watch", o->watch_secs,
                                  "Refresh every SECS seconds (default 2) until Ctrl-C")
                      ->expected(0, 1)
                      ->default_str("2")
                      ->type_name("[SECS]")
                      ->check(CLI::PositiveNumber);
    return {sub, [o, watch] {
                o->watch = watch->count() > 0;
                return cmd_status(*o);
            }};
}

} // namespace lanesync::agent::cli
