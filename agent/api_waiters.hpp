#pragma once
/// Private to the local API: the registry of waits for acks (`?wait=peer_ack|cloud_ack`,
/// docs/api.md "Waiting for acks"), keyed by message id.
///
/// Nothing polls: the outbox's commit listener calls wake() after a commit that may have moved
/// a message to peer_ack, cloud_ack or failed; the registry then reads the states of every waited
/// id in one job on the outbox reader thread (one read per wake, however many ids; wakes that
/// arrive while it runs fold into one more read) and completes each wait whose messages all
/// reached the state, or one of which failed. A new wait is read once when it is added (its
/// message may have moved between its commit and the add).
///
/// Places: every waited message takes one place (a batch one per message), at most `cap` in
/// all; reserve() them before storing anything, so that a refusal (503) stores nothing.
///
/// Thread-safe: every member may be called from any thread. The registry's state lives on its
/// own strand (members post to it); the count of places is atomic.

#include "base/metrics.hpp"
#include "outbox/async.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace lanesync::agent {

class ack_waiters : public std::enable_shared_from_this<ack_waiters> {
public:
    using states = std::vector<std::optional<outbox::state>>;
    /// Called on the registry's strand with each waited message's state, in the order of the
    /// ids given to add(): post it to where it belongs.
    using done_fn = std::function<void(states)>;

    /// `cap`: most places at once. `outbox` outlives the registry.
    ack_waiters(boost::asio::io_context& ioc, outbox::async_store& outbox, std::size_t cap);

    /// Takes `n` places; false (nothing taken) when that would pass the cap.
    bool reserve(std::size_t n);
    /// Gives back `n` places reserved for a wait that was not added (it ended before waiting).
    void release(std::size_t n);
    /// Places taken now.
    std::size_t in_use() const { return used_.load(); }

    /// Waits for every one of `ids` (their places reserved) to reach `target` or a later state;
    /// `done` runs once when they did or one is failed, unless cancel() came first. The places
    /// are given back when the wait ends. Returns the ticket for cancel().
    std::uint64_t add(std::vector<std::string> ids, outbox::state target, done_fn done);

    /// Ends a wait early (its timeout passed, its client left, the API stops): `done` will not
    /// run, the places are given back. A ticket that already ended is ignored.
    void cancel(std::uint64_t ticket);

    /// After a commit (the outbox's commit listener, on the writer thread): re-reads the waited
    /// states when `ci` says messages may have moved. Cheap when nobody waits.
    void wake(const outbox::commit_info& ci);

private:
    struct wait {
        std::vector<std::string> ids;
        outbox::state target = outbox::state::peer_ack;
        done_fn done;
    };

    // On the strand.
    void on_add(std::uint64_t ticket, wait w);
    void remove(std::uint64_t ticket);
    void request_read();
    void on_read(const std::vector<std::string>& ids, const states& sts);
    void give_back(std::size_t n);

    using strand = boost::asio::strand<boost::asio::io_context::executor_type>;
    strand strand_;
    outbox::async_store& outbox_;
    const std::size_t cap_;
    std::atomic<std::size_t> used_{0};
    std::atomic<std::uint64_t> next_ticket_{1};
    metrics::gauge& waiting_gauge_; ///< messages registered (added, not yet ended)
    metrics::counter& reads_;       ///< state reads: one per wake with waits registered

    // Strand only.
    std::unordered_map<std::uint64_t, wait> waits_;
    std::unordered_map<std::string, std::vector<std::uint64_t>> by_id_;
    std::size_t waiting_ = 0; ///< messages of the registered waits
    bool reading_ = false;    ///< a read job is out
    bool dirty_ = false;      ///< something changed since that read started: read again
};

} // namespace lanesync::agent
