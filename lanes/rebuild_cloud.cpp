// The cloud check of the rebuild controller (lanes/rebuild.hpp, docs/architecture.md "Rebuild"):
// a lane without PEER_TERMINALS whose outbox has no own message cannot tell a new lane from a
// wiped one, so before it hands out seq 1 it asks the cloud for the highest seq it holds of
// this lane and raises its own hwm to it. Until the cloud told (or an operator ran `lanesync
// rebuild --without cloud`), no seq is handed out: POSTs wait for the start check's time, then
// are answered 503.
#include "base/backoff.hpp"
#include "base/log.hpp"
#include "base/tuning.hpp"
#include "lanes/rebuild.hpp"

namespace lanesync::lanes {

void rebuild_controller::set_cloud(cloud_ask_fn ask) {
    std::lock_guard lock(mutex_);
    cloud_ask_ = std::move(ask);
}

void rebuild_controller::ask_cloud() {
    cloud_ask_fn ask;
    {
        std::lock_guard lock(mutex_);
        if (!cloud_wait_ || cloud_asking_ || !cloud_ask_)
            return;
        cloud_asking_ = true;
        cloud_retry_ = false;
        ask = cloud_ask_;
    }
    ask([this](std::string error, std::uint64_t seq) { cloud_answered(error, seq); });
}

void rebuild_controller::cloud_answered(const std::string& error, std::uint64_t seq) {
    effects_due due;
    bool raise = false;
    std::uint32_t attempts = 0;
    {
        std::lock_guard lock(mutex_);
        if (!cloud_wait_) { // the operator decided meanwhile: the answer is not used
            cloud_asking_ = false;
            return;
        }
        if (!error.empty()) {
            cloud_asking_ = false;
            cloud_error_ = error;
            attempts = ++cloud_attempts_;
            cloud_retry_ = true;
            cloud_scheduled_ = false;
        } else if (seq == 0) {
            cloud_asking_ = false;
            cloud_check_done_locked(due);
        } else {
            raise = true; // stays asking until the floor is committed
        }
    }
    if (!error.empty())
        log::warn("lane.cloud_check_failed",
                  {{"error", error}, {"attempts", std::to_string(attempts)}});
    else if (!raise)
        log::info("lane.cloud_check_done", {{"highest_seq", "0"}, {"reason", "a new lane"}});
    if (raise && !fx_.raise_floor) { // cannot follow the cloud's seqs: hand out none
        log::error("lane.cloud_floor_failed", {{"error", "no outbox to raise the own seq in"}});
        return;
    }
    if (raise) {
        // The outbox has no own row: the floor only raises the own hwm, it marks nothing.
        log::warn("lane.cloud_floor",
                  {{"highest_seq", std::to_string(seq)},
                   {"reason", "the cloud holds seqs of this lane that its outbox does not: the "
                              "next seq follows them"}});
        fx_.raise_floor(seq,
                        [this](std::string e, std::uint64_t hwm) { cloud_floor_raised(e, hwm); });
    }
    carry_out(std::move(due));
}

void rebuild_controller::cloud_floor_raised(const std::string& error, std::uint64_t hwm) {
    effects_due due;
    {
        std::lock_guard lock(mutex_);
        cloud_asking_ = false;
        if (!cloud_wait_)
            return;
        if (error.empty()) {
            cloud_check_done_locked(due);
        } else {
            cloud_error_ = "could not raise the own seq to the cloud's: " + error;
            ++cloud_attempts_;
            cloud_retry_ = true; // asked again, then raised again
            cloud_scheduled_ = false;
        }
    }
    if (error.empty())
        log::info("lane.cloud_check_done", {{"own_hwm", std::to_string(hwm)}});
    else
        log::error("lane.cloud_floor_failed", {{"error", error}});
    carry_out(std::move(due));
}

void rebuild_controller::cloud_check_done_locked(effects_due& due) {
    cloud_wait_ = false;
    cloud_retry_ = false;
    cloud_error_.clear();
    evaluate_locked(due); // releases the held POSTs
}

bool rebuild_controller::cloud_tick_locked(std::int64_t now_ms) {
    if (!cloud_wait_ || cloud_asking_ || !cloud_retry_)
        return false;
    if (!cloud_scheduled_) {
        cloud_scheduled_ = true;
        auto wait = backoff::full_jitter(
            std::chrono::duration_cast<std::chrono::milliseconds>(tuning::cloud_seq_retry_base),
            std::chrono::duration_cast<std::chrono::milliseconds>(tuning::cloud_seq_retry_max),
            cloud_attempts_ > 0 ? cloud_attempts_ - 1 : 0);
        cloud_next_ms_ = now_ms + wait.count();
        return false;
    }
    return now_ms >= cloud_next_ms_;
}

exclude_result rebuild_controller::skip_cloud_check(std::size_t items) {
    effects_due due;
    {
        std::lock_guard lock(mutex_);
        // "cloud" never names a peer (it is a valid terminal id): only the cloud check.
        if (!cloud_wait_)
            return {active_ ? 400u : 409u,
                    active_ ? "this lane rebuilds from its peers and does not wait for the cloud: "
                              "leave out peers, not \"cloud\""
                            : "not rebuilding"};
        if (items != 1)
            return {400, "leave out \"cloud\" alone: this lane has no peers to wait for"};
        cloud_check_done_locked(due);
    }
    log::warn("lane.cloud_check_skipped",
              {{"reason", "the operator left the cloud out: own seqs start after the outbox's"}});
    carry_out(std::move(due));
    return {200, {}};
}

void rebuild_controller::cloud_view_locked(rebuild_view& v) const {
    v.active = !checking_; // within the start check's time POSTs wait and /healthz stays 200
    v.reason = "the outbox has no own message and no peer is configured: waiting for the "
               "cloud's highest seq of " +
               self_;
    v.since_ms = since_ms_;
    v.waiting_for = {"cloud"};
    v.progress = "waiting for the cloud's highest seq of " + self_;
    if (!cloud_error_.empty())
        v.progress += " (last try: " + cloud_error_ +
                      "; `lanesync rebuild --without cloud` starts "
                      "at seq 1)";
}

} // namespace lanesync::lanes
