// `agent` (run one lane in the foreground) and `check-config` (validate its env file).
#include "agent/cli.hpp"
#include "agent/cli_commands.hpp"

#include "agent/node.hpp"
#include "base/log.hpp"
#include "conf/file_access.hpp"

#include <CLI/CLI.hpp>

#include <iostream>

namespace lanesync::agent::cli {

namespace {

int cmd_agent(const std::string& env) {
    auto l = load_config(env);
    if (!l)
        return exit_usage;
    log::level lvl = log::level::info;
    log::parse_level(l->cfg.log_level, lvl);
    log::configure({lvl, l->cfg.log_json, l->cfg.terminal_id});
    for (const auto& w : l->warnings)
        log::warn("config.warning", {{"warning", w.text}});
    if (auto w = conf::check_secret_file(env))
        log::warn("config.warning", {{"warning", *w}});
    return run_agent(l->cfg);
}

int cmd_check_config(const std::string& env) {
    auto l = load_config(env);
    if (!l)
        return exit_usage;
    const auto& c = l->cfg;
    std::cout << "ok: " << env << ": lane " << c.terminal_id << ", store " << c.store_id << ", "
              << c.peers.size() << (c.peers.size() == 1 ? " peer" : " peers") << ", cloud "
              << (c.cloud_enabled() ? "on" : "off") << "\n";
    for (const auto& w : l->warnings)
        std::cout << "warning: " << w.text << "\n";
    if (auto w = conf::check_secret_file(env))
        std::cout << "warning: " << *w << "\n";
    return exit_ok;
}

} // namespace

command add_agent(CLI::App& app) {
    auto env = std::make_shared<std::string>();
    auto* sub = app.add_subcommand(
        "agent", "Run one lane's agent in the foreground (SIGTERM/SIGINT = clean stop, SIGHUP = "
                 "reload the env file)");
    env_option(sub, *env);
    return {sub, [env] { return cmd_agent(*env); }};
}

command add_check_config(CLI::App& app) {
    auto env = std::make_shared<std::string>();
    auto* sub = app.add_subcommand("check-config", "Validate an env file and summarize it");
    env_option(sub, *env);
    return {sub, [env] { return cmd_check_config(*env); }};
}

} // namespace lanesync::agent::cli
