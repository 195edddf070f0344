// Head office's data on the lane (schema 4, docs/downstream.md "Lane"): apply_catalog's write
// step, the tombstone purge, and the catalog reads. A page is one request of a group commit,
// in its own savepoint: it is validated before anything is written, and any failure after
// that throws, so the savepoint takes every row of the page and the scope's state with it.
#include "outbox/detail/store_parts.hpp"

#include "base/log.hpp"

#include <algorithm>

namespace lanesync::outbox::detail {
namespace {

constexpr std::size_t max_resume_bytes = 4096;

protocol::catalog_change read_change(const use& u) {
    protocol::catalog_change c;
    c.scope = u.text(0);
    c.key = u.text(1);
    c.version = u.int64(2);
    c.deleted = u.int64(3) != 0;
    c.data = u.text(4);
    c.changed_at_ms = u.int64(5);
    return c;
}

/// Why a page cannot be applied at all (empty: it can). Checked before anything is written.
std::string refuse_reason(const protocol::catalog_page& page, const std::string& source) {
    if (!protocol::valid_catalog_scope(page.scope))
        return "invalid catalog scope '" + page.scope.substr(0, 64) + "'";
    if (source.empty())
        return "catalog page without a source";
    if (page.through < 0 || page.head < 0)
        return "catalog page with a negative through or head";
    if (page.reset && page.continues_snapshot)
        return "catalog page both starts (reset) and continues a snapshot";
    if (page.resume.size() > max_resume_bytes)
        return "catalog resume token longer than 4096 bytes";
    const bool catch_up = !page.reset && !page.continues_snapshot;
    for (const auto& c : page.changes) {
        if (!c.scope.empty() && c.scope != page.scope)
            return "change of scope '" + c.scope + "' in a page of '" + page.scope + "'";
        if (!protocol::valid_catalog_key(c.key))
            return "invalid catalog key in scope '" + page.scope + "'";
        if (c.version <= 0)
            return "catalog change with version " + std::to_string(c.version) + " (must be > 0)";
        if (!c.deleted && (c.data.empty() || c.data == "null"))
            return "catalog upsert of '" + c.key + "' without data";
        if (catch_up && c.version > page.through)
            return "catalog change version " + std::to_string(c.version) +
                   " above the page's through " + std::to_string(page.through);
    }
    return {};
}

} // namespace

struct sqlite_store::catalog_row {
    bool exists = false;
    protocol::catalog_scope_state st;
    std::int64_t gen = 0; ///< snapshot generation (the running or last snapshot)
};

sqlite_store::catalog_row sqlite_store::read_catalog_scope(write_transaction&,
                                                           const std::string& scope) {
    catalog_row row;
    row.st.scope = scope;
    use u(w_->catalog_scope_row);
    u.bind(1, scope);
    if (!u.step())
        return row;
    row.exists = true;
    row.st.through = u.int64(1);
    row.st.horizon = u.int64(2);
    row.st.head = u.int64(3);
    row.st.snapshot_active = u.int64(4) != 0;
    row.st.keys = static_cast<std::uint64_t>(std::max<std::int64_t>(0, u.int64(5)));
    row.st.applied_at_ms = u.int64(6);
    row.st.resume = u.text(7);
    row.st.source = u.text(8);
    row.gen = u.int64(9);
    return row;
}

catalog_outcome sqlite_store::do_apply_catalog(write_transaction& tx,
                                               const protocol::catalog_page& page,
                                               const std::string& source, commit_info& info) {
    catalog_outcome out;
    if (auto why = refuse_reason(page, source); !why.empty()) {
        out.error = std::move(why);
        return out;
    }
    auto row = read_catalog_scope(tx, page.scope);
    auto& st = row.st;
    if (page.continues_snapshot && !(st.snapshot_active && st.source == source)) {
        out.error = "no snapshot of scope '" + page.scope + "' from " + source +
                    " under way: start again with a reset page";
        out.scope = st;
        return out;
    }
    const auto now = protocol::now_ms();
    const std::int64_t old_through = st.through;
    if (!row.exists) {
        use u(w_->catalog_ensure_scope);
        u.bind(1, page.scope).run();
    }
    if (page.reset) {
        ++row.gen; // every key this snapshot carries is marked with the new generation
        st.snapshot_active = true;
    }
    const bool snapshot_page = page.reset || page.continues_snapshot;
    const std::int64_t mark = snapshot_page ? row.gen : 0;
    for (const auto& c : page.changes) {
        const std::string& data = c.deleted ? std::string("null") : c.data;
        {
            use u(w_->catalog_upsert);
            u.bind(1, page.scope).bind(2, c.key).bind(3, c.version).bind(4, c.deleted ? 1 : 0);
            u.bind(5, data).bind(6, c.changed_at_ms).bind(7, now).bind(8, mark).run();
            if (u.changes() > 0) {
                ++out.applied;
                continue;
            }
        }
        ++out.skipped; // held at the same or a newer version
        if (snapshot_page) {
            use m(w_->catalog_mark);
            m.bind(1, page.scope).bind(2, c.key).bind(3, row.gen).run();
        }
    }
    if (snapshot_page && page.done) {
        // The snapshot's end: what it did not carry was deleted where it came from.
        use u(w_->catalog_tombstone_unseen);
        u.bind(1, page.scope).bind(2, row.gen).bind(3, page.through).bind(4, now).run();
        out.tombstoned = static_cast<std::size_t>(u.changes());
        st.snapshot_active = false;
        st.through = std::max(st.through, page.through);
        // Deletes before the snapshot were never held here: a peer below it needs a snapshot.
        st.horizon = std::max(st.horizon, page.through);
        st.resume.clear();
    } else if (snapshot_page) {
        st.resume = page.resume;
    } else if (!st.snapshot_active) {
        st.through = std::max(st.through, page.through);
    }
    if (snapshot_page || !st.snapshot_active)
        st.source = source; // a snapshot under way keeps its source
    st.head = std::max({st.head, page.head, st.through});
    st.applied_at_ms = now;
    {
        use u(w_->catalog_set_scope);
        u.bind(1, page.scope).bind(2, st.through).bind(3, st.horizon).bind(4, st.head);
        u.bind(5, st.snapshot_active ? 1 : 0).bind(6, row.gen).bind(7, st.resume);
        u.bind(8, st.applied_at_ms).bind(9, st.source).run();
    }
    info.catalog_changed = out.applied > 0 || out.tombstoned > 0 || st.through != old_through;
    out.scope = read_catalog_scope(tx, page.scope).st; // keys: kept by the triggers
    out.ok = true;
    return out;
}

count_outcome sqlite_store::do_purge_catalog(write_transaction&, std::int64_t older_than_ms) {
    count_outcome out;
    auto& db = *write_db_;
    statement old(db, sql::catalog_old_tombstones);
    statement raise(db, sql::catalog_raise_horizon);
    statement purge(db, sql::catalog_purge);
    {
        use u(old);
        u.bind(1, older_than_ms);
        while (u.step()) {
            const std::string scope = u.text(0);
            use r(raise);
            r.bind(1, scope).bind(2, u.int64(1)).run();
        }
    }
    use d(purge);
    d.bind(1, older_than_ms).run();
    out.count = static_cast<std::size_t>(d.changes());
    out.ok = true;
    if (out.count > 0)
        log::info("outbox.catalog_purged", {{"tombstones", std::to_string(out.count)}});
    return out;
}

// ---- reads ----------------------------------------------------------------------------------

std::vector<protocol::catalog_scope_state> sqlite_store::catalog_scopes() {
    std::vector<protocol::catalog_scope_state> out;
    std::lock_guard lk(read_mutex_);
    use u(r_->catalog_all_scopes);
    while (u.step()) {
        protocol::catalog_scope_state st;
        st.scope = u.text(0);
        st.through = u.int64(1);
        st.horizon = u.int64(2);
        st.head = u.int64(3);
        st.snapshot_active = u.int64(4) != 0;
        st.keys = static_cast<std::uint64_t>(std::max<std::int64_t>(0, u.int64(5)));
        st.applied_at_ms = u.int64(6);
        st.resume = u.text(7);
        st.source = u.text(8);
        out.push_back(std::move(st));
    }
    return out;
}

std::optional<protocol::catalog_change> sqlite_store::catalog_get(std::string_view scope,
                                                                  std::string_view key) {
    std::lock_guard lk(read_mutex_);
    use u(r_->catalog_get);
    u.bind(1, scope).bind(2, key);
    if (!u.step())
        return std::nullopt;
    return read_change(u);
}

std::vector<protocol::catalog_change>
sqlite_store::catalog_since(std::string_view scope, std::int64_t since, std::size_t limit) {
    std::vector<protocol::catalog_change> out;
    std::lock_guard lk(read_mutex_);
    use u(r_->catalog_since);
    u.bind(1, scope).bind(2, since).bind(3, static_cast<std::int64_t>(limit));
    while (u.step())
        out.push_back(read_change(u));
    return out;
}

std::vector<protocol::catalog_change> sqlite_store::catalog_keys_after(std::string_view scope,
                                                                       std::string_view after_key,
                                                                       std::size_t limit) {
    std::vector<protocol::catalog_change> out;
    std::lock_guard lk(read_mutex_);
    use u(r_->catalog_keys_after);
    u.bind(1, scope).bind(2, after_key).bind(3, static_cast<std::int64_t>(limit));
    while (u.step())
        out.push_back(read_change(u));
    return out;
}

} // namespace lanesync::outbox::detail
