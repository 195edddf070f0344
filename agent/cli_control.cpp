// `sync-now`, `pause` and `resume`: ask the running agent's cloud uploader, over the local API.
#include "agent/cli.hpp"
#include "agent/cli_commands.hpp"

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
    auto j = nlohmann::json::parse(r.body, nullptr, false);
    std::string msg = j.is_object() && j.contains("error") && j["error"].is_string()
                          ? j["error"].get<std::string>()
                          : "HTTP " + std::to_string(r.status);
    std::cerr << "error: " << msg << "\n";
    return exit_failure;
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

command add_resume(CLI::App& app) {
    return add_control(app, "resume", "Resume the running agent's cloud uploads",
                       "/v1/cloud/resume", "cloud uploads resumed");
}

} // namespace lanesync::agent::cli
