#pragma once
/// JSON views of outbox records shared by the local API and the CLI, so `lanesync publish`
/// prints exactly what POST /v1/messages answers (docs/api.md).

#include "outbox/outbox.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>

namespace lanesync::agent {

/// ISO-8601 UTC with milliseconds, or null.
nlohmann::json time_or_null(const std::optional<std::int64_t>& unix_ms);

/// The answer to an accepted publish (201 created / 200 existing):
/// {"id","origin","seq","state","created_at"}.
nlohmann::json publish_json(const outbox::record& rec);

/// A full record (GET /v1/messages/{id}, list entries): id, origin, seq, topic, priority,
/// state, data (the object), created_at, stored_at, peer_acked_at, cloud_acked_at (ISO-8601 or
/// null), attempts, last_error (null when none), own.
nlohmann::json record_json(const outbox::record& rec);

/// The strings of a JSON array joined with ", " (other elements, or a non-array: nothing), for
/// the lists the status table and the CLI print ("L2, L3").
std::string list_text(const nlohmann::json& a);

} // namespace lanesync::agent
