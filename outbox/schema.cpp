#include "outbox/detail/schema.hpp"

#include "base/tuning.hpp"
#include "outbox/outbox.hpp"
#include "protocol/frames.hpp"

#include <array>
#include <optional>

namespace lanesync::outbox::detail {
namespace {

// ---- migrations: one function per step, each in its own write transaction -----------------

/// The triggers that keep `counts` exact. Versions 1 and 2 create the same ones (version 2
/// rebuilds `messages`, which drops them); a change to them is a new migration step.
constexpr const char* count_triggers = R"sql(
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
)sql";

/// 0 -> 1: the whole first schema.
void migrate_to_1(write_transaction& tx) {
    tx.db().exec(R"sql(
-- Which terminal and store this file belongs to (bound on first open).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
) WITHOUT ROWID;

-- Per origin lane: hwm = highest seq held contiguously from 1 (messages below the first one
-- still held were pruned after reaching the cloud); cloud_through = highest seq known to be
-- committed in the cloud, contiguous from 1. The own origin's hwm is the last seq handed out.
CREATE TABLE origins (
    origin        TEXT PRIMARY KEY NOT NULL,
    hwm           INTEGER NOT NULL DEFAULT 0 CHECK (hwm >= 0),
    cloud_through INTEGER NOT NULL DEFAULT 0 CHECK (cloud_through >= 0)
) WITHOUT ROWID;

-- Own messages and replicas of other lanes' messages. state: 0 pending, 1 peer_ack,
-- 2 cloud_ack, 3 failed (replicas only use 0 and 2). priority: 0 critical .. 3 low.
-- Times are unix milliseconds.
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
    UNIQUE (origin, seq)               -- next_for_peer, gap/conflict checks
);
-- list(state), next_for_cloud, oldest pending, promotion, prune: range scans per state.
CREATE INDEX messages_state ON messages (origin, state, seq);

-- What each peer confirmed holding of this lane's own messages.
CREATE TABLE peers (
    peer          TEXT PRIMARY KEY NOT NULL,
    acked_through INTEGER NOT NULL DEFAULT 0,
    last_ack_at   INTEGER
) WITHOUT ROWID;

-- Exact message counts per (origin, state), kept by count_triggers: status never scans.
CREATE TABLE counts (
    origin TEXT NOT NULL,
    state  INTEGER NOT NULL,
    n      INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (origin, state)
) WITHOUT ROWID;
)sql");
    tx.db().exec(count_triggers);
}

/// 1 -> 2: one message id may be held under two origins (a POS that retried a sale on another
/// lane with its idempotency key: both lanes accepted it as their own). A row is identified by
/// (origin, seq); (id, origin) stays unique. SQLite cannot change a table's keys in place, so
/// the table is rebuilt: copy every row as is, drop the old table (its index and triggers go
/// with it; DROP fires no trigger, so `counts` is untouched and stays exact), rename, and
/// create the index and the count triggers again.
void migrate_to_2(write_transaction& tx) {
    tx.db().exec(R"sql(
CREATE TABLE messages_v2 (
    id             TEXT NOT NULL,
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
    PRIMARY KEY (origin, seq),         -- next_for_peer, gap/conflict checks
    UNIQUE (id, origin)                -- get, publish idempotency, replica duplicates
);
INSERT INTO messages_v2 (id, origin, seq, topic, priority, data, created_at, stored_at, state,
                         peer_acked_at, cloud_acked_at, attempts, last_error)
    SELECT id, origin, seq, topic, priority, data, created_at, stored_at, state,
           peer_acked_at, cloud_acked_at, attempts, last_error
    FROM messages ORDER BY origin, seq;
DROP TABLE messages;
ALTER TABLE messages_v2 RENAME TO messages;
-- list(state), next_for_cloud, oldest pending, promotion, prune: range scans per state.
CREATE INDEX messages_state ON messages (origin, state, seq);
)sql");
    tx.db().exec(count_triggers);
}

/// 2 -> 3: the index of next_replicas_for_cloud (a lane uploading a dead lane's replicas
/// on its behalf takes them by priority, then seq, per origin).
void migrate_to_3(write_transaction& tx) {
    tx.db().exec(R"sql(
-- next_replicas_for_cloud: pending replicas of one origin and priority, in seq order.
CREATE INDEX messages_priority ON messages (origin, state, priority, seq);
)sql");
}

/// 3 -> 4: head office's data on the lane (docs/downstream.md, "Lane"). `catalog` holds the
/// current row of every (scope, key), tombstones included (deleted = 1, data 'null');
/// `catalog_scopes` the per-scope cursor and snapshot state. `keys` (live rows) is kept exact
/// by the three triggers, like `counts`. snapshot_gen: a reset snapshot takes the next
/// generation and marks every key it carries with it; its last page tombstones the rest.
void migrate_to_4(write_transaction& tx) {
    tx.db().exec(R"sql(
CREATE TABLE catalog_scopes (
    scope        TEXT PRIMARY KEY NOT NULL,
    through      INTEGER NOT NULL DEFAULT 0 CHECK (through >= 0),
    horizon      INTEGER NOT NULL DEFAULT 0 CHECK (horizon >= 0),
    head         INTEGER NOT NULL DEFAULT 0 CHECK (head >= 0),
    snapshot     INTEGER NOT NULL DEFAULT 0 CHECK (snapshot IN (0, 1)),
    snapshot_gen INTEGER NOT NULL DEFAULT 0,
    resume       TEXT NOT NULL DEFAULT '',
    keys         INTEGER NOT NULL DEFAULT 0,
    applied_at   INTEGER NOT NULL DEFAULT 0,
    source       TEXT NOT NULL DEFAULT ''
) WITHOUT ROWID;

CREATE TABLE catalog (
    scope        TEXT NOT NULL REFERENCES catalog_scopes (scope),
    key          TEXT NOT NULL,
    version      INTEGER NOT NULL CHECK (version > 0),
    deleted      INTEGER NOT NULL CHECK (deleted IN (0, 1)),
    data         TEXT NOT NULL,
    changed_at   INTEGER NOT NULL DEFAULT 0,
    applied_at   INTEGER NOT NULL,
    snapshot_gen INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (scope, key)
) WITHOUT ROWID;
-- catalog_since (the API's changes, the mesh's catch-up): one scope in version order.
CREATE INDEX catalog_version ON catalog (scope, version);

CREATE TRIGGER catalog_keys_insert AFTER INSERT ON catalog WHEN NEW.deleted = 0 BEGIN
    UPDATE catalog_scopes SET keys = keys + 1 WHERE scope = NEW.scope;
END;
CREATE TRIGGER catalog_keys_delete AFTER DELETE ON catalog WHEN OLD.deleted = 0 BEGIN
    UPDATE catalog_scopes SET keys = keys - 1 WHERE scope = OLD.scope;
END;
CREATE TRIGGER catalog_keys_update AFTER UPDATE OF deleted ON catalog
    WHEN OLD.deleted IS NOT NEW.deleted BEGIN
    UPDATE catalog_scopes SET keys = keys + OLD.deleted - NEW.deleted WHERE scope = NEW.scope;
END;
)sql");
}

/// 4 -> 5: the upload backlog by priority (issue 12): pending and peer_ack messages counted
/// per (origin, state, priority), kept exact by three triggers like `counts`, so status and
/// /metrics show it without a scan. Filled once from the messages held.
void migrate_to_5(write_transaction& tx) {
    tx.db().exec(R"sql(
CREATE TABLE backlog_counts (
    origin   TEXT NOT NULL,
    state    INTEGER NOT NULL CHECK (state IN (0, 1)),
    priority INTEGER NOT NULL CHECK (priority BETWEEN 0 AND 3),
    n        INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (origin, state, priority)
) WITHOUT ROWID;

INSERT INTO backlog_counts (origin, state, priority, n)
    SELECT origin, state, priority, COUNT(*) FROM messages WHERE state IN (0, 1)
    GROUP BY origin, state, priority;

CREATE TRIGGER messages_backlog_insert AFTER INSERT ON messages WHEN NEW.state IN (0, 1) BEGIN
    INSERT INTO backlog_counts (origin, state, priority, n)
        VALUES (NEW.origin, NEW.state, NEW.priority, 1)
        ON CONFLICT (origin, state, priority) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER messages_backlog_delete AFTER DELETE ON messages WHEN OLD.state IN (0, 1) BEGIN
    UPDATE backlog_counts SET n = n - 1
        WHERE origin = OLD.origin AND state = OLD.state AND priority = OLD.priority;
END;

CREATE TRIGGER messages_backlog_update AFTER UPDATE OF origin, state, priority ON messages
    WHEN OLD.state IS NOT NEW.state OR OLD.origin IS NOT NEW.origin
         OR OLD.priority IS NOT NEW.priority BEGIN
    UPDATE backlog_counts SET n = n - 1
        WHERE origin = OLD.origin AND state = OLD.state AND priority = OLD.priority;
    INSERT INTO backlog_counts (origin, state, priority, n)
        SELECT NEW.origin, NEW.state, NEW.priority, 1 WHERE NEW.state IN (0, 1)
        ON CONFLICT (origin, state, priority) DO UPDATE SET n = n + 1;
END;
)sql");
}

using migration = void (*)(write_transaction&);
/// steps[v] migrates from user_version v to v + 1.
constexpr std::array<migration, schema_version> steps = {
    &migrate_to_1, &migrate_to_2, &migrate_to_3, &migrate_to_4, &migrate_to_5};

[[noreturn]] void newer(const std::string& path, std::int64_t v) {
    throw error("outbox " + path + " has schema version " + std::to_string(v) +
                ", newer than this lanesync understands (" + std::to_string(schema_version) +
                "); upgrade lanesync or point OUTBOX_PATH at another file");
}

std::optional<std::string> meta_value(connection& db, const char* key) {
    statement s(db, "SELECT value FROM meta WHERE key = ?1");
    use u(s);
    u.bind(1, std::string_view(key));
    if (!u.step())
        return std::nullopt;
    return u.text(0);
}

void check_meta(const std::string& path, const char* what, const std::string& stored,
                const std::string& mine, const char* env_key) {
    if (stored != mine)
        throw error("outbox " + path + " belongs to " + what + " '" + stored + "', not '" + mine +
                    "' (" + env_key + "); each lane needs its own OUTBOX_PATH");
}

} // namespace

void apply_pragmas(connection& db, bool read_only) {
    // Every connection pragma, in one place:
    //  - busy_timeout: the agent and the CLI share the file; a writer waits this long for the
    //    other's write lock before the request fails as a storage failure.
    //  - journal_mode=WAL: readers never block the writer and vice versa, and a second process
    //    (lanesync publish/status) can use the file while the agent runs. Persistent in the
    //    file; a read-only connection cannot set it and only checks it.
    //  - synchronous=FULL: the WAL is fsync'd at every COMMIT, so a completion that reports
    //    success means the message survives kill -9 and power loss (SPEC 2.1).
    //  - foreign_keys=ON: messages.origin must name an origins row.
    //  - wal_autocheckpoint=1000 (SQLite's default, stated so nobody wonders): checkpoints run
    //    on the committing connection after the WAL passes ~4 MB.
    sqlite3_busy_timeout(db.get(), tuning::sqlite_busy_timeout_ms);
    if (!read_only) {
        auto mode = db.query_text("PRAGMA journal_mode=WAL");
        if (mode != "wal")
            throw error("cannot switch the outbox to WAL mode (journal_mode is " + mode + ")");
    }
    db.exec("PRAGMA synchronous=FULL");
    db.exec("PRAGMA foreign_keys=ON");
    if (!read_only)
        db.exec("PRAGMA wal_autocheckpoint=1000");
}

void migrate(connection& db, const std::string& path) {
    for (;;) {
        auto v = db.query_int("PRAGMA user_version");
        if (v > schema_version)
            newer(path, v);
        if (v == schema_version)
            return;
        write_transaction tx(db);
        // Another process may have migrated while we waited for the write lock: re-read.
        v = db.query_int("PRAGMA user_version");
        if (v > schema_version)
            newer(path, v);
        if (v == schema_version)
            return;
        if (v < 0)
            throw error("outbox " + path + " has an invalid schema version " + std::to_string(v));
        steps[static_cast<std::size_t>(v)](tx);
        std::string set = "PRAGMA user_version=" + std::to_string(v + 1);
        db.exec(set.c_str());
        tx.commit();
    }
}

void check_version_read_only(connection& db, const std::string& path) {
    auto v = db.query_int("PRAGMA user_version");
    if (v > schema_version)
        newer(path, v);
    if (v < schema_version)
        throw error("outbox " + path + " has schema version " + std::to_string(v) +
                    " and cannot be migrated read-only; start the agent once (or run a "
                    "writing command) to upgrade it");
}

void bind_identity(connection& db, const std::string& path, const std::string& terminal_id,
                   const std::string& store_id) {
    write_transaction tx(db);
    auto term = meta_value(db, "terminal_id");
    auto st = meta_value(db, "store_id");
    const bool has_incarnation = meta_value(db, "incarnation").has_value();
    statement put(db, "INSERT INTO meta(key, value) VALUES (?1, ?2)");
    if (term || st) {
        check_meta(path, "terminal", term.value_or(""), terminal_id, "TERMINAL_ID");
        check_meta(path, "store", st.value_or(""), store_id, "STORE_ID");
        if (has_incarnation)
            return; // nothing written: the destructor ends the transaction
        // A file of an older lanesync: it gets its incarnation now (a meta row, no migration).
        const std::string incarnation = protocol::random_hex(16);
        use u(put);
        u.bind(1, std::string_view("incarnation")).bind(2, incarnation).run();
        tx.commit();
        return;
    }
    // The incarnation names this copy of the origin's history: a rebuild takes a new one.
    const std::string incarnation = protocol::random_hex(16);
    for (auto [k, v] :
         {std::pair<std::string_view, const std::string*>{"terminal_id", &terminal_id},
          {"store_id", &store_id},
          {"incarnation", &incarnation}}) {
        use u(put);
        u.bind(1, k).bind(2, *v).run();
    }
    statement origin(db, "INSERT INTO origins(origin) VALUES (?1) ON CONFLICT(origin) DO NOTHING");
    {
        use u(origin);
        u.bind(1, terminal_id).run();
    }
    tx.commit();
}

void check_identity(connection& db, const std::string& path, const std::string& terminal_id,
                    const std::string& store_id) {
    read_transaction rt(db);
    auto term = meta_value(db, "terminal_id");
    auto st = meta_value(db, "store_id");
    if (!term || !st)
        throw error("outbox " + path + " was never initialized by an agent (no terminal bound)");
    check_meta(path, "terminal", *term, terminal_id, "TERMINAL_ID");
    check_meta(path, "store", *st, store_id, "STORE_ID");
}

} // namespace lanesync::outbox::detail
