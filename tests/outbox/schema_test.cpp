// Schema versions 2 and 3: the migration of a version-1 file with data, and one id under two
// origins (a POS that retried a sale on another lane with its idempotency key).

#include "helpers.hpp"

#include <map>

using namespace lanesync;
using namespace lanesync::outbox;
using namespace lanesync::outbox::testing;

namespace {

/// Version 1 exactly as lanesync wrote it (frozen here: the migration must read these files).
constexpr const char* v1_schema = R"sql(
CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE origins (
    origin        TEXT PRIMARY KEY NOT NULL,
    hwm           INTEGER NOT NULL DEFAULT 0 CHECK (hwm >= 0),
    cloud_through INTEGER NOT NULL DEFAULT 0 CHECK (cloud_through >= 0)
) WITHOUT ROWID;
CREATE TABLE messages (
    id             TEXT PRIMARY KEY NOT NULL,
    origin         TEXT NOT NULL REFERENCES origins (origin),
    seq            INTEGER NOT NULL CHECK (seq >= 1),
    topic          TEXT NOT NULL,
    priority       INTEGER NOT NULL CHECK (priority BETWEEN 0 AND 3),
    data           TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    stored_at      INTEGER NOT NULL,
    state          INTEGER NOT NULL CHECK (state BETWEEN 0 AND 3),
    peer_acked_at  INTEGER,
    cloud_acked_at INTEGER,
    attempts       INTEGER NOT NULL DEFAULT 0,
    last_error     TEXT NOT NULL DEFAULT '',
    UNIQUE (origin, seq)
);
CREATE INDEX messages_state ON messages (origin, state, seq);
CREATE TABLE peers (
    peer TEXT PRIMARY KEY NOT NULL, acked_through INTEGER NOT NULL DEFAULT 0, last_ack_at INTEGER
) WITHOUT ROWID;
CREATE TABLE counts (
    origin TEXT NOT NULL, state INTEGER NOT NULL, n INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (origin, state)
) WITHOUT ROWID;
CREATE TRIGGER messages_count_insert AFTER INSERT ON messages BEGIN
    INSERT INTO counts (origin, state, n) VALUES (NEW.origin, NEW.state, 1)
        ON CONFLICT (origin, state) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER messages_count_delete AFTER DELETE ON messages BEGIN
    UPDATE counts SET n = n - 1 WHERE origin = OLD.origin AND state = OLD.state;
END;
CREATE TRIGGER messages_count_update AFTER UPDATE OF origin, state ON messages
    WHEN OLD.state IS NOT NEW.state OR OLD.origin IS NOT NEW.origin BEGIN
    UPDATE counts SET n = n - 1 WHERE origin = OLD.origin AND state = OLD.state;
    INSERT INTO counts (origin, state, n) VALUES (NEW.origin, NEW.state, 1)
        ON CONFLICT (origin, state) DO UPDATE SET n = n + 1;
END;
PRAGMA user_version=1;
)sql";

/// A version-1 file of lane L1 with own messages in every state, replicas of L2 and L3, peer
/// marks and origin marks (what a lane running the previous release leaves on disk).
void write_v1_file(const std::string& path) {
    sqlite3* raw = nullptr;
    REQUIRE(sqlite3_open(path.c_str(), &raw) == SQLITE_OK);
    sqlite3_close(raw);
    raw_db db(path);
    db.exec("PRAGMA journal_mode=WAL");
    db.exec(v1_schema);
    db.exec("INSERT INTO meta VALUES ('terminal_id', 'L1'), ('store_id', 'store-1');"
            "INSERT INTO origins VALUES ('L1', 6, 2), ('L2', 3, 1), ('L3', 1, 0);"
            "INSERT INTO peers VALUES ('L2', 4, 1700000000500), ('L3', 3, NULL);");
    std::string ins = "INSERT INTO messages VALUES ";
    // own: 1, 2 cloud_ack; 3 failed; 4 peer_ack; 5, 6 pending
    const char* own_states[] = {"2", "2", "3", "1", "0", "0"};
    for (int i = 1; i <= 6; ++i) {
        auto seq = std::to_string(i);
        ins += "('" + uuid(1, static_cast<std::uint64_t>(i)) + "', 'L1', " + seq +
               ", 'transaction', " + std::to_string(i % 4) + ", '{\"n\":" + seq + "}', " +
               std::to_string(1700000000000 + i) + ", " + std::to_string(1700000000100 + i) + ", " +
               own_states[i - 1] + ", " + (i <= 4 ? "1700000000200" : "NULL") + ", " +
               (i <= 2 ? "1700000000300" : "NULL") + ", " + (i == 3 ? "2, 'bad total'" : "0, ''") +
               "),";
    }
    ins += "('" + uuid(2, 1) +
           "', 'L2', 1, 'stock', 1, '{\"r\":1}', 1, 2, 2, NULL, 3, 0, ''),"
           "('" +
           uuid(2, 2) +
           "', 'L2', 2, 'stock', 1, '{\"r\":2}', 1, 2, 0, NULL, NULL, 0, ''),"
           "('" +
           uuid(2, 3) +
           "', 'L2', 3, 'stock', 1, '{\"r\":3}', 1, 2, 0, NULL, NULL, 0, ''),"
           "('" +
           uuid(3, 1) + "', 'L3', 1, 'stock', 0, '{\"r\":9}', 1, 2, 0, NULL, NULL, 0, '')";
    db.exec(ins);
}

using row_set = std::vector<std::vector<std::string>>;

row_set all_rows(const std::string& path, const std::string& table, const std::string& order) {
    raw_db db(path);
    return db.rows("SELECT * FROM " + table + " ORDER BY " + order);
}

} // namespace

TEST_CASE("a version-1 file with data migrates to the current version with every row and count") {
    temp_dir dir;
    const auto path = dir.file("L1.db");
    write_v1_file(path);
    const auto messages_before = all_rows(path, "messages", "origin, seq");
    const auto counts_before = all_rows(path, "counts", "origin, state");
    const auto origins_before = all_rows(path, "origins", "origin");
    const auto peers_before = all_rows(path, "peers", "peer");
    REQUIRE(messages_before.size() == 10);

    SUBCASE("read-only refuses to migrate") {
        try {
            store::open(opts(path, "L1", "store-1", true));
            FAIL("opened");
        } catch (const outbox::error& e) {
            CHECK(std::string(e.what()).find("schema version 1") != std::string::npos);
        }
    }

    auto s = store::open(opts(path));
    {
        raw_db db(path);
        CHECK(db.integer("PRAGMA user_version") == 5);
        // Version 5: the backlog by priority, filled from the messages held, and its triggers.
        CHECK(db.integer("SELECT COUNT(*) FROM sqlite_master WHERE type = 'trigger' AND "
                         "name LIKE 'messages_backlog_%'") == 3);
        CHECK(db.integer("SELECT COALESCE(SUM(n), 0) FROM backlog_counts") ==
              db.integer("SELECT COUNT(*) FROM messages WHERE state IN (0, 1)"));
        // Version 4: the catalog (head office's data), its scopes and their key triggers.
        CHECK(db.integer("SELECT COUNT(*) FROM sqlite_master WHERE name IN ('catalog', "
                         "'catalog_scopes', 'catalog_version')") == 3);
        CHECK(db.integer("SELECT COUNT(*) FROM sqlite_master WHERE type = 'trigger' AND "
                         "tbl_name = 'catalog'") == 3);
        // The new keys: (origin, seq) identifies a row, (id, origin) is unique.
        auto sql = db.rows("SELECT sql FROM sqlite_master WHERE name = 'messages'");
        REQUIRE(sql.size() == 1);
        CHECK(sql[0][0].find("PRIMARY KEY (origin, seq)") != std::string::npos);
        CHECK(sql[0][0].find("UNIQUE (id, origin)") != std::string::npos);
        // counts' three triggers and backlog_counts' three (version 5).
        CHECK(db.integer("SELECT COUNT(*) FROM sqlite_master WHERE type = 'trigger' AND "
                         "tbl_name = 'messages'") == 6);
        CHECK(db.integer("SELECT COUNT(*) FROM sqlite_master WHERE name = 'messages_state'") == 1);
        CHECK(db.integer("SELECT COUNT(*) FROM sqlite_master WHERE name = 'messages_v2'") == 0);
        // Version 3: the index of next_replicas_for_cloud.
        CHECK(db.integer("SELECT COUNT(*) FROM sqlite_master WHERE name = 'messages_priority'") ==
              1);
        // A file of an older lanesync gets its incarnation on open (a meta row).
        auto inc = db.rows("SELECT value FROM meta WHERE key = 'incarnation'");
        REQUIRE(inc.size() == 1);
        CHECK(inc[0][0].size() == 32);
    }
    CHECK(s->incarnation().size() == 32);
    CHECK(all_rows(path, "messages", "origin, seq") == messages_before);
    CHECK(all_rows(path, "counts", "origin, state") == counts_before);
    CHECK(all_rows(path, "origins", "origin") == origins_before);
    CHECK(all_rows(path, "peers", "peer") == peers_before);
    CHECK(s->integrity_check().empty());

    auto c = s->get_counts();
    CHECK(c.cloud_ack == 2);
    CHECK(c.failed == 1);
    CHECK(c.peer_ack == 1);
    CHECK(c.pending == 2);
    CHECK(c.replicas == std::map<std::string, std::uint64_t>{{"L2", 3}, {"L3", 1}});
    auto failed = s->get(uuid(1, 3));
    REQUIRE(failed);
    CHECK(failed->st == state::failed);
    CHECK(failed->last_error == "bad total");
    CHECK(failed->attempts == 2);
    CHECK(failed->msg.prio == protocol::priority::low);

    // The triggers work on the new table: a publish, a promotion and a prune keep counts exact.
    CHECK(publish_sync(*s, req()).rec.msg.seq == 7);
    CHECK(peer_acked_sync(*s, "L2", 7, 1).promoted_latency_ms.size() == 3);
    CHECK(retry_sync(*s, {}).count == 1);
    CHECK(prune_sync(*s, protocol::now_ms()).count == 3); // own 1-2, L2:1
    CHECK(s->integrity_check().empty());
    c = s->get_counts();
    CHECK(c.peer_ack == 5);
    CHECK(c.cloud_ack == 0);
    s.reset();
    // Opening again is a no-op.
    auto again = store::open(opts(path));
    CHECK(again->get_counts().peer_ack == 5);
}

TEST_CASE("one id under two origins: replicas store it as another row, GET prefers the own") {
    temp_dir dir;
    auto s = store::open(opts(dir.file("L1.db")));
    const std::string id = uuid(7, 7);
    auto own = publish_sync(*s, req(R"({"sale":1})", id));
    REQUIRE(own.k == publish_outcome::created);

    // L2 accepted the same id (the POS retried there): stored as L2's row, no conflict.
    auto copy = replica("L2", 2, 1, R"({"sale":1})");
    copy.id = id;
    auto other = replica("L3", 3, 1, R"({"sale":"other"})");
    other.id = id;
    auto r = store_replicas_sync(*s, {copy, replica("L2", 2, 2), other});
    CHECK(r.ok);
    CHECK(r.conflict.empty());
    CHECK(r.inserted == 3);
    CHECK(r.refused == 0);
    CHECK(s->get_counts().replicas == std::map<std::string, std::uint64_t>{{"L2", 2}, {"L3", 1}});
    auto got = s->get(id);
    REQUIRE(got);
    CHECK(got->own);
    CHECK(got->msg.origin == "L1");
    CHECK(got->msg.data == R"({"sale":1})");

    // Redelivery of the copies is a duplicate; the same id and origin with other content stays
    // a conflict that blocks the batch.
    CHECK(store_replicas_sync(*s, {copy}).duplicates == 1);
    auto changed = copy;
    changed.data = R"({"sale":2})";
    auto bad = store_replicas_sync(*s, {changed});
    CHECK_FALSE(bad.ok);
    CHECK(bad.refused == 1);
    CHECK(bad.conflict.find("L2:1 is already held as L2:1") != std::string::npos);

    // Acks and attempts touch the own copy only.
    CHECK(note_attempt_sync(*s, {id}).count == 1);
    CHECK(cloud_acked_sync(*s, {cloud(id, cloud_result::stored)}).acked == 1);
    CHECK(s->get(id)->st == state::cloud_ack);
    raw_db db(dir.file("L1.db"));
    CHECK(db.integer("SELECT state FROM messages WHERE id = '" + id + "' AND origin = 'L2'") == 0);
    CHECK(db.integer("SELECT attempts FROM messages WHERE id = '" + id + "' AND origin = 'L2'") ==
          0);
    CHECK(s->integrity_check().empty());
}

TEST_CASE("an id held only as a replica is accepted as a new own message; GET then the own") {
    temp_dir dir;
    auto s = store::open(opts(dir.file("L1.db")));
    auto m = replica("L2", 2, 1, R"({"sale":1})");
    REQUIRE(store_replicas_sync(*s, {m}).ok);
    CHECK_FALSE(s->get(m.id)->own);

    // Same content or other content: this lane never accepted the id, so it is created.
    auto o = publish_sync(*s, req(R"({"sale":"other"})", m.id));
    CHECK(o.k == publish_outcome::created);
    CHECK(o.rec.msg.origin == "L1");
    CHECK(o.rec.msg.seq == 1);
    CHECK(s->get(m.id)->own);
    CHECK(s->get(m.id)->msg.data == R"({"sale":"other"})");
    // From now on the own copy answers the idempotency check.
    CHECK(publish_sync(*s, req(R"({"sale":"other"})", m.id)).k == publish_outcome::existing);
    CHECK(publish_sync(*s, req(R"({"sale":1})", m.id)).k == publish_outcome::conflict);
    CHECK(s->get_counts().pending == 1);
    CHECK(s->get_counts().replicas.at("L2") == 1);
}
