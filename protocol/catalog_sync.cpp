#include "protocol/catalog_sync.hpp"

#include <algorithm>

namespace lanesync::protocol {
namespace {

using snap = catalog_have_entry::snapshot_state;

/// A page's rough encoded size per change (fixed keys and numbers around key and data).
std::size_t change_bytes(const catalog_change& c) {
    return c.key.size() + c.data.size() + 96;
}

/// Keeps the first `max_rows` changes that fit in `max_bytes` (at least one). Returns the first
/// change dropped's version (nullopt: none dropped).
std::optional<std::int64_t> trim(std::vector<catalog_change>& rows, std::size_t max_rows,
                                 std::size_t max_bytes) {
    std::size_t total = 0;
    for (std::size_t i = 0; i < rows.size(); ++i) {
        total += change_bytes(rows[i]);
        if (i == max_rows || (total > max_bytes && i > 0)) {
            auto v = rows[i].version;
            rows.resize(i);
            return v;
        }
    }
    return std::nullopt;
}

std::string check_snapshot_page(const catalog_frame& f) {
    if (f.since != 0)
        return "catalog snapshot page must have since 0";
    for (std::size_t i = 0; i < f.page.changes.size(); ++i) {
        if (f.page.changes[i].deleted)
            return "catalog snapshot page holds a tombstone";
        if (i > 0 && !(f.page.changes[i - 1].key < f.page.changes[i].key))
            return "catalog snapshot page keys must be in strictly increasing order";
    }
    return {};
}

std::string check_changes_page(const catalog_frame& f) {
    if (f.page.through <= f.since)
        return "catalog page through must be above since";
    std::set<std::string_view> keys;
    std::int64_t last = f.since;
    for (const auto& c : f.page.changes) {
        if (c.version <= f.since || c.version > f.page.through)
            return "catalog change version must be above since and at most through";
        if (c.version < last)
            return "catalog changes must be in version order";
        last = c.version;
        if (!keys.insert(c.key).second)
            return "catalog page names a key twice";
    }
    return {};
}

std::optional<served_page> serve_snapshot(const catalog_scope_state& ours, const send_plan& plan,
                                          const catalog_reader& read,
                                          const catalog_sync_limits& lim) {
    // One row more than a page: whether more follow.
    auto rows = read.keys_after(ours.scope, plan.snapshot.after_key, lim.page_changes + 1);
    const bool more = trim(rows, lim.page_changes, lim.page_bytes).has_value();
    served_page out;
    out.reason = plan.reason;
    out.page.scope = ours.scope;
    out.page.reset = plan.first;
    out.page.continues_snapshot = !plan.first;
    out.page.through = plan.snapshot.as_of;
    out.page.head = std::max(ours.head, ours.through);
    out.page.done = !more;
    if (more)
        out.next = serving_snapshot{plan.snapshot.as_of, rows.back().key};
    out.page.changes = std::move(rows);
    return out;
}

std::optional<served_page> serve_changes(const catalog_scope_state& ours, const send_plan& plan,
                                         const catalog_reader& read,
                                         const catalog_sync_limits& lim) {
    // One row more than a page: whether more follow, and whether the next one shares the last
    // kept one's version.
    auto rows = read.since(ours.scope, plan.since, lim.page_changes + 1);
    // Rows above our through (a snapshot brought them before the log did) are not part of what
    // we are complete through: they go once our through covers them.
    auto above = std::find_if(rows.begin(), rows.end(),
                              [&](const catalog_change& c) { return c.version > ours.through; });
    rows.erase(above, rows.end());
    auto next_version = trim(rows, lim.page_changes, lim.page_bytes);
    served_page out;
    out.since = plan.since;
    out.reason = plan.reason;
    out.page.scope = ours.scope;
    out.page.head = std::max(ours.head, ours.through);
    out.page.through = ours.through;
    if (next_version && !rows.empty()) {
        // The next page starts above this one's through: a run of one version cut by the page's
        // end goes whole into the next page.
        const auto last = rows.back().version;
        if (*next_version == last) {
            auto cut = std::find_if(rows.begin(), rows.end(),
                                    [last](const catalog_change& c) { return c.version == last; });
            if (cut == rows.begin()) {
                send_plan snapshot{send_kind::snapshot, send_reason::same_version_run, 0,
                                   serving_snapshot{ours.through, ""}, true};
                return serve_snapshot(ours, snapshot, read, lim);
            }
            rows.erase(cut, rows.end());
        }
        out.page.through = rows.back().version;
    }
    out.page.done = out.page.through == ours.through;
    out.page.changes = std::move(rows);
    return out;
}

} // namespace

std::string check_page_shape(const catalog_frame& f) {
    if (f.page.reset && f.page.continues_snapshot)
        return "catalog page cannot both reset and continue a snapshot";
    if (f.page.reset || f.page.continues_snapshot)
        return check_snapshot_page(f);
    return check_changes_page(f);
}

const char* to_string(send_reason r) {
    switch (r) {
    case send_reason::up_to_date:
        return "up_to_date";
    case send_reason::ours_empty:
        return "ours_empty";
    case send_reason::ours_mid_snapshot:
        return "ours_mid_snapshot";
    case send_reason::peer_busy:
        return "peer_busy";
    case send_reason::changes_since:
        return "changes_since";
    case send_reason::below_horizon:
        return "below_horizon";
    case send_reason::restart_snapshot:
        return "restart_snapshot";
    case send_reason::continue_snapshot:
        return "continue_snapshot";
    case send_reason::same_version_run:
        return "same_version_run";
    }
    return "?";
}

send_plan plan_scope(const catalog_scope_state& ours, const catalog_have_entry* peer,
                     const serving_snapshot* serving) {
    const auto nothing = [](send_reason r) {
        return send_plan{send_kind::nothing, r, 0, {}, false};
    };
    const auto snapshot = [&](send_reason r, serving_snapshot at, bool first) {
        return send_plan{send_kind::snapshot, r, 0, std::move(at), first};
    };
    if (ours.snapshot_active)
        return nothing(send_reason::ours_mid_snapshot);
    const snap peer_snap = peer ? peer->snapshot : snap::none;
    if (peer_snap == snap::busy)
        return nothing(send_reason::peer_busy);
    if (peer_snap == snap::yours && serving)
        return snapshot(send_reason::continue_snapshot, *serving, false);
    if (ours.through <= 0)
        return nothing(send_reason::ours_empty);
    if (peer_snap == snap::yours)
        return snapshot(send_reason::restart_snapshot, {ours.through, ""}, true);
    const std::int64_t theirs = peer ? peer->through : 0;
    if (theirs >= ours.through)
        return nothing(send_reason::up_to_date);
    if (theirs < ours.horizon)
        return snapshot(send_reason::below_horizon, {ours.through, ""}, true);
    return send_plan{send_kind::changes, send_reason::changes_since, theirs, {}, false};
}

std::optional<served_page> serve_scope(const catalog_scope_state& ours,
                                       const catalog_have_entry* peer,
                                       const serving_snapshot* serving, const catalog_reader& read,
                                       const catalog_sync_limits& lim) {
    auto plan = plan_scope(ours, peer, serving);
    if (plan.kind == send_kind::snapshot)
        return serve_snapshot(ours, plan, read, lim);
    if (plan.kind == send_kind::changes)
        return serve_changes(ours, plan, read, lim);
    return std::nullopt;
}

std::vector<served_page> serve_job(const catalog_job& job,
                                   const std::vector<catalog_scope_state>& ours,
                                   const catalog_reader& read, const catalog_sync_limits& lim) {
    std::vector<served_page> out;
    for (const auto& s : ours) {
        if (job.in_flight.contains(s.scope))
            continue;
        auto p = std::find_if(job.peer.begin(), job.peer.end(),
                              [&](const catalog_have_entry& e) { return e.scope == s.scope; });
        auto sv = job.serving.find(s.scope);
        auto page = serve_scope(s, p == job.peer.end() ? nullptr : &*p,
                                sv == job.serving.end() ? nullptr : &sv->second, read, lim);
        if (page)
            out.push_back(std::move(*page));
    }
    return out;
}

// ---- catalog_sender -------------------------------------------------------------------------

bool catalog_sender::on_have(const catalog_have_frame& h) {
    have_known_ = true;
    dirty_ = true;
    peer_ = h.scopes;
    std::erase_if(in_flight_, [&](const auto& e) { return e.second <= h.acked; });
    // A snapshot is served only while the peer says it is ours.
    std::erase_if(serving_, [&](const auto& e) {
        return std::none_of(peer_.begin(), peer_.end(), [&](const catalog_have_entry& p) {
            return p.scope == e.first && p.snapshot == snap::yours;
        });
    });
    return !job_out_;
}

std::optional<catalog_job> catalog_sender::take_job() {
    if (!have_known_ || !dirty_ || job_out_)
        return std::nullopt;
    dirty_ = false;
    job_out_ = true;
    catalog_job job{peer_, serving_, {}};
    for (const auto& [scope, n] : in_flight_)
        job.in_flight.insert(scope);
    return job;
}

std::vector<catalog_frame> catalog_sender::on_served(std::vector<served_page> pages) {
    job_out_ = false;
    std::vector<catalog_frame> out;
    for (auto& p : pages) {
        const auto& scope = p.page.scope;
        if (in_flight_.contains(scope))
            continue; // cannot happen: the job skipped it
        if (p.next)
            serving_[scope] = *p.next;
        else
            serving_.erase(scope);
        in_flight_[scope] = next_n_;
        out.push_back(catalog_frame{next_n_++, p.since, std::move(p.page)});
    }
    return out;
}

// ---- receiving ------------------------------------------------------------------------------

std::vector<catalog_have_entry>
have_entries(const std::vector<catalog_scope_state>& ours,
             const std::function<snapshot_owner(const std::string& scope)>& owner) {
    std::vector<catalog_have_entry> out;
    out.reserve(ours.size());
    for (const auto& s : ours) {
        catalog_have_entry e{s.scope, s.through, s.horizon};
        if (s.snapshot_active) {
            auto o = owner(s.scope);
            e.snapshot = o == snapshot_owner::this_session || o == snapshot_owner::orphan
                             ? snap::yours
                             : snap::busy;
        }
        out.push_back(std::move(e));
    }
    return out;
}

const char* to_string(page_verdict v) {
    switch (v) {
    case page_verdict::apply:
        return "apply";
    case page_verdict::ignore_busy:
        return "busy";
    case page_verdict::ignore_not_continuing:
        return "not_continuing";
    case page_verdict::ignore_gap:
        return "gap";
    case page_verdict::ignore_stale:
        return "stale";
    }
    return "?";
}

page_verdict accept_page(const catalog_scope_state* ours, snapshot_owner owner,
                         const catalog_frame& f) {
    const bool active = ours && ours->snapshot_active;
    const std::int64_t through = ours ? ours->through : 0;
    if (f.page.continues_snapshot)
        return active && owner == snapshot_owner::this_session
                   ? page_verdict::apply
                   : page_verdict::ignore_not_continuing;
    if (f.page.reset) {
        if (!active)
            return through >= f.page.through ? page_verdict::ignore_stale : page_verdict::apply;
        return owner == snapshot_owner::this_session || owner == snapshot_owner::orphan
                   ? page_verdict::apply
                   : page_verdict::ignore_busy;
    }
    if (active)
        return page_verdict::ignore_busy;
    if (f.since > through)
        return page_verdict::ignore_gap;
    if (f.page.through <= through)
        return page_verdict::ignore_stale;
    return page_verdict::apply;
}

} // namespace lanesync::protocol
