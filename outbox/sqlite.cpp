#include "outbox/detail/sqlite.hpp"

#include "base/tuning.hpp"

#include <mutex>

namespace lanesync::outbox::detail {

// ---- connection -----------------------------------------------------------------------------

namespace {

/// Process-wide SQLite settings, set once before the library initializes (sqlite3_config is
/// refused after that: then SQLite's defaults stay, which is slower, never less durable).
void configure_sqlite_once() {
    static std::once_flag once;
    std::call_once(once, [] {
        // Statement journals (the undo of one statement inside the write transaction: every
        // INSERT with the count triggers has one, and each request's savepoint) stay in memory
        // instead of spilling to a temporary file at SQLite's 64 KiB (base/tuning.hpp says why
        // never, not a larger threshold). They are never needed after a crash (the WAL is), so
        // durability does not change.
        sqlite3_config(SQLITE_CONFIG_STMTJRNL_SPILL, tuning::sqlite_statement_journal_spill_bytes);
    });
}

} // namespace

connection::connection(const std::string& path, int flags) {
    configure_sqlite_once();
    int rc = sqlite3_open_v2(path.c_str(), &db_, flags, nullptr);
    if (rc != SQLITE_OK) {
        std::string msg = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
        sqlite3_close_v2(db_);
        db_ = nullptr;
        throw sqlite_error(rc, "cannot open " + path + ": " + msg);
    }
    sqlite3_extended_result_codes(db_, 1);
}

connection::~connection() {
    // Every statement is finalized by its owner first; close_v2 copes with stragglers anyway.
    sqlite3_close_v2(db_);
}

void connection::fail(int rc, std::string_view context) const {
    std::string msg(context);
    if (!msg.empty())
        msg += ": ";
    msg += sqlite3_errmsg(db_);
    throw sqlite_error(rc & 0xff, msg);
}

void connection::exec(const char* sql) {
    int rc = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK)
        fail(rc, {});
}

std::int64_t connection::query_int(const char* sql) {
    statement s(*this, sql);
    use u(s);
    return u.step() ? u.int64(0) : 0;
}

std::string connection::query_text(const char* sql) {
    statement s(*this, sql);
    use u(s);
    return u.step() ? u.text(0) : std::string();
}

// ---- statement ------------------------------------------------------------------------------

statement::statement(connection& db, std::string_view sql) : db_(db) {
    int rc = sqlite3_prepare_v3(db.get(), sql.data(), static_cast<int>(sql.size()),
                                SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr);
    if (rc != SQLITE_OK)
        db.fail(rc, "prepare");
}

statement::~statement() {
    sqlite3_finalize(stmt_);
}

// ---- use ------------------------------------------------------------------------------------

use::~use() {
    sqlite3_reset(s_.get());
    sqlite3_clear_bindings(s_.get());
}

use& use::bind(int i, std::int64_t v) {
    int rc = sqlite3_bind_int64(s_.get(), i, v);
    if (rc != SQLITE_OK)
        s_.db().fail(rc, "bind");
    return *this;
}

use& use::bind(int i, std::string_view v) {
    // SQLITE_STATIC: the caller's string outlives this guard, which clears the binding.
    int rc = sqlite3_bind_text64(s_.get(), i, v.data(), v.size(), SQLITE_STATIC, SQLITE_UTF8);
    if (rc != SQLITE_OK)
        s_.db().fail(rc, "bind");
    return *this;
}

use& use::bind(int i, const std::optional<std::int64_t>& v) {
    return v ? bind(i, *v) : bind_null(i);
}

use& use::bind_null(int i) {
    int rc = sqlite3_bind_null(s_.get(), i);
    if (rc != SQLITE_OK)
        s_.db().fail(rc, "bind");
    return *this;
}

bool use::step() {
    int rc = sqlite3_step(s_.get());
    if (rc == SQLITE_ROW)
        return true;
    if (rc == SQLITE_DONE)
        return false;
    s_.db().fail(rc, {});
}

void use::run() {
    while (step()) {
    }
}

std::optional<std::int64_t> use::opt_int64(int col) const {
    if (is_null(col))
        return std::nullopt;
    return int64(col);
}

std::string use::text(int col) const {
    auto p = sqlite3_column_text(s_.get(), col);
    auto n = sqlite3_column_bytes(s_.get(), col);
    if (!p)
        return {};
    return std::string(reinterpret_cast<const char*>(p), static_cast<std::size_t>(n));
}

// ---- transactions ---------------------------------------------------------------------------

write_transaction::write_transaction(connection& db) : db_(db) {
    // IMMEDIATE takes the write lock now (waiting up to busy_timeout), never a deferred
    // read-then-upgrade that fails with SQLITE_BUSY whatever the timeout in WAL mode.
    db_.exec("BEGIN IMMEDIATE");
}

write_transaction::~write_transaction() {
    if (!committed_ && db_.in_transaction())
        sqlite3_exec(db_.get(), "ROLLBACK", nullptr, nullptr, nullptr);
}

void write_transaction::commit() {
    db_.exec("COMMIT");
    committed_ = true;
}

savepoint::savepoint(write_transaction& tx) : tx_(tx) {
    tx_.db().exec("SAVEPOINT request");
}

savepoint::~savepoint() {
    if (done_ || !tx_.active())
        return;
    sqlite3_exec(tx_.db().get(), "ROLLBACK TO request; RELEASE request", nullptr, nullptr, nullptr);
}

void savepoint::release() {
    tx_.db().exec("RELEASE request");
    done_ = true;
}

void savepoint::rollback() {
    done_ = true;
    if (!tx_.active())
        return; // SQLite already rolled the whole transaction back; the caller checks active()
    tx_.db().exec("ROLLBACK TO request; RELEASE request");
}

read_transaction::read_transaction(connection& db) : db_(db) {
    db_.exec("BEGIN");
}

read_transaction::~read_transaction() {
    if (db_.in_transaction())
        sqlite3_exec(db_.get(), "COMMIT", nullptr, nullptr, nullptr);
}

} // namespace lanesync::outbox::detail
