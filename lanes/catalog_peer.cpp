#include "lanes/catalog_peer.hpp"

#include "base/log.hpp"
#include "base/metrics.hpp"

namespace lanesync::lanes::detail {
namespace {

struct catalog_metrics {
    metrics::counter& pages_sent =
        metrics::global().get_counter("lanesync_catalog_peer_pages_total",
                                      "Catalog pages exchanged with peers", "direction=\"sent\"");
    metrics::counter& pages_received = metrics::global().get_counter(
        "lanesync_catalog_peer_pages_total", "Catalog pages exchanged with peers",
        "direction=\"received\"");
    metrics::counter& changes_sent =
        metrics::global().get_counter("lanesync_catalog_peer_changes_total",
                                      "Catalog changes exchanged with peers", "direction=\"sent\"");
    metrics::counter& changes_received = metrics::global().get_counter(
        "lanesync_catalog_peer_changes_total", "Catalog changes exchanged with peers",
        "direction=\"received\"");
    metrics::counter& changes_applied = metrics::global().get_counter(
        "lanesync_catalog_peer_changes_applied_total",
        "Catalog changes from peers that were newer than the lane's and written");
    metrics::counter& pages_ignored = metrics::global().get_counter(
        "lanesync_catalog_peer_pages_ignored_total",
        "Catalog pages from peers not applied (mid-snapshot, stale, not continuing)");
};

catalog_metrics& cm() {
    static catalog_metrics m;
    return m;
}

const char* kind(const protocol::catalog_page& p) {
    return p.reset ? "reset" : p.continues_snapshot ? "snapshot" : "changes";
}

} // namespace

std::vector<protocol::served_page> serve_catalog_job(outbox::store& s,
                                                     const protocol::catalog_job& job) {
    protocol::catalog_reader read{
        [&s](const std::string& scope, std::int64_t since, std::size_t limit) {
            return s.catalog_since(scope, since, limit);
        },
        [&s](const std::string& scope, const std::string& after, std::size_t limit) {
            return s.catalog_keys_after(scope, after, limit);
        }};
    protocol::catalog_sync_limits lim{tuning::peer_catalog_page_changes,
                                      tuning::peer_catalog_page_bytes};
    try {
        return protocol::serve_job(job, s.catalog_scopes(), read, lim);
    } catch (const std::exception& e) {
        log::error("peer.catalog_read_failed", {{"error", e.what()}});
        throw;
    }
}

void note_catalog_sent(const std::string& peer, const std::vector<protocol::catalog_frame>& f) {
    for (const auto& x : f) {
        cm().pages_sent.inc();
        cm().changes_sent.inc(x.page.changes.size());
        log::debug("peer.catalog_sent", {{"peer", peer},
                                         {"scope", x.page.scope},
                                         {"kind", kind(x.page)},
                                         {"n", std::to_string(x.n)},
                                         {"since", std::to_string(x.since)},
                                         {"through", std::to_string(x.page.through)},
                                         {"changes", std::to_string(x.page.changes.size())}});
    }
}

void note_catalog_ignored(const std::string& peer, const protocol::catalog_frame& f,
                          const std::string& why) {
    cm().pages_received.inc();
    cm().changes_received.inc(f.page.changes.size());
    cm().pages_ignored.inc();
    log::info("peer.catalog_ignored", {{"peer", peer},
                                       {"scope", f.page.scope},
                                       {"kind", kind(f.page)},
                                       {"through", std::to_string(f.page.through)},
                                       {"reason", why}});
}

void note_catalog_applied(const std::string& peer, const protocol::catalog_frame& f,
                          const outbox::catalog_outcome& o) {
    cm().pages_received.inc();
    cm().changes_received.inc(o.applied + o.skipped);
    cm().changes_applied.inc(o.applied);
    log::info("peer.catalog_applied", {{"peer", peer},
                                       {"scope", f.page.scope},
                                       {"kind", kind(f.page)},
                                       {"applied", std::to_string(o.applied)},
                                       {"skipped", std::to_string(o.skipped)},
                                       {"tombstoned", std::to_string(o.tombstoned)},
                                       {"through", std::to_string(o.scope.through)},
                                       {"done", f.page.done ? "true" : "false"}});
}

void note_catalog_failed(const std::string& peer, const protocol::catalog_frame& f,
                         const std::string& error) {
    log::error("peer.catalog_failed",
               {{"peer", peer}, {"scope", f.page.scope}, {"kind", kind(f.page)}, {"error", error}});
}

void register_catalog_metrics() {
    cm();
}

} // namespace lanesync::lanes::detail
