#pragma once
/// Progress of a lane rebuild (docs/protocol.md "Lane rebuild"), pure and unit-tested: which
/// configured links reported what they hold of this lane's own origin, which were excluded by
/// the operator, and whether the rebuild may finish. The lane (lanes/) feeds it own_reported
/// actions and its own hwm after each restore commit, and shows text() in status.
///
/// Thread contract: none; one owner calls it from one strand.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace lanesync::protocol {

/// What one peer holds of our origin: its mark {seq, id}. `link` is the PEER_TERMINALS URL
/// of an outgoing session, empty for an inbound one (matched by `terminal`).
struct rebuild_report {
    std::string link;
    std::string terminal;
    std::uint64_t seq = 0;
    std::string id;
};

class rebuild_progress {
public:
    rebuild_progress(std::vector<std::string> links /*PEER_TERMINALS URLs*/,
                     std::uint64_t own_hwm_at_start);
    /// A peer's report; a link's terminal becomes known from it. Several reports of one peer
    /// keep the highest seq.
    void report(rebuild_report r);
    /// The terminal behind a link, known before it reported (e.g. a refused handshake's
    /// claimed id), so that an inbound report of that terminal counts for the link.
    void link_terminal(const std::string& link, const std::string& terminal);
    /// Leave a peer out of this rebuild: a PEER_TERMINALS URL or a terminal id.
    void exclude(const std::string& link_or_terminal);
    /// This lane's own hwm, after each restore commit.
    void own_hwm(std::uint64_t hwm);
    void conflict(std::string text);

    /// Every non-excluded link reported and the own hwm reached target().
    bool done() const;
    /// The highest seq a non-excluded peer reported (0 when none).
    std::uint64_t target() const;
    /// Own hwm - own hwm at start.
    std::uint64_t restored() const;
    std::uint64_t hwm() const { return hwm_; }
    /// The terminal of the highest non-excluded report; empty when none.
    std::string from() const;
    /// Links not reported and not excluded: the terminal if known, else the URL.
    std::vector<std::string> waiting_for() const;
    /// The exclusions: terminal ids where known, else as given (URLs). Sorted.
    std::vector<std::string> excluded() const;
    const std::vector<std::string>& conflicts() const { return conflicts_; }
    /// "rebuilding from L2: 3,200 of 10,000 (waiting for L3)": own hwm of target.
    std::string text() const;

private:
    bool is_excluded(const std::string& link, const std::string& terminal) const;
    std::string terminal_of(const std::string& link) const;

    std::vector<std::string> links_;
    std::uint64_t start_ = 0;
    std::uint64_t hwm_ = 0;
    std::map<std::string, std::string> link_terminal_;  ///< URL -> terminal id
    std::map<std::string, rebuild_report> by_terminal_; ///< the highest report per peer
    std::vector<std::string> reported_links_;
    std::vector<std::string> excluded_;
    std::vector<std::string> conflicts_;
};

/// 10000 -> "10,000".
std::string thousands(std::uint64_t n);

} // namespace lanesync::protocol
