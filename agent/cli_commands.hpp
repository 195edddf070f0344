#pragma once
/// Private to agent/cli*.cpp: one `add_*` per command (each in its own agent/cli_*.cpp file)
/// and the pieces the commands share (cli_common.cpp). agent/cli.cpp is the dispatcher.

#include "agent/cli.hpp"
#include "conf/config.hpp"
#include "outbox/outbox.hpp"

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace CLI {
class App;
class Option;
} // namespace CLI

namespace lanesync::agent::cli {

/// One subcommand: `sub` is what CLI11 parses; `run` executes it and returns the exit code.
struct command {
    CLI::App* sub = nullptr;
    std::function<int()> run;
};

// Each adds its subcommand to `app` (in --help order) with its options, and returns it.
command add_agent(CLI::App& app);        // cli_agent.cpp
command add_publish(CLI::App& app);      // cli_outbox.cpp
command add_status(CLI::App& app);       // cli_status.cpp
command add_retry(CLI::App& app);        // cli_outbox.cpp
command add_sync_now(CLI::App& app);     // cli_control.cpp
command add_pause(CLI::App& app);        // cli_control.cpp
command add_resume(CLI::App& app);       // cli_control.cpp
command add_reload(CLI::App& app);       // cli_control.cpp
command add_prune(CLI::App& app);        // cli_outbox.cpp
command add_check_config(CLI::App& app); // cli_agent.cpp
command add_check_db(CLI::App& app);     // cli_outbox.cpp
command add_rebuild(CLI::App& app);      // cli_rebuild.cpp
command add_init_store(CLI::App& app);   // cli_init_store.cpp
command add_changes(CLI::App& app);      // cli_changes.cpp

// ---- shared (cli_common.cpp) --------------------------------------------------------------

/// The required `--env FILE` option of a command.
CLI::Option* env_option(CLI::App* sub, std::string& into);

/// Loads an env file; on a problem prints "FILE:LINE: KEY: why" and returns nullopt (exit 2).
std::optional<conf::loaded> load_config(const std::string& path);

/// Loads the env file for a command that runs in the CLI process: logging set up for the CLI
/// (secrets registered with the redactor) and warnings printed to stderr.
std::optional<conf::loaded> load_cli_config(const std::string& path);

/// Opens the outbox (the CLI may run beside the agent: WAL + write lock). On failure prints
/// the error, sets `rc` and returns nullptr.
std::unique_ptr<outbox::store> open_store(const conf::config& cfg, bool read_only, int& rc);

/// "127.0.0.1:LOCAL_API_PORT", for messages.
std::string agent_address(const conf::config& cfg);

/// What a refusing answer of the agent says: its JSON `error`, else "HTTP <status>".
std::string error_of(const http_reply& r);

} // namespace lanesync::agent::cli
