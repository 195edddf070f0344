// Rebuild and takeover support of the SQLite store (docs/outbox.md, "Rebuild" and "Cover"):
// the rebuild state and incarnation (meta rows), own messages known in the cloud through a
// peer, cloud answers for replicas uploaded on their origin's behalf, and the reads
// next_replicas_for_cloud, origin_summaries, incarnation and get_rebuild_state.
#include "outbox/detail/store_parts.hpp"

#include "base/log.hpp"
#include "protocol/frames.hpp"

#include <algorithm>
#include <charconv>

namespace lanesync::outbox::detail {
namespace {

constexpr std::string_view key_incarnation = "incarnation";
constexpr std::string_view key_reason = "rebuild_reason";
constexpr std::string_view key_since = "rebuild_since";
constexpr std::string_view excluded_prefix = "excluded:";

/// A meta value written by this code as a decimal number; 0 when unreadable.
std::uint64_t to_u64(const std::string& text) {
    std::uint64_t v = 0;
    std::from_chars(text.data(), text.data() + text.size(), v);
    return v;
}

std::string new_incarnation() {
    return protocol::random_hex(16); // 32 lowercase hex
}

} // namespace

// ---- meta rows (writer thread) ----------------------------------------------------------------

std::optional<std::string> sqlite_store::meta(write_transaction&, std::string_view key) {
    use u(w_->meta_value);
    u.bind(1, key);
    if (!u.step())
        return std::nullopt;
    return u.text(0);
}

void sqlite_store::put_meta(write_transaction&, std::string_view key, const std::string& value) {
    use u(w_->put_meta);
    u.bind(1, key).bind(2, value).run();
}

count_outcome sqlite_store::do_begin_rebuild(write_transaction& tx, const std::string& reason) {
    count_outcome out;
    out.ok = true;
    if (!meta(tx, key_reason).value_or("").empty())
        return out; // already rebuilding: the first reason and start time stay
    const std::string why = reason.empty() ? std::string("rebuild requested") : reason;
    const std::string since = std::to_string(protocol::now_ms());
    put_meta(tx, key_reason, why);
    put_meta(tx, key_since, since);
    out.count = 1;
    log::warn("outbox.rebuild_started", {{"lane", terminal_id_}, {"reason", why}});
    return out;
}

count_outcome sqlite_store::do_finish_rebuild(write_transaction& tx,
                                              const std::vector<std::string>& excluded) {
    count_outcome out;
    out.ok = true;
    if (meta(tx, key_reason).value_or("").empty())
        return out; // not rebuilding: nothing changes (the incarnation stays)
    const std::uint64_t own_hwm = read_origin(tx, terminal_id_).hwm;
    for (const auto& terminal : excluded) {
        if (terminal.empty() || terminal == terminal_id_)
            continue;
        // The trust cap: that lane's marks of our origin are never trusted above it. A cap
        // from an earlier rebuild is lower and stays (the lane still missed that one).
        const std::string key = std::string(excluded_prefix) + terminal;
        std::uint64_t cap = own_hwm;
        if (auto held = meta(tx, key))
            cap = std::min(cap, to_u64(*held));
        put_meta(tx, key, std::to_string(cap));
    }
    for (auto key : {key_reason, key_since}) {
        use u(w_->delete_meta);
        u.bind(1, key).run();
    }
    const std::string incarnation = new_incarnation();
    put_meta(tx, key_incarnation, incarnation);
    out.count = 1;
    log::warn("outbox.rebuild_finished", {{"lane", terminal_id_},
                                          {"seq", std::to_string(own_hwm)},
                                          {"incarnation", incarnation},
                                          {"excluded", std::to_string(excluded.size())}});
    return out;
}

count_outcome sqlite_store::do_lift_trust_cap(write_transaction& tx, const std::string& terminal) {
    count_outcome out;
    out.ok = true;
    const std::string key = std::string(excluded_prefix) + terminal;
    if (!meta(tx, key))
        return out;
    use u(w_->delete_meta);
    u.bind(1, key).run();
    out.count = 1;
    log::warn("outbox.trust_cap_lifted", {{"lane", terminal_id_}, {"peer", terminal}});
    return out;
}

// ---- own messages in the cloud, replicas' cloud answers (writer thread) --------------------

std::size_t sqlite_store::apply_own_floor(write_transaction& tx, std::uint64_t f, origin_marks& own,
                                          std::int64_t now) {
    // The peer pruned our messages below f after they reached the cloud: they count as held
    // (the hwm jumps over them) and as cloud_ack, like a replica floor.
    own.hwm = std::max(own.hwm, f - 1);
    auto marked = mark_in_cloud(tx, terminal_id_, f - 1, now);
    own.cloud_through = std::max(own.cloud_through, own_cloud_through(tx, own.hwm));
    return marked;
}

count_outcome sqlite_store::do_own_cloud_through(write_transaction& tx, std::uint64_t through) {
    // A peer uploaded our messages for us (takeover) or heard the cloud say so: pending and
    // peer_ack own messages up to `through` become cloud_ack; failed ones stay failed (the
    // cloud refused this lane's copy; an operator decides). Never above the own hwm.
    count_outcome out;
    out.ok = true;
    auto own = read_origin(tx, terminal_id_);
    through = std::min(through, own.hwm);
    if (through == 0)
        return out;
    out.count = mark_in_cloud(tx, terminal_id_, through, protocol::now_ms());
    auto ct = own_cloud_through(tx, own.hwm);
    if (ct != own.cloud_through) {
        own.cloud_through = ct;
        write_origin(tx, terminal_id_, own);
    }
    if (out.count > 0)
        log::info("outbox.own_cloud_through", {{"lane", terminal_id_},
                                               {"seq", std::to_string(through)},
                                               {"acked", std::to_string(out.count)}});
    return out;
}

void sqlite_store::apply_replica_result(write_transaction&, const cloud_result& r, std::int64_t now,
                                        cloud_outcome& out, std::set<std::string>& touched) {
    if (r.k == cloud_result::rejected) {
        use u(w_->cloud_reject_one);
        u.bind(1, r.id).bind(2, r.origin).bind(3, r.error).run();
        out.failed += static_cast<std::size_t>(u.changes());
        if (u.changes() > 0)
            touched.insert(r.origin);
        return;
    }
    use u(w_->cloud_ack_one);
    u.bind(1, r.id).bind(2, r.origin).bind(3, now);
    while (u.step()) {
        ++out.acked; // no latency sample: those measure this lane's own messages
        touched.insert(r.origin);
    }
}

void sqlite_store::raise_replica_cloud_through(write_transaction& tx, const std::string& origin) {
    auto m = read_origin(tx, origin);
    auto through = contiguous_cloud_through(tx, origin, m.hwm);
    if (through > m.cloud_through) {
        m.cloud_through = through;
        write_origin(tx, origin, m);
    }
}

// ---- reads ----------------------------------------------------------------------------------

std::vector<record> sqlite_store::next_replicas_for_cloud(const std::vector<std::string>& origins,
                                                          std::size_t limit) {
    std::vector<record> out;
    if (limit == 0 || origins.empty())
        return out;
    std::lock_guard lk(read_mutex_);
    read_transaction rt(*read_db_);
    std::map<std::string, std::uint64_t> through; // the asked origins held here, by name
    {
        use u(r_->all_origins);
        while (u.step()) {
            auto origin = u.text(0);
            if (origin != terminal_id_ &&
                std::find(origins.begin(), origins.end(), origin) != origins.end())
                through[origin] = u.uint64(2);
        }
    }
    // Priority first (critical first), then origin by name, then seq: one index range per
    // (priority, origin), at most 4 x origins seeks.
    for (int prio = 0; prio <= 3 && out.size() < limit; ++prio) {
        for (const auto& [origin, ct] : through) {
            if (out.size() >= limit)
                break;
            use u(r_->pending_by_priority);
            u.bind(1, origin).bind(2, prio).bind(3, ct);
            u.bind(4, static_cast<std::int64_t>(limit - out.size()));
            while (u.step())
                out.push_back(read_record(u, terminal_id_));
        }
    }
    return out;
}

std::vector<origin_summary> sqlite_store::origin_summaries() {
    std::vector<origin_summary> out;
    std::lock_guard lk(read_mutex_);
    read_transaction rt(*read_db_);
    {
        use u(r_->all_origins);
        while (u.step()) {
            origin_summary s;
            s.origin = u.text(0);
            s.own = s.origin == terminal_id_;
            s.hwm = u.uint64(1);
            s.cloud_through = u.uint64(2);
            out.push_back(std::move(s));
        }
    }
    std::map<std::string, std::uint64_t> held, to_upload;
    {
        use u(r_->all_counts);
        while (u.step()) {
            auto n = static_cast<std::uint64_t>(std::max<std::int64_t>(0, u.int64(2)));
            held[u.text(0)] += n;
            auto st = u.int64(1);
            if (st == state_int(state::pending) || st == state_int(state::peer_ack))
                to_upload[u.text(0)] += n;
        }
    }
    for (auto& s : out) {
        s.held = held[s.origin];
        s.to_upload = to_upload[s.origin];
    }
    std::sort(out.begin(), out.end(), [](const origin_summary& a, const origin_summary& b) {
        return a.own != b.own ? a.own : a.origin < b.origin;
    });
    return out;
}

std::string sqlite_store::incarnation() {
    return get_rebuild_state().incarnation;
}

rebuild_state sqlite_store::get_rebuild_state() {
    rebuild_state st;
    std::lock_guard lk(read_mutex_);
    read_transaction rt(*read_db_);
    use u(r_->all_meta);
    while (u.step()) {
        auto key = u.text(0);
        auto value = u.text(1);
        if (key == key_incarnation)
            st.incarnation = value;
        else if (key == key_reason)
            st.reason = value;
        else if (key == key_since)
            st.since_ms = static_cast<std::int64_t>(to_u64(value));
        else if (key.rfind(excluded_prefix, 0) == 0)
            st.excluded[key.substr(excluded_prefix.size())] = to_u64(value);
    }
    st.active = !st.reason.empty();
    if (!st.active)
        st.since_ms = 0;
    return st;
}

} // namespace lanesync::outbox::detail
