#pragma once
/// Private to the SQLite store's .cpp files (store_impl, store_writes, store_reads,
/// store_check, reader): the prepared statements of both connections and the record reader.

#include "outbox/detail/queries.hpp"
#include "outbox/detail/store_impl.hpp"

#include <algorithm>

namespace lanesync::outbox::detail {

constexpr int state_int(state s) {
    return static_cast<int>(s);
}

/// Reads the columns of sql::*'s record column list (see queries.hpp).
inline record read_record(const use& u, const std::string& own_origin) {
    record r;
    r.msg.id = u.text(0);
    r.msg.origin = u.text(1);
    r.msg.seq = u.uint64(2);
    r.msg.topic = u.text(3);
    r.msg.prio = static_cast<protocol::priority>(std::clamp<std::int64_t>(u.int64(4), 0, 3));
    r.msg.data = u.text(5);
    r.msg.created_at_ms = u.int64(6);
    r.stored_at_ms = u.int64(7);
    r.st = static_cast<state>(std::clamp<std::int64_t>(u.int64(8), 0, 3));
    r.peer_acked_at_ms = u.opt_int64(9);
    r.cloud_acked_at_ms = u.opt_int64(10);
    r.attempts = static_cast<std::uint32_t>(u.int64(11));
    r.last_error = u.text(12);
    r.own = r.msg.origin == own_origin;
    return r;
}

/// Prepared once per connection, reused with a reset guard (`use`).
struct sqlite_store::write_statements {
    explicit write_statements(connection& db)
        : get_by_id_origin(db, sql::get_by_id_origin), insert_message(db, sql::insert_message),
          id_at_seq(db, sql::id_at_seq), ensure_origin(db, sql::ensure_origin),
          origin_row(db, sql::origin_row), set_origin(db, sql::set_origin),
          all_origins(db, sql::all_origins), first_seq_in_state(db, sql::first_seq_in_state),
          upsert_peer(db, sql::upsert_peer), kth_peer_mark(db, sql::kth_peer_mark),
          promote_to_peer_ack(db, sql::promote_to_peer_ack), cloud_ack_one(db, sql::cloud_ack_one),
          cloud_reject_one(db, sql::cloud_reject_one), note_attempt(db, sql::note_attempt),
          retry_one(db, sql::retry_one), retry_all(db, sql::retry_all),
          replicas_cloud_acked(db, sql::replicas_cloud_acked),
          first_young_own(db, sql::first_young_own),
          first_young_replica(db, sql::first_young_replica), delete_prefix(db, sql::delete_prefix),
          data_version(db, sql::data_version), own_cloud_acked(db, sql::own_cloud_acked),
          meta_value(db, sql::meta_value), put_meta(db, sql::put_meta),
          delete_meta(db, sql::delete_meta), catalog_scope_row(db, sql::catalog_scope_row),
          catalog_ensure_scope(db, sql::catalog_ensure_scope),
          catalog_set_scope(db, sql::catalog_set_scope), catalog_upsert(db, sql::catalog_upsert),
          catalog_mark(db, sql::catalog_mark),
          catalog_tombstone_unseen(db, sql::catalog_tombstone_unseen) {}

    statement get_by_id_origin, insert_message, id_at_seq, ensure_origin, origin_row, set_origin,
        all_origins, first_seq_in_state, upsert_peer, kth_peer_mark, promote_to_peer_ack,
        cloud_ack_one, cloud_reject_one, note_attempt, retry_one, retry_all, replicas_cloud_acked,
        first_young_own, first_young_replica, delete_prefix, data_version, own_cloud_acked,
        meta_value, put_meta, delete_meta;
    statement catalog_scope_row, catalog_ensure_scope, catalog_set_scope, catalog_upsert,
        catalog_mark, catalog_tombstone_unseen;
};

struct sqlite_store::read_statements {
    explicit read_statements(connection& db)
        : get_by_id_origin(db, sql::get_by_id_origin), get_by_id(db, sql::get_by_id),
          by_state(db, sql::by_state), after_seq(db, sql::after_seq),
          oldest_in_state(db, sql::oldest_in_state), all_counts(db, sql::all_counts),
          all_origins(db, sql::all_origins), all_peers(db, sql::all_peers),
          id_at_seq(db, sql::id_at_seq), data_version(db, sql::data_version),
          pending_by_priority(db, sql::pending_by_priority),
          by_state_priority(db, sql::by_state_priority), own_backlog(db, sql::own_backlog),
          all_meta(db, sql::all_meta), state_by_id_origin(db, sql::state_by_id_origin),
          state_by_id(db, sql::state_by_id), catalog_all_scopes(db, sql::catalog_all_scopes),
          catalog_get(db, sql::catalog_get), catalog_since(db, sql::catalog_since),
          catalog_keys_after(db, sql::catalog_keys_after) {}

    statement get_by_id_origin, get_by_id, by_state, after_seq, oldest_in_state, all_counts,
        all_origins, all_peers, id_at_seq, data_version, pending_by_priority, by_state_priority,
        own_backlog, all_meta, state_by_id_origin, state_by_id;
    statement catalog_all_scopes, catalog_get, catalog_since, catalog_keys_after;
};

} // namespace lanesync::outbox::detail
