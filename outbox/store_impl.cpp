// The SQLite store: open and close, the writer thread and its group commit, the entry points
// of the asynchronous writes, test hooks. The write steps are in store_writes.cpp, the reads
// in store_reads.cpp, integrity_check in store_check.cpp, the reader thread and health() in
// reader.cpp.
#include "outbox/detail/store_impl.hpp"

#include "base/log.hpp"
#include "base/tuning.hpp"
#include "outbox/detail/schema.hpp"
#include "outbox/detail/store_parts.hpp"
#include "outbox/detail/test_hooks.hpp"

#include <filesystem>
#include <system_error>

namespace lanesync::outbox::detail {
namespace {

// Failure outcomes: what a request reports when it (or its whole group) was not committed.
void set_failed(publish_outcome& o, const std::string& why) {
    o = publish_outcome{};
    o.k = publish_outcome::storage_failed;
    o.error = why;
}
void set_failed(batch_outcome& o, const std::string& why) {
    o = batch_outcome{};
    o.k = batch_outcome::storage_failed;
    o.error = why;
}
template <class Out> void set_failed(Out& o, const std::string& why) {
    o = Out{};
    o.ok = false;
    o.error = why;
}

/// SQLITE_FULL / SQLITE_IOERR of one statement (SQLite undid only that statement): the disk
/// is failing even though the group may commit.
bool is_storage_failure(const std::exception& e) {
    auto* se = dynamic_cast<const sqlite_error*>(&e);
    if (!se)
        return false;
    int primary = se->code() & 0xff;
    return primary == SQLITE_FULL || primary == SQLITE_IOERR;
}

/// SQLITE_FULL: the file system (or max_page_count) has no room.
bool is_disk_full(const std::exception& e) {
    auto* se = dynamic_cast<const sqlite_error*>(&e);
    return se && (se->code() & 0xff) == SQLITE_FULL;
}

constexpr const char* closed_text = "outbox closed";
constexpr const char* read_only_text = "outbox is read-only";

} // namespace

/// A write request whose body returns an `Out`.
template <class Out> struct sqlite_store::op final : request {
    std::function<Out(write_transaction&, commit_info&)> body;
    std::function<void(Out)> done;
    Out out{};

    void apply(write_transaction& tx) override {
        info = {};
        out = body(tx, info);
    }
    void fail(const std::string& why) override {
        info = {};
        set_failed(out, why);
    }
    void complete() override {
        if (done)
            done(std::move(out));
    }
};

// ---- open / close ---------------------------------------------------------------------------

sqlite_store::sqlite_store(const options& opts)
    : store(opts.terminal_id), path_(opts.path), store_id_(opts.store_id),
      read_only_(opts.read_only) {
    if (!protocol::valid_terminal_id(terminal_id_))
        throw error("outbox: invalid terminal id '" + terminal_id_ + "'");
    if (!protocol::valid_store_id(store_id_))
        throw error("outbox: invalid store id '" + store_id_ + "'");
    if (path_.empty())
        throw error("outbox: empty OUTBOX_PATH");
    try {
        if (read_only_) {
            std::error_code ec;
            if (!std::filesystem::exists(path_, ec))
                throw error("outbox " + path_ +
                            " does not exist (no agent has run with this OUTBOX_PATH yet)");
            // Reading a WAL file needs its -shm index; SQLite creates it if it is missing and
            // the folder is writable (SQLite 3.22+), else the open below fails with a message.
            read_db_ =
                std::make_unique<connection>(path_, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX);
            apply_pragmas(*read_db_, true);
            check_version_read_only(*read_db_, path_);
            check_identity(*read_db_, path_, terminal_id_, store_id_);
            closed_ = true; // every write answers "outbox is read-only"
        } else {
            auto parent = std::filesystem::path(path_).parent_path();
            if (!parent.empty()) {
                std::error_code ec;
                std::filesystem::create_directories(parent, ec);
                if (ec)
                    throw error("outbox: cannot create folder " + parent.string() + ": " +
                                ec.message());
            }
            write_db_ = std::make_unique<connection>(
                path_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX);
            apply_pragmas(*write_db_, false);
            migrate(*write_db_, path_);
            bind_identity(*write_db_, path_, terminal_id_, store_id_);
            w_ = std::make_unique<write_statements>(*write_db_);
            {
                use u(w_->data_version);
                u.step();
                writer_data_version_ = u.int64(0);
            }
            // The read connection may write only in writable()'s empty probe transaction.
            read_db_ =
                std::make_unique<connection>(path_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX);
            apply_pragmas(*read_db_, true);
        }
        r_ = std::make_unique<read_statements>(*read_db_);
        if (read_only_) {
            use u(r_->data_version);
            u.step();
            seen_data_version_ = u.int64(0);
        } else {
            seen_data_version_ = writer_data_version_;
        }
    } catch (const sqlite_error& e) {
        throw error("outbox " + path_ + ": " + e.what());
    }
    if (!read_only_) {
        writer_ = std::thread([this] { writer_loop(); });
        writer_id_ = writer_.get_id();
    }
    reader_ = std::thread([this] { reader_loop(); });
}

sqlite_store::~sqlite_store() {
    close();
    stop_reader();
}

void sqlite_store::close() {
    {
        std::lock_guard lk(queue_mutex_);
        closed_ = true;
    }
    queue_cv_.notify_all();
    // From a callback (the writer thread) only mark closed: the loop drains what is queued and
    // ends; the destructor joins it later (a store must not be destroyed from its callbacks).
    if (std::this_thread::get_id() == writer_id_)
        return;
    std::lock_guard cl(close_mutex_);
    if (writer_.joinable())
        writer_.join();
}

void sqlite_store::set_commit_listener(std::function<void(const commit_info&)> listener) {
    std::lock_guard lk(queue_mutex_);
    listener_ = std::move(listener);
}

// ---- the writer -----------------------------------------------------------------------------

template <class Out, class Body>
void sqlite_store::submit(Body&& body, std::function<void(Out)> done) {
    auto r = std::make_unique<op<Out>>();
    r->body = std::forward<Body>(body);
    r->done = std::move(done);
    enqueue(std::move(r));
}

void sqlite_store::queue_probe() {
    submit<count_outcome>(
        [this](write_transaction&, commit_info&) {
            bool full = false;
            {
                std::lock_guard lk(health_mutex_);
                full = last_group_full_;
            }
            // After a full disk an empty write still commits (it needs no page): the probe
            // succeeds only once the file system has room again.
            std::string why;
            if (full && space_low(why))
                throw sqlite_error(SQLITE_FULL, why);
            count_outcome out;
            out.ok = true;
            return out;
        },
        [this](count_outcome) {
            std::lock_guard lk(health_mutex_);
            probe_queued_ = false;
        });
}

void sqlite_store::enqueue(std::unique_ptr<request> r) {
    {
        std::unique_lock lk(queue_mutex_);
        if (!closed_) {
            queue_.push_back(std::move(r));
            lk.unlock();
            queue_cv_.notify_one();
            return;
        }
    }
    // Refused at the door: answered on the caller's thread.
    r->fail(read_only_ ? read_only_text : closed_text);
    r->complete();
}

void sqlite_store::writer_loop() {
    std::vector<std::unique_ptr<request>> group;
    group.reserve(tuning::group_commit_max_requests);
    for (;;) {
        {
            std::unique_lock lk(queue_mutex_);
            queue_cv_.wait(lk, [&] { return closed_ || (!paused_ && !queue_.empty()); });
            if (queue_.empty())
                return; // closed and drained
            auto n = std::min(queue_.size(), tuning::group_commit_max_requests);
            group.clear();
            for (std::size_t i = 0; i < n; ++i) {
                group.push_back(std::move(queue_.front()));
                queue_.pop_front();
            }
        }
        run_group(group);
        group.clear();
    }
}

void sqlite_store::run_group(std::vector<std::unique_ptr<request>>& group) {
    std::string storage_error;
    std::vector<char> applied(group.size(), 0);
    note_group_start();
    group_full_ = false;
    const std::string group_error = commit_group(group, applied, storage_error);
    const bool group_failed = !group_error.empty();
    if (group_failed)
        storage_error = group_error;
    const bool ok = storage_error.empty();
    bool full = group_full_;
    if (ok) {
        bool was_full = false;
        {
            std::lock_guard lk(health_mutex_);
            was_full = last_group_full_;
        }
        full = was_full && space_low(storage_error); // still full, though this group fitted
    }
    note_group_end(ok, storage_error, full);
    if (group_failed) {
        // Nothing of this group is on disk: every request reports the storage failure.
        log::error("outbox.commit_failed",
                   {{"requests", std::to_string(group.size())}, {"error", group_error}});
        for (auto& r : group)
            r->fail(group_error);
    } else {
        notify_listener(group, applied);
    }
    for (auto& r : group) {
        try {
            r->complete();
        } catch (const std::exception& e) {
            log::error("outbox.callback_threw", {{"error", e.what()}});
        } catch (...) {
            log::error("outbox.callback_threw", {{"error", "unknown exception"}});
        }
    }
}

std::string sqlite_store::commit_group(std::vector<std::unique_ptr<request>>& group,
                                       std::vector<char>& applied, std::string& storage_error) {
    std::lock_guard lk(write_mutex_);
    try {
        write_transaction tx(*write_db_);
        {
            // Everything other connections committed is visible now: changed_elsewhere().
            use u(w_->data_version);
            u.step();
            writer_data_version_ = u.int64(0);
        }
        for (std::size_t i = 0; i < group.size(); ++i) {
            savepoint sp(tx);
            try {
                group[i]->apply(tx);
                sp.release();
                applied[i] = 1;
            } catch (const std::exception& e) {
                // Undo only this request; the others of the group go on.
                sp.rollback();
                if (!tx.active())
                    throw; // SQLite rolled the whole transaction back (disk full, I/O)
                group[i]->fail(e.what());
                log::warn("outbox.request_failed", {{"error", e.what()}});
                if (is_storage_failure(e))
                    storage_error = e.what(); // the disk, not the request (health())
                group_full_ = group_full_ || is_disk_full(e);
            }
        }
        tx.commit();
    } catch (const std::exception& e) {
        group_full_ = group_full_ || is_disk_full(e);
        std::string why = e.what();
        return why.empty() ? std::string("unknown storage failure") : why;
    }
    return {};
}

void sqlite_store::notify_listener(const std::vector<std::unique_ptr<request>>& group,
                                   const std::vector<char>& applied) {
    commit_info info;
    for (std::size_t i = 0; i < group.size(); ++i) {
        if (!applied[i])
            continue;
        const auto& ri = group[i]->info;
        info.new_own |= ri.new_own;
        info.new_replicas |= ri.new_replicas;
        info.new_peer_ack |= ri.new_peer_ack;
        info.requeued |= ri.requeued;
        info.new_cloud_state |= ri.new_cloud_state;
        info.catalog_changed |= ri.catalog_changed;
    }
    std::function<void(const commit_info&)> listener;
    {
        std::lock_guard lk(queue_mutex_);
        listener = listener_;
    }
    if (!listener)
        return;
    try {
        listener(info);
    } catch (const std::exception& e) {
        log::error("outbox.listener_threw", {{"error", e.what()}});
    }
}

// ---- asynchronous writes --------------------------------------------------------------------

void sqlite_store::publish(protocol::publish_request req,
                           std::function<void(publish_outcome)> done) {
    submit<publish_outcome>(
        [this, req = std::move(req)](write_transaction& tx, commit_info& info) {
            return do_publish(tx, req, info);
        },
        std::move(done));
}

void sqlite_store::publish_batch(std::vector<protocol::publish_request> reqs,
                                 std::function<void(batch_outcome)> done) {
    submit<batch_outcome>(
        [this, reqs = std::move(reqs)](write_transaction& tx, commit_info& info) {
            return do_publish_batch(tx, reqs, info);
        },
        std::move(done));
}

void sqlite_store::store_replicas(std::vector<protocol::message> msgs, protocol::hwm_map floor,
                                  bool restore_own, std::function<void(replicas_outcome)> done) {
    submit<replicas_outcome>(
        [this, msgs = std::move(msgs), floor = std::move(floor), restore_own](write_transaction& tx,
                                                                              commit_info& info) {
            return do_store_replicas(tx, msgs, floor, restore_own, info);
        },
        std::move(done));
}

void sqlite_store::peer_acked(std::string peer, std::uint64_t acked_through, std::size_t quorum,
                              std::function<void(peer_ack_outcome)> done) {
    submit<peer_ack_outcome>(
        [this, peer = std::move(peer), acked_through, quorum](write_transaction& tx,
                                                              commit_info& info) {
            return do_peer_acked(tx, peer, acked_through, quorum, info);
        },
        std::move(done));
}

void sqlite_store::cloud_acked(std::vector<cloud_result> results,
                               std::function<void(cloud_outcome)> done) {
    submit<cloud_outcome>(
        [this, results = std::move(results)](write_transaction& tx, commit_info& info) {
            auto out = do_cloud_acked(tx, results);
            info.new_cloud_state = !results.empty();
            return out;
        },
        std::move(done));
}

void sqlite_store::note_attempt(std::vector<std::string> ids,
                                std::function<void(count_outcome)> done) {
    submit<count_outcome>(
        [this, ids = std::move(ids)](write_transaction& tx, commit_info&) {
            return do_note_attempt(tx, ids);
        },
        std::move(done));
}

void sqlite_store::retry(std::vector<std::string> ids, std::function<void(count_outcome)> done) {
    submit<count_outcome>(
        [this, ids = std::move(ids)](write_transaction& tx, commit_info& info) {
            return do_retry(tx, ids, info);
        },
        std::move(done));
}

void sqlite_store::prune(std::int64_t older_than_ms, std::size_t max_rows,
                         std::function<void(count_outcome)> done) {
    submit<count_outcome>(
        [this, older_than_ms, max_rows](write_transaction& tx, commit_info&) {
            return do_prune(tx, older_than_ms, max_rows);
        },
        std::move(done));
}

void sqlite_store::origin_cloud_through(std::string origin, std::uint64_t through,
                                        std::function<void(count_outcome)> done) {
    submit<count_outcome>(
        [this, origin = std::move(origin), through](write_transaction& tx, commit_info& info) {
            auto out = do_origin_cloud_through(tx, origin, through);
            info.new_cloud_state = out.count > 0;
            return out;
        },
        std::move(done));
}

void sqlite_store::begin_rebuild(std::string reason, std::function<void(count_outcome)> done) {
    submit<count_outcome>(
        [this, reason = std::move(reason)](write_transaction& tx, commit_info&) {
            return do_begin_rebuild(tx, reason);
        },
        std::move(done));
}

void sqlite_store::finish_rebuild(std::vector<std::string> excluded_terminals,
                                  std::function<void(count_outcome)> done) {
    submit<count_outcome>(
        [this, excluded = std::move(excluded_terminals)](write_transaction& tx, commit_info&) {
            return do_finish_rebuild(tx, excluded);
        },
        std::move(done));
}

void sqlite_store::lift_trust_cap(std::string terminal, std::function<void(count_outcome)> done) {
    submit<count_outcome>(
        [this, terminal = std::move(terminal)](write_transaction& tx, commit_info&) {
            return do_lift_trust_cap(tx, terminal);
        },
        std::move(done));
}

void sqlite_store::apply_catalog(protocol::catalog_page page, std::string source,
                                 std::function<void(catalog_outcome)> done) {
    submit<catalog_outcome>(
        [this, page = std::move(page), source = std::move(source)](write_transaction& tx,
                                                                   commit_info& info) {
            return do_apply_catalog(tx, page, source, info);
        },
        std::move(done));
}

void sqlite_store::purge_catalog(std::int64_t older_than_ms,
                                 std::function<void(count_outcome)> done) {
    submit<count_outcome>(
        [this, older_than_ms](write_transaction& tx, commit_info&) {
            return do_purge_catalog(tx, older_than_ms);
        },
        std::move(done));
}

// ---- test hooks -----------------------------------------------------------------------------

void sqlite_store::pause_writer(bool paused) {
    {
        std::lock_guard lk(queue_mutex_);
        paused_ = paused;
    }
    queue_cv_.notify_all();
}

std::string sqlite_store::exec_on_writer(const std::string& text) {
    if (!write_db_)
        throw error("outbox: no write connection (read-only)");
    std::lock_guard lk(write_mutex_);
    try {
        statement s(*write_db_, text);
        use u(s);
        return u.step() ? u.text(0) : std::string();
    } catch (const sqlite_error& e) {
        throw error(e.what());
    }
}

namespace test_hooks {

void pause_writer(store& s, bool paused) {
    dynamic_cast<sqlite_store&>(s).pause_writer(paused);
}

std::string exec_on_writer(store& s, const std::string& sql) {
    return dynamic_cast<sqlite_store&>(s).exec_on_writer(sql);
}

} // namespace test_hooks

} // namespace lanesync::outbox::detail
