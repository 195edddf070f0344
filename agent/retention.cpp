#include "agent/retention.hpp"

#include "base/log.hpp"
#include "base/metrics.hpp"
#include "outbox/async.hpp"
#include "protocol/message.hpp"

#include <algorithm>
#include <string>

namespace lanesync::agent {

std::chrono::milliseconds prune_every(std::chrono::milliseconds retention) {
    using namespace std::chrono;
    return std::clamp<milliseconds>(retention / 10, seconds(1), hours(1));
}

retention::retention(boost::asio::io_context& ioc, outbox::async_store& outbox,
                     const conf::config& cfg, std::size_t batch_rows)
    : outbox_(outbox), cfg_(cfg), batch_rows_(std::max<std::size_t>(1, batch_rows)), timer_(ioc),
      pruned_(metrics::global().get_counter(
          "lanesync_outbox_pruned_total",
          "Messages deleted by retention (cloud_ack past OUTBOX_RETENTION_DAYS)")) {}

void retention::start(std::chrono::milliseconds first) {
    schedule(first);
}

void retention::stop() {
    stopped_ = true;
    timer_.cancel();
}

void retention::reschedule(std::chrono::milliseconds first) {
    if (waiting_)
        schedule(first); // cancels the wait under way (its handler sees operation_aborted)
}

void retention::schedule(std::chrono::milliseconds in) {
    if (stopped_)
        return;
    waiting_ = true;
    timer_.expires_after(in);
    timer_.async_wait([this](boost::system::error_code ec) {
        if (ec || stopped_)
            return;
        waiting_ = false;
        step(protocol::now_ms() - cfg_.retention.count(), 0, 0, std::chrono::steady_clock::now());
    });
}

void retention::step(std::int64_t cutoff_ms, std::size_t deleted, std::size_t batches,
                     std::chrono::steady_clock::time_point began) {
    outbox_.prune(cutoff_ms, batch_rows_, [=, this](outbox::count_outcome o) {
        pruned_.inc(o.count); // deleted, also by a step that completes after stop()
        if (stopped_)
            return;
        if (!o.ok) {
            log::warn("outbox.prune_failed",
                      {{"error", o.error}, {"pruned", std::to_string(deleted)}});
            purge_catalog();
            schedule(prune_every(cfg_.retention));
            return;
        }
        if (o.count == batch_rows_) { // maybe more: the next batch queues behind what came in
            step(cutoff_ms, deleted + o.count, batches + 1, began);
            return;
        }
        const std::size_t total = deleted + o.count;
        if (total > 0) {
            const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                std::chrono::steady_clock::now() - began)
                                .count();
            log::info("outbox.pruned", {{"count", std::to_string(total)},
                                        {"transactions", std::to_string(batches + 1)},
                                        {"ms", std::to_string(ms)},
                                        {"retention_days", conf::days_text(cfg_.retention)}});
        }
        purge_catalog();
        schedule(prune_every(cfg_.retention));
    });
}

void retention::purge_catalog() {
    // Catalog tombstones past CATALOG_TOMBSTONE_DAYS (each purge raises the scope's horizon).
    const auto tomb = protocol::now_ms() -
                      static_cast<std::int64_t>(cfg_.catalog_tombstone_days) * 24 * 3600 * 1000;
    outbox_.purge_catalog(tomb, [](outbox::count_outcome o) {
        if (!o.ok)
            log::warn("outbox.catalog_purge_failed", {{"error", o.error}});
    });
}

} // namespace lanesync::agent
