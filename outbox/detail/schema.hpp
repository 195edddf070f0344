#pragma once
/// Private to the outbox: connection pragmas, schema migrations (PRAGMA user_version) and the
/// binding of a file to one terminal and store (the `meta` table). Errors are outbox::error
/// with a sentence meant for the person running the lane.

#include "outbox/detail/sqlite.hpp"

#include <string>

namespace lanesync::outbox::detail {

/// Schema version this code writes. A file with a higher user_version is refused.
inline constexpr int schema_version = 5;

/// Sets every connection pragma (one commented block in schema.cpp).
void apply_pragmas(connection& db, bool read_only);

/// Brings the file to schema_version, one migration step per write transaction.
/// Throws outbox::error when the file is newer than this code.
void migrate(connection& db, const std::string& path);

/// Read-only open: the file must already be at schema_version (nothing can be migrated).
void check_version_read_only(connection& db, const std::string& path);

/// On first open records terminal_id, store_id and a random incarnation in `meta` and creates
/// the own origin row; afterwards refuses a file that belongs to another terminal or store, and
/// gives a file without an incarnation (an older lanesync's) one.
void bind_identity(connection& db, const std::string& path, const std::string& terminal_id,
                   const std::string& store_id);

/// Read-only variant: checks only (a file never bound is refused).
void check_identity(connection& db, const std::string& path, const std::string& terminal_id,
                    const std::string& store_id);

} // namespace lanesync::outbox::detail
