#pragma once
/// Private to lanes/: liveness, takeover and the spread of cloud_through for one lane
/// (docs/architecture.md "Takeover"). The rules are protocol/takeover.hpp (liveness, taker,
/// origins_to_cover); this class keeps the lane's one protocol::liveness and what the news
/// frames carry, and answers the uploader (which origins to upload for) and status.
///
/// No Asio; times are passed in. Thread-safe (one mutex).

#include "lanes/gossip.hpp"
#include "outbox/outbox.hpp"
#include "protocol/frames.hpp"
#include "protocol/takeover.hpp"

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace lanesync::lanes {

class cover_state {
public:
    /// `after_ms`: CLOUD_TAKEOVER_AFTER_S in ms.
    cover_state(std::string self, std::int64_t start_ms, std::int64_t after_ms);

    /// What changed in the origins this lane covers at a tick (for the log).
    struct change {
        std::vector<std::string> started, stopped;
        bool news_due = false; ///< something the news frames carry changed
    };
    /// Every lane_tick: the peers with an authenticated session now, and the outbox's origins.
    change tick(const std::vector<std::string>& connected,
                const std::vector<outbox::origin_summary>& origins, std::int64_t now_ms);

    /// A peer's news (action news_received): its ages, the origins it covers and those it
    /// holds above cloud_through (the takeover candidates, used from the next tick on).
    void on_news(const std::string& peer, const std::map<std::string, std::uint64_t>& seen,
                 std::vector<std::string> cover, std::vector<std::string> holds,
                 std::int64_t now_ms);
    /// Every session to `peer` ended: forget what it said it covers and holds.
    void peer_gone(const std::string& peer);
    /// Whether a peer's cloud_through of `origin` is news to this lane (worth a write): above
    /// what the outbox had at the last tick and above what was applied since. Notes it.
    bool take_cloud_through(const std::string& origin, std::uint64_t through);

    /// The news frame to send now.
    protocol::news news(std::int64_t now_ms) const;
    /// The origins this lane uploads for now (the uploader's cover list).
    std::vector<std::string> covering() const;
    std::vector<origin_view> origins(const std::vector<outbox::origin_summary>& held) const;

private:
    const std::string self_;
    const std::int64_t after_ms_;
    mutable std::mutex mutex_;
    protocol::liveness live_;
    std::vector<std::string> covering_;
    std::vector<std::string> holds_; ///< origins held above cloud_through at the last tick
    protocol::hwm_map cloud_; ///< per origin (own too): cloud_through as last read or applied
    std::map<std::string, std::vector<std::string>> peer_cover_; ///< peer -> origins it covers
    protocol::holdings peer_holds_; ///< peer -> origins it holds (its latest news.holds)
};

} // namespace lanesync::lanes
