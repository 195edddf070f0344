// The peer_machine's rules about marks (docs/protocol.md "Replication" and "What a mark
// names"): the peer's ready against our own outbox, acks, and in v2 the tip ids that make a
// peer's mark of our own origin trustworthy.
#include "protocol/peer_machine.hpp"
#include "protocol/peer_machine_detail.hpp"

#include <algorithm>

namespace lanesync::protocol {

using detail::id_of;
using detail::seq_of;
using detail::short_id;

/// v1 frames in a v1 session, v2 frames in a v2 session (an empty map fits both).
std::string peer_machine::check_marks_form(bool frame_v2, const hwm_map& marks) const {
    if (marks.empty() || frame_v2 == v2())
        return {};
    return v2() ? "malformed frame: v1 marks in a v2 session"
                : "malformed frame: v2 marks in a v1 session";
}

/// A ready in this session's form: its marks (check_marks_form), and no v2 field in v1.
std::string peer_machine::check_ready_form(const ready_frame& r) const {
    if (auto why = check_marks_form(r.v2, r.hwm); !why.empty())
        return why;
    if (!v2() && (!r.inc.empty() || r.rebuild))
        return "malformed frame: v2 fields in a v1 session";
    return {};
}

/// The peer's ready against our own hwm: serving a rebuild (our replica of the peer's origin),
/// then the rules about our own origin; then the sender starts.
void peer_machine::check_peer_ready(const hwm_map& own, peer_actions& out) {
    ready_frame peer = std::move(*peer_ready_);
    peer_ready_.reset();
    cursor_ = peer.hwm;
    cursor_.erase(peer_id_); // never send a lane its own messages (but see serving a rebuild)
    if (cfg_.rebuilding && !v2()) {
        // A v1 lane cannot report what it holds of our origin nor send it: the rebuild waits
        // for it until it speaks v2 or the operator leaves it out.
        close(close_link{close_code::policy_violation,
                         "rebuild needs protocol v2: this lane is rebuilding, the session speaks " +
                             std::to_string(version_),
                         close_cause::identity,
                         true,
                         false,
                         {}},
              out);
        return;
    }
    if (peer.rebuild && serve_rebuild(peer, own, out))
        return; // continues in on_origin_mark
    check_own_origin(peer, own, out);
}

/// The peer's mark of our own origin at its ready.
void peer_machine::check_own_origin(const ready_frame& peer, const hwm_map& own,
                                    peer_actions& out) {
    std::uint64_t peer_holds = seq_of(peer.hwm, cfg_.terminal_id);
    std::uint64_t we_hold = seq_of(own, cfg_.terminal_id);
    if (over_trust_cap(peer_holds, out))
        return;
    // At or below its cap: the peer's marks are checked by id from here on, above the cap too
    // (what it holds above it came from this session, not from our lost incarnation).
    cap_cleared_ = cfg_.trust_caps.contains(peer_id_);
    if (cfg_.rebuilding) {
        check_rebuilding_ready(peer_holds, we_hold, id_of(peer.ids, cfg_.terminal_id), out);
        return;
    }
    // A peer holding more of our own messages than we do means our outbox was lost or
    // replaced (e.g. a wiped disk): our new seqs would collide with the ones it holds, and its
    // acks would promote messages it never saw. Rebuild from the peers instead.
    if (peer_holds > we_hold) {
        refuse_outbox_lost("peer holds seq " + std::to_string(peer_holds) + " of " +
                               cfg_.terminal_id + " but this lane only " + std::to_string(we_hold),
                           peer_holds, we_hold, {}, out);
        return;
    }
    // v2: holding as many is not enough, the peer must hold *our* message there (a wiped lane
    // that handed out more seqs than the peer held). The answer continues in on_own_mark.
    if (v2() && peer_holds > 0) {
        check_own_mark(peer_holds, id_of(peer.ids, cfg_.terminal_id), true, out);
        return;
    }
    out.push_back(peer_acked{peer_id_, peer_holds});
    ready_passed(out);
}

void peer_machine::ready_passed(peer_actions& out) {
    ready_checked_ = true;
    deliver_news(out);
    pump(out);
}

void peer_machine::check_own_mark(std::uint64_t seq, std::string id, bool at_ready,
                                  peer_actions& out) {
    checks_.push_back({seq, std::move(id), at_ready});
    out.push_back(read_own_mark{seq});
}

/// v2: the peer's mark of our origin against our own message at that seq. Same id: the peer
/// holds our messages 1..seq (promote). Other id, or a seq above ours: it holds other messages
/// of our origin (refuse, never promote). Nothing to compare (no id in the mark, or our
/// message there was pruned after cloud_ack): neither, and nothing is promoted by it.
peer_actions peer_machine::on_own_mark(std::uint64_t seq, std::uint64_t own_hwm,
                                       const std::string& id) {
    peer_actions out;
    if (closing_ || checks_.empty() || checks_.front().seq != seq)
        return out;
    own_mark_check c = std::move(checks_.front());
    checks_.pop_front();
    if (seq > own_hwm) {
        if (cfg_.rebuilding) { // not restored that far yet: neither trusted nor refused
            if (c.at_ready)
                ready_passed(out);
            return out;
        }
        refuse_outbox_lost("peer holds seq " + std::to_string(seq) + " of " + cfg_.terminal_id +
                               " but this lane only " + std::to_string(own_hwm),
                           seq, own_hwm, {}, out);
        return out;
    }
    const bool comparable = !c.id.empty() && !id.empty();
    if (comparable && c.id != id) {
        if (cfg_.rebuilding) {
            refuse_mismatch("incarnation mismatch: peer holds " + cfg_.terminal_id + ":" +
                                std::to_string(seq) + " as " + short_id(c.id) +
                                ", this lane's is " + short_id(id),
                            {{"origin", cfg_.terminal_id},
                             {"seq", std::to_string(seq)},
                             {"peer_tip_id", c.id},
                             {"local_id", id}},
                            out);
            return out;
        }
        // A lane left out of our rebuild (trust cap) holds its stale copy of our origin, even
        // below its cap: an incarnation mismatch, never a loss of ours (no rebuild).
        if (auto cap = cfg_.trust_caps.find(peer_id_); cap != cfg_.trust_caps.end()) {
            refuse_mismatch("incarnation mismatch: " + peer_id_ + " was excluded from this " +
                                "lane's rebuild at seq " + std::to_string(cap->second) +
                                " and holds other messages of " + cfg_.terminal_id,
                            {{"seq", std::to_string(seq)}, {"peer_tip_id", c.id}, {"local_id", id}},
                            out);
            return out;
        }
        refuse_outbox_lost("peer holds seq " + std::to_string(seq) + " of " + cfg_.terminal_id +
                               " as " + short_id(c.id) + " but this lane's is " + short_id(id) +
                               " (hwm " + std::to_string(own_hwm) + ")",
                           seq, own_hwm, {{"peer_tip_id", c.id}, {"local_id", id}}, out);
        return out;
    }
    if (comparable && seq >= trusted_seq_) {
        trusted_seq_ = seq;
        trusted_id_ = c.id;
        maybe_lift_cap(seq, out);
    }
    out.push_back(peer_acked{peer_id_, comparable ? seq : trusted_seq_});
    if (c.at_ready)
        ready_passed(out);
    return out;
}

/// Our outbox lost messages the peer holds (or holds others at our seqs): this lane starts a
/// rebuild (lanes/), and this session ends with 1001 "rebuilding: ..." so that both sides
/// reconnect at once, this one in rebuild mode (protocol/ending.cpp).
void peer_machine::refuse_outbox_lost(std::string why, std::uint64_t peer_holds,
                                      std::uint64_t we_hold,
                                      std::vector<std::pair<std::string, std::string>> ids,
                                      peer_actions& out) {
    std::vector<std::pair<std::string, std::string>> log{
        {"peer_holds_seq", std::to_string(peer_holds)}, {"local_seq", std::to_string(we_hold)}};
    log.insert(log.end(), ids.begin(), ids.end());
    close(close_link{close_code::going_away, "rebuilding: " + std::move(why),
                     close_cause::outbox_lost, true, false, std::move(log)},
          out);
}

// ---- acks -----------------------------------------------------------------------------------

peer_actions peer_machine::on_ack(ack_frame& a) {
    if (a.n != next_ack_in_ || inflight_ == 0)
        return refuse(close_code::policy_violation,
                      "malformed frame: ack " + std::to_string(a.n) + " does not match a batch",
                      close_cause::malformed);
    if (auto why = check_marks_form(a.v2, a.hwm); !why.empty())
        return refuse(close_code::policy_violation, why, close_cause::malformed);
    ++next_ack_in_;
    --inflight_;
    // Relayed origins: the seq only moves the cursor (the peer never gets them twice).
    for (const auto& [origin, seq] : a.hwm) {
        if (origin == peer_id_ && !serving_rebuild_)
            continue;
        auto& c = cursor_[origin];
        c = std::max(c, seq);
    }
    peer_actions out;
    if (auto it = a.hwm.find(cfg_.terminal_id); it != a.hwm.end()) {
        if (!cap_cleared_ && over_trust_cap(it->second, out))
            return out;
        std::string id = id_of(a.ids, cfg_.terminal_id);
        if (!v2())
            out.push_back(peer_acked{peer_id_, it->second});
        else if (checks_.empty() && it->second == trusted_seq_ && id == trusted_id_)
            out.push_back(peer_acked{peer_id_, it->second}); // the mark we already checked
        else
            check_own_mark(it->second, std::move(id), false, out);
    }
    pump(out);
    return out;
}

/// v2: the receiver's tip ids for the ack of batch n arrived; acks go out in batch order.
peer_actions peer_machine::on_ack_ids(std::uint64_t n, tip_ids ids) {
    peer_actions out;
    if (closing_ || acks_waiting_.empty() || acks_waiting_.front().first != n)
        return out;
    hwm_map hwm = std::move(acks_waiting_.front().second);
    acks_waiting_.pop_front();
    out.push_back(send_frame{encode(ack_frame{n, std::move(hwm), std::move(ids), true})});
    return out;
}

} // namespace lanesync::protocol
