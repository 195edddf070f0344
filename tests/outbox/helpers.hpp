#pragma once
// Shared helpers of the outbox tests: a unique temp folder per test, blocking wrappers over the
// asynchronous writes (promise/future, never sleeps), a raw SQLite handle to look behind the
// store's back, and message builders.

#include "outbox/outbox.hpp"

#include <doctest/doctest.h>
#include <sqlite3.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <stdexcept>
#include <string>
#include <vector>

namespace lanesync::outbox::testing {

namespace fs = std::filesystem;

/// A fresh folder under the system temp dir, removed with everything in it at scope exit.
class temp_dir {
public:
    temp_dir() {
        auto tmpl = (fs::temp_directory_path() / "lanesync-outbox-XXXXXX").string();
        if (!mkdtemp(tmpl.data()))
            throw std::runtime_error("mkdtemp failed");
        path_ = tmpl;
    }
    ~temp_dir() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    const fs::path& path() const { return path_; }
    std::string file(const std::string& name) const { return (path_ / name).string(); }

private:
    fs::path path_;
};

inline options opts(const std::string& path, const std::string& terminal = "L1",
                    const std::string& store_id = "store-1", bool read_only = false) {
    options o;
    o.path = path;
    o.terminal_id = terminal;
    o.store_id = store_id;
    o.read_only = read_only;
    return o;
}

inline protocol::publish_request req(const std::string& data = R"({"n":1})",
                                     std::optional<std::string> id = std::nullopt,
                                     const std::string& topic = "transaction",
                                     protocol::priority p = protocol::priority::normal) {
    protocol::publish_request r;
    r.id = std::move(id);
    r.topic = topic;
    r.prio = p;
    r.data = data;
    return r;
}

/// A deterministic UUID for message `seq` of lane number `lane`.
inline std::string uuid(unsigned lane, std::uint64_t seq) {
    char buf[48];
    std::snprintf(buf, sizeof buf, "%08x-0000-7000-8000-%012llx", lane,
                  static_cast<unsigned long long>(seq));
    return buf;
}

/// A replica of lane `origin` (lane number `lane` for its ids).
inline protocol::message replica(const std::string& origin, unsigned lane, std::uint64_t seq,
                                 const std::string& data = R"({"r":1})") {
    protocol::message m;
    m.id = uuid(lane, seq);
    m.origin = origin;
    m.seq = seq;
    m.topic = "stock";
    m.prio = protocol::priority::high;
    m.data = data;
    m.created_at_ms = 1'700'000'000'000 + static_cast<std::int64_t>(seq);
    return m;
}

/// Blocks until the asynchronous write started by `start(done)` calls back.
template <class Out, class Start> Out wait_for(Start&& start) {
    std::promise<Out> p;
    auto f = p.get_future();
    start([&p](Out o) { p.set_value(std::move(o)); });
    return f.get();
}

inline replicas_outcome store_replicas_sync(store& s, std::vector<protocol::message> msgs,
                                            protocol::hwm_map floor = {},
                                            bool restore_own = false) {
    return wait_for<replicas_outcome>(
        [&](auto done) { s.store_replicas(std::move(msgs), std::move(floor), restore_own, done); });
}
/// store_replicas with restore_own = true (a rebuilding lane).
inline replicas_outcome restore_sync(store& s, std::vector<protocol::message> msgs,
                                     protocol::hwm_map floor = {}) {
    return store_replicas_sync(s, std::move(msgs), std::move(floor), true);
}
inline count_outcome begin_rebuild_sync(store& s, const std::string& reason) {
    return wait_for<count_outcome>([&](auto done) { s.begin_rebuild(reason, done); });
}
inline count_outcome finish_rebuild_sync(store& s, std::vector<std::string> excluded = {}) {
    return wait_for<count_outcome>([&](auto done) { s.finish_rebuild(std::move(excluded), done); });
}
inline count_outcome lift_trust_cap_sync(store& s, std::string terminal) {
    return wait_for<count_outcome>([&](auto done) { s.lift_trust_cap(terminal, done); });
}
inline peer_ack_outcome peer_acked_sync(store& s, const std::string& peer, std::uint64_t through,
                                        std::size_t quorum) {
    return wait_for<peer_ack_outcome>(
        [&](auto done) { s.peer_acked(peer, through, quorum, done); });
}
inline cloud_outcome cloud_acked_sync(store& s, std::vector<cloud_result> results) {
    return wait_for<cloud_outcome>([&](auto done) { s.cloud_acked(std::move(results), done); });
}
inline count_outcome note_attempt_sync(store& s, std::vector<std::string> ids) {
    return wait_for<count_outcome>([&](auto done) { s.note_attempt(std::move(ids), done); });
}
inline count_outcome origin_cloud_through_sync(store& s, const std::string& origin,
                                               std::uint64_t through) {
    return wait_for<count_outcome>(
        [&](auto done) { s.origin_cloud_through(origin, through, done); });
}

/// Publishes `n` messages and returns their records (asserting each was created).
inline std::vector<record> publish_n(store& s, int n) {
    std::vector<record> out;
    for (int i = 0; i < n; ++i) {
        auto o = publish_sync(s, req("{\"i\":" + std::to_string(i) + "}"));
        REQUIRE(o.k == publish_outcome::created);
        out.push_back(o.rec);
    }
    return out;
}

inline cloud_result cloud(const std::string& id, cloud_result::kind k, std::string err = {}) {
    cloud_result r;
    r.id = id;
    r.k = k;
    r.error = std::move(err);
    return r;
}

/// A plain SQLite connection on the same file, for checks the store's API does not offer.
class raw_db {
public:
    explicit raw_db(const std::string& path) {
        if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK)
            throw std::runtime_error("raw open failed");
        sqlite3_busy_timeout(db_, 10'000);
    }
    ~raw_db() { sqlite3_close_v2(db_); }
    raw_db(const raw_db&) = delete;
    raw_db& operator=(const raw_db&) = delete;
    sqlite3* get() const { return db_; }

    void exec(const std::string& sql) {
        char* err = nullptr;
        if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
            std::string e = err ? err : "?";
            sqlite3_free(err);
            throw std::runtime_error(e);
        }
    }
    /// Every row, every column as text.
    std::vector<std::vector<std::string>> rows(const std::string& sql) {
        sqlite3_stmt* st = nullptr;
        if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &st, nullptr) != SQLITE_OK)
            throw std::runtime_error(sqlite3_errmsg(db_));
        std::vector<std::vector<std::string>> out;
        int rc;
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            std::vector<std::string> row;
            for (int i = 0; i < sqlite3_column_count(st); ++i) {
                auto t = sqlite3_column_text(st, i);
                row.emplace_back(t ? reinterpret_cast<const char*>(t) : "");
            }
            out.push_back(std::move(row));
        }
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE)
            throw std::runtime_error(sqlite3_errmsg(db_));
        return out;
    }
    std::int64_t integer(const std::string& sql) {
        auto r = rows(sql);
        return r.empty() || r[0].empty() ? 0 : std::stoll(r[0][0]);
    }

private:
    sqlite3* db_ = nullptr;
};

/// Own seqs in the file, ascending.
inline std::vector<std::int64_t> own_seqs(const std::string& path,
                                          const std::string& origin = "L1") {
    raw_db db(path);
    std::vector<std::int64_t> out;
    for (auto& r : db.rows("SELECT seq FROM messages WHERE origin = '" + origin + "' ORDER BY seq"))
        out.push_back(std::stoll(r[0]));
    return out;
}

inline std::vector<std::int64_t> iota_seqs(std::int64_t from, std::int64_t to) {
    std::vector<std::int64_t> v;
    for (auto i = from; i <= to; ++i)
        v.push_back(i);
    return v;
}

} // namespace lanesync::outbox::testing
