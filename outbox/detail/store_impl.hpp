#pragma once
/// Private to the outbox: the SQLite implementation of outbox::store (docs/outbox.md).
///
/// Threads: one writer thread owns the write connection and runs every write request,
/// folding all queued requests (up to tuning::group_commit_max_requests) into one
/// BEGIN IMMEDIATE ... COMMIT, each request inside its own SAVEPOINT. Reads run on a second
/// connection under `read_mutex_`: synchronously from any thread, or as jobs on the reader
/// thread (post_read, used by outbox::async_store).

#include "outbox/detail/sqlite.hpp"
#include "outbox/outbox.hpp"

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>

namespace lanesync::outbox::detail {

class sqlite_store final : public store {
public:
    /// Opens, migrates and binds the file; starts the writer (unless read-only).
    /// Throws outbox::error.
    explicit sqlite_store(const options& opts);
    ~sqlite_store() override;

    void publish(protocol::publish_request req, std::function<void(publish_outcome)> done) override;
    void publish_batch(std::vector<protocol::publish_request> reqs,
                       std::function<void(batch_outcome)> done) override;
    using store::next_for_peer;
    using store::store_replicas;

    void store_replicas(std::vector<protocol::message> msgs, protocol::hwm_map floor,
                        bool restore_own, std::function<void(replicas_outcome)> done) override;
    void peer_acked(std::string peer, std::uint64_t acked_through, std::size_t quorum,
                    std::function<void(peer_ack_outcome)> done) override;
    void cloud_acked(std::vector<cloud_result> results,
                     std::function<void(cloud_outcome)> done) override;
    void note_attempt(std::vector<std::string> ids,
                      std::function<void(count_outcome)> done) override;
    void retry(std::vector<std::string> ids, std::function<void(count_outcome)> done) override;
    void prune(std::int64_t older_than_ms, std::size_t max_rows,
               std::function<void(count_outcome)> done) override;
    void origin_cloud_through(std::string origin, std::uint64_t through,
                              std::function<void(count_outcome)> done) override;
    void begin_rebuild(std::string reason, std::function<void(count_outcome)> done) override;
    void finish_rebuild(std::vector<std::string> excluded_terminals,
                        std::function<void(count_outcome)> done) override;
    void lift_trust_cap(std::string terminal, std::function<void(count_outcome)> done) override;
    void apply_catalog(protocol::catalog_page page, std::string source,
                       std::function<void(catalog_outcome)> done) override;
    void purge_catalog(std::int64_t older_than_ms,
                       std::function<void(count_outcome)> done) override;
    void set_commit_listener(std::function<void(const commit_info&)> listener) override;
    void close() override;

    std::optional<record> get(std::string_view id) override;
    std::vector<std::optional<state>> states(const std::vector<std::string>& ids) override;
    counts get_counts() override;
    protocol::hwm_map hwm() override;
    protocol::hwm_map cloud_through() override;
    protocol::tip_ids ids_at(const protocol::hwm_map& at) override;
    peer_batch next_for_peer(std::string_view peer, const protocol::hwm_map& after,
                             std::size_t limit, std::size_t max_bytes,
                             bool include_peer_origin) override;
    std::vector<record> next_for_cloud(std::size_t limit, bool include_pending) override;
    std::vector<record> next_replicas_for_cloud(const std::vector<std::string>& origins,
                                                std::size_t limit) override;
    std::vector<origin_summary> origin_summaries() override;
    std::string incarnation() override;
    rebuild_state get_rebuild_state() override;
    std::vector<record> list(state st, std::size_t limit) override;
    std::vector<peer_mark> peer_marks() override;
    std::vector<protocol::catalog_scope_state> catalog_scopes() override;
    std::optional<protocol::catalog_change> catalog_get(std::string_view scope,
                                                        std::string_view key) override;
    std::vector<protocol::catalog_change> catalog_since(std::string_view scope, std::int64_t since,
                                                        std::size_t limit) override;
    std::vector<protocol::catalog_change> catalog_keys_after(std::string_view scope,
                                                             std::string_view after_key,
                                                             std::size_t limit) override;
    bool changed_elsewhere() override;
    std::vector<std::string> integrity_check() override;
    bool writable() override;
    outbox::health health() override;
    void post_read(std::function<void()> job) override;

    // ---- test hooks (outbox/detail/test_hooks.hpp) --------------------------------------------
    /// While paused the writer takes no new group (close() still drains).
    void pause_writer(bool paused);
    /// Runs `sql` on the write connection between groups; first column of the first row.
    std::string exec_on_writer(const std::string& sql);

private:
    /// One queued write. apply() runs inside the group's transaction (inside a savepoint);
    /// fail() replaces the outcome by a failure; complete() calls the user's callback.
    struct request {
        virtual ~request() = default;
        virtual void apply(write_transaction& tx) = 0;
        virtual void fail(const std::string& why) = 0;
        virtual void complete() = 0;
        commit_info info; ///< what this request changed (merged for the listener)
    };
    template <class Out> struct op;

public:
    // Defined in store_parts.hpp; public so the helpers of store_check.cpp can take them.
    struct write_statements;
    struct read_statements;

private:
    struct origin_marks {
        std::uint64_t hwm = 0;
        std::uint64_t cloud_through = 0;
    };
    using origin_map = std::map<std::string, origin_marks, std::less<>>;

    template <class Out, class Body> void submit(Body&& body, std::function<void(Out)> done);
    void enqueue(std::unique_ptr<request> r);
    void writer_loop();
    void run_group(std::vector<std::unique_ptr<request>>& group);
    /// run_group's transaction: applies each request in its savepoint and commits. Returns
    /// SQLite's message when the whole group failed (nothing on disk), else empty; sets
    /// `applied[i]` and `storage_error` (a SQLITE_FULL / IOERR that undid one request).
    std::string commit_group(std::vector<std::unique_ptr<request>>& group,
                             std::vector<char>& applied, std::string& storage_error);
    void notify_listener(const std::vector<std::unique_ptr<request>>& group,
                         const std::vector<char>& applied);
    void reader_loop();
    void stop_reader();
    /// Writer thread: a group starts / ended (ok, or failed with SQLite's message).
    void note_group_start();
    /// `full`: the group met SQLITE_FULL, or the disk was full and still has too little space.
    void note_group_end(bool ok, const std::string& error, bool full = false);
    /// The outbox folder's file system has less than tuning::outbox_free_space_after_full
    /// free (statvfs; writer thread). `why` gets the text for the health snapshot.
    bool space_low(std::string& why) const;
    /// Queues an empty write (BEGIN IMMEDIATE; COMMIT) whose group records a recovery.
    void queue_probe();

    // Write steps: run on the writer thread inside `tx` (the proof of a write transaction).
    publish_outcome do_publish(write_transaction& tx, const protocol::publish_request& req,
                               commit_info& info);
    /// All of `reqs` through do_publish in one savepoint, undone when one is a conflict.
    batch_outcome do_publish_batch(write_transaction& tx,
                                   const std::vector<protocol::publish_request>& reqs,
                                   commit_info& info);
    replicas_outcome do_store_replicas(write_transaction& tx,
                                       const std::vector<protocol::message>& msgs,
                                       const protocol::hwm_map& floor, bool restore_own,
                                       commit_info& info);
    peer_ack_outcome do_peer_acked(write_transaction& tx, const std::string& peer,
                                   std::uint64_t acked_through, std::size_t quorum,
                                   commit_info& info);
    cloud_outcome do_cloud_acked(write_transaction& tx, const std::vector<cloud_result>& results);
    count_outcome do_note_attempt(write_transaction& tx, const std::vector<std::string>& ids);
    count_outcome do_retry(write_transaction& tx, const std::vector<std::string>& ids,
                           commit_info& info);
    count_outcome do_prune(write_transaction& tx, std::int64_t older_than_ms, std::size_t max_rows);
    count_outcome do_origin_cloud_through(write_transaction& tx, const std::string& origin,
                                          std::uint64_t through);
    /// origin_cloud_through for the own origin (store_rebuild.cpp).
    count_outcome do_own_cloud_through(write_transaction& tx, std::uint64_t through);
    count_outcome do_begin_rebuild(write_transaction& tx, const std::string& reason);
    count_outcome do_lift_trust_cap(write_transaction& tx, const std::string& terminal);
    count_outcome do_finish_rebuild(write_transaction& tx,
                                    const std::vector<std::string>& excluded);

    /// store_catalog.cpp: one page (apply_catalog) and the tombstone purge.
    catalog_outcome do_apply_catalog(write_transaction& tx, const protocol::catalog_page& page,
                                     const std::string& source, commit_info& info);
    count_outcome do_purge_catalog(write_transaction& tx, std::int64_t older_than_ms);
    struct catalog_row;
    catalog_row read_catalog_scope(write_transaction& tx, const std::string& scope);

    /// The copy of `id` held under `origin` (an id may be held under several origins).
    std::optional<record> find(write_transaction& tx, const std::string& id,
                               const std::string& origin);
    origin_marks read_origin(write_transaction& tx, const std::string& origin);
    void write_origin(write_transaction& tx, const std::string& origin, const origin_marks& m);
    std::uint64_t own_cloud_through(write_transaction& tx, std::uint64_t own_hwm);
    /// Just below the lowest seq of `origin` held and not cloud_ack (hwm when there is none).
    std::uint64_t contiguous_cloud_through(write_transaction& tx, const std::string& origin,
                                           std::uint64_t hwm);
    origin_marks& touched_origin(write_transaction& tx, origin_map& marks,
                                 const std::string& origin);
    std::size_t apply_floor(write_transaction& tx, const protocol::hwm_map& floor, bool restore_own,
                            origin_map& marks, std::int64_t now);
    /// One message of store_replicas(): duplicate, refused, gap, or stored (extends `om`).
    void store_replica(write_transaction& tx, const protocol::message& m, origin_marks& om,
                       replicas_outcome& out, std::string& gap_text, std::int64_t now);
    /// Messages of `origin` up to `through` become cloud_ack: replicas in state pending; own
    /// messages in state pending or peer_ack. Returns how many changed.
    std::size_t mark_in_cloud(write_transaction& tx, const std::string& origin,
                              std::uint64_t through, std::int64_t now);
    /// An own-origin floor of a restore: own hwm and cloud_through rise to f - 1.
    std::size_t apply_own_floor(write_transaction& tx, std::uint64_t f, origin_marks& own,
                                std::int64_t now);
    /// One cloud answer for a replica (result.origin set): cloud_ack or failed.
    void apply_replica_result(write_transaction& tx, const cloud_result& r, std::int64_t now,
                              cloud_outcome& out, std::set<std::string>& touched);
    /// A replica origin's cloud_through after cloud answers: rises contiguously, never falls.
    void raise_replica_cloud_through(write_transaction& tx, const std::string& origin);
    std::optional<std::string> meta(write_transaction& tx, std::string_view key);
    void put_meta(write_transaction& tx, std::string_view key, const std::string& value);
    protocol::hwm_map all_hwm(write_transaction& tx);

    std::string path_;
    std::string store_id_;
    bool read_only_ = false;

    // Write side: owned by the writer thread; tests and changed_elsewhere() borrow it
    // between groups under write_mutex_.
    std::unique_ptr<connection> write_db_;
    std::unique_ptr<write_statements> w_;
    std::mutex write_mutex_;
    std::atomic<std::int64_t> writer_data_version_{0};

    // Read side.
    std::unique_ptr<connection> read_db_;
    std::unique_ptr<read_statements> r_;
    std::mutex read_mutex_;

    // changed_elsewhere() baseline.
    std::mutex version_mutex_;
    std::int64_t seen_data_version_ = 0;

    // Queue between callers and the writer thread.
    std::mutex queue_mutex_;
    std::condition_variable queue_cv_;
    std::deque<std::unique_ptr<request>> queue_;
    bool closed_ = false; ///< no new requests; the writer drains and exits
    bool paused_ = false;
    std::function<void(const commit_info&)> listener_;

    // Health snapshot, written by the writer thread around each group; held only to copy.
    std::mutex health_mutex_;
    bool last_group_ok_ = true;
    std::string last_group_error_;
    std::optional<std::int64_t> last_commit_at_ms_, last_failure_at_ms_, busy_since_ms_;
    bool probe_queued_ = false;    ///< an empty write queued by health() after a failure
    bool last_group_full_ = false; ///< health: the disk is full (outbox::health::disk_full)
    bool group_full_ = false;      ///< writer thread: the running group met SQLITE_FULL

    // Reader thread: runs post_read() jobs in order on the read connection.
    std::mutex reader_mutex_;
    std::condition_variable reader_cv_;
    std::deque<std::function<void()>> reads_;
    bool reader_stopping_ = false;
    std::thread reader_;

    std::mutex close_mutex_; ///< serializes joins of writer_
    std::thread writer_;
    std::thread::id writer_id_; ///< set once before any request can run
};

} // namespace lanesync::outbox::detail
