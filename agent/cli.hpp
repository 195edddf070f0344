#pragma once
/// The `lanesync` command line (SPEC section 6, docs/cli.md): agent/cli.cpp dispatches, one
/// agent/cli_*.cpp file per command or group of commands. The pieces below the entry point are
/// exposed for unit tests.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace lanesync::agent {

/// Exit codes of every command.
inline constexpr int exit_ok = 0;
inline constexpr int exit_failure = 1; ///< runtime failure (agent down, storage, conflict)
inline constexpr int exit_usage = 2;   ///< usage or configuration error

/// Parses argv and runs one command; returns the process exit code. Never throws.
int cli_main(int argc, char** argv);

/// The answer of one request to a local agent. `status` 0 means no answer (nothing listening,
/// timeout, broken connection), with `error` saying why.
struct http_reply {
    int status = 0;
    std::string body;
    std::string error;
};

/// One HTTP/1.1 request to 127.0.0.1:`port`, within `timeout`, on the one HTTP client
/// (cloud::http_client, agent/cli_http.cpp). Blocking; runs its own io_context. Never throws.
http_reply local_http(std::uint16_t port, std::string_view method, std::string_view target,
                      std::chrono::milliseconds timeout, std::string_view body = {});

/// The `--data` argument: JSON text as given, `@FILE` for a file's contents, `@-` for stdin.
/// nullopt with `error` set when the file cannot be read.
std::optional<std::string> read_data_arg(const std::string& arg, std::string& error);

} // namespace lanesync::agent
