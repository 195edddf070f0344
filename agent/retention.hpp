#pragma once
/// The outbox's retention on a running lane (OUTBOX_RETENTION_DAYS, CATALOG_TOMBSTONE_DAYS;
/// docs/outbox.md "Retention"): which messages go is the outbox's rule (outbox::store::prune);
/// when and in what steps is decided here.

#include "base/metrics.hpp"
#include "conf/config.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace lanesync::outbox {
class async_store;
}

namespace lanesync::agent {

/// How often a lane prunes: a tenth of the retention, at least every second, at most hourly.
std::chrono::milliseconds prune_every(std::chrono::milliseconds retention);

/// Runs retention cycles on the io thread. A cycle deletes what is past the retention in
/// transactions of at most `batch_rows` rows, one after the other, each submitted behind the
/// writes already queued (so publishes commit between two of them and a million-row prune
/// never holds ingest for more than one short transaction), then purges catalog tombstones.
/// One log line per cycle that deleted something; lanesync_outbox_pruned_total counts rows.
class retention {
public:
    retention(boost::asio::io_context& ioc, outbox::async_store& outbox, const conf::config& cfg,
              std::size_t batch_rows);

    /// The first cycle after `first`, then one every prune_every(cfg.retention) after the
    /// end of the previous one.
    void start(std::chrono::milliseconds first);
    void stop();
    /// OUTBOX_RETENTION_DAYS or CATALOG_TOMBSTONE_DAYS changed (a live reload): a wait under way
    /// is cut to `first` from now; a cycle under way finishes with the new values' schedule.
    void reschedule(std::chrono::milliseconds first);

private:
    void schedule(std::chrono::milliseconds in);
    void step(std::int64_t cutoff_ms, std::size_t deleted, std::size_t batches,
              std::chrono::steady_clock::time_point began);
    void purge_catalog();

    outbox::async_store& outbox_;
    const conf::config& cfg_;
    std::size_t batch_rows_;
    boost::asio::steady_timer timer_;
    metrics::counter& pruned_; ///< lanesync_outbox_pruned_total
    bool stopped_ = false;
    bool waiting_ = false; ///< the timer is armed (no cycle under way)
};

} // namespace lanesync::agent
