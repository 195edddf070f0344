// `lanesync rebuild --env F [--without PEER ...]`: the running agent's rebuild (read from its
// local API, else from the outbox file), or leave peers out of it (POST /v1/rebuild).
#include "agent/cli.hpp"
#include "agent/cli_commands.hpp"

#include "agent/status.hpp"
#include "base/text.hpp"

#include <CLI/CLI.hpp>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <iostream>

namespace lanesync::agent::cli {

using nlohmann::json;

namespace {

constexpr auto rebuild_timeout = std::chrono::milliseconds(5000);

struct rebuild_options {
    std::string env;
    std::vector<std::string> without;
    bool as_json = false;
};

int print_rebuild(const json& rb, bool as_json) {
    std::cout << (as_json ? rb.dump(2) + "\n" : rebuild_text(rb));
    return exit_ok;
}

/// Without a running agent: what the outbox file says.
int from_file(const conf::config& cfg, bool as_json) {
    std::error_code ec;
    if (!std::filesystem::exists(cfg.outbox_path, ec)) {
        std::cerr << "agent not running on " << agent_address(cfg) << " and no outbox at "
                  << cfg.outbox_path << "\n";
        return exit_failure;
    }
    int rc = exit_ok;
    auto store = open_store(cfg, true, rc);
    if (!store)
        return rc;
    auto rb = rebuild_json(rebuild_view_of(store->get_rebuild_state()));
    if (!as_json)
        std::cout << "agent not running (read from the outbox file)\n";
    return print_rebuild(rb, as_json);
}

int cmd_rebuild(const rebuild_options& o) {
    auto l = load_cli_config(o.env);
    if (!l)
        return exit_usage;
    const auto& cfg = l->cfg;
    if (o.without.empty()) {
        auto r = local_http(cfg.local_api_port, "GET", "/v1/status", rebuild_timeout);
        auto j = r.status == 200 ? json::parse(r.body, nullptr, false) : json();
        if (j.is_object() && j.value("terminal_id", std::string()) == cfg.terminal_id &&
            j.contains("rebuild"))
            return print_rebuild(j["rebuild"], o.as_json);
        return from_file(cfg, o.as_json);
    }
    const std::string body = json{{"without", o.without}}.dump();
    auto r = local_http(cfg.local_api_port, "POST", "/v1/rebuild", rebuild_timeout, body);
    if (r.status == 0) {
        std::cerr << "agent is not running on " << agent_address(cfg)
                  << " (a rebuild goes on in the running agent only)\n";
        return exit_failure;
    }
    if (r.status != 200) {
        std::cerr << "error: " << error_of(r) << "\n";
        return exit_failure;
    }
    auto rb = json::parse(r.body, nullptr, false);
    if (!o.as_json)
        std::cout << "ok: left out of the rebuild: " << text::join(o.without) << "\n";
    return print_rebuild(rb, o.as_json);
}

} // namespace

command add_rebuild(CLI::App& app) {
    auto o = std::make_shared<rebuild_options>();
    auto* sub = app.add_subcommand(
        "rebuild", "Show the lane's rebuild from its peers, or leave unreachable peers out of it");
    env_option(sub, o->env);
    sub->add_option("--without", o->without,
                    "A peer (terminal id or PEER_TERMINALS URL) the rebuild stops waiting for; "
                    "repeatable; or `cloud` (a lane without peers). Messages only it held are "
                    "refused when it returns (see docs/cli.md)")
        ->type_name("PEER")
        ->allow_extra_args(false);
    sub->add_flag("--json", o->as_json, "Print the rebuild object as JSON");
    sub->footer("Without --without: prints the rebuild state. A lane whose outbox was lost "
                "rebuilds from every peer in PEER_TERMINALS before it accepts messages again; "
                "--without lets it finish without a peer that is gone. A lane without peers and "
                "with a new outbox waits for the cloud's highest seq instead; --without cloud "
                "starts it at seq 1.");
    return {sub, [o] { return cmd_rebuild(*o); }};
}

} // namespace lanesync::agent::cli
