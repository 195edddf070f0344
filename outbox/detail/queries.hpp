#pragma once
/// Private to the outbox: every SQL statement the store (store_*.cpp, reader.cpp) runs, in one
/// place, so the tests can run EXPLAIN QUERY PLAN on exactly the text the store uses. Not here:
/// the schema, its migrations, the connection pragmas and the identity rows (schema.cpp, one
/// block each), and the transaction control of write_transaction / savepoint (sqlite.cpp).
///
/// Column order of a record (see kRecordColumns) is fixed: read_record() in store_impl.cpp
/// depends on it.

#include <string_view>

namespace lanesync::outbox::detail::sql {

#define LANESYNC_RECORD_COLUMNS                                                                    \
    "id, origin, seq, topic, priority, data, created_at, stored_at, state, peer_acked_at, "        \
    "cloud_acked_at, attempts, last_error"

// ---- reads ----------------------------------------------------------------------------------

/// One origin's copy of an id (UNIQUE(id, origin)): get() asks for the own copy first, the
/// store for the copy of the origin it writes.
inline constexpr std::string_view get_by_id_origin =
    "SELECT " LANESYNC_RECORD_COLUMNS " FROM messages WHERE id = ?1 AND origin = ?2";
/// get() without an own copy: the replica (of the first origin by name when several lanes
/// accepted the same id).
inline constexpr std::string_view get_by_id =
    "SELECT " LANESYNC_RECORD_COLUMNS " FROM messages WHERE id = ?1 ORDER BY origin LIMIT 1";
/// states(): the state of the copy get() returns (the own copy, else the replica of the first
/// origin by name), without reading the data.
inline constexpr std::string_view state_by_id_origin =
    "SELECT state FROM messages WHERE id = ?1 AND origin = ?2";
inline constexpr std::string_view state_by_id =
    "SELECT state FROM messages WHERE id = ?1 ORDER BY origin LIMIT 1";
/// list(state), next_for_cloud: one origin, one state, lowest seq first (index messages_state).
inline constexpr std::string_view by_state =
    "SELECT " LANESYNC_RECORD_COLUMNS
    " FROM messages WHERE origin = ?1 AND state = ?2 ORDER BY seq LIMIT ?3";
/// next_for_peer: one origin after a seq, in seq order (the PRIMARY KEY(origin, seq) index).
inline constexpr std::string_view after_seq =
    "SELECT " LANESYNC_RECORD_COLUMNS
    " FROM messages WHERE origin = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3";
/// Oldest own pending (stored_at) / peer_ack (peer_acked_at): first row of a state range.
inline constexpr std::string_view oldest_in_state =
    "SELECT stored_at, peer_acked_at FROM messages WHERE origin = ?1 AND state = ?2 "
    "ORDER BY seq LIMIT 1";
/// next_replicas_for_cloud: one origin's pending replicas of one priority above its
/// cloud_through, in seq order (index messages_priority).
inline constexpr std::string_view pending_by_priority =
    "SELECT " LANESYNC_RECORD_COLUMNS
    " FROM messages WHERE origin = ?1 AND state = 0 AND priority = ?2 AND seq > ?3 "
    "ORDER BY seq LIMIT ?4";
/// next_for_cloud: own messages of one state and priority, lowest seq first (index
/// messages_priority).
inline constexpr std::string_view by_state_priority =
    "SELECT " LANESYNC_RECORD_COLUMNS
    " FROM messages WHERE origin = ?1 AND state = ?2 AND priority = ?3 ORDER BY seq LIMIT ?4";
inline constexpr std::string_view all_counts = "SELECT origin, state, n FROM counts";
/// get_counts: the own backlog by priority (kept by triggers, schema version 5).
inline constexpr std::string_view own_backlog =
    "SELECT state, priority, n FROM backlog_counts WHERE origin = ?1";
/// Every meta row (a handful): incarnation, rebuild state, trust caps.
inline constexpr std::string_view all_meta = "SELECT key, value FROM meta";
inline constexpr std::string_view all_origins = "SELECT origin, hwm, cloud_through FROM origins";
inline constexpr std::string_view all_peers =
    "SELECT peer, acked_through, last_ack_at FROM peers ORDER BY peer";

/// Changes when another connection commits (changed_elsewhere()).
inline constexpr std::string_view data_version = "PRAGMA data_version";

// ---- integrity_check (a full scan on purpose: it is the check, not a hot path) ---------------

inline constexpr std::string_view integrity_check = "PRAGMA integrity_check";
inline constexpr std::string_view foreign_key_check = "PRAGMA foreign_key_check";
inline constexpr std::string_view real_counts =
    "SELECT origin, state, COUNT(*) FROM messages GROUP BY origin, state";
inline constexpr std::string_view all_backlog =
    "SELECT origin, state, priority, n FROM backlog_counts";
inline constexpr std::string_view real_backlog =
    "SELECT origin, state, priority, COUNT(*) FROM messages WHERE state IN (0, 1) "
    "GROUP BY origin, state, priority";
inline constexpr std::string_view origin_range =
    "SELECT min(seq), max(seq), COUNT(*) FROM messages WHERE origin = ?1";
inline constexpr std::string_view held_above =
    "SELECT COUNT(*) FROM messages WHERE origin = ?1 AND seq > ?2";

// ---- writable(): an empty write transaction on the read connection -------------------------

inline constexpr std::string_view probe_begin = "BEGIN IMMEDIATE";
inline constexpr std::string_view probe_commit = "COMMIT";
inline constexpr std::string_view probe_rollback = "ROLLBACK";

// ---- writes ---------------------------------------------------------------------------------

inline constexpr std::string_view insert_message =
    "INSERT INTO messages(" LANESYNC_RECORD_COLUMNS
    ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, NULL, ?10, 0, '')";
inline constexpr std::string_view id_at_seq =
    "SELECT id FROM messages WHERE origin = ?1 AND seq = ?2";
inline constexpr std::string_view ensure_origin =
    "INSERT INTO origins(origin) VALUES (?1) ON CONFLICT(origin) DO NOTHING";
inline constexpr std::string_view origin_row =
    "SELECT hwm, cloud_through FROM origins WHERE origin = ?1";
inline constexpr std::string_view set_origin =
    "UPDATE origins SET hwm = ?2, cloud_through = ?3 WHERE origin = ?1";
/// Lowest seq of one origin in one state (own cloud_through, prune).
inline constexpr std::string_view first_seq_in_state =
    "SELECT seq FROM messages WHERE origin = ?1 AND state = ?2 ORDER BY seq LIMIT 1";
inline constexpr std::string_view upsert_peer =
    "INSERT INTO peers(peer, acked_through, last_ack_at) VALUES (?1, ?2, ?3) "
    "ON CONFLICT(peer) DO UPDATE SET acked_through = max(acked_through, excluded.acked_through), "
    "last_ack_at = excluded.last_ack_at";
/// The k-th largest acked_through (OFFSET k-1): the seq `k` distinct peers hold.
inline constexpr std::string_view kth_peer_mark =
    "SELECT acked_through FROM peers ORDER BY acked_through DESC LIMIT 1 OFFSET ?1";
inline constexpr std::string_view promote_to_peer_ack =
    "UPDATE messages SET state = 1, peer_acked_at = ?2 "
    "WHERE origin = ?1 AND state = 0 AND seq <= ?3 RETURNING created_at";
inline constexpr std::string_view cloud_ack_one =
    "UPDATE messages SET state = 2, cloud_acked_at = ?3 "
    "WHERE id = ?1 AND origin = ?2 AND state <> 2 RETURNING peer_acked_at, created_at";
inline constexpr std::string_view cloud_reject_one =
    "UPDATE messages SET state = 3, last_error = ?3 "
    "WHERE id = ?1 AND origin = ?2 AND state IN (0, 1)";
inline constexpr std::string_view note_attempt =
    "UPDATE messages SET attempts = attempts + 1 WHERE id = ?1 AND origin = ?2";
inline constexpr std::string_view retry_one =
    "UPDATE messages SET state = CASE WHEN peer_acked_at IS NULL THEN 0 ELSE 1 END, "
    "last_error = '' WHERE id = ?1 AND origin = ?2 AND state = 3 RETURNING state";
inline constexpr std::string_view retry_all =
    "UPDATE messages SET state = CASE WHEN peer_acked_at IS NULL THEN 0 ELSE 1 END, "
    "last_error = '' WHERE origin = ?1 AND state = 3 RETURNING state";
/// Replicas of an origin up to a seq are in the cloud.
inline constexpr std::string_view replicas_cloud_acked =
    "UPDATE messages SET state = 2, cloud_acked_at = ?3 "
    "WHERE origin = ?1 AND state = 0 AND seq <= ?2";
/// Own messages up to a seq are in the cloud (a peer uploaded them, or an own-origin floor):
/// pending and peer_ack become cloud_ack; failed stay failed.
inline constexpr std::string_view own_cloud_acked =
    "UPDATE messages SET state = 2, cloud_acked_at = ?3 "
    "WHERE origin = ?1 AND state IN (0, 1) AND seq <= ?2";
/// meta rows of the rebuild state (incarnation, rebuild_reason, rebuild_since, excluded:<t>).
inline constexpr std::string_view meta_value = "SELECT value FROM meta WHERE key = ?1";
inline constexpr std::string_view put_meta =
    "INSERT INTO meta(key, value) VALUES (?1, ?2) "
    "ON CONFLICT(key) DO UPDATE SET value = excluded.value";
inline constexpr std::string_view delete_meta = "DELETE FROM meta WHERE key = ?1";
/// prune: the first cloud_ack message up to seq ?3 too young to go (own: cloud_acked_at;
/// replica: stored_at), walking the state range in seq order.
inline constexpr std::string_view first_young_own =
    "SELECT seq FROM messages WHERE origin = ?1 AND state = 2 AND seq <= ?3 "
    "AND cloud_acked_at >= ?2 ORDER BY seq LIMIT 1";
inline constexpr std::string_view first_young_replica =
    "SELECT seq FROM messages WHERE origin = ?1 AND state = 2 AND seq <= ?3 "
    "AND stored_at >= ?2 ORDER BY seq LIMIT 1";
inline constexpr std::string_view delete_prefix =
    "DELETE FROM messages WHERE origin = ?1 AND state = 2 AND seq <= ?2";

// ---- the catalog (head office's data, schema 4) ---------------------------------------------

#define LANESYNC_CATALOG_COLUMNS "scope, key, version, deleted, data, changed_at"
#define LANESYNC_SCOPE_COLUMNS                                                                     \
    "scope, through, horizon, head, snapshot, keys, applied_at, resume, source, snapshot_gen"

inline constexpr std::string_view catalog_scope_row =
    "SELECT " LANESYNC_SCOPE_COLUMNS " FROM catalog_scopes WHERE scope = ?1";
inline constexpr std::string_view catalog_all_scopes =
    "SELECT " LANESYNC_SCOPE_COLUMNS " FROM catalog_scopes ORDER BY scope";
inline constexpr std::string_view catalog_ensure_scope =
    "INSERT INTO catalog_scopes(scope) VALUES (?1) ON CONFLICT(scope) DO NOTHING";
inline constexpr std::string_view catalog_set_scope =
    "UPDATE catalog_scopes SET through = ?2, horizon = ?3, head = ?4, snapshot = ?5, "
    "snapshot_gen = ?6, resume = ?7, applied_at = ?8, source = ?9 WHERE scope = ?1";
/// Apply-if-newer: writes the row only when its version is above the one held (changes() 0:
/// skipped). ?8: the snapshot generation that carried it (kept as is when 0).
inline constexpr std::string_view catalog_upsert =
    "INSERT INTO catalog(" LANESYNC_CATALOG_COLUMNS ", applied_at, snapshot_gen) "
    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT(scope, key) DO UPDATE SET "
    "version = excluded.version, deleted = excluded.deleted, data = excluded.data, "
    "changed_at = excluded.changed_at, applied_at = excluded.applied_at, snapshot_gen = "
    "CASE WHEN excluded.snapshot_gen = 0 THEN catalog.snapshot_gen ELSE excluded.snapshot_gen END "
    "WHERE excluded.version > catalog.version";
/// A snapshot carried a key this lane already holds at the same or a newer version.
inline constexpr std::string_view catalog_mark =
    "UPDATE catalog SET snapshot_gen = ?3 WHERE scope = ?1 AND key = ?2";
/// The end of a snapshot: live keys it did not carry, at or below its through, are deleted.
inline constexpr std::string_view catalog_tombstone_unseen =
    "UPDATE catalog SET deleted = 1, data = 'null', version = ?3, changed_at = ?4, "
    "applied_at = ?4 WHERE scope = ?1 AND deleted = 0 AND snapshot_gen <> ?2 AND version <= ?3";
inline constexpr std::string_view catalog_get =
    "SELECT " LANESYNC_CATALOG_COLUMNS " FROM catalog WHERE scope = ?1 AND key = ?2";
inline constexpr std::string_view catalog_since =
    "SELECT " LANESYNC_CATALOG_COLUMNS
    " FROM catalog WHERE scope = ?1 AND version > ?2 ORDER BY version LIMIT ?3";
inline constexpr std::string_view catalog_keys_after =
    "SELECT " LANESYNC_CATALOG_COLUMNS
    " FROM catalog WHERE scope = ?1 AND key > ?2 AND deleted = 0 ORDER BY key LIMIT ?3";
/// purge_catalog (maintenance, a scan on purpose): old tombstones per scope, then deleted.
inline constexpr std::string_view catalog_old_tombstones =
    "SELECT scope, max(version), COUNT(*) FROM catalog WHERE deleted = 1 AND applied_at < ?1 "
    "GROUP BY scope";
inline constexpr std::string_view catalog_purge =
    "DELETE FROM catalog WHERE deleted = 1 AND applied_at < ?1";
inline constexpr std::string_view catalog_raise_horizon =
    "UPDATE catalog_scopes SET horizon = max(horizon, ?2) WHERE scope = ?1";

#undef LANESYNC_CATALOG_COLUMNS
#undef LANESYNC_SCOPE_COLUMNS
#undef LANESYNC_RECORD_COLUMNS

} // namespace lanesync::outbox::detail::sql
