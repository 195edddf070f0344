// The peer_machine's rules about lane rebuild, trust caps and news (docs/protocol.md "Lane
// rebuild", "Trust caps" and "News"): serving a rebuilding peer, the rebuilding side's
// reports, the marks of a lane left out of our rebuild, and the news frame both ways.
#include "protocol/peer_machine.hpp"
#include "protocol/peer_machine_detail.hpp"

#include <algorithm>

namespace lanesync::protocol {

using detail::id_of;
using detail::seq_of;
using detail::short_id;

// ---- our ready ------------------------------------------------------------------------------

/// Our ready (v2: with our incarnation and rebuild state), then any news that waited for it.
void peer_machine::send_ready(const hwm_map& own, tip_ids ids, peer_actions& out) {
    ready_frame r{own, std::move(ids), v2()};
    if (v2()) {
        r.inc = cfg_.incarnation;
        r.rebuild = cfg_.rebuilding;
    }
    out.push_back(send_frame{encode(r)});
    ready_sent_ = true;
    if (news_out_ && v2())
        out.push_back(send_frame{encode(news_frame{std::move(*news_out_)})});
    news_out_.reset();
    flush_catalog_have(out);
}

// ---- serving a rebuild ----------------------------------------------------------------------

/// The peer is rebuilding: before anything is sent, our replica of its origin must agree with
/// its own mark. Returns true when that needs a lookup (continued in on_origin_mark).
bool peer_machine::serve_rebuild(ready_frame& peer, const hwm_map& own, peer_actions& out) {
    const std::uint64_t mark = seq_of(peer.hwm, peer_id_);
    if (mark == 0) {
        serving_rebuild_ = true;
        cursor_[peer_id_] = 0;
        return false;
    }
    checking_ = std::move(peer);
    checking_own_ = own;
    origin_checking_ = true;
    out.push_back(read_origin_mark{peer_id_, mark});
    return true;
}

/// Our replica's id at the rebuilding peer's own mark. Another id: the peer holds other
/// messages of its origin than we do (refused, nothing sent). Otherwise the peer's origin is
/// sent from its mark on, and the usual rules about our own origin follow.
peer_actions peer_machine::on_origin_mark(const std::string& origin, std::uint64_t seq,
                                          const std::string& id) {
    peer_actions out;
    if (closing_ || !origin_checking_ || origin != peer_id_ ||
        seq != seq_of(checking_.hwm, peer_id_))
        return out;
    origin_checking_ = false;
    ready_frame peer = std::move(checking_);
    const std::string theirs = id_of(peer.ids, peer_id_);
    if (!id.empty() && !theirs.empty() && id != theirs) {
        refuse_mismatch("incarnation mismatch: this lane holds " + peer_id_ + ":" +
                            std::to_string(seq) + " as " + short_id(id) + ", " + peer_id_ +
                            " holds " + short_id(theirs),
                        {{"origin", peer_id_},
                         {"seq", std::to_string(seq)},
                         {"local_id", id},
                         {"peer_tip_id", theirs}},
                        out);
        return out;
    }
    serving_rebuild_ = true;
    cursor_[peer_id_] = seq;
    check_own_origin(peer, checking_own_, out);
    return out;
}

// ---- the rebuilding side --------------------------------------------------------------------

/// Rebuilding: the peer's mark of our origin is reported to the lane, never refused for being
/// above our hwm (that is what we restore); at or below it, it must name our own message.
void peer_machine::check_rebuilding_ready(std::uint64_t peer_holds, std::uint64_t we_hold,
                                          std::string id, peer_actions& out) {
    out.push_back(own_reported{peer_id_, peer_holds, id});
    if (peer_holds == 0 || peer_holds > we_hold) {
        ready_passed(out);
        return;
    }
    check_own_mark(peer_holds, std::move(id), true, out);
}

// ---- trust caps -----------------------------------------------------------------------------

/// A lane left out of our rebuild holds messages of our origin we never restored: its marks
/// above the cap name messages other than ours at those seqs. Refused, permanently.
bool peer_machine::over_trust_cap(std::uint64_t seq, peer_actions& out) {
    auto it = cfg_.trust_caps.find(peer_id_);
    if (it == cfg_.trust_caps.end() || seq <= it->second)
        return false;
    refuse_mismatch(
        "incarnation mismatch: " + peer_id_ + " was excluded from this lane's " +
            "rebuild at seq " + std::to_string(it->second),
        {{"peer_holds_seq", std::to_string(seq)}, {"trust_cap", std::to_string(it->second)}}, out);
    return true;
}

void peer_machine::maybe_lift_cap(std::uint64_t seq, peer_actions& out) {
    auto it = cfg_.trust_caps.find(peer_id_);
    if (!cap_cleared_ || cap_lifted_ || it == cfg_.trust_caps.end() || seq <= it->second)
        return;
    cap_lifted_ = true; // once; the cap stays in this session's config (a later mismatch from
                        // this peer is still its stale copy, never our loss)
    out.push_back(lift_trust_cap{peer_id_, seq});
}

void peer_machine::refuse_mismatch(std::string why,
                                   std::vector<std::pair<std::string, std::string>> log,
                                   peer_actions& out) {
    close(close_link{close_code::policy_violation, std::move(why),
                     close_cause::incarnation_mismatch, true, false, std::move(log)},
          out);
}

// ---- news -----------------------------------------------------------------------------------

peer_actions peer_machine::on_news(news n) {
    peer_actions out;
    if (closing_ || (version_ > 0 && !v2()))
        return out;
    if (!ready_sent_) { // sent right after our ready
        news_out_ = std::move(n);
        return out;
    }
    out.push_back(send_frame{encode(news_frame{std::move(n)})});
    return out;
}

peer_actions peer_machine::on_news_frame(news_frame& n) {
    if (!v2())
        return refuse(close_code::policy_violation, "malformed frame: news in a v1 session",
                      close_cause::malformed);
    if (!got_ready_)
        return refuse(close_code::policy_violation, "malformed frame: news before the data phase",
                      close_cause::malformed);
    news_in_ = std::move(n); // the latest waits for the check of the peer's ready
    peer_actions out;
    if (ready_checked_)
        deliver_news(out);
    return out;
}

/// The peer's news to the lane. What it says of our own origin's cloud_through counts only up
/// to the peer's last verified mark of our origin: a peer holding other messages of our origin
/// could otherwise mark ours cloud_ack.
void peer_machine::deliver_news(peer_actions& out) {
    if (!news_in_)
        return;
    news_frame n = std::move(*news_in_);
    news_in_.reset();
    std::uint64_t own = 0, floor = 0;
    if (auto it = n.cloud.find(cfg_.terminal_id); it != n.cloud.end()) {
        own = std::min(it->second, trusted_seq_);
        floor = cfg_.rebuilding ? it->second : 0;
        n.cloud.erase(it);
    }
    out.push_back(news_received{peer_id_, std::move(n.seen), std::move(n.cloud), std::move(n.cover),
                                std::move(n.holds), own, floor});
}

} // namespace lanesync::protocol
