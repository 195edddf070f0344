// `sync-now`, `pause` and `resume`: ask the running agent's cloud uploader, over the local API;
// `reload`: ask the running agent to re-read its env file (docs/configuration.md "Live reload").
#include "agent/cli.hpp"
#include "agent/cli_commands.hpp"
#include "agent/views.hpp"

#include <CLI/CLI.hpp>

#include <nlohmann/json.hpp>

#include <iostream>

namespace lanesync::agent::cli {

namespace {

/// How long the cloud control commands wait for the agent's answer.
constexpr auto control_timeout = std::chrono::milliseconds(5000);

/// One control request: POST `target`; `done` is printed after "ok: " on a 202.
int cmd_cloud_control(const std::string& env, const std::string& target, const char* done) {
    auto l = load_cli_config(env);
    if (!l)
        return exit_usage;
    auto r = local_http(l->cfg.local_api_port, "POST", target, control_timeout);
    if (r.status == 0) {
        std::cerr << "agent is not running on " << agent_address(l->cfg) << "\n";
        return exit_failure;
    }
    if (r.status == 202) {
        std::cout << "ok: " << done << "\n";
        return exit_ok;
    }
    std::cerr << "error: " << error_of(r) << "\n";
    return exit_failure;
}

/// `lanesync reload --env F`: F is checked here first (an invalid file never reaches the
/// agent: exit 2 with FILE:LINE), then the agent re-reads its own env file. 0 applied or
/// nothing changed, 2 refused or invalid, 1 agent not running.
int cmd_reload(const std::string& env) {
    auto l = load_cli_config(env);
    if (!l)
        return exit_usage;
    auto r = local_http(l->cfg.local_api_port, "POST", "/v1/reload", control_timeout);
    if (r.status == 0) {
        std::cerr << "agent is not running on " << agent_address(l->cfg) << "\n";
        return exit_failure;
    }
    if (r.status == 200) {
        auto j = nlohmann::json::parse(r.body, nullptr, false);
        auto keys = list_text(j.is_object() && j.contains("changed") ? j["changed"] : nullptr);
        std::cout << (keys.empty() ? "ok: nothing changed\n" : "ok: reloaded: " + keys + "\n");
        if (j.is_object() && j.contains("warnings"))
            for (const auto& w : j["warnings"])
                if (w.is_string())
                    std::cout << "warning: " << w.get<std::string>() << "\n";
        return exit_ok;
    }
    std::cerr << "error: " << error_of(r) << "\n";
    return r.status == 409 || r.status == 422 ? exit_usage : exit_failure;
}

command add_control(CLI::App& app, const char* name, const char* help, std::string target,
                    const char* done) {
    auto env = std::make_shared<std::string>();
    auto* sub = app.add_subcommand(name, help);
    env_option(sub, *env);
    return {sub, [env, target = std::move(target), done] {
                return cmd_cloud_control(*env, target, done);
            }};
}

} // namespace

command add_sync_now(CLI::App& app) {
    return add_control(app, "sync-now",
                       "Ask the running agent to upload to the cloud and pull from it now",
                       "/v1/sync", "upload and pull requested");
}

command add_pause(CLI::App& app) {
    return add_control(app, "pause", "Pause the running agent's cloud uploads", "/v1/cloud/pause",
                       "cloud uploads paused");
}

command add_reload(CLI::App& app) {
    auto env = std::make_shared<std::string>();
    auto* sub = app.add_subcommand(
        "reload", "Ask the running agent to re-read its env file and apply what may change live "
                  "(as SIGHUP does)");
    env_option(sub, *env);
    return {sub, [env] { return cmd_reload(*env); }};
}

command add_resume(CLI::App& app) {
    return add_control(app, "resume", "Resume the running agent's cloud uploads",
                       "/v1/cloud/resume", "cloud uploads resumed");
}

} // namespace lanesync::agent::cli
