#pragma once
/// The lane's durable outbox: one SQLite file in WAL mode holding this lane's own messages and
/// the replicas it keeps of other lanes' messages (docs/outbox.md).
///
/// Writes go through one writer thread that folds every queued request into one transaction,
/// so concurrent publishes share one fsync (group commit). A completion is called only after
/// the COMMIT returned, with synchronous=FULL: once it reports success the data is on disk.
/// Reads use a separate connection: synchronously from the caller's thread, or as jobs on the
/// outbox's reader thread (post_read).
///
/// A second process (the CLI) may open the same file at the same time: writes serialize on
/// SQLite's write lock (BEGIN IMMEDIATE + busy timeout), seq numbers are assigned inside the
/// write transaction, so two processes never hand out the same seq.
///
/// Who may call what, and where it completes. Asynchronous code (io threads: the API, peer
/// sessions, the uploader) uses outbox::async_store (outbox/async.hpp), never the blocking
/// calls below: no SQLite call and no lock wait on an io thread.
///
///   call                              may be called from        runs / completes on
///   --------------------------------  ------------------------  --------------------------------
///   publish, publish_batch,           any thread                runs on the writer thread; the
///   store_replicas, peer_acked,                                 callback on the writer thread
///   cloud_acked, note_attempt, retry,                           after the COMMIT (at once on the
///   prune, origin_cloud_through,                                caller's thread when closed or
///   begin_rebuild, finish_rebuild                               read-only). Callbacks must not
///                                                               block: post elsewhere.
///   set_commit_listener               before traffic starts     listener on the writer thread
///   close                             any thread but a callback blocks until the writer drained
///                                     (from one: only marks)
///   get, states, get_counts, hwm,     CLI, tests, and jobs on   the caller's thread (blocks on
///   ids_at, cloud_through,            the reader thread         the read connection's mutex)
///   next_for_peer, next_for_cloud,
///   list, peer_marks,
///   next_replicas_for_cloud,
///   origin_summaries, incarnation,
///   get_rebuild_state,
///   integrity_check, changed_elsewhere
///   writable                          CLI, tests                caller's thread; waits up to
///                                                               1 s for the write lock
///   health                            any thread (io included)  caller's thread, never waits
///                                                               on the write lock or SQLite
///   post_read                         any thread                the job on the reader thread
///   async_store::* (async.hpp)        any thread                handler's associated executor
///
/// The publish_sync / publish_batch_sync / retry_sync / prune_sync helpers block until the commit:
/// CLI only.

#include "protocol/catalog.hpp"
#include "protocol/frames.hpp"
#include "protocol/message.hpp"
#include "protocol/publish.hpp"

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace lanesync::outbox {

/// State of one of this lane's own messages (SPEC section 3). Replicas: `pending` while held,
/// `cloud_ack` once known in the cloud, `failed` if the cloud refused our upload on their behalf.
enum class state : std::uint8_t { pending = 0, peer_ack = 1, cloud_ack = 2, failed = 3 };
std::string_view to_string(state s);
std::optional<state> parse_state(std::string_view text);

/// Thrown by open() and the synchronous calls: storage could not be opened, is corrupt, is
/// newer than this code, or belongs to another terminal. `what()` is safe to print.
class error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

/// A message as held in this lane's outbox.
struct record {
    protocol::message msg;
    state st = state::pending;
    bool own = false;              ///< origin == this lane
    std::int64_t stored_at_ms = 0; ///< when this lane committed it
    std::optional<std::int64_t> peer_acked_at_ms;
    std::optional<std::int64_t> cloud_acked_at_ms;
    std::uint32_t attempts = 0; ///< cloud upload attempts
    std::string last_error;     ///< why it is `failed` (cloud's reason)
};

struct options {
    std::string path;        ///< SQLite file; parent folders are created
    std::string terminal_id; ///< this lane; bound to the file on first open
    std::string store_id;    ///< this store; bound to the file on first open
    bool read_only = false;  ///< open for reading only (status of a stopped agent); no writer
};

// ---- results of asynchronous writes ---------------------------------------------------------

/// Outcome of publish(). `storage_failed` means nothing was written (disk full, I/O error).
struct publish_outcome {
    enum kind { created, existing, conflict, storage_failed } k = storage_failed;
    record rec;        ///< the stored record (created / existing / conflict: the stored one)
    std::string error; ///< for storage_failed: what SQLite said
};

/// Outcome of publish_batch(): every message stored in one transaction, or none of them.
struct batch_outcome {
    enum kind { stored, conflict, storage_failed } k = storage_failed;
    /// stored: one per request, in order (created, or existing: same id, same content).
    /// conflict: one per request too; nothing was stored, the entries of kind conflict name
    /// the ids used with other content (the others are what would have been stored).
    std::vector<publish_outcome> items;
    std::string error; ///< for storage_failed: what SQLite said
};

/// Outcome of store_replicas().
struct replicas_outcome {
    bool ok = false;
    std::size_t inserted = 0;   ///< new copies stored
    std::size_t restored = 0;   ///< of those, own messages stored by restore_own (a rebuild)
    std::size_t duplicates = 0; ///< already held (same id and origin, same seq and content)
    std::size_t refused = 0;    ///< conflicting (same id and origin with other content or seq,
                                ///< or same origin/seq other id)
    std::string error;          ///< when !ok: a storage failure (nothing was written) or a gap
    bool gap = false;           ///< a message did not extend the contiguous prefix of its origin
    std::string conflict;       ///< first id conflict (same id and origin, other content/seq);
                                ///< the batch is then not ok: the link must not ack it
    protocol::hwm_map hwm;      ///< every origin's high-water mark after the commit
};

/// Outcome of peer_acked().
struct peer_ack_outcome {
    bool ok = false;
    std::string error;
    std::uint64_t quorum_through = 0;              ///< own seq now held by >= quorum peers
    std::vector<std::int64_t> promoted_latency_ms; ///< publish -> peer_ack, one per promoted msg
};

/// What the cloud said of one uploaded message.
struct cloud_result {
    std::string id;
    enum kind { stored, duplicate, rejected } k = stored;
    std::string error;       ///< reason when rejected
    std::string origin = {}; ///< empty (or this lane): an own message; else a replica of that
                             ///< origin uploaded on its behalf (takeover)
};

struct cloud_outcome {
    bool ok = false;
    std::string error;
    std::size_t acked = 0;
    std::size_t failed = 0;
    std::vector<std::int64_t> latency_ms; ///< peer_ack (or publish) -> cloud_ack, per acked msg
};

/// Generic outcome of the maintenance writes (retry, prune).
struct count_outcome {
    bool ok = false;
    std::string error;
    std::size_t count = 0;
};

// ---- read models ------------------------------------------------------------------------------

struct counts {
    std::uint64_t pending = 0, peer_ack = 0, cloud_ack = 0, failed = 0; ///< own messages
    std::optional<std::int64_t> oldest_pending_stored_at_ms;
    std::optional<std::int64_t> oldest_peer_ack_at_ms; ///< peer_acked_at of the oldest peer_ack
    std::map<std::string, std::uint64_t> replicas;     ///< other origin -> copies held
    std::uint64_t own_last_seq = 0;                    ///< highest own seq handed out
    /// The own backlog by priority (index: protocol::priority, 0 critical .. 3 low): of
    /// `pending` and of `peer_ack`, what each level holds.
    std::array<std::uint64_t, 4> pending_by_priority{}, peer_ack_by_priority{};
};

/// Every origin's mark and the id of the message at it (protocol v2 ready and ack frames).
struct tips {
    protocol::hwm_map hwm;
    protocol::tip_ids ids;
};

/// This lane's own hwm and the id of its own message at one seq (checking a peer's mark).
struct own_mark {
    std::uint64_t hwm = 0;
    std::string id; ///< empty when that seq is not held
};

struct peer_mark {
    std::string terminal_id;
    std::uint64_t acked_through = 0; ///< highest own seq this peer confirmed holding
    std::optional<std::int64_t> last_ack_at_ms;
};

/// A snapshot of the store's health (/healthz). Taken without waiting on the write lock or on
/// SQLite: the writer thread records the outcome of each group it runs.
struct health {
    bool writable = false; ///< writes are accepted and the writer's last group committed
    std::string error;     ///< when !writable: "outbox is read-only", "outbox closed", or
                           ///< SQLite's message of the last failed group (disk full, I/O, busy)
    std::optional<std::int64_t> last_commit_at_ms;  ///< last group that committed
    std::optional<std::int64_t> last_failure_at_ms; ///< last group that failed
    std::optional<std::int64_t> busy_since_ms;      ///< the writer is inside a group since then
    std::size_t queued = 0;                         ///< write requests waiting for the writer
    /// A write failed with SQLITE_FULL and the outbox's file system has not had
    /// tuning::outbox_free_space_after_full free since (`writable` is false meanwhile).
    bool disk_full = false;
};

/// This lane's rebuild state and incarnation, persisted in `meta` (docs/outbox.md, "Rebuild").
struct rebuild_state {
    bool active = false;       ///< a rebuild is under way (meta.rebuild_reason non-empty)
    std::string reason;        ///< why it started (empty when not active)
    std::int64_t since_ms = 0; ///< when it started (unix ms; 0 when not active)
    std::string incarnation;   ///< meta.incarnation: 32 lowercase hex, new at each finished rebuild
    std::map<std::string, std::uint64_t> excluded; ///< terminal -> trust cap (own hwm when a
                                                   ///< rebuild finished without it)
};

/// One origin held in this outbox (status, /metrics): from the origins and counts tables.
struct origin_summary {
    std::string origin;
    bool own = false;
    std::uint64_t hwm = 0;           ///< highest seq held contiguously from 1
    std::uint64_t cloud_through = 0; ///< highest seq known in the cloud, contiguous from 1
    std::uint64_t held = 0;          ///< messages of this origin in the file (any state)
    /// ... of them pending or peer_ack: not known in the cloud, not failed (takeover: a lane
    /// whose rows above cloud_through are all failed or cloud_ack has nothing to upload).
    std::uint64_t to_upload = 0;
};

/// Information handed to the commit listener after every successful commit.
struct commit_info {
    bool new_own = false;         ///< own messages were added (gossip should send)
    bool new_replicas = false;    ///< replicas were added (gossip should relay)
    bool new_peer_ack = false;    ///< own messages became peer_ack (uploader has work)
    bool requeued = false;        ///< failed messages were re-queued
    bool new_cloud_state = false; ///< cloud answers or news made messages cloud_ack or failed
    /// A catalog page changed the lane's catalog: rows applied or tombstoned, or a scope's
    /// through moved (the mesh announces its catalog_have; a page of skips only does not).
    bool catalog_changed = false;
};

/// Outcome of apply_catalog(): the page and the scope's new state in one transaction, or
/// nothing (ok false: a refused page, or a storage failure; `error` says which).
struct catalog_outcome {
    bool ok = false;
    std::string error;
    std::size_t applied = 0;             ///< changes newer than the key's version: written
    std::size_t skipped = 0;             ///< changes at or below the key's version: ignored
    std::size_t tombstoned = 0;          ///< keys a finished snapshot did not carry: deleted
    protocol::catalog_scope_state scope; ///< the scope after the commit
};

class store {
public:
    /// Opens (creating if needed) and migrates the outbox. Throws outbox::error.
    static std::unique_ptr<store> open(const options& opts);
    virtual ~store() = default;

    store(const store&) = delete;
    store& operator=(const store&) = delete;

    const std::string& terminal_id() const { return terminal_id_; }

    // ---- asynchronous writes: group-committed; callbacks run on the writer thread -----------
    // (io code: outbox::async_store, which posts the completion to the caller's executor)

    /// Accepts a new own message: assigns seq and created_at, or answers existing (same topic
    /// and data) / conflict for an id this lane accepted before; an id held only as a replica
    /// is accepted as a new own message. The callback runs after the commit or on failure.
    virtual void publish(protocol::publish_request req,
                         std::function<void(publish_outcome)> done) = 0;

    /// Accepts several new own messages in one transaction, all or nothing: each as publish()
    /// would (an id accepted before with the same content is `existing`), and when any is a
    /// conflict nothing is stored. The same id twice in one batch: the second is `existing`
    /// (same content) or a conflict.
    virtual void publish_batch(std::vector<protocol::publish_request> reqs,
                               std::function<void(batch_outcome)> done) = 0;

    /// Stores copies received from a peer. Per origin, messages must come in seq order and
    /// extend the contiguous prefix (or be already held); `floor` lets the prefix jump over
    /// messages pruned at the sender. Messages of this lane's own origin are ignored, unless
    /// `restore_own` (a rebuild): then they are stored as own messages (state pending,
    /// created_at kept, stored_at now) under the same contiguity / duplicate / conflict rules,
    /// the own hwm rises (publish continues at hwm + 1), and an own-origin floor raises the own
    /// hwm and the own cloud_through to floor - 1.
    virtual void store_replicas(std::vector<protocol::message> msgs, protocol::hwm_map floor,
                                bool restore_own, std::function<void(replicas_outcome)> done) = 0;
    /// The same with restore_own = false (callers written before rebuilds).
    void store_replicas(std::vector<protocol::message> msgs, protocol::hwm_map floor,
                        std::function<void(replicas_outcome)> done) {
        store_replicas(std::move(msgs), std::move(floor), false, std::move(done));
    }

    /// Records that `peer` holds this lane's messages 1..acked_through and promotes pending
    /// messages to peer_ack up to the seq that `quorum` distinct peers hold.
    virtual void peer_acked(std::string peer, std::uint64_t acked_through, std::size_t quorum,
                            std::function<void(peer_ack_outcome)> done) = 0;

    /// Cloud answers: stored/duplicate -> cloud_ack, rejected -> failed (`origin` set: replica).
    virtual void cloud_acked(std::vector<cloud_result> results,
                             std::function<void(cloud_outcome)> done) = 0;

    /// Counts one failed upload attempt for these ids (status shows attempts).
    virtual void note_attempt(std::vector<std::string> ids,
                              std::function<void(count_outcome)> done) = 0;

    /// Re-queues failed messages (all of them when `ids` is empty): back to peer_ack if they
    /// were peer-acked, else pending.
    virtual void retry(std::vector<std::string> ids, std::function<void(count_outcome)> done) = 0;

    /// Deletes own cloud_ack messages and replicas known to be cloud_ack whose cloud_acked_at
    /// (or stored_at for replicas) is older than `older_than_ms` (unix ms): at most `max_rows`
    /// in this one transaction, so that a large prune runs as many short writes between
    /// which publishes commit (count == max_rows: call again for more).
    virtual void prune(std::int64_t older_than_ms, std::size_t max_rows,
                       std::function<void(count_outcome)> done) = 0;

    /// Messages of `origin` with seq <= `through` are known to be in the cloud. Replicas become
    /// cloud_ack (also ones stored later). The own origin too (a peer uploaded them for us, or
    /// heard the cloud say so): own pending / peer_ack messages up to `through` become
    /// cloud_ack; failed ones stay failed. `count` = messages changed.
    virtual void origin_cloud_through(std::string origin, std::uint64_t through,
                                      std::function<void(count_outcome)> done) = 0;

    /// Starts a rebuild: records `reason` and now in meta (rebuild_reason, rebuild_since). A
    /// no-op (count 0) when a rebuild is already under way; count 1 when one started.
    virtual void begin_rebuild(std::string reason, std::function<void(count_outcome)> done) = 0;

    /// Ends the rebuild: a new meta.incarnation, the reason cleared, and each of
    /// `excluded_terminals` recorded as excluded:<terminal> = the own hwm now (its trust cap).
    /// count 1 when a rebuild ended, 0 when none was under way (nothing changed).
    virtual void finish_rebuild(std::vector<std::string> excluded_terminals,
                                std::function<void(count_outcome)> done) = 0;

    /// Drops `terminal`'s trust cap (it proved to hold this lane's new history: its ready mark
    /// was within the cap and it acked past it with this lane's ids). count 1 when one went.
    virtual void lift_trust_cap(std::string terminal, std::function<void(count_outcome)> done) = 0;

    // ---- head office's data (docs/downstream.md, "Lane") ---------------------------------------

    /// Applies one page and the scope's new state in ONE transaction (a crash never applies half
    /// a page or loses the cursor). Per key, a change is written only when its version is above
    /// the version held (else skipped: idempotent, order-proof). `reset` starts a snapshot
    /// (every key the snapshot carries is marked), `continues_snapshot` continues the one under
    /// way from the same `source`, and a snapshot's last page (`done`) tombstones the keys it
    /// did not carry (with version `through`) and sets `through`. A catch-up page raises
    /// `through` (never lowers it); while a snapshot is under way it is applied per key but
    /// leaves `through` alone. Refused (ok false, nothing written): an invalid scope, key or
    /// version, a catch-up change above the page's through, `continues_snapshot` without a
    /// snapshot of that source under way. source: "cloud" or the peer's terminal id.
    virtual void apply_catalog(protocol::catalog_page page, std::string source,
                               std::function<void(catalog_outcome)> done) = 0;

    /// Deletes tombstones applied before `older_than_ms` (unix ms) and raises each scope's
    /// `horizon` to the highest version deleted: a peer whose through is below it gets a
    /// snapshot. count = tombstones deleted.
    virtual void purge_catalog(std::int64_t older_than_ms,
                               std::function<void(count_outcome)> done) = 0;

    /// Called on the writer thread after each successful commit. Set before traffic starts.
    virtual void set_commit_listener(std::function<void(const commit_info&)> listener) = 0;

    /// Blocks until every queued write is committed, then stops the writer thread.
    /// Further writes fail with "outbox closed". Idempotent; the destructor calls it.
    virtual void close() = 0;

    // ---- reads: blocking, serialized on the read connection. CLI, tests and reader-thread jobs
    // only (io code: outbox::async_store runs them on the reader thread) ---------------------

    /// The own copy of `id` if this lane accepted it, else a replica (the same id may be held
    /// under several origins: a POS that retried on another lane with its idempotency key).
    virtual std::optional<record> get(std::string_view id) = 0;
    /// For each id, the state of the copy get(id) would return (the own copy, else a replica),
    /// or nullopt when none is held. One read transaction; no message data is read.
    virtual std::vector<std::optional<state>> states(const std::vector<std::string>& ids) = 0;
    /// Own-message counts, replica counts and ages. Exact (maintained by triggers).
    virtual counts get_counts() = 0;
    /// Every origin's high-water mark (contiguous seq held from 1), own origin included.
    virtual protocol::hwm_map hwm() = 0;
    /// The id of the message held at each (origin, seq) of `at` (protocol v2 marks: the tips
    /// of a hwm map, or the own message a peer's mark names). An entry with seq 0, or whose
    /// message is not held (never stored, or pruned after cloud_ack), gets no id.
    virtual protocol::tip_ids ids_at(const protocol::hwm_map& at) = 0;
    /// Highest own seq with cloud_ack contiguous from 1 (for floor / prune gossip).
    virtual protocol::hwm_map cloud_through() = 0;

    /// Messages a peer lacks: for each origin other than `peer`, those with
    /// seq > after[origin] (0 when absent), in seq order per origin, at most `limit` in all and
    /// about `max_bytes` (always at least one). `floor` gets an entry for an origin whose next
    /// message was pruned here (the first seq still held).
    struct peer_batch {
        std::vector<protocol::message> messages;
        protocol::hwm_map floor;
    };
    /// `include_peer_origin` (serving a rebuilding peer): the peer's own origin is sent too.
    virtual peer_batch next_for_peer(std::string_view peer, const protocol::hwm_map& after,
                                     std::size_t limit, std::size_t max_bytes,
                                     bool include_peer_origin) = 0;
    /// The same with include_peer_origin = false.
    peer_batch next_for_peer(std::string_view peer, const protocol::hwm_map& after,
                             std::size_t limit, std::size_t max_bytes) {
        return next_for_peer(peer, after, limit, max_bytes, false);
    }

    /// Own messages ready for the cloud: state peer_ack (or pending too when `include_pending`,
    /// single-lane stores), by priority (critical first), lowest seq first within a level; at
    /// most `limit`.
    virtual std::vector<record> next_for_cloud(std::size_t limit, bool include_pending) = 0;

    /// Replicas of `origins` to upload on their behalf (takeover): state pending, seq above the
    /// origin's cloud_through, ordered by priority (critical first), then origin, then seq; at
    /// most `limit`. The own origin, if named, is skipped (next_for_cloud serves it).
    virtual std::vector<record> next_replicas_for_cloud(const std::vector<std::string>& origins,
                                                        std::size_t limit) = 0;

    /// Every origin held (own first, then by name): hwm, cloud_through and messages held.
    /// From the origins and counts tables only (no scan of messages).
    virtual std::vector<origin_summary> origin_summaries() = 0;

    /// meta.incarnation (32 lowercase hex). Empty only for a read-only open of a file that
    /// never had one (written by an older lanesync and not opened for writing since).
    virtual std::string incarnation() = 0;

    /// The persisted rebuild state (meta), with the incarnation.
    virtual rebuild_state get_rebuild_state() = 0;

    /// Records of one state, oldest first (own messages).
    virtual std::vector<record> list(state st, std::size_t limit) = 0;

    /// What each peer last confirmed (persisted).
    virtual std::vector<peer_mark> peer_marks() = 0;

    /// Every scope held, by name.
    virtual std::vector<protocol::catalog_scope_state> catalog_scopes() = 0;
    /// The current row of (scope, key), a tombstone (deleted) included; nullopt when never held.
    virtual std::optional<protocol::catalog_change> catalog_get(std::string_view scope,
                                                                std::string_view key) = 0;
    /// Current rows (tombstones included) of scope with version > since, version order.
    virtual std::vector<protocol::catalog_change>
    catalog_since(std::string_view scope, std::int64_t since, std::size_t limit) = 0;
    /// Live rows of scope with key > after_key, key order (snapshots served to peers).
    virtual std::vector<protocol::catalog_change>
    catalog_keys_after(std::string_view scope, std::string_view after_key, std::size_t limit) = 0;

    /// True when another connection (e.g. the CLI) committed since the last call.
    virtual bool changed_elsewhere() = 0;

    /// PRAGMA integrity_check (and foreign-key / count checks): empty when healthy.
    virtual std::vector<std::string> integrity_check() = 0;

    /// Write probe (CLI, tests): true when a write transaction can begin and commit. Waits up
    /// to 1 s for the write lock, so never from an io thread: /healthz uses health().
    virtual bool writable() = 0;

    /// The health snapshot: never waits on the write lock or a SQLite call, so any thread may
    /// call it. After a failed group it queues an empty write (one at a time) so that a
    /// recovered disk or lock shows in the next snapshot even when nothing else is written.
    virtual outbox::health health() = 0;

    /// Runs `job` on the outbox's reader thread, after the jobs posted before it. The job may
    /// call the reads above; an exception it throws is logged and dropped. Jobs still queued
    /// when the store is destroyed run first. Thread-safe. (async_store's reads use this.)
    virtual void post_read(std::function<void()> job) = 0;

protected:
    explicit store(std::string terminal_id) : terminal_id_(std::move(terminal_id)) {}
    std::string terminal_id_;
};

// ---- blocking helpers for the CLI ------------------------------------------------------------

publish_outcome publish_sync(store& s, protocol::publish_request req);
batch_outcome publish_batch_sync(store& s, std::vector<protocol::publish_request> reqs);
count_outcome retry_sync(store& s, std::vector<std::string> ids);
count_outcome prune_sync(store& s, std::int64_t older_than_ms,
                         std::size_t max_rows = static_cast<std::size_t>(-1));

} // namespace lanesync::outbox
