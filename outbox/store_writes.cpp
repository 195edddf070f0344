// The write steps of the SQLite store: each runs on the writer thread inside the group's
// transaction (`write_transaction&` is the proof), in its own savepoint (docs/outbox.md).
#include "outbox/detail/store_parts.hpp"

#include "base/log.hpp"

#include <algorithm>
#include <map>
#include <set>

namespace lanesync::outbox::detail {
namespace {

std::int64_t latency(std::int64_t now, std::int64_t since) {
    return std::max<std::int64_t>(0, now - since);
}

/// Content of a message is its topic and data (canonical JSON); origin, seq, priority and
/// timestamps are not. The same rule answers publish (200 / 409) and compares replicas.
bool same_content(const protocol::message& held, std::string_view topic, std::string_view data) {
    return held.topic == topic && held.data == data;
}

} // namespace

// ---- write steps (writer thread, inside the group's transaction) ----------------------------

std::optional<record> sqlite_store::find(write_transaction&, const std::string& id,
                                         const std::string& origin) {
    use u(w_->get_by_id_origin);
    u.bind(1, id).bind(2, origin);
    if (!u.step())
        return std::nullopt;
    return read_record(u, terminal_id_);
}

sqlite_store::origin_marks sqlite_store::read_origin(write_transaction&,
                                                     const std::string& origin) {
    {
        use u(w_->origin_row);
        u.bind(1, origin);
        if (u.step())
            return {u.uint64(0), u.uint64(1)};
    }
    use ins(w_->ensure_origin);
    ins.bind(1, origin).run();
    return {};
}

void sqlite_store::write_origin(write_transaction&, const std::string& origin,
                                const origin_marks& m) {
    use u(w_->set_origin);
    u.bind(1, origin).bind(2, m.hwm).bind(3, m.cloud_through).run();
}

std::uint64_t sqlite_store::own_cloud_through(write_transaction& tx, std::uint64_t own_hwm) {
    // Own seqs 1..hwm all exist or were pruned after cloud_ack (or were below an own-origin
    // floor of a restore), so the own cloud_through is just below the lowest seq not yet
    // cloud_ack.
    return contiguous_cloud_through(tx, terminal_id_, own_hwm);
}

std::uint64_t sqlite_store::contiguous_cloud_through(write_transaction&, const std::string& origin,
                                                     std::uint64_t hwm) {
    // Three index seeks, no scan (replicas never are peer_ack: that seek finds nothing).
    std::uint64_t through = hwm;
    for (state s : {state::pending, state::peer_ack, state::failed}) {
        use u(w_->first_seq_in_state);
        u.bind(1, origin).bind(2, state_int(s));
        if (u.step())
            through = std::min(through, u.uint64(0) - 1);
    }
    return through;
}

std::size_t sqlite_store::mark_in_cloud(write_transaction&, const std::string& origin,
                                        std::uint64_t through, std::int64_t now) {
    use u(origin == terminal_id_ ? w_->own_cloud_acked : w_->replicas_cloud_acked);
    u.bind(1, origin).bind(2, through).bind(3, now).run();
    return static_cast<std::size_t>(u.changes());
}

protocol::hwm_map sqlite_store::all_hwm(write_transaction&) {
    protocol::hwm_map out;
    use u(w_->all_origins);
    while (u.step())
        out[u.text(0)] = u.uint64(1);
    return out;
}

publish_outcome sqlite_store::do_publish(write_transaction& tx,
                                         const protocol::publish_request& req, commit_info& info) {
    publish_outcome out;
    std::string id;
    if (req.id) {
        id = protocol::normalize_uuid(*req.id);
        if (auto held = find(tx, id, terminal_id_)) {
            // Idempotency key this lane accepted before. Content is topic and data (canonical
            // JSON); priority and timestamps are not. An id held only as a replica of another
            // lane (the POS retried here after that lane failed to answer) is accepted below as
            // a new own message: the cloud applies the event once (docs/outbox.md).
            bool same = same_content(held->msg, req.topic, req.data);
            out.k = same ? publish_outcome::existing : publish_outcome::conflict;
            out.rec = std::move(*held);
            return out;
        }
    } else {
        id = protocol::new_uuid_v7();
    }

    // seq is read inside the write transaction: another process publishing into the same file
    // waits on the write lock, so it can never hand out the same seq. If this request is rolled
    // back (its savepoint) the hwm update goes with it, so the next request reuses the seq.
    auto own = read_origin(tx, terminal_id_);
    const std::uint64_t seq = own.hwm + 1;
    const auto now = protocol::now_ms();
    {
        use u(w_->insert_message);
        u.bind(1, id).bind(2, terminal_id_).bind(3, seq).bind(4, req.topic);
        u.bind(5, static_cast<int>(req.prio)).bind(6, req.data).bind(7, now).bind(8, now);
        u.bind(9, state_int(state::pending)).bind_null(10).run();
    }
    own.hwm = seq;
    write_origin(tx, terminal_id_, own);
    info.new_own = true;

    out.k = publish_outcome::created;
    out.rec.msg = protocol::message{id, terminal_id_, seq, req.topic, req.prio, req.data, now};
    out.rec.st = state::pending;
    out.rec.own = true;
    out.rec.stored_at_ms = now;
    return out;
}

batch_outcome sqlite_store::do_publish_batch(write_transaction& tx,
                                             const std::vector<protocol::publish_request>& reqs,
                                             commit_info& info) {
    batch_outcome out;
    out.items.reserve(reqs.size());
    commit_info mine;
    bool conflict = false;
    savepoint sp(tx); // nested in the request's own: all of the batch, or none of it
    for (const auto& req : reqs) {
        out.items.push_back(do_publish(tx, req, mine));
        conflict = conflict || out.items.back().k == publish_outcome::conflict;
    }
    if (conflict) {
        sp.rollback();
        out.k = batch_outcome::conflict;
        return out;
    }
    sp.release();
    info.new_own = info.new_own || mine.new_own;
    out.k = batch_outcome::stored;
    return out;
}

sqlite_store::origin_marks& sqlite_store::touched_origin(write_transaction& tx, origin_map& marks,
                                                         const std::string& origin) {
    auto it = marks.find(origin);
    if (it == marks.end())
        it = marks.emplace(origin, read_origin(tx, origin)).first;
    return it->second;
}

std::size_t sqlite_store::apply_floor(write_transaction& tx, const protocol::hwm_map& floor,
                                      bool restore_own, origin_map& marks, std::int64_t now) {
    std::size_t marked = 0;
    // floor[o] = f: every message of o below f is in the cloud (pruned at the sender), so it
    // counts as held here and as cloud_ack.
    for (const auto& [origin, f] : floor) {
        if (f <= 1)
            continue;
        if (origin == terminal_id_) {
            if (restore_own)
                marked += apply_own_floor(tx, f, touched_origin(tx, marks, origin), now);
            continue;
        }
        auto& m = touched_origin(tx, marks, origin);
        m.hwm = std::max(m.hwm, f - 1);
        if (f - 1 > m.cloud_through) {
            m.cloud_through = f - 1;
            marked += mark_in_cloud(tx, origin, m.cloud_through, now);
        }
    }
    return marked;
}

void sqlite_store::store_replica(write_transaction& tx, const protocol::message& m,
                                 origin_marks& om, replicas_outcome& out, std::string& gap_text,
                                 std::int64_t now) {
    auto refuse = [&](const char* why) {
        ++out.refused;
        log::warn(
            "outbox.replica_refused",
            {{"id", m.id}, {"origin", m.origin}, {"seq", std::to_string(m.seq)}, {"why", why}});
    };
    // Only a copy under the same origin matters: the same id held under another origin (own or
    // a third lane's) is another lane's acceptance of the same event, stored as its own row.
    if (auto held = find(tx, m.id, m.origin)) {
        if (held->msg.seq == m.seq && same_content(held->msg, m.topic, m.data)) {
            ++out.duplicates;
        } else {
            refuse("same id and origin, other content or seq");
            // One origin cannot hold an id twice: name it, so the link's close reason and
            // status say what blocks replication of that origin.
            if (out.conflict.empty())
                out.conflict = "message id " + m.id + " of " + m.origin + ":" +
                               std::to_string(m.seq) + " is already held as " + held->msg.origin +
                               ":" + std::to_string(held->msg.seq);
        }
        return;
    }
    if (m.seq <= om.hwm) {
        use u(w_->id_at_seq);
        u.bind(1, m.origin).bind(2, m.seq);
        if (u.step())
            refuse("same origin and seq, other id");
        else
            ++out.duplicates; // below the floor: pruned here after reaching the cloud
        return;
    }
    if (m.seq != om.hwm + 1) {
        if (!out.gap)
            gap_text = !out.conflict.empty()
                           ? out.conflict
                           : "gap: origin " + m.origin + " expected seq " +
                                 std::to_string(om.hwm + 1) + ", got " + std::to_string(m.seq);
        out.gap = true;
        return;
    }
    const bool in_cloud = m.seq <= om.cloud_through;
    use u(w_->insert_message);
    u.bind(1, m.id).bind(2, m.origin).bind(3, m.seq).bind(4, m.topic);
    u.bind(5, static_cast<int>(m.prio)).bind(6, m.data).bind(7, m.created_at_ms).bind(8, now);
    u.bind(9, state_int(in_cloud ? state::cloud_ack : state::pending));
    if (in_cloud)
        u.bind(10, now);
    else
        u.bind_null(10);
    u.run();
    om.hwm = m.seq;
    ++out.inserted;
}

replicas_outcome sqlite_store::do_store_replicas(write_transaction& tx,
                                                 const std::vector<protocol::message>& msgs,
                                                 const protocol::hwm_map& floor, bool restore_own,
                                                 commit_info& info) {
    replicas_outcome out;
    const auto now = protocol::now_ms();
    origin_map marks; // touched origins, written at the end
    // Rows the floor made cloud_ack: the local API's waiters re-read their states.
    info.new_cloud_state = apply_floor(tx, floor, restore_own, marks, now) > 0;
    std::string gap_text;
    std::size_t own_inserted = 0;
    for (const auto& m : msgs) {
        const bool own = m.origin == terminal_id_;
        if (own && !restore_own)
            continue; // our own message coming back: this lane is its source of truth
        // Restoring (a rebuild): own messages follow the replica rules and become own rows;
        // the own hwm rises with them, so publish continues at hwm + 1.
        const auto before = out.inserted;
        store_replica(tx, m, touched_origin(tx, marks, m.origin), out, gap_text, now);
        if (own)
            own_inserted += out.inserted - before;
    }
    out.restored = own_inserted;
    info.new_own = own_inserted > 0; // gossip sends them on (peers that lack them)
    info.new_replicas = out.inserted > own_inserted;
    for (const auto& [origin, m] : marks)
        write_origin(tx, origin, m);
    out.hwm = all_hwm(tx);
    // A gap is not a storage failure: what came before it is committed and counted, but the
    // batch was not stored whole, so it must not be acked as such.
    out.ok = !out.gap && out.conflict.empty();
    out.error = !out.conflict.empty() ? out.conflict : std::move(gap_text);
    return out;
}

peer_ack_outcome sqlite_store::do_peer_acked(write_transaction& tx, const std::string& peer,
                                             std::uint64_t acked_through, std::size_t quorum,
                                             commit_info& info) {
    peer_ack_outcome out;
    const auto now = protocol::now_ms();
    {
        use u(w_->upsert_peer);
        u.bind(1, peer).bind(2, acked_through).bind(3, now).run();
    }
    // The seq that `quorum` distinct peers hold: the quorum-th largest mark.
    std::uint64_t through = 0;
    {
        use u(w_->kth_peer_mark);
        u.bind(1, static_cast<std::int64_t>(std::max<std::size_t>(quorum, 1) - 1));
        if (u.step())
            through = u.uint64(0);
    }
    through = std::min(through, read_origin(tx, terminal_id_).hwm);
    out.quorum_through = through;
    if (through > 0) {
        use u(w_->promote_to_peer_ack);
        u.bind(1, terminal_id_).bind(2, now).bind(3, through);
        while (u.step())
            out.promoted_latency_ms.push_back(latency(now, u.int64(0)));
    }
    info.new_peer_ack = !out.promoted_latency_ms.empty();
    out.ok = true;
    return out;
}

cloud_outcome sqlite_store::do_cloud_acked(write_transaction& tx,
                                           const std::vector<cloud_result>& results) {
    cloud_outcome out;
    const auto now = protocol::now_ms();
    std::set<std::string> replica_origins; // whose cloud_through may rise
    for (const auto& r : results) {
        if (!r.origin.empty() && r.origin != terminal_id_) {
            apply_replica_result(tx, r, now, out, replica_origins);
        } else if (r.k == cloud_result::rejected) {
            use u(w_->cloud_reject_one);
            u.bind(1, r.id).bind(2, terminal_id_).bind(3, r.error).run();
            out.failed += static_cast<std::size_t>(u.changes());
        } else {
            use u(w_->cloud_ack_one);
            u.bind(1, r.id).bind(2, terminal_id_).bind(3, now);
            while (u.step()) {
                ++out.acked;
                auto since = u.is_null(0) ? u.int64(1) : u.int64(0);
                out.latency_ms.push_back(latency(now, since));
            }
        }
    }
    for (const auto& origin : replica_origins)
        raise_replica_cloud_through(tx, origin);
    auto own = read_origin(tx, terminal_id_);
    auto through = own_cloud_through(tx, own.hwm);
    if (through != own.cloud_through) {
        own.cloud_through = through;
        write_origin(tx, terminal_id_, own);
    }
    out.ok = true;
    return out;
}

count_outcome sqlite_store::do_note_attempt(write_transaction&,
                                            const std::vector<std::string>& ids) {
    count_outcome out;
    for (const auto& id : ids) {
        use u(w_->note_attempt);
        u.bind(1, id).bind(2, terminal_id_).run();
        out.count += static_cast<std::size_t>(u.changes());
    }
    out.ok = true;
    return out;
}

count_outcome sqlite_store::do_retry(write_transaction&, const std::vector<std::string>& ids,
                                     commit_info& info) {
    count_outcome out;
    auto take = [&](use& u) {
        while (u.step()) {
            ++out.count;
            if (u.int64(0) == state_int(state::peer_ack))
                info.new_peer_ack = true;
        }
    };
    if (ids.empty()) {
        use u(w_->retry_all);
        u.bind(1, terminal_id_);
        take(u);
    } else {
        for (const auto& id : ids) {
            use u(w_->retry_one);
            u.bind(1, id).bind(2, terminal_id_);
            take(u);
        }
    }
    info.requeued = out.count > 0;
    out.ok = true;
    return out;
}

count_outcome sqlite_store::do_prune(write_transaction& tx, std::int64_t older_than_ms,
                                     std::size_t max_rows) {
    // Only a prefix of each origin is ever deleted: seqs 1..P where every message is cloud_ack
    // and old enough. So what a lane holds of an origin is always one contiguous range ending
    // at its hwm, and "the first seq still held" is a valid floor for peers (docs/outbox.md).
    count_outcome out;
    out.ok = true;
    if (max_rows == 0)
        return out;
    std::vector<std::pair<std::string, origin_marks>> origins;
    {
        use u(w_->all_origins);
        while (u.step())
            origins.push_back({u.text(0), {u.uint64(1), u.uint64(2)}});
    }
    for (auto& [origin, m] : origins) {
        const bool own = origin == terminal_id_;
        std::uint64_t limit = m.cloud_through;
        if (own) {
            limit = own_cloud_through(tx, m.hwm);
            if (limit != m.cloud_through) {
                m.cloud_through = limit;
                write_origin(tx, origin, m);
            }
        }
        if (limit == 0)
            continue;
        // At most what is left of max_rows: from the first seq still held (the range held is
        // contiguous, so seqs lo..lo+room-1 are at most `room` rows).
        const std::size_t room = max_rows - out.count;
        {
            use u(w_->first_seq_in_state);
            u.bind(1, origin).bind(2, state_int(state::cloud_ack));
            if (!u.step())
                continue;
            const std::uint64_t lo = u.uint64(0);
            if (lo > limit)
                continue;
            if (limit - lo >= room)
                limit = lo + room - 1;
        }
        {
            // The first message of that window too young to go: a scan of the window only
            // (of the whole held range, a million-row prune in steps would be quadratic).
            use u(own ? w_->first_young_own : w_->first_young_replica);
            u.bind(1, origin).bind(2, older_than_ms).bind(3, static_cast<std::int64_t>(limit));
            if (u.step())
                limit = std::min(limit, u.uint64(0) - 1);
        }
        if (limit == 0)
            continue;
        use u(w_->delete_prefix);
        u.bind(1, origin).bind(2, limit).run();
        out.count += static_cast<std::size_t>(u.changes());
        if (out.count >= max_rows)
            break;
    }
    out.ok = true;
    return out;
}

count_outcome sqlite_store::do_origin_cloud_through(write_transaction& tx,
                                                    const std::string& origin,
                                                    std::uint64_t through) {
    count_outcome out;
    out.ok = true;
    if (through == 0)
        return out;
    if (origin == terminal_id_)
        return do_own_cloud_through(tx, through);
    auto m = read_origin(tx, origin);
    if (through > m.cloud_through) {
        m.cloud_through = through;
        write_origin(tx, origin, m);
    }
    out.count = mark_in_cloud(tx, origin, through, protocol::now_ms());
    return out;
}

} // namespace lanesync::outbox::detail
