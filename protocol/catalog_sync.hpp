#pragma once
/// The mesh's catalog anti-entropy (docs/protocol.md "Catalog", docs/downstream.md "Mesh"), as
/// pure rules with unit tests (tests/protocol/catalog_sync_test.cpp). No Asio, no SQLite.
///
/// Every v3 session sends `catalog_have` (what it holds of every scope: through, horizon, and
/// whether a snapshot is under way) after its ready, when its catalog changed, and as the ack of
/// the pages it received. The side holding a higher `through` for a scope sends `catalog`
/// pages: the changes above the peer's through (version order), or, when the peer's through is
/// below our horizon (the tombstones it needs may be gone), a snapshot of our live rows from the
/// start (key order) whose first page resets the peer's scope. One page per scope is in flight
/// per session; the peer's next have acking it lets the next one go.
///
/// Who does what: lanes/catalog_peer.cpp runs catalog_sender::take_job() on the session strand,
/// serve_job() on the outbox reader thread (reads through catalog_reader), sends the pages,
/// and decides each received page with accept_page() before store::apply_catalog.

#include "protocol/catalog.hpp"
#include "protocol/frames.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace lanesync::protocol {

/// The rules of a catalog frame that need no state; empty when it follows them. A snapshot page
/// (reset or continues_snapshot, never both) has since 0, live rows only (no tombstone) in
/// strictly increasing key order; a catch-up page has through > since and changes with versions
/// in (since, through], in non-decreasing version order, each key once. (Scope and key syntax:
/// protocol/catalog.hpp valid_catalog_scope, valid_catalog_key.)
std::string check_page_shape(const catalog_frame& f);

struct catalog_sync_limits {
    std::size_t page_changes = 500;    ///< tuning::peer_catalog_page_changes
    std::size_t page_bytes = 4u << 20; ///< tuning::peer_catalog_page_bytes (soft)
};

/// A snapshot of one scope this session is serving the peer, between two pages.
struct serving_snapshot {
    std::int64_t as_of = 0; ///< our through when it started: the snapshot's through
    std::string after_key;  ///< the last key sent

    friend bool operator==(const serving_snapshot&, const serving_snapshot&) = default;
};

enum class send_kind { nothing, changes, snapshot };
enum class send_reason {
    up_to_date,        ///< the peer's through is at or above ours
    ours_empty,        ///< we hold nothing complete of it (through 0)
    ours_mid_snapshot, ///< our own snapshot of it is under way: not served
    peer_busy,         ///< the peer is mid-snapshot from someone else
    changes_since,     ///< the changes above the peer's through
    below_horizon,     ///< the peer's through is below our horizon: a snapshot
    restart_snapshot,  ///< the peer is mid-snapshot from us but we lost our place: again
    continue_snapshot, ///< the next page of the snapshot we serve
    same_version_run,  ///< a full page of one version cannot be paged by version: a snapshot
};
const char* to_string(send_reason r);

struct send_plan {
    send_kind kind = send_kind::nothing;
    send_reason reason = send_reason::up_to_date;
    std::int64_t since = 0;    ///< changes: the peer's through
    serving_snapshot snapshot; ///< snapshot: where it continues (as_of, after_key)
    bool first = false;        ///< snapshot: its first page (reset)
};

/// What to send the peer of one of our scopes. `peer`: the scope's entry in the peer's latest
/// have (nullptr: the peer does not know the scope). `serving`: the snapshot of it this session
/// serves the peer (nullptr: none).
send_plan plan_scope(const catalog_scope_state& ours, const catalog_have_entry* peer,
                     const serving_snapshot* serving);

/// The outbox reads a page needs (store::catalog_since, store::catalog_keys_after).
struct catalog_reader {
    /// Current rows (tombstones included) with version > since, version order, at most limit.
    std::function<std::vector<catalog_change>(const std::string& scope, std::int64_t since,
                                              std::size_t limit)>
        since;
    /// Live rows with key > after_key, key order, at most limit.
    std::function<std::vector<catalog_change>(const std::string& scope,
                                              const std::string& after_key, std::size_t limit)>
        keys_after;
};

/// One page to send, and what the session remembers of it.
struct served_page {
    std::int64_t since = 0;
    catalog_page page;
    send_reason reason = send_reason::changes_since;
    /// A snapshot with more pages to come: where the next one starts. nullopt otherwise.
    std::optional<serving_snapshot> next;
};

/// plan_scope, the reads and the page, for one scope; nullopt when nothing is to be sent.
/// Changes pages: through = the last change's version while more follow, ours.through on the
/// last one (done); rows above ours.through (a snapshot brought them early) wait until our
/// through covers them; a full page ending in a run of one version
/// drops that run (it goes in the next page), and a full page of one version only becomes a
/// snapshot. Snapshot pages: through = as_of, reset on the first, continues_snapshot after,
/// done on the last. Pages stop growing past limits.page_bytes (at least one change each).
std::optional<served_page> serve_scope(const catalog_scope_state& ours,
                                       const catalog_have_entry* peer,
                                       const serving_snapshot* serving, const catalog_reader& read,
                                       const catalog_sync_limits& lim);

/// What a session asks the reader thread to serve: the peer's latest have, the snapshots it
/// serves and the scopes with a page in flight (skipped).
struct catalog_job {
    std::vector<catalog_have_entry> peer;
    std::map<std::string, serving_snapshot> serving;
    std::set<std::string> in_flight;
};

/// Runs serve_scope for every scope of ours not in flight (reader thread).
std::vector<served_page> serve_job(const catalog_job& job,
                                   const std::vector<catalog_scope_state>& ours,
                                   const catalog_reader& read, const catalog_sync_limits& lim);

/// The sending half of one session: the peer's view, the pages in flight, the snapshots
/// served, one job at a time. Thread contract: none; one session strand drives it.
class catalog_sender {
public:
    /// The peer's have: its view replaces the last one; pages up to `acked` are no longer in
    /// flight. Returns true when a job should run (take_job).
    bool on_have(const catalog_have_frame& h);
    /// Our catalog changed: a job should run (take_job) once the peer's have is known.
    void on_local_change() { dirty_ = true; }
    /// The next job, when one is due and none is out (nullopt otherwise).
    std::optional<catalog_job> take_job();
    /// The job's pages: each becomes a catalog frame (numbered here) in flight for its scope.
    /// Returns the frames to send. A job out while another have came in asks to run again
    /// (take_job after this).
    std::vector<catalog_frame> on_served(std::vector<served_page> pages);
    bool job_out() const { return job_out_; }
    std::size_t in_flight() const { return in_flight_.size(); }

private:
    bool have_known_ = false;
    bool dirty_ = false;
    bool job_out_ = false;
    std::vector<catalog_have_entry> peer_;
    std::map<std::string, std::uint64_t> in_flight_; ///< scope -> frame n
    std::map<std::string, serving_snapshot> serving_;
    std::uint64_t next_n_ = 1;
};

/// Who a scope's snapshot under way (snapshot_active) comes from, as the receiving lane knows.
enum class snapshot_owner {
    none,         ///< no snapshot under way
    this_session, ///< the peer of this session (it sent the reset page)
    other_session,
    orphan, ///< a peer whose session ended before the snapshot did: anyone may restart it
    cloud,  ///< the cloud puller (or unknown: a snapshot left from before a restart)
};

/// Our have entries, per scope: through, horizon, and `yours` when this session's peer serves
/// (or may restart) the snapshot under way, `busy` when someone else does.
std::vector<catalog_have_entry>
have_entries(const std::vector<catalog_scope_state>& ours,
             const std::function<snapshot_owner(const std::string& scope)>& owner);

enum class page_verdict {
    apply,
    ignore_busy,           ///< our scope is mid-snapshot from another source
    ignore_not_continuing, ///< continues a snapshot this session does not carry
    ignore_gap,            ///< changes above a through higher than ours
    ignore_stale,          ///< brings nothing above our through
};
const char* to_string(page_verdict v);

/// Whether to apply a received page. `ours`: our state of its scope (nullptr: unknown here).
page_verdict accept_page(const catalog_scope_state* ours, snapshot_owner owner,
                         const catalog_frame& f);

} // namespace lanesync::protocol
