#pragma once
/// Liveness and replica takeover (docs/protocol.md "Takeover"), pure and unit-tested: which
/// lanes are alive as far as this lane knows (its own sessions and its peers' news.seen), and
/// which lane uploads a silent origin's held messages on its behalf. No clock here: every time
/// is a unix ms the caller passes.
///
/// Thread contract: none; one owner (the lane's hub) calls it from one strand.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace lanesync::protocol {

/// When each lane was last seen by this lane or by a lane it heard from. One per lane.
class liveness {
public:
    liveness(std::string self, std::int64_t start_ms);
    /// A lane this lane knows of (e.g. an origin held in the outbox): last seen = start unless
    /// seen later.
    void add_known(const std::string& id);
    /// An authenticated session with `id` exists now.
    void connected(const std::string& id, std::int64_t now_ms);
    /// A peer's news.seen (terminal -> age in ms) received at now_ms; entries for self are
    /// ignored, unknown lanes become known, a last-seen time only moves forward.
    void report(const std::map<std::string, std::uint64_t>& seen_age_ms, std::int64_t now_ms);
    /// news.seen: every known lane but self -> ms since last seen (0 when seen at or after now).
    std::map<std::string, std::uint64_t> ages(std::int64_t now_ms) const;
    /// When `id` was last seen; empty when it is not known.
    std::optional<std::int64_t> last_seen(const std::string& id) const;
    /// The known lanes, sorted, self excluded.
    std::vector<std::string> known() const;
    const std::string& self() const { return self_; }
    std::int64_t start_ms() const { return start_ms_; }

private:
    std::string self_;
    std::int64_t start_ms_ = 0;
    std::map<std::string, std::int64_t> last_; ///< id -> unix ms
};

/// What each peer holds: peer id -> the origins it holds messages of above their
/// cloud_through (its latest news.holds).
using holdings = std::map<std::string, std::vector<std::string>>;

/// The lanes that hold `origin`'s messages above cloud_through: `self` when `self_holds`, plus
/// every peer whose holds list `origin`. Sorted, unique.
std::vector<std::string> holders_of(const std::string& origin, const std::string& self,
                                    bool self_holds, const holdings& peers);

/// Who uploads `origin`'s held messages on its behalf: the lowest terminal id (byte order)
/// among `holders` (the lanes holding origin's messages above cloud_through, see holders_of)
/// that were seen within `after_ms`, origin excluded; the liveness's self always counts as
/// seen. Empty when origin is self, when origin itself was seen within after_ms (alive: nothing
/// is uploaded for it), or when no holder qualifies. A lane never seen counts as seen at the
/// liveness's start. "Seen within" means now - last seen < after_ms.
std::string taker(const liveness& l, const std::string& origin,
                  const std::vector<std::string>& holders, std::int64_t now_ms,
                  std::int64_t after_ms);

/// The origins (among `held`: those this lane holds above cloud_through) this lane uploads for
/// now: taker(origin, holders_of(origin, self, true, peers)) == self. Sorted, unique.
std::vector<std::string> origins_to_cover(const liveness& l, const std::vector<std::string>& held,
                                          const holdings& peers, std::int64_t now_ms,
                                          std::int64_t after_ms);

} // namespace lanesync::protocol
