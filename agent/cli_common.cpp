// The pieces every CLI command shares: the --env option, loading the env file for the CLI,
// opening the outbox, and reading the --data argument.
#include "agent/cli.hpp"
#include "agent/cli_commands.hpp"

#include "base/log.hpp"

#include <CLI/CLI.hpp>

#include <nlohmann/json.hpp>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

namespace lanesync::agent {
namespace cli {
namespace {

/// Logging for the short-lived commands: warnings and errors only, unless LOG_LEVEL asks
/// for more detail than info.
void configure_cli_log(const conf::config& cfg) {
    log::level lvl = log::level::info;
    log::parse_level(cfg.log_level, lvl);
    if (lvl == log::level::info)
        lvl = log::level::warn;
    log::configure({lvl, cfg.log_json, cfg.terminal_id});
    log::add_secret(cfg.peer_secret);
    log::add_secret(cfg.supabase_service_key);
}

void print_warnings(const conf::loaded& l) {
    for (const auto& w : l.warnings)
        std::cerr << "warning: " << w.text << "\n";
}

} // namespace

CLI::Option* env_option(CLI::App* sub, std::string& into) {
    return sub->add_option("--env", into, "The lane's env file (e.g. examples/store/L1.env)")
        ->required()
        ->type_name("FILE");
}

std::optional<conf::loaded> load_config(const std::string& path) {
    try {
        return conf::load(path);
    } catch (const conf::config_error& e) {
        std::cerr << e.what() << "\n";
        return std::nullopt;
    }
}

std::optional<conf::loaded> load_cli_config(const std::string& path) {
    auto l = load_config(path);
    if (l) {
        configure_cli_log(l->cfg);
        print_warnings(*l);
    }
    return l;
}

std::unique_ptr<outbox::store> open_store(const conf::config& cfg, bool read_only, int& rc) {
    try {
        return outbox::store::open({cfg.outbox_path, cfg.terminal_id, cfg.store_id, read_only});
    } catch (const std::exception& e) {
        std::cerr << "error: " << e.what() << "\n";
        rc = exit_failure;
        return nullptr;
    }
}

std::string agent_address(const conf::config& cfg) {
    return "127.0.0.1:" + std::to_string(cfg.local_api_port);
}

std::string error_of(const http_reply& r) {
    auto j = nlohmann::json::parse(r.body, nullptr, false);
    if (j.is_object() && j.contains("error") && j["error"].is_string())
        return j["error"].get<std::string>();
    return "HTTP " + std::to_string(r.status);
}

} // namespace cli

std::optional<std::string> read_data_arg(const std::string& arg, std::string& error) {
    if (arg.empty() || arg.front() != '@')
        return arg;
    std::string path = arg.substr(1);
    if (path == "-") {
        std::string text((std::istreambuf_iterator<char>(std::cin)),
                         std::istreambuf_iterator<char>());
        if (std::cin.bad()) {
            error = "cannot read the data from stdin";
            return std::nullopt;
        }
        return text;
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        error = "cannot read data file " + path + ": " + std::strerror(errno);
        return std::nullopt;
    }
    std::ostringstream ss;
    ss << in.rdbuf();
    if (in.bad()) {
        error = "cannot read data file " + path;
        return std::nullopt;
    }
    return ss.str();
}

} // namespace lanesync::agent
