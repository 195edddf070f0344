#pragma once
/// Private to lanes/: the lane's rebuild and start check (docs/architecture.md "Rebuild").
/// The rule (when a rebuild is done, what it waits for) is protocol::rebuild_progress; this
/// class carries it out: it holds the state the sessions are created with, starts and ends a
/// rebuild through `rebuild_effects` (the outbox and the hub in the agent, recorders in the
/// tests), and answers the local API's questions (may a POST publish now?).
///
/// No Asio, no clock of its own (times are passed in). Thread-safe: one mutex; the effects and
/// the admission callbacks are called without it held.

#include "lanes/gossip.hpp"
#include "outbox/outbox.hpp"
#include "protocol/rebuild.hpp"

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace lanesync::lanes {

/// What the controller asks of the world. Each may complete later, on any thread.
struct rebuild_effects {
    /// Persist the start of a rebuild (outbox begin_rebuild); `done(error)`, empty when ok.
    std::function<void(std::string reason, std::function<void(std::string)> done)> begin;
    /// Persist its end (outbox finish_rebuild: a new incarnation, trust caps of `excluded`);
    /// `done(error, state after)`.
    std::function<void(std::vector<std::string> excluded,
                       std::function<void(std::string, outbox::rebuild_state)> done)>
        finish;
    /// Close every peer session with 1001 (close_code::going_away) and this reason; the links
    /// reconnect at once.
    std::function<void(std::string reason)> close_sessions;
    /// Raise the own hwm to `through` (an own floor: the cloud holds our 1..through);
    /// `done(error, own hwm after)`.
    std::function<void(std::uint64_t through, std::function<void(std::string, std::uint64_t)> done)>
        raise_floor;
};

/// The mode a new session is created in.
struct session_mode {
    std::uint64_t generation = 0; ///< changes at every start and end of a rebuild
    bool rebuilding = false;
    std::string incarnation;
    std::map<std::string, std::uint64_t> trust_caps; ///< terminal -> cap (excluded peers)
};

class rebuild_controller {
public:
    using admit_fn = std::function<void(std::optional<rebuild_view>)>;

    /// `links`: the PEER_TERMINALS URLs.
    rebuild_controller(std::string self, std::vector<std::string> links, rebuild_effects fx);

    /// The PEER_TERMINALS URLs as they are at start (tests add peers after construction).
    void set_links(std::vector<std::string> links);
    /// How to ask the cloud for the highest seq it holds of this lane (`done(error, seq)`, error
    /// empty when it told; any thread). Set before start() when SUPABASE_URL is set: a lane
    /// without links whose outbox has no own message asks it before seq 1 (the cloud check).
    using cloud_ask_fn =
        std::function<void(std::function<void(std::string error, std::uint64_t seq)> done)>;
    void set_cloud(cloud_ask_fn ask);
    /// At start, from the outbox: resumes a rebuild under way; else, with links, the start
    /// check begins (POSTs wait until every link answered or start_check_over()); else, without
    /// links, with a cloud (set_cloud) and own_hwm 0, the cloud check begins: POSTs wait for
    /// the cloud's highest seq (the own hwm is raised to it) and, once start_check_over() came
    /// first, are refused (503) until it tells or POST /v1/rebuild {"without": ["cloud"]}.
    void start(const outbox::rebuild_state& st, std::uint64_t own_hwm, std::int64_t now_ms);
    /// tuning::start_peer_check ran out.
    void start_check_over();
    /// A configured link answered once: a peer's ready, or an attempt that failed.
    void link_answered(const std::string& url);
    /// The terminal id behind a configured link (learned at authentication).
    void link_terminal(const std::string& url, const std::string& terminal);

    session_mode mode() const;
    /// A session created with `generation` still fits the lane's mode.
    bool current(std::uint64_t generation) const;

    /// `peer` holds more of our origin than we do (close_cause::outbox_lost): rebuild.
    /// `reason` may start with "rebuilding: " (the close reason); `own_hwm` as the machine saw.
    /// A peer that is not behind a configured link must report (or be left out) too.
    void outbox_lost(const std::string& peer, std::string reason, std::uint64_t own_hwm,
                     std::int64_t now_ms);
    /// A rebuild session's peer reported what it holds of our origin (action own_reported).
    void report(protocol::rebuild_report r);
    /// Our own hwm after a restore commit.
    void own_hwm(std::uint64_t hwm);
    /// A peer holds other messages at our seqs (incarnation mismatch): shown, and the rebuild
    /// does not finish while that peer is not excluded (its report does not count).
    void conflict(const std::string& terminal, std::string text);
    /// A peer's news while rebuilding: the cloud holds our origin's 1..through. Once the
    /// restore is done, the own hwm is raised to it before the rebuild finishes, so no seq the
    /// cloud already has is handed out again.
    void cloud_floor(std::uint64_t through);
    /// `terminal` is no longer capped (lift_trust_cap committed): new sessions trust it fully.
    void cap_lifted(const std::string& terminal);
    /// POST /v1/rebuild.
    exclude_result exclude(const std::vector<std::string>& without);

    /// POST /v1/messages: see gossip::admit.
    void admit(admit_fn done);
    /// Every lane_tick: retries a begin or a finish whose commit failed (a full disk, I/O), and a
    /// cloud check whose query failed (full-jitter backoff, tuning::cloud_seq_retry_*).
    void tick(std::int64_t now_ms);
    /// The lane stops: held POSTs are answered (as after the start check), nothing waits.
    void stopping();
    rebuild_view view() const;
    /// POST /v1/messages answers 503: a rebuild from peers, or a cloud check past the start
    /// check's time.
    bool rebuilding() const;

private:
    struct effects_due {
        std::vector<admit_fn> release;      ///< held POSTs to answer
        std::optional<rebuild_view> answer; ///< ... with this
        bool finish = false;
        std::vector<std::string> finish_excluded;
        std::uint64_t raise_floor = 0; ///< before the finish: the cloud's seqs of our origin
    };
    rebuild_view view_locked() const;
    void new_progress_locked(std::uint64_t own_hwm);
    /// After any change: is the rebuild done, is the start check over? Fills `due`.
    void evaluate_locked(effects_due& due);
    void carry_out(effects_due due);
    void finished(const std::string& error, const outbox::rebuild_state& st);
    /// begin_rebuild in the outbox; a failure is retried by tick(), and the rebuild cannot
    /// finish before it committed (finish_rebuild only ends a persisted rebuild).
    void persist_begin(const std::string& reason);
    bool conflicts_block_locked() const;
    /// The peer that found our outbox behind is inbound only and has not reported yet.
    bool trigger_pending_locked() const;
    std::string resolve_locked(const std::string& item, std::string& url,
                               std::string& terminal) const;
    // The cloud check (rebuild_cloud.cpp).
    void ask_cloud();
    void cloud_answered(const std::string& error, std::uint64_t seq);
    void cloud_floor_raised(const std::string& error, std::uint64_t seq);
    void cloud_check_done_locked(effects_due& due);
    bool cloud_tick_locked(std::int64_t now_ms);
    exclude_result skip_cloud_check(std::size_t items);
    void cloud_view_locked(rebuild_view& v) const;

    const std::string self_;
    std::vector<std::string> links_;
    rebuild_effects fx_;

    mutable std::mutex mutex_;
    std::uint64_t generation_ = 1;
    bool active_ = false;
    bool finishing_ = false;
    bool persisted_ = false; ///< the rebuild's start is committed in the outbox (begin_rebuild)
    bool begin_failed_ = false;
    std::uint64_t cloud_floor_ = 0; ///< highest cloud_through of our origin peers reported
    bool raising_ = false;          ///< raise_floor is out
    std::string reason_;
    std::int64_t since_ms_ = 0;
    std::string incarnation_;
    std::map<std::string, std::uint64_t> trust_caps_;
    std::optional<protocol::rebuild_progress> progress_;
    std::map<std::string, std::string> terminals_; ///< link URL -> terminal id
    std::vector<std::string> excluded_terminals_;  ///< for finish_rebuild (trust caps)
    bool checking_ = false;                        ///< the start check runs
    std::vector<std::string> answered_;            ///< links that answered the start check
    std::string trigger_;                          ///< the peer whose mark started the rebuild
    std::vector<std::string> reported_;            ///< terminals that reported
    std::vector<std::string> conflicted_;          ///< terminals with a conflict
    std::vector<admit_fn> held_;                   ///< POSTs waiting for the start check

    cloud_ask_fn cloud_ask_;           ///< set_cloud
    bool cloud_wait_ = false;          ///< the cloud check runs: no seq until the cloud told
    bool cloud_asking_ = false;        ///< a query (or the floor's commit) is out
    std::string cloud_error_;          ///< why the last query failed
    std::uint32_t cloud_attempts_ = 0; ///< failed queries so far
    bool cloud_retry_ = false;         ///< the last query failed: ask again
    bool cloud_scheduled_ = false;     ///< ... at cloud_next_ms_ (set by the next tick)
    std::int64_t cloud_next_ms_ = 0;
};

} // namespace lanesync::lanes
