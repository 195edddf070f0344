#pragma once
/// Private to the outbox: RAII wrappers over the SQLite C API (STYLE habits 9 and 10).
///
/// - `connection` owns a sqlite3*; `statement` owns a prepared sqlite3_stmt*, prepared once.
/// - `use` is the reset guard (LiteCore's UsingStatement): bind, step, read columns; its
///   destructor resets the statement and clears its bindings, so a cached statement never
///   keeps a read transaction open or points at a dead buffer.
/// - `write_transaction` issues BEGIN IMMEDIATE and rolls back in its noexcept destructor
///   unless commit() ran; write functions take it by reference as proof they run inside one.
/// - `savepoint` isolates one request of a group commit inside the write transaction.
/// - `read_transaction` gives several reads one consistent snapshot.
///
/// None of these types is thread-safe: the owner serializes use of a connection.

#include <sqlite3.h>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace lanesync::outbox::detail {

/// A failed SQLite call: the primary result code and SQLite's message.
class sqlite_error : public std::runtime_error {
public:
    sqlite_error(int code, const std::string& what) : std::runtime_error(what), code_(code) {}
    int code() const noexcept { return code_; }

private:
    int code_;
};

class connection {
public:
    /// sqlite3_open_v2 with `flags`; throws sqlite_error.
    connection(const std::string& path, int flags);
    ~connection();
    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;

    sqlite3* get() const noexcept { return db_; }
    /// Runs one or more statements without results. Throws sqlite_error.
    void exec(const char* sql);
    /// Runs a statement whose first row's first column is an integer (pragmas).
    std::int64_t query_int(const char* sql);
    /// Same for a text result.
    std::string query_text(const char* sql);
    /// True while a transaction is open (SQLite may roll one back by itself on some errors).
    bool in_transaction() const noexcept { return sqlite3_get_autocommit(db_) == 0; }
    /// Throws sqlite_error for `rc` with the connection's message, prefixed by `context`.
    [[noreturn]] void fail(int rc, std::string_view context) const;

private:
    sqlite3* db_ = nullptr;
};

class statement {
public:
    /// Prepares `sql` once (SQLITE_PREPARE_PERSISTENT). Throws sqlite_error.
    statement(connection& db, std::string_view sql);
    ~statement();
    statement(const statement&) = delete;
    statement& operator=(const statement&) = delete;

    sqlite3_stmt* get() const noexcept { return stmt_; }
    connection& db() const noexcept { return db_; }

private:
    connection& db_;
    sqlite3_stmt* stmt_ = nullptr;
};

/// Reset guard around one execution of a prepared statement. Text is bound with
/// SQLITE_STATIC: the bound string must outlive the guard (rvalue strings are refused).
class use {
public:
    explicit use(statement& s) noexcept : s_(s) {}
    ~use();
    use(const use&) = delete;
    use& operator=(const use&) = delete;

    use& bind(int i, std::int64_t v);
    use& bind(int i, std::uint64_t v) { return bind(i, static_cast<std::int64_t>(v)); }
    use& bind(int i, int v) { return bind(i, static_cast<std::int64_t>(v)); }
    use& bind(int i, std::string_view v);
    use& bind(int i, const std::string& v) { return bind(i, std::string_view(v)); }
    use& bind(int i, std::string&&) = delete;
    use& bind(int i, const char*) = delete;
    use& bind(int i, const std::optional<std::int64_t>& v);
    use& bind_null(int i);

    /// Steps once: true when a row is available, false when done. Throws sqlite_error.
    bool step();
    /// Steps to completion (a write); throws sqlite_error.
    void run();
    /// Rows changed by the last run() on this connection.
    std::int64_t changes() const noexcept { return sqlite3_changes64(s_.db().get()); }

    std::int64_t int64(int col) const { return sqlite3_column_int64(s_.get(), col); }
    std::uint64_t uint64(int col) const { return static_cast<std::uint64_t>(int64(col)); }
    bool is_null(int col) const { return sqlite3_column_type(s_.get(), col) == SQLITE_NULL; }
    std::optional<std::int64_t> opt_int64(int col) const;
    std::string text(int col) const;

private:
    statement& s_;
};

/// BEGIN IMMEDIATE ... COMMIT; rolls back in the destructor unless commit() ran.
class write_transaction {
public:
    explicit write_transaction(connection& db);
    ~write_transaction();
    write_transaction(const write_transaction&) = delete;
    write_transaction& operator=(const write_transaction&) = delete;

    /// Throws sqlite_error; the destructor then rolls back whatever is left.
    void commit();
    /// False once committed, or when SQLite rolled the transaction back on its own.
    bool active() const noexcept { return !committed_ && db_.in_transaction(); }
    connection& db() const noexcept { return db_; }

private:
    connection& db_;
    bool committed_ = false;
};

/// SAVEPOINT inside a write transaction: release() keeps the changes, rollback() (or the
/// destructor) undoes only this savepoint's changes.
class savepoint {
public:
    explicit savepoint(write_transaction& tx);
    ~savepoint();
    savepoint(const savepoint&) = delete;
    savepoint& operator=(const savepoint&) = delete;

    void release();
    void rollback();

private:
    write_transaction& tx_;
    bool done_ = false;
};

/// BEGIN (deferred, read-only use) ... COMMIT: one snapshot for several reads.
class read_transaction {
public:
    explicit read_transaction(connection& db);
    ~read_transaction();
    read_transaction(const read_transaction&) = delete;
    read_transaction& operator=(const read_transaction&) = delete;

private:
    connection& db_;
};

} // namespace lanesync::outbox::detail
