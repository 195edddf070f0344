// The reads of the SQLite store: on the read connection under `read_mutex_`, from any thread
// (the reader thread for outbox::async_store). Also changed_elsewhere() and writable().
#include "outbox/detail/store_parts.hpp"

#include "base/log.hpp"
#include "base/tuning.hpp"

#include <algorithm>

namespace lanesync::outbox::detail {

// ---- reads ----------------------------------------------------------------------------------

std::optional<record> sqlite_store::get(std::string_view id) {
    // The own copy if this lane accepted the id, else a replica (the same id may be held under
    // several origins when a POS retried on another lane with its idempotency key).
    std::lock_guard lk(read_mutex_);
    read_transaction rt(*read_db_);
    {
        use u(r_->get_by_id_origin);
        u.bind(1, id).bind(2, terminal_id_);
        if (u.step())
            return read_record(u, terminal_id_);
    }
    use u(r_->get_by_id);
    u.bind(1, id);
    if (!u.step())
        return std::nullopt;
    return read_record(u, terminal_id_);
}

std::vector<std::optional<state>> sqlite_store::states(const std::vector<std::string>& ids) {
    std::vector<std::optional<state>> out;
    out.reserve(ids.size());
    std::lock_guard lk(read_mutex_);
    read_transaction rt(*read_db_);
    auto read = [](use& u) -> std::optional<state> {
        if (!u.step())
            return std::nullopt;
        return static_cast<state>(std::clamp<std::int64_t>(u.int64(0), 0, 3));
    };
    for (const auto& id : ids) {
        std::optional<state> st;
        {
            use u(r_->state_by_id_origin);
            u.bind(1, id).bind(2, terminal_id_);
            st = read(u);
        }
        if (!st) {
            use u(r_->state_by_id);
            u.bind(1, id);
            st = read(u);
        }
        out.push_back(st);
    }
    return out;
}

counts sqlite_store::get_counts() {
    counts c;
    std::lock_guard lk(read_mutex_);
    read_transaction rt(*read_db_);
    {
        use u(r_->all_counts);
        while (u.step()) {
            auto origin = u.text(0);
            auto n = static_cast<std::uint64_t>(std::max<std::int64_t>(0, u.int64(2)));
            if (origin != terminal_id_) {
                c.replicas[origin] += n;
                continue;
            }
            switch (u.int64(1)) {
            case 0:
                c.pending += n;
                break;
            case 1:
                c.peer_ack += n;
                break;
            case 2:
                c.cloud_ack += n;
                break;
            case 3:
                c.failed += n;
                break;
            default:
                break;
            }
        }
    }
    {
        use u(r_->oldest_in_state);
        u.bind(1, terminal_id_).bind(2, state_int(state::pending));
        if (u.step())
            c.oldest_pending_stored_at_ms = u.int64(0);
    }
    {
        use u(r_->oldest_in_state);
        u.bind(1, terminal_id_).bind(2, state_int(state::peer_ack));
        if (u.step())
            c.oldest_peer_ack_at_ms = u.opt_int64(1);
    }
    {
        use u(r_->all_origins);
        while (u.step())
            if (u.text(0) == terminal_id_)
                c.own_last_seq = u.uint64(1);
    }
    {
        use u(r_->own_backlog);
        u.bind(1, terminal_id_);
        while (u.step()) {
            auto level = std::clamp<std::int64_t>(u.int64(1), 0, 3);
            auto n = static_cast<std::uint64_t>(std::max<std::int64_t>(0, u.int64(2)));
            auto& by = u.int64(0) == state_int(state::pending) ? c.pending_by_priority
                                                               : c.peer_ack_by_priority;
            by[static_cast<std::size_t>(level)] += n;
        }
    }
    return c;
}

protocol::hwm_map sqlite_store::hwm() {
    protocol::hwm_map out;
    std::lock_guard lk(read_mutex_);
    use u(r_->all_origins);
    while (u.step())
        out[u.text(0)] = u.uint64(1);
    return out;
}

protocol::tip_ids sqlite_store::ids_at(const protocol::hwm_map& at) {
    protocol::tip_ids out;
    std::lock_guard lk(read_mutex_);
    read_transaction rt(*read_db_);
    for (const auto& [origin, seq] : at) {
        if (seq == 0)
            continue;
        use u(r_->id_at_seq);
        u.bind(1, origin).bind(2, seq);
        if (u.step())
            out[origin] = u.text(0);
    }
    return out;
}

protocol::hwm_map sqlite_store::cloud_through() {
    protocol::hwm_map out;
    std::lock_guard lk(read_mutex_);
    use u(r_->all_origins);
    while (u.step())
        out[u.text(0)] = u.uint64(2);
    return out;
}

store::peer_batch sqlite_store::next_for_peer(std::string_view peer, const protocol::hwm_map& after,
                                              std::size_t limit, std::size_t max_bytes,
                                              bool include_peer_origin) {
    peer_batch b;
    if (limit == 0)
        return b;
    std::lock_guard lk(read_mutex_);
    read_transaction rt(*read_db_);
    // Own messages first (they wait for peer_ack), then other origins by name.
    std::vector<std::pair<std::string, std::uint64_t>> origins;
    {
        use u(r_->all_origins);
        while (u.step())
            origins.emplace_back(u.text(0), u.uint64(1));
    }
    std::stable_partition(origins.begin(), origins.end(),
                          [&](const auto& o) { return o.first == terminal_id_; });
    std::size_t bytes = 0;
    bool full = false;
    for (const auto& [origin, hwm] : origins) {
        if (origin == peer && !include_peer_origin)
            continue;
        auto it = after.find(origin);
        const std::uint64_t from = it == after.end() ? 0 : it->second;
        if (from >= hwm)
            continue;
        use u(r_->after_seq);
        u.bind(1, origin).bind(2, from);
        u.bind(3, static_cast<std::int64_t>(limit - b.messages.size()));
        bool first = true;
        while (u.step()) {
            auto rec = read_record(u, terminal_id_);
            if (first && rec.msg.seq > from + 1)
                b.floor[origin] = rec.msg.seq; // from+1 .. seq-1 were pruned after cloud_ack
            first = false;
            auto size = protocol::encoded_size(rec.msg);
            if (!b.messages.empty() && bytes + size > max_bytes) {
                full = true;
                break;
            }
            bytes += size;
            b.messages.push_back(std::move(rec.msg));
        }
        if (first)
            b.floor[origin] = hwm + 1; // everything above `from` was pruned here
        if (full || b.messages.size() >= limit)
            break;
    }
    return b;
}

std::vector<record> sqlite_store::next_for_cloud(std::size_t limit, bool include_pending) {
    std::vector<record> out;
    if (limit == 0)
        return out;
    std::lock_guard lk(read_mutex_);
    read_transaction rt(*read_db_);
    // Critical first: per level one range scan per state (index messages_priority), the two
    // states merged by seq; levels below are read only while the batch has room.
    for (int prio = 0; prio <= 3 && out.size() < limit; ++prio) {
        const auto level_start = out.size();
        const auto room = static_cast<std::int64_t>(limit - out.size());
        auto scan = [&](state s) {
            use u(r_->by_state_priority);
            u.bind(1, terminal_id_).bind(2, state_int(s)).bind(3, prio).bind(4, room);
            while (u.step())
                out.push_back(read_record(u, terminal_id_));
        };
        scan(state::peer_ack);
        if (!include_pending)
            continue;
        scan(state::pending);
        auto first = out.begin() + static_cast<std::ptrdiff_t>(level_start);
        std::sort(first, out.end(),
                  [](const record& a, const record& b) { return a.msg.seq < b.msg.seq; });
        if (out.size() > limit)
            out.resize(limit);
    }
    return out;
}

std::vector<record> sqlite_store::list(state st, std::size_t limit) {
    std::vector<record> out;
    std::lock_guard lk(read_mutex_);
    use u(r_->by_state);
    u.bind(1, terminal_id_).bind(2, state_int(st)).bind(3, static_cast<std::int64_t>(limit));
    while (u.step())
        out.push_back(read_record(u, terminal_id_));
    return out;
}

std::vector<peer_mark> sqlite_store::peer_marks() {
    std::vector<peer_mark> out;
    std::lock_guard lk(read_mutex_);
    use u(r_->all_peers);
    while (u.step())
        out.push_back({u.text(0), u.uint64(1), u.opt_int64(2)});
    return out;
}

bool sqlite_store::changed_elsewhere() {
    // PRAGMA data_version changes when *another* connection commits. The write connection
    // is the one whose own commits do not count; when the writer is busy, use the value it
    // sampled at the start of its current transaction.
    std::int64_t v = 0;
    if (read_only_) {
        std::lock_guard lk(read_mutex_);
        use u(r_->data_version);
        u.step();
        v = u.int64(0);
    } else {
        std::unique_lock lk(write_mutex_, std::try_to_lock);
        if (lk.owns_lock()) {
            use u(w_->data_version);
            u.step();
            writer_data_version_ = u.int64(0);
        }
        v = writer_data_version_;
    }
    std::lock_guard lk(version_mutex_);
    bool changed = v != seen_data_version_;
    seen_data_version_ = v;
    return changed;
}

bool sqlite_store::writable() {
    if (read_only_)
        return false;
    {
        std::lock_guard lk(queue_mutex_);
        if (closed_)
            return false;
    }
    std::lock_guard lk(read_mutex_);
    // An empty write transaction on the read connection: takes and releases the write lock
    // with a short wait, so /healthz never hangs behind a long writer.
    sqlite3_busy_timeout(read_db_->get(), 1000);
    bool ok = true;
    try {
        read_db_->exec(sql::probe_begin.data());
        read_db_->exec(sql::probe_commit.data());
    } catch (const sqlite_error& e) {
        ok = false;
        if (read_db_->in_transaction())
            sqlite3_exec(read_db_->get(), sql::probe_rollback.data(), nullptr, nullptr, nullptr);
        log::warn("outbox.not_writable", {{"error", e.what()}});
    }
    sqlite3_busy_timeout(read_db_->get(), tuning::sqlite_busy_timeout_ms);
    return ok;
}

} // namespace lanesync::outbox::detail
