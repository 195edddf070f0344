#pragma once
/// Peer replication (SPEC section 7, docs/protocol.md): the WebSocket listener on
/// TERMINAL_PORT, one supervised outgoing link per PEER_TERMINALS URL, and the gossip rules
/// that move messages between lanes until every lane holds every message.
///
/// Heavy Boost.Beast headers stay in lanes/*.cpp; this header only forward-declares Asio.

#include "conf/config.hpp"
#include "outbox/outbox.hpp"

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace boost::asio {
class io_context;
}

namespace lanesync::lanes {

/// One row of /v1/status "peers": a configured URL, or an inbound peer not in the config.
struct peer_status {
    std::string url;                     ///< configured URL; empty for an inbound-only peer
    std::string terminal_id;             ///< authenticated id; empty until first authenticated
    bool connected = false;              ///< an authenticated session is up (either direction)
    bool outbound = false;               ///< the session sending to this peer is one we dialed
    std::uint64_t acked_through_seq = 0; ///< own seq this peer confirmed holding
    std::optional<std::int64_t> last_ack_at_ms;
    std::uint64_t lag = 0;                          ///< own last seq - acked_through_seq
    std::string last_error;                         ///< why the last attempt/session ended
    std::optional<std::int64_t> next_attempt_at_ms; ///< outgoing link: reconnect time
    /// Outgoing link: its last ending was permanent (protocol/ending.hpp: wrong PEER_SECRET,
    /// other store, no protocol version in common, outbox lost), so it waits the long backoff.
    bool permanent_failure = false;
    std::string failure; ///< the permanent ending's name, e.g. "wrong PEER_SECRET"
    std::uint64_t batches_sent = 0, batches_received = 0;
    std::string incarnation; ///< the peer's incarnation from its last ready (v2), or empty
};

/// The lane's rebuild as /v1/status, /healthz and the publish 503 show it (docs/api.md).
struct rebuild_view {
    bool active = false;      ///< rebuilding: POST /v1/messages answers 503
    bool start_check = false; ///< the start check runs: POST /v1/messages waits
    std::string reason;       ///< why the rebuild started (without the "rebuilding: " prefix)
    std::int64_t since_ms = 0;
    std::uint64_t restored = 0;           ///< own messages restored so far
    std::uint64_t target = 0;             ///< the highest own seq a peer reported holding
    std::string from;                     ///< the peer of that report
    std::vector<std::string> waiting_for; ///< links that have not reported (terminal or URL)
    std::vector<std::string> excluded;    ///< peers left out (POST /v1/rebuild)
    std::vector<std::string> conflicts;   ///< incarnation mismatches seen
    std::string progress;                 ///< "rebuilding from L2: 3,200 of 10,000 (...)"
    std::string incarnation;              ///< this lane's incarnation (meta)
    /// Peers excluded from an earlier rebuild: their marks of our origin are never trusted
    /// above this own seq (terminal -> cap).
    std::map<std::string, std::uint64_t> trust_caps;
};

/// One row of /v1/status "origins": what the outbox holds of an origin and who uploads it.
struct origin_view {
    std::string origin;
    bool own = false;
    std::uint64_t hwm = 0, held = 0, cloud_through = 0;
    std::string covered_by; ///< the lane uploading it on its behalf now; empty: nobody
    std::optional<std::int64_t> last_seen_ms; ///< last authenticated session (ours or a peer's)
};

/// The answer to POST /v1/rebuild {"without": [...]}.
struct exclude_result {
    unsigned status = 200; ///< 200, 409 (not rebuilding), 400 (unknown peer)
    std::string error;
};

class gossip {
public:
    /// `store` must outlive the gossip. Does not start anything.
    gossip(boost::asio::io_context& ioc, outbox::store& store, const conf::config& cfg);
    ~gossip();
    gossip(const gossip&) = delete;
    gossip& operator=(const gossip&) = delete;

    /// Binds the listener (throws std::system_error naming the address when it cannot bind:
    /// a daemon fails loudly) and starts the outgoing links. Call before running the io_context.
    void start();
    /// Closes the listener and every session with a close frame; `done` runs once all are gone
    /// (or after tuning::shutdown_grace). Thread-safe.
    void stop(std::function<void()> done);

    /// New data was committed (own or replicas): wake the senders. Thread-safe.
    void notify();
    /// A commit changed the catalog (outbox commit_info::catalog_changed, e.g. the cloud
    /// puller applied a page): every v3 session sends its catalog_have after
    /// tuning::peer_catalog_have_debounce (several changes make one). Thread-safe.
    void notify_catalog();

    /// The port the listener is bound to (useful with TERMINAL_PORT=0 in tests).
    std::uint16_t port() const;
    /// Thread-safe snapshot.
    std::vector<peer_status> status() const;

    // ---- rebuild (docs/architecture.md "Rebuild"), thread-safe -------------------------------

    /// POST /v1/messages asks whether it may publish: `done(nullopt)` yes, `done(view)` no, the
    /// lane rebuilds (answer the 503). During the start check `done` is held until it ends.
    /// `done` may run on any thread (post it to where it belongs).
    void admit(std::function<void(std::optional<rebuild_view>)> done);
    rebuild_view rebuild() const;
    /// Leaves these peers (terminal ids or PEER_TERMINALS URLs) out of the rebuild; ["cloud"]
    /// ends the cloud check (the lane starts at the seq after its outbox's).
    exclude_result rebuild_without(const std::vector<std::string>& without);
    /// How to ask the cloud for this lane's highest seq (the uploader's highest_seq), for the
    /// cloud check of a lane without PEER_TERMINALS (lanes/rebuild.hpp). Call before start().
    void set_cloud_seq(
        std::function<void(std::function<void(std::string error, std::uint64_t seq)>)> ask);

    // ---- takeover (docs/architecture.md "Takeover"), thread-safe -----------------------------

    /// The origins this lane uploads on their behalf now (the uploader's cover list).
    std::vector<std::string> covering() const;
    /// The status rows of these origins: who covers each, when it was last seen.
    std::vector<origin_view> origins(const std::vector<outbox::origin_summary>& held) const;

private:
    struct impl;
    std::shared_ptr<impl> impl_;
};

} // namespace lanesync::lanes
