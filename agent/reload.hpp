#pragma once
/// Live reload (docs/configuration.md "Live reload"): SIGHUP, POST /v1/reload and
/// `lanesync reload` re-read the agent's env file. What a re-read leads to is decided here,
/// apart from the agent that carries it out (agent/node.cpp): applied, nothing changed, refused
/// whole (a key that cannot change live) or invalid (the old configuration stays).

#include "conf/config.hpp"
#include "conf/reload.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace lanesync::agent {

/// The outcome of one reload.
struct reload_result {
    enum class outcome { applied, unchanged, refused, invalid };
    outcome result = outcome::unchanged;
    /// refused or invalid: what to tell ("t.env:4: CLOUD_BATCH_SIZE: 0 is too small (1..1000)").
    std::string error;
    std::vector<std::string> changed;  ///< applied: the keys taken, in documentation order
    std::vector<std::string> warnings; ///< the re-read's warnings (unknown keys)
    std::string trigger;               ///< "SIGHUP" or "api"
    std::int64_t at_ms = 0;            ///< when (Unix ms)
};

const char* to_string(reload_result::outcome o);

/// A reload decided: its result, and the plan to carry out when result is applied.
struct reload_decision {
    reload_result result;
    conf::reload_plan plan;
};

/// Decides from the running configuration and the re-read: `next` is the loaded file, or
/// nullopt when loading threw `load_error` (a config_error's what(), FILE:LINE: KEY: why).
reload_decision decide_reload(const conf::config& running, const std::optional<conf::loaded>& next,
                              const std::string& load_error);

/// {"result": "applied|unchanged|refused|invalid", "changed": [...], "error"?, "warnings"?,
/// "trigger", "at_ms"}: the status document's `reload` and the body of POST /v1/reload.
nlohmann::json reload_json(const reload_result& r);

/// The status table's line for a reload object, or "" for null: "RELOAD: refused at
/// 2026-12-02T10:00:00.000Z (SIGHUP): TERMINAL_PORT cannot change ...". Ends with "\n".
std::string reload_line(const nlohmann::json& reload);

} // namespace lanesync::agent
