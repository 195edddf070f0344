#pragma once
/// Private to the outbox and its tests: deterministic control over the writer thread.
/// Not for production code.

#include "outbox/outbox.hpp"

#include <string>

namespace lanesync::outbox::detail::test_hooks {

/// While paused, the writer takes no new group, so a test can queue several requests and
/// have them committed as one group when it resumes. close() drains even when paused.
void pause_writer(store& s, bool paused);

/// Runs `sql` on the store's write connection between groups (e.g. PRAGMA max_page_count to
/// make SQLite return SQLITE_FULL, or PRAGMA busy_timeout). Returns the first column of the
/// first row as text (empty when none). Throws outbox::error.
std::string exec_on_writer(store& s, const std::string& sql);

} // namespace lanesync::outbox::detail::test_hooks
