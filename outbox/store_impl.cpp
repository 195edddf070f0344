#include "outbox/detail/store_impl.hpp"

#include "base/log.hpp"
#include "base/tuning.hpp"
#include "outbox/detail/queries.hpp"
#include "outbox/detail/schema.hpp"
#include "outbox/detail/test_hooks.hpp"

#include <algorithm>
#include <filesystem>
#include <system_error>

namespace lanesync::outbox::detail {
namespace {

constexpr int state_int(state s) {
    return static_cast<int>(s);
}

/// Reads the columns of sql::*'s record column list (see queries.hpp).
record read_record(const use& u, const std::string& own_origin) {
    record r;
    r.msg.id = u.text(0);
    r.msg.origin = u.text(1);
    r.msg.seq = u.uint64(2);
    r.msg.topic = u.text(3);
    r.msg.prio = static_cast<protocol::priority>(std::clamp<std::int64_t>(u.int64(4), 0, 3));
    r.msg.data = u.text(5);
    r.msg.created_at_ms = u.int64(6);
    r.stored_at_ms = u.int64(7);
    r.st = static_cast<state>(std::clamp<std::int64_t>(u.int64(8), 0, 3));
    r.peer_acked_at_ms = u.opt_int64(9);
    r.cloud_acked_at_ms = u.opt_int64(10);
    r.attempts = static_cast<std::uint32_t>(u.int64(11));
    r.last_error = u.text(12);
    r.own = r.msg.origin == own_origin;
    return r;
}

std::int64_t latency(std::int64_t now, std::int64_t since) {
    return std::max<std::int64_t>(0, now - since);
}

// Failure outcomes: what a request reports when it (or its whole group) was not committed.
void set_failed(publish_outcome& o, const std::string& why) {
    o = publish_outcome{};
    o.k = publish_outcome::storage_failed;
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

constexpr const char* closed_text = "outbox closed";
constexpr const char* read_only_text = "outbox is read-only";

} // namespace

// ---- prepared statements --------------------------------------------------------------------

struct sqlite_store::write_statements {
    explicit write_statements(connection& db)
        : get_by_id(db, sql::get_by_id), insert_message(db, sql::insert_message),
          id_at_seq(db, sql::id_at_seq), ensure_origin(db, sql::ensure_origin),
          origin_row(db, sql::origin_row), set_origin(db, sql::set_origin),
          all_origins(db, sql::all_origins), first_seq_in_state(db, sql::first_seq_in_state),
          upsert_peer(db, sql::upsert_peer), kth_peer_mark(db, sql::kth_peer_mark),
          promote_to_peer_ack(db, sql::promote_to_peer_ack), cloud_ack_one(db, sql::cloud_ack_one),
          cloud_reject_one(db, sql::cloud_reject_one), note_attempt(db, sql::note_attempt),
          retry_one(db, sql::retry_one), retry_all(db, sql::retry_all),
          replicas_cloud_acked(db, sql::replicas_cloud_acked),
          first_young_own(db, sql::first_young_own),
          first_young_replica(db, sql::first_young_replica), delete_prefix(db, sql::delete_prefix),
          data_version(db, "PRAGMA data_version") {}

    statement get_by_id, insert_message, id_at_seq, ensure_origin, origin_row, set_origin,
        all_origins, first_seq_in_state, upsert_peer, kth_peer_mark, promote_to_peer_ack,
        cloud_ack_one, cloud_reject_one, note_attempt, retry_one, retry_all, replicas_cloud_acked,
        first_young_own, first_young_replica, delete_prefix, data_version;
};

struct sqlite_store::read_statements {
    explicit read_statements(connection& db)
        : get_by_id(db, sql::get_by_id), by_state(db, sql::by_state), after_seq(db, sql::after_seq),
          oldest_in_state(db, sql::oldest_in_state), all_counts(db, sql::all_counts),
          all_origins(db, sql::all_origins), all_peers(db, sql::all_peers),
          data_version(db, "PRAGMA data_version") {}

    statement get_by_id, by_state, after_seq, oldest_in_state, all_counts, all_origins, all_peers,
        data_version;
};

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
        [](write_transaction&, commit_info&) {
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
    bool group_failed = false;
    std::string group_error;
    std::string storage_error;
    std::vector<char> applied(group.size(), 0);
    note_group_start();
    {
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
                }
            }
            tx.commit();
        } catch (const std::exception& e) {
            group_failed = true;
            group_error = e.what();
        }
    }

    if (group_failed)
        storage_error = group_error;
    note_group_end(storage_error.empty(), storage_error);
    commit_info info;
    if (group_failed) {
        // Nothing of this group is on disk: every request reports the storage failure.
        log::error("outbox.commit_failed",
                   {{"requests", std::to_string(group.size())}, {"error", group_error}});
        for (auto& r : group)
            r->fail(group_error);
    } else {
        for (std::size_t i = 0; i < group.size(); ++i) {
            if (!applied[i])
                continue;
            const auto& ri = group[i]->info;
            info.new_own |= ri.new_own;
            info.new_replicas |= ri.new_replicas;
            info.new_peer_ack |= ri.new_peer_ack;
            info.requeued |= ri.requeued;
        }
        std::function<void(const commit_info&)> listener;
        {
            std::lock_guard lk(queue_mutex_);
            listener = listener_;
        }
        if (listener) {
            try {
                listener(info);
            } catch (const std::exception& e) {
                log::error("outbox.listener_threw", {{"error", e.what()}});
            }
        }
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

// ---- asynchronous writes --------------------------------------------------------------------

void sqlite_store::publish(protocol::publish_request req,
                           std::function<void(publish_outcome)> done) {
    submit<publish_outcome>(
        [this, req = std::move(req)](write_transaction& tx, commit_info& info) {
            return do_publish(tx, req, info);
        },
        std::move(done));
}

void sqlite_store::store_replicas(std::vector<protocol::message> msgs, protocol::hwm_map floor,
                                  std::function<void(replicas_outcome)> done) {
    submit<replicas_outcome>(
        [this, msgs = std::move(msgs), floor = std::move(floor)](write_transaction& tx,
                                                                 commit_info& info) {
            return do_store_replicas(tx, msgs, floor, info);
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
        [this, results = std::move(results)](write_transaction& tx, commit_info&) {
            return do_cloud_acked(tx, results);
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

void sqlite_store::prune(std::int64_t older_than_ms, std::function<void(count_outcome)> done) {
    submit<count_outcome>(
        [this, older_than_ms](write_transaction& tx, commit_info&) {
            return do_prune(tx, older_than_ms);
        },
        std::move(done));
}

void sqlite_store::origin_cloud_through(std::string origin, std::uint64_t through,
                                        std::function<void(count_outcome)> done) {
    submit<count_outcome>(
        [this, origin = std::move(origin), through](write_transaction& tx, commit_info&) {
            return do_origin_cloud_through(tx, origin, through);
        },
        std::move(done));
}

// ---- write steps (writer thread, inside the group's transaction) ----------------------------

std::optional<record> sqlite_store::find(write_transaction&, const std::string& id) {
    use u(w_->get_by_id);
    u.bind(1, id);
    if (!u.step())
        return std::nullopt;
    return read_record(u, terminal_id_);
}

sqlite_store::origin_marks sqlite_store::read_origin(write_transaction&,
                                                     const std::string& origin) {
    {
        use u(w_->origin_row);
        u.bind(1, origin);
        if (u.step())
            return {u.uint64(0), u.uint64(1)};
    }
    use ins(w_->ensure_origin);
    ins.bind(1, origin).run();
    return {};
}

void sqlite_store::write_origin(write_transaction&, const std::string& origin,
                                const origin_marks& m) {
    use u(w_->set_origin);
    u.bind(1, origin).bind(2, m.hwm).bind(3, m.cloud_through).run();
}

std::uint64_t sqlite_store::own_cloud_through(write_transaction&, std::uint64_t own_hwm) {
    // Own seqs 1..hwm all exist or were pruned after cloud_ack, so the own cloud_through is
    // just below the lowest seq not yet cloud_ack: three index seeks, no scan.
    std::uint64_t through = own_hwm;
    for (state s : {state::pending, state::peer_ack, state::failed}) {
        use u(w_->first_seq_in_state);
        u.bind(1, terminal_id_).bind(2, state_int(s));
        if (u.step())
            through = std::min(through, u.uint64(0) - 1);
    }
    return through;
}

std::size_t sqlite_store::mark_replicas_in_cloud(write_transaction&, const std::string& origin,
                                                 std::uint64_t through, std::int64_t now) {
    use u(w_->replicas_cloud_acked);
    u.bind(1, origin).bind(2, through).bind(3, now).run();
    return static_cast<std::size_t>(u.changes());
}

protocol::hwm_map sqlite_store::all_hwm(write_transaction&) {
    protocol::hwm_map out;
    use u(w_->all_origins);
    while (u.step())
        out[u.text(0)] = u.uint64(1);
    return out;
}

publish_outcome sqlite_store::do_publish(write_transaction& tx,
                                         const protocol::publish_request& req, commit_info& info) {
    publish_outcome out;
    std::string id;
    if (req.id) {
        id = protocol::normalize_uuid(*req.id);
        if (auto held = find(tx, id)) {
            // Idempotency key seen before (own message, or a replica of another lane's).
            bool same = held->msg.topic == req.topic && held->msg.prio == req.prio &&
                        held->msg.data == req.data;
            out.k = same ? publish_outcome::existing : publish_outcome::conflict;
            out.rec = std::move(*held);
            return out;
        }
    } else {
        id = protocol::new_uuid_v7();
    }

    // seq is read inside the write transaction: another process publishing into the same file
    // waits on the write lock, so it can never hand out the same seq. If this request is rolled
    // back (its savepoint) the hwm update goes with it, so the next request reuses the seq.
    auto own = read_origin(tx, terminal_id_);
    const std::uint64_t seq = own.hwm + 1;
    const auto now = protocol::now_ms();
    {
        use u(w_->insert_message);
        u.bind(1, id).bind(2, terminal_id_).bind(3, seq).bind(4, req.topic);
        u.bind(5, static_cast<int>(req.prio)).bind(6, req.data).bind(7, now).bind(8, now);
        u.bind(9, state_int(state::pending)).bind_null(10).run();
    }
    own.hwm = seq;
    write_origin(tx, terminal_id_, own);
    info.new_own = true;

    out.k = publish_outcome::created;
    out.rec.msg = protocol::message{id, terminal_id_, seq, req.topic, req.prio, req.data, now};
    out.rec.st = state::pending;
    out.rec.own = true;
    out.rec.stored_at_ms = now;
    return out;
}

replicas_outcome sqlite_store::do_store_replicas(write_transaction& tx,
                                                 const std::vector<protocol::message>& msgs,
                                                 const protocol::hwm_map& floor,
                                                 commit_info& info) {
    replicas_outcome out;
    const auto now = protocol::now_ms();
    std::map<std::string, origin_marks, std::less<>> marks; // touched origins, written at the end
    auto marks_of = [&](const std::string& origin) -> origin_marks& {
        auto it = marks.find(origin);
        if (it == marks.end())
            it = marks.emplace(origin, read_origin(tx, origin)).first;
        return it->second;
    };
    auto refuse = [&](const protocol::message& m, const char* why) {
        ++out.refused;
        log::warn(
            "outbox.replica_refused",
            {{"id", m.id}, {"origin", m.origin}, {"seq", std::to_string(m.seq)}, {"why", why}});
    };

    // floor[o] = f: every message of o below f is in the cloud (pruned at the sender), so it
    // counts as held here and as cloud_ack.
    for (const auto& [origin, f] : floor) {
        if (origin == terminal_id_ || f <= 1)
            continue;
        auto& m = marks_of(origin);
        m.hwm = std::max(m.hwm, f - 1);
        if (f - 1 > m.cloud_through) {
            m.cloud_through = f - 1;
            mark_replicas_in_cloud(tx, origin, m.cloud_through, now);
        }
    }

    std::string gap_text;
    for (const auto& m : msgs) {
        if (m.origin == terminal_id_)
            continue; // our own message coming back: this lane is its source of truth
        auto& om = marks_of(m.origin);
        if (auto held = find(tx, m.id)) {
            if (held->msg == m) {
                ++out.duplicates;
            } else {
                refuse(m, "same id, other content");
                // The same id accepted on two lanes (a POS retrying elsewhere with its id):
                // name it, so the link's close reason and status say what blocks replication.
                if (out.conflict.empty())
                    out.conflict = "message id " + m.id + " of " + m.origin + ":" +
                                   std::to_string(m.seq) + " is already held as " +
                                   held->msg.origin + ":" + std::to_string(held->msg.seq);
            }
            continue;
        }
        if (m.seq <= om.hwm) {
            use u(w_->id_at_seq);
            u.bind(1, m.origin).bind(2, m.seq);
            if (u.step())
                refuse(m, "same origin and seq, other id");
            else
                ++out.duplicates; // below the floor: pruned here after reaching the cloud
            continue;
        }
        if (m.seq != om.hwm + 1) {
            if (!out.gap)
                gap_text = !out.conflict.empty()
                               ? out.conflict
                               : "gap: origin " + m.origin + " expected seq " +
                                     std::to_string(om.hwm + 1) + ", got " + std::to_string(m.seq);
            out.gap = true;
            continue;
        }
        const bool in_cloud = m.seq <= om.cloud_through;
        use u(w_->insert_message);
        u.bind(1, m.id).bind(2, m.origin).bind(3, m.seq).bind(4, m.topic);
        u.bind(5, static_cast<int>(m.prio)).bind(6, m.data).bind(7, m.created_at_ms).bind(8, now);
        u.bind(9, state_int(in_cloud ? state::cloud_ack : state::pending));
        if (in_cloud)
            u.bind(10, now);
        else
            u.bind_null(10);
        u.run();
        om.hwm = m.seq;
        ++out.inserted;
        info.new_replicas = true;
    }
    for (const auto& [origin, m] : marks)
        write_origin(tx, origin, m);
    out.hwm = all_hwm(tx);
    // A gap is not a storage failure: what came before it is committed and counted, but the
    // batch was not stored whole, so it must not be acked as such.
    out.ok = !out.gap && out.conflict.empty();
    out.error = !out.conflict.empty() ? out.conflict : std::move(gap_text);
    return out;
}

peer_ack_outcome sqlite_store::do_peer_acked(write_transaction& tx, const std::string& peer,
                                             std::uint64_t acked_through, std::size_t quorum,
                                             commit_info& info) {
    peer_ack_outcome out;
    const auto now = protocol::now_ms();
    {
        use u(w_->upsert_peer);
        u.bind(1, peer).bind(2, acked_through).bind(3, now).run();
    }
    // The seq that `quorum` distinct peers hold: the quorum-th largest mark.
    std::uint64_t through = 0;
    {
        use u(w_->kth_peer_mark);
        u.bind(1, static_cast<std::int64_t>(std::max<std::size_t>(quorum, 1) - 1));
        if (u.step())
            through = u.uint64(0);
    }
    through = std::min(through, read_origin(tx, terminal_id_).hwm);
    out.quorum_through = through;
    if (through > 0) {
        use u(w_->promote_to_peer_ack);
        u.bind(1, terminal_id_).bind(2, now).bind(3, through);
        while (u.step())
            out.promoted_latency_ms.push_back(latency(now, u.int64(0)));
    }
    info.new_peer_ack = !out.promoted_latency_ms.empty();
    out.ok = true;
    return out;
}

cloud_outcome sqlite_store::do_cloud_acked(write_transaction& tx,
                                           const std::vector<cloud_result>& results) {
    cloud_outcome out;
    const auto now = protocol::now_ms();
    for (const auto& r : results) {
        if (r.k == cloud_result::rejected) {
            use u(w_->cloud_reject_one);
            u.bind(1, r.id).bind(2, terminal_id_).bind(3, r.error).run();
            out.failed += static_cast<std::size_t>(u.changes());
        } else {
            use u(w_->cloud_ack_one);
            u.bind(1, r.id).bind(2, terminal_id_).bind(3, now);
            while (u.step()) {
                ++out.acked;
                auto since = u.is_null(0) ? u.int64(1) : u.int64(0);
                out.latency_ms.push_back(latency(now, since));
            }
        }
    }
    auto own = read_origin(tx, terminal_id_);
    auto through = own_cloud_through(tx, own.hwm);
    if (through != own.cloud_through) {
        own.cloud_through = through;
        write_origin(tx, terminal_id_, own);
    }
    out.ok = true;
    return out;
}

count_outcome sqlite_store::do_note_attempt(write_transaction&,
                                            const std::vector<std::string>& ids) {
    count_outcome out;
    for (const auto& id : ids) {
        use u(w_->note_attempt);
        u.bind(1, id).run();
        out.count += static_cast<std::size_t>(u.changes());
    }
    out.ok = true;
    return out;
}

count_outcome sqlite_store::do_retry(write_transaction&, const std::vector<std::string>& ids,
                                     commit_info& info) {
    count_outcome out;
    auto take = [&](use& u) {
        while (u.step()) {
            ++out.count;
            if (u.int64(0) == state_int(state::peer_ack))
                info.new_peer_ack = true;
        }
    };
    if (ids.empty()) {
        use u(w_->retry_all);
        u.bind(1, terminal_id_);
        take(u);
    } else {
        for (const auto& id : ids) {
            use u(w_->retry_one);
            u.bind(1, id).bind(2, terminal_id_);
            take(u);
        }
    }
    info.requeued = out.count > 0;
    out.ok = true;
    return out;
}

count_outcome sqlite_store::do_prune(write_transaction& tx, std::int64_t older_than_ms) {
    // Only a prefix of each origin is ever deleted: seqs 1..P where every message is cloud_ack
    // and old enough. So what a lane holds of an origin is always one contiguous range ending
    // at its hwm, and "the first seq still held" is a valid floor for peers (docs/outbox.md).
    count_outcome out;
    std::vector<std::pair<std::string, origin_marks>> origins;
    {
        use u(w_->all_origins);
        while (u.step())
            origins.push_back({u.text(0), {u.uint64(1), u.uint64(2)}});
    }
    for (auto& [origin, m] : origins) {
        const bool own = origin == terminal_id_;
        std::uint64_t limit = m.cloud_through;
        if (own) {
            limit = own_cloud_through(tx, m.hwm);
            if (limit != m.cloud_through) {
                m.cloud_through = limit;
                write_origin(tx, origin, m);
            }
        }
        if (limit == 0)
            continue;
        {
            use u(own ? w_->first_young_own : w_->first_young_replica);
            u.bind(1, origin).bind(2, older_than_ms);
            if (u.step())
                limit = std::min(limit, u.uint64(0) - 1);
        }
        if (limit == 0)
            continue;
        use u(w_->delete_prefix);
        u.bind(1, origin).bind(2, limit).run();
        out.count += static_cast<std::size_t>(u.changes());
    }
    out.ok = true;
    return out;
}

count_outcome sqlite_store::do_origin_cloud_through(write_transaction& tx,
                                                    const std::string& origin,
                                                    std::uint64_t through) {
    count_outcome out;
    out.ok = true;
    if (origin == terminal_id_ || through == 0)
        return out; // own messages reach cloud_ack only through the cloud's own answers
    auto m = read_origin(tx, origin);
    if (through > m.cloud_through) {
        m.cloud_through = through;
        write_origin(tx, origin, m);
    }
    out.count = mark_replicas_in_cloud(tx, origin, through, protocol::now_ms());
    return out;
}

// ---- reads ----------------------------------------------------------------------------------

std::optional<record> sqlite_store::get(std::string_view id) {
    std::lock_guard lk(read_mutex_);
    use u(r_->get_by_id);
    u.bind(1, id);
    if (!u.step())
        return std::nullopt;
    return read_record(u, terminal_id_);
}

counts sqlite_store::get_counts() {
    counts c;
    std::lock_guard lk(read_mutex_);
    read_transaction rt(*read_db_);
    {
        use u(r_->all_counts);
        while (u.step()) {
            auto origin = u.text(0);
            auto n = static_cast<std::uint64_t>(std::max<std::int64_t>(0, u.int64(2)));
            if (origin != terminal_id_) {
                c.replicas[origin] += n;
                continue;
            }
            switch (u.int64(1)) {
            case 0:
                c.pending += n;
                break;
            case 1:
                c.peer_ack += n;
                break;
            case 2:
                c.cloud_ack += n;
                break;
            case 3:
                c.failed += n;
                break;
            default:
                break;
            }
        }
    }
    {
        use u(r_->oldest_in_state);
        u.bind(1, terminal_id_).bind(2, state_int(state::pending));
        if (u.step())
            c.oldest_pending_stored_at_ms = u.int64(0);
    }
    {
        use u(r_->oldest_in_state);
        u.bind(1, terminal_id_).bind(2, state_int(state::peer_ack));
        if (u.step())
            c.oldest_peer_ack_at_ms = u.opt_int64(1);
    }
    {
        use u(r_->all_origins);
        while (u.step())
            if (u.text(0) == terminal_id_)
                c.own_last_seq = u.uint64(1);
    }
    return c;
}

protocol::hwm_map sqlite_store::hwm() {
    protocol::hwm_map out;
    std::lock_guard lk(read_mutex_);
    use u(r_->all_origins);
    while (u.step())
        out[u.text(0)] = u.uint64(1);
    return out;
}

protocol::hwm_map sqlite_store::cloud_through() {
    protocol::hwm_map out;
    std::lock_guard lk(read_mutex_);
    use u(r_->all_origins);
    while (u.step())
        out[u.text(0)] = u.uint64(2);
    return out;
}

store::peer_batch sqlite_store::next_for_peer(std::string_view peer, const protocol::hwm_map& after,
                                              std::size_t limit, std::size_t max_bytes) {
    peer_batch b;
    if (limit == 0)
        return b;
    std::lock_guard lk(read_mutex_);
    read_transaction rt(*read_db_);
    // Own messages first (they wait for peer_ack), then other origins by name.
    std::vector<std::pair<std::string, std::uint64_t>> origins;
    {
        use u(r_->all_origins);
        while (u.step())
            origins.emplace_back(u.text(0), u.uint64(1));
    }
    std::stable_partition(origins.begin(), origins.end(),
                          [&](const auto& o) { return o.first == terminal_id_; });
    std::size_t bytes = 0;
    bool full = false;
    for (const auto& [origin, hwm] : origins) {
        if (origin == peer)
            continue;
        auto it = after.find(origin);
        const std::uint64_t from = it == after.end() ? 0 : it->second;
        if (from >= hwm)
            continue;
        use u(r_->after_seq);
        u.bind(1, origin).bind(2, from);
        u.bind(3, static_cast<std::int64_t>(limit - b.messages.size()));
        bool first = true;
        while (u.step()) {
            auto rec = read_record(u, terminal_id_);
            if (first && rec.msg.seq > from + 1)
                b.floor[origin] = rec.msg.seq; // from+1 .. seq-1 were pruned after cloud_ack
            first = false;
            auto size = protocol::encoded_size(rec.msg);
            if (!b.messages.empty() && bytes + size > max_bytes) {
                full = true;
                break;
            }
            bytes += size;
            b.messages.push_back(std::move(rec.msg));
        }
        if (first)
            b.floor[origin] = hwm + 1; // everything above `from` was pruned here
        if (full || b.messages.size() >= limit)
            break;
    }
    return b;
}

std::vector<record> sqlite_store::next_for_cloud(std::size_t limit, bool include_pending) {
    std::vector<record> out;
    if (limit == 0)
        return out;
    std::lock_guard lk(read_mutex_);
    read_transaction rt(*read_db_);
    // One range scan per state, merged by seq (cheaper than sorting an IN (...) of both states).
    auto scan = [&](state s) {
        use u(r_->by_state);
        u.bind(1, terminal_id_).bind(2, state_int(s)).bind(3, static_cast<std::int64_t>(limit));
        while (u.step())
            out.push_back(read_record(u, terminal_id_));
    };
    scan(state::peer_ack);
    if (include_pending) {
        scan(state::pending);
        std::sort(out.begin(), out.end(),
                  [](const record& a, const record& b) { return a.msg.seq < b.msg.seq; });
        if (out.size() > limit)
            out.resize(limit);
    }
    return out;
}

std::vector<record> sqlite_store::list(state st, std::size_t limit) {
    std::vector<record> out;
    std::lock_guard lk(read_mutex_);
    use u(r_->by_state);
    u.bind(1, terminal_id_).bind(2, state_int(st)).bind(3, static_cast<std::int64_t>(limit));
    while (u.step())
        out.push_back(read_record(u, terminal_id_));
    return out;
}

std::vector<peer_mark> sqlite_store::peer_marks() {
    std::vector<peer_mark> out;
    std::lock_guard lk(read_mutex_);
    use u(r_->all_peers);
    while (u.step())
        out.push_back({u.text(0), u.uint64(1), u.opt_int64(2)});
    return out;
}

bool sqlite_store::changed_elsewhere() {
    // PRAGMA data_version changes when *another* connection commits. The write connection
    // is the one whose own commits do not count; when the writer is busy, use the value it
    // sampled at the start of its current transaction.
    std::int64_t v = 0;
    if (read_only_) {
        std::lock_guard lk(read_mutex_);
        use u(r_->data_version);
        u.step();
        v = u.int64(0);
    } else {
        std::unique_lock lk(write_mutex_, std::try_to_lock);
        if (lk.owns_lock()) {
            use u(w_->data_version);
            u.step();
            writer_data_version_ = u.int64(0);
        }
        v = writer_data_version_;
    }
    std::lock_guard lk(version_mutex_);
    bool changed = v != seen_data_version_;
    seen_data_version_ = v;
    return changed;
}

std::vector<std::string> sqlite_store::integrity_check() {
    std::vector<std::string> problems;
    std::lock_guard lk(read_mutex_);
    try {
        read_transaction rt(*read_db_);
        {
            statement s(*read_db_, "PRAGMA integrity_check");
            use u(s);
            while (u.step())
                if (auto t = u.text(0); t != "ok")
                    problems.push_back("integrity_check: " + t);
        }
        {
            statement s(*read_db_, "PRAGMA foreign_key_check");
            use u(s);
            while (u.step())
                problems.push_back("foreign key: table " + u.text(0) + " rowid " + u.text(1) +
                                   " references missing " + u.text(2));
        }
        // The counts table (kept by triggers) against real counts.
        std::map<std::pair<std::string, std::int64_t>, std::int64_t> real, kept;
        {
            statement s(*read_db_,
                        "SELECT origin, state, COUNT(*) FROM messages GROUP BY origin, state");
            use u(s);
            while (u.step())
                real[{u.text(0), u.int64(1)}] = u.int64(2);
        }
        {
            use u(r_->all_counts);
            while (u.step())
                if (u.int64(2) != 0)
                    kept[{u.text(0), u.int64(1)}] = u.int64(2);
        }
        for (const auto& [k, n] : real)
            if (kept[k] != n)
                problems.push_back("counts: origin " + k.first + " state " +
                                   std::to_string(k.second) + " says " + std::to_string(kept[k]) +
                                   ", messages hold " + std::to_string(n));
        for (const auto& [k, n] : kept)
            if (n != 0 && !real.count(k))
                problems.push_back("counts: origin " + k.first + " state " +
                                   std::to_string(k.second) + " says " + std::to_string(n) +
                                   ", messages hold 0");
        // Every origin: what is held is one contiguous range ending at hwm, and whatever is
        // missing below it is known to be in the cloud.
        statement range(*read_db_,
                        "SELECT min(seq), max(seq), COUNT(*) FROM messages WHERE origin = ?1");
        use o(r_->all_origins);
        while (o.step()) {
            auto origin = o.text(0);
            auto hwm = o.uint64(1), through = o.uint64(2);
            use u(range);
            u.bind(1, origin);
            u.step();
            auto n = u.uint64(2);
            if (n == 0) {
                if (hwm > through)
                    problems.push_back("origin " + origin + ": hwm " + std::to_string(hwm) +
                                       " but no message held and cloud_through only " +
                                       std::to_string(through));
                continue;
            }
            auto lo = u.uint64(0), hi = u.uint64(1);
            if (hi != hwm)
                problems.push_back("origin " + origin + ": highest seq held " + std::to_string(hi) +
                                   " but hwm " + std::to_string(hwm));
            if (hi - lo + 1 != n)
                problems.push_back("origin " + origin + ": seq gap (" + std::to_string(n) +
                                   " messages between " + std::to_string(lo) + " and " +
                                   std::to_string(hi) + ")");
            if (lo - 1 > through)
                problems.push_back("origin " + origin + ": seqs below " + std::to_string(lo) +
                                   " missing but cloud_through only " + std::to_string(through));
        }
    } catch (const sqlite_error& e) {
        problems.push_back(std::string("sqlite: ") + e.what());
    }
    return problems;
}

bool sqlite_store::writable() {
    if (read_only_)
        return false;
    {
        std::lock_guard lk(queue_mutex_);
        if (closed_)
            return false;
    }
    std::lock_guard lk(read_mutex_);
    // An empty write transaction on the read connection: takes and releases the write lock
    // with a short wait, so /healthz never hangs behind a long writer.
    sqlite3_busy_timeout(read_db_->get(), 1000);
    bool ok = true;
    try {
        read_db_->exec("BEGIN IMMEDIATE");
        read_db_->exec("COMMIT");
    } catch (const sqlite_error& e) {
        ok = false;
        if (read_db_->in_transaction())
            sqlite3_exec(read_db_->get(), "ROLLBACK", nullptr, nullptr, nullptr);
        log::warn("outbox.not_writable", {{"error", e.what()}});
    }
    sqlite3_busy_timeout(read_db_->get(), tuning::sqlite_busy_timeout_ms);
    return ok;
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
