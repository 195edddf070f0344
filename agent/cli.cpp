// The `lanesync` command line: the dispatcher. Each command, with its options, is in its own
// agent/cli_*.cpp file (agent/cli_commands.hpp lists them); docs/cli.md describes them.
#include "agent/cli.hpp"
#include "agent/cli_commands.hpp"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <iostream>
#include <vector>

namespace lanesync::agent {

namespace {

/// CLI11 would call an unknown command "A subcommand is required"; say what is wrong.
bool unknown_command(int argc, char** argv, const std::vector<cli::command>& commands) {
    if (argc <= 1 || argv[1][0] == '-')
        return false;
    std::string first = argv[1];
    bool known = std::any_of(commands.begin(), commands.end(),
                             [&](const cli::command& c) { return c.sub->get_name() == first; });
    if (!known)
        std::cerr << "lanesync: unknown command '" << first << "' (see lanesync --help)\n";
    return !known;
}

int run_cli(int argc, char** argv) {
    CLI::App app{"lanesync " LANESYNC_VERSION
                 ": lane agent for retail point-of-sale (local outbox, peer replication, cloud "
                 "upload)",
                 "lanesync"};
    app.set_version_flag("--version", "lanesync " LANESYNC_VERSION, "Print the version and exit");
    app.require_subcommand(1);
    app.footer("Exit codes: 0 ok, 1 runtime failure, 2 usage or configuration error.\n"
               "Each command has its own --help. See docs/cli.md.");

    // In --help order.
    const std::vector<cli::command> commands = {
        cli::add_agent(app),      cli::add_publish(app),      cli::add_status(app),
        cli::add_retry(app),      cli::add_sync_now(app),     cli::add_pause(app),
        cli::add_resume(app),     cli::add_reload(app),       cli::add_rebuild(app),
        cli::add_prune(app),      cli::add_check_config(app), cli::add_check_db(app),
        cli::add_init_store(app), cli::add_changes(app),
    };

    if (unknown_command(argc, argv, commands))
        return exit_usage;
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        int code = app.exit(e); // prints help, version or the error
        return code == 0 ? exit_ok : exit_usage;
    }
    for (const auto& c : commands)
        if (c.sub->parsed())
            return c.run();
    std::cerr << app.help();
    return exit_usage;
}

} // namespace

int cli_main(int argc, char** argv) {
    try {
        return run_cli(argc, argv);
    } catch (const std::exception& e) {
        std::cerr << "error: " << e.what() << "\n";
        return exit_failure;
    }
}

} // namespace lanesync::agent
