#pragma once
/// Live reload (docs/configuration.md "Live reload"): which keys of a re-read env file a running
/// agent may take without a restart. Pure: the agent (agent/node.cpp) loads the file, asks
/// plan_reload, and either refuses the reload whole or copies the live keys with apply_live and
/// tells its parts.

#include "conf/config.hpp"

#include <string>
#include <vector>

namespace lanesync::conf {

/// What a reload from `running` to `next` would do.
struct reload_plan {
    /// Keys that changed and are applied live, in documentation order.
    std::vector<std::string> changed;
    /// Keys that changed and cannot change while the agent runs (TERMINAL_ID, ports, ...):
    /// any of them refuses the whole reload.
    std::vector<std::string> refused;
    bool log_level = false;   ///< LOG_LEVEL changed
    bool service_key = false; ///< SUPABASE_SERVICE_KEY changed (the cloud clients take the new key)
    bool uploader = false;    ///< an upload setting changed (interval, batch, heartbeat, backoff)
    bool puller = false;      ///< a pull setting changed (interval, backoff)
    bool retention = false;   ///< OUTBOX_RETENTION_DAYS or CATALOG_TOMBSTONE_DAYS changed

    bool ok() const { return refused.empty(); }
};

/// Compares every key. A key's value is compared as validated (config), so "30000" and "30000"
/// written with quotes are the same, and a key dropped from the file that returns to its
/// default counts as changed.
reload_plan plan_reload(const config& running, const config& next);

/// The refusal: "TERMINAL_PORT, OUTBOX_PATH cannot change while the agent runs (restart it to
/// apply them); nothing was applied". Empty when plan.ok().
std::string refusal_text(const reload_plan& plan);

/// Copies the keys plan_reload reports as live from `next` into `running`; the rest of
/// `running` stays (so a refused or unchanged key is never touched).
void apply_live(config& running, const config& next);

/// The keys a running agent takes live, in documentation order (docs and --help list them).
const std::vector<std::string>& live_keys();

/// Every key plan_reload compares (tests hold it to known_keys(), so a new key cannot be
/// forgotten here).
std::vector<std::string> reload_key_names();

} // namespace lanesync::conf
