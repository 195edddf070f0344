#pragma once
/// The puller's decisions, apart from its mechanism (STYLE habits 8 and 13): which cursors to
/// send, when to pull next (the interval, at once after "more" or sync-now, backoff after a
/// failure with base/backoff's full jitter), as pure functions. No Asio, no clock: tests call
/// them with explicit times and random values (tests/cloud/pull_policy_test.cpp).

#include "cloud/pull_wire.hpp"
#include "protocol/catalog.hpp"

#include <chrono>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

namespace lanesync::cloud::pull {

/// A peer's snapshot of a scope that has not moved for this long is taken over by the cloud's
/// (the puller asks for the scope from scratch).
inline constexpr std::chrono::milliseconds stale_snapshot{std::chrono::minutes(5)};

/// The cursors to send for the scopes the lane holds:
/// - a snapshot of the cloud's under way: `through` and its resume token;
/// - a scope in `restart` (the cloud refused a resume token, or the lane refused a page as
///   continuing no snapshot), or a peer's snapshot idle for `stale_snapshot`: through 0, which
///   makes the cloud start a snapshot (reset) again;
/// - anything else: `through` alone (scopes the lane never heard of are not sent: the cloud
///   answers every scope visible to the store, new ones with a snapshot).
std::vector<cursor> cursors_for(const std::vector<protocol::catalog_scope_state>& scopes,
                                const std::set<std::string>& restart, std::int64_t now_ms);

/// What the timing rules say after a pull.
struct next_pull {
    std::chrono::milliseconds delay{0}; ///< from now
    std::uint32_t failures = 0;         ///< consecutive failures after this pull
};

/// A pull that applied every page: at once when a scope said `more`, else after `interval`.
next_pull after_success(bool more, std::chrono::milliseconds interval);

/// A failed pull (no answer, an error status, a malformed answer, a page the outbox could not
/// apply): full-jitter backoff between `base` and `max` from `failures` (before this one) and
/// `random_value`; never later than the next regular poll would be, and at least 1 ms.
next_pull after_failure(std::uint32_t failures, std::chrono::milliseconds base,
                        std::chrono::milliseconds max, std::chrono::milliseconds interval,
                        std::uint64_t random_value);

/// The scopes whose snapshot must start again after a 400 (a resume token the cloud could not
/// use): those `sent` with a resume token.
std::set<std::string> restart_after_bad_request(const std::vector<cursor>& sent);

} // namespace lanesync::cloud::pull
