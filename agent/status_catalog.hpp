#pragma once
/// The status document's `pull` object and `catalog` array (head office's data, docs/api.md
/// "GET /v1/status"), and their lines in `lanesync status`. Pure functions.

#include "cloud/puller.hpp"
#include "conf/config.hpp"
#include "protocol/catalog.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace lanesync::agent {

/// `catalog`: one object per scope: {scope, through, head, behind (= head - through, never
/// negative), keys, applied_at, snapshot_active, horizon, source}.
nlohmann::json catalog_json(const std::vector<protocol::catalog_scope_state>& scopes);

/// `pull`: {enabled, state, interval_ms, last_ok_at, last_attempt_at, last_error,
/// next_attempt_at, consecutive_failures, last_http_status, requests_ok, requests_failed,
/// changes_applied, cloud_head}; without a running puller only what the configuration says.
nlohmann::json pull_json(const conf::config& cfg, const std::optional<cloud::pull_status>& p);

/// "CATALOG" table and the "PULL" line for status_table (empty when there is nothing held and
/// the puller is off).
std::string catalog_lines(const nlohmann::json& status);

} // namespace lanesync::agent
