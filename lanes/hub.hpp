#pragma once
/// Private to lanes/: the registry every peer session reports to, and the interface sessions
/// expose to it. No Beast here so that hub.cpp and the tests compile quickly.

#include "base/metrics.hpp"
#include "conf/config.hpp"
#include "lanes/cover.hpp"
#include "lanes/gossip.hpp"
#include "lanes/rebuild.hpp"
#include "outbox/async.hpp"
#include "outbox/outbox.hpp"
#include "protocol/catalog_sync.hpp"
#include "protocol/frames.hpp"

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace lanesync::lanes {

/// What the hub needs from a session (the Beast session template implements it).
/// Thread-safe: every method posts to the session's strand.
class session_handle {
public:
    virtual ~session_handle() = default;
    /// Wake the sender: new data may be available.
    virtual void wake() = 0;
    /// Become (or stop being) the one session that sends to this peer.
    virtual void set_sender(bool on) = 0;
    /// Close with a WebSocket close code (protocol/close_code.hpp) and reason.
    virtual void close(std::uint16_t code, std::string reason) = 0;
    /// Send a news frame now (hub::cover()'s news; nothing before the data phase or in v1).
    virtual void send_news() = 0;
    /// v3: our catalog changed: send our catalog_have and plan our pages again (nothing in
    /// v1/v2).
    virtual void send_catalog_have() = 0;
};

/// Per-session counters shown in status.
struct session_stats {
    std::uint64_t batches_sent = 0, batches_received = 0;
};

/// The registry of live sessions and per-peer status. Thread-safe (mutex; it is not a
/// session, and its critical sections are a few map operations).
class hub : public std::enable_shared_from_this<hub> {
public:
    /// `ex`: where outbox completions without an executor of their own run (the io_context).
    hub(boost::asio::any_io_executor ex, outbox::store& store, const conf::config& cfg);

    /// The outbox for sessions: reads on the outbox's reader thread, writes group-committed on
    /// its writer thread, completions on the caller's strand (never an SQLite call on the io
    /// thread).
    outbox::async_store& outbox() { return async_; }
    const conf::config& cfg() const { return cfg_; }
    /// The lane's rebuild and start check (sessions are created in its mode()).
    rebuild_controller& rebuild() { return rebuild_; }
    /// Liveness, takeover and cloud_through spread (news frames).
    cover_state& cover() { return cover_; }

    /// An authenticated session asks to join. Returns an empty string when accepted, else the
    /// reason to refuse it with (close_code::policy_violation). A session accepted as the only one
    /// for its peer becomes the sender (set_sender is called).
    std::string join(const std::shared_ptr<session_handle>& s, const std::string& peer_id,
                     bool outbound, const std::string& url);
    /// The session ended. If it was the sender, another live session to that peer takes over.
    void leave(const session_handle* s, const std::string& why);

    /// A peer confirmed holding own messages through `acked_through`.
    void on_peer_ack(const std::string& peer_id, std::uint64_t acked_through);
    void add_batch_stats(const std::string& peer_id, bool sent);

    /// How the last attempt of an outgoing link ended, for status and /metrics.
    struct link_ending {
        std::string last_error;
        std::optional<std::int64_t> next_attempt_at_ms;
        bool permanent = false; ///< protocol::classify_ending said permanent
        std::string failure;    ///< its name, e.g. "wrong PEER_SECRET"
        std::string claimed_id; ///< the peer's id as it claimed it (to match inbound sessions)
    };
    /// Outgoing link bookkeeping for status.
    void link_state(const std::string& url, link_ending e);

    /// The outgoing link for `url` wants to hear when an inbound session from its peer works
    /// (it then stops waiting). `wake` must be thread-safe. Set before start.
    void watch_link(const std::string& url, std::function<void()> wake);
    /// An inbound session from `peer_id` passed the ready checks: wake the links to it.
    void peer_reachable(const std::string& peer_id);

    /// Wake every sender.
    void wake_all();
    /// Every session sends a news frame now.
    void news_all();
    /// Every session sends its catalog_have now (docs/protocol.md "Catalog").
    void catalog_have_all();
    /// A session applied a peer's catalog page: the callback (gossip's debounce, then
    /// catalog_have_all) runs. Set it before start; thread-safe.
    void catalog_changed();
    void on_catalog_changed(std::function<void()> f) { catalog_changed_ = std::move(f); }
    /// Who a scope's snapshot under way comes from, seen from session `me`: the cloud (the
    /// state's source), `me`, another live session, or nobody alive (orphan: any peer may
    /// restart it). protocol::snapshot_owner::none when no snapshot is under way.
    protocol::snapshot_owner catalog_owner(const protocol::catalog_scope_state& st,
                                           const session_handle* me) const;
    /// Session `me` applies a snapshot of `scope` (its reset page), until release or its end.
    void claim_catalog_snapshot(const std::string& scope, const session_handle* me);
    void release_catalog_snapshot(const std::string& scope, const session_handle* me);
    /// The peers with an authenticated session now (sorted, unique).
    std::vector<std::string> connected_peers() const;
    /// The peer's incarnation from its ready (for status).
    void note_incarnation(const std::string& peer_id, const std::string& inc);
    /// Close every session (shutdown). Returns how many were asked to close.
    std::size_t close_all(std::uint16_t code, const std::string& reason);
    std::size_t session_count() const;

    std::vector<peer_status> status() const;

private:
    rebuild_effects rebuild_effects_();
    /// The sessions alive now (only those carrying this lane's batches: `senders_only`),
    /// taken under the lock; called without it.
    std::vector<std::shared_ptr<session_handle>> live_sessions(bool senders_only) const;

    struct entry {
        std::weak_ptr<session_handle> handle;
        const session_handle* raw = nullptr;
        std::string peer_id;
        bool outbound = false;
        bool sender = false;
        std::string url;
    };
    struct peer_info {
        std::uint64_t acked_through = 0;
        std::optional<std::int64_t> last_ack_at_ms;
        std::uint64_t batches_sent = 0, batches_received = 0;
        std::string last_error;
        std::string incarnation;
    };
    struct link_info {
        std::string peer_id;    ///< last authenticated id behind this URL
        std::string claimed_id; ///< last id it claimed, authenticated or not
        std::string last_error;
        std::optional<std::int64_t> next_attempt_at_ms;
        bool permanent = false;
        std::string failure;
        std::function<void()> wake;
        metrics::gauge* permanent_gauge = nullptr;
    };

    outbox::store& store_;
    outbox::async_store async_;
    const conf::config& cfg_;
    mutable std::mutex mutex_;
    std::vector<entry> sessions_;
    std::map<std::string, peer_info> peers_;
    std::map<std::string, link_info> links_;
    rebuild_controller rebuild_;
    cover_state cover_;
    std::map<std::string, const session_handle*> catalog_owners_; ///< scope -> session
    std::function<void()> catalog_changed_;
};

} // namespace lanesync::lanes
