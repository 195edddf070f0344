#include "protocol/peer_machine.hpp"

#include <algorithm>

namespace lanesync::protocol {
peer_machine::peer_machine(peer_machine_config cfg, peer_role role)
    : cfg_(std::move(cfg)), role_(role) {}

peer_actions peer_machine::start() {
    peer_actions out;
    if (role_ != peer_role::client || stage_ != stage::idle)
        return out;
    nonce_c_ = random_hex(cfg_.nonce_bytes);
    version_ = cfg_.offer_version > 0 ? cfg_.offer_version : cfg_.version;
    out.push_back(
        send_frame{encode(hello_frame{version_, cfg_.store_id, cfg_.terminal_id, nonce_c_})});
    stage_ = stage::hello_sent;
    return out;
}

// ---- input ----------------------------------------------------------------------------------

peer_actions peer_machine::on_text(std::string_view text) {
    if (closing_)
        return {};
    auto r = decode_frame(text, cfg_.limits);
    if (auto* bad = std::get_if<decode_error>(&r))
        return refuse(bad->close_code, "malformed frame: " + bad->reason, close_cause::malformed);
    return on_frame(std::get<frame>(std::move(r)));
}

peer_actions peer_machine::on_binary() {
    return refuse(close_code::policy_violation,
                  "malformed frame: binary frames are not part of the protocol",
                  close_cause::malformed);
}

peer_actions peer_machine::on_frame(frame f) {
    if (closing_)
        return {};
    if (std::holds_alternative<news_frame>(f) && stage_ != stage::joining && stage_ != stage::open)
        return refuse(close_code::policy_violation, "malformed frame: news before the data phase",
                      close_cause::malformed);
    if ((std::holds_alternative<catalog_have_frame>(f) || std::holds_alternative<catalog_frame>(f)))
        return on_catalog_frame(f);
    if (stage_ == stage::joining || stage_ == stage::open)
        return on_data_frame(f);
    return on_handshake_frame(f);
}

// ---- authentication -------------------------------------------------------------------------

std::string peer_machine::check_identity(int version, const std::string& store,
                                         const std::string& terminal) const {
    // The server serves any version it speaks; the client wants the one it offered back.
    const version_range ours = role_ == peer_role::server
                                   ? version_range{cfg_.min_version, cfg_.version}
                                   : version_range{version_, version_};
    if (serve_version(version, ours) == 0)
        return version_refusal(version, ours);
    if (store != cfg_.store_id)
        return "store mismatch: peer is in store " + store + ", this lane in " + cfg_.store_id;
    if (terminal == cfg_.terminal_id)
        return "duplicate terminal id: " + terminal + " is this lane's own id";
    return {};
}

peer_actions peer_machine::on_handshake_frame(frame& f) {
    switch (stage_) {
    case stage::hello_sent:
        if (auto* ch = std::get_if<challenge_frame>(&f))
            return on_challenge(*ch);
        return refuse(close_code::policy_violation, "expected a challenge frame",
                      close_cause::wrong_frame);
    case stage::auth_sent:
        if (auto* r = std::get_if<ready_frame>(&f))
            return on_ready(*r);
        return refuse(close_code::policy_violation, "expected a ready frame",
                      close_cause::wrong_frame);
    case stage::idle:
        if (role_ == peer_role::server) {
            if (auto* h = std::get_if<hello_frame>(&f))
                return on_hello(*h);
            return refuse(close_code::policy_violation, "expected a hello frame",
                          close_cause::wrong_frame);
        }
        break; // a client that has not started reads nothing
    case stage::challenge_sent:
        if (auto* a = std::get_if<auth_frame>(&f))
            return on_auth(*a);
        return refuse(close_code::policy_violation, "expected an auth frame",
                      close_cause::wrong_frame);
    case stage::joining:
    case stage::open:
        break;
    }
    return {};
}

/// Client: the server's identity and proof.
peer_actions peer_machine::on_challenge(challenge_frame& ch) {
    claimed_id_ = ch.terminal;
    if (auto why = check_identity(ch.version, ch.store, ch.terminal); !why.empty())
        return refuse(close_code::policy_violation, why, close_cause::identity);
    auto expect = peer_mac(cfg_.secret, peer_role::server, cfg_.store_id, cfg_.terminal_id,
                           ch.terminal, nonce_c_, ch.nonce);
    if (!mac_equal(expect, ch.mac)) {
        return refuse(close_code::policy_violation,
                      "authentication failed: peer does not know PEER_SECRET",
                      close_cause::wrong_secret, true);
    }
    peer_id_ = ch.terminal;
    nonce_s_ = ch.nonce;
    auto mac = peer_mac(cfg_.secret, peer_role::client, cfg_.store_id, cfg_.terminal_id, peer_id_,
                        nonce_c_, nonce_s_);
    stage_ = stage::auth_sent;
    peer_actions out;
    out.push_back(send_frame{encode(auth_frame{mac})});
    return out;
}

/// Server: the client's identity; answer with our proof.
peer_actions peer_machine::on_hello(hello_frame& h) {
    claimed_id_ = h.terminal;
    if (auto why = check_identity(h.version, h.store, h.terminal); !why.empty()) {
        return refuse(close_code::policy_violation, why, close_cause::identity, true);
    }
    version_ = h.version;
    nonce_c_ = h.nonce;
    nonce_s_ = random_hex(cfg_.nonce_bytes);
    auto mac = peer_mac(cfg_.secret, peer_role::server, cfg_.store_id, h.terminal, cfg_.terminal_id,
                        nonce_c_, nonce_s_);
    stage_ = stage::challenge_sent;
    peer_actions out;
    out.push_back(send_frame{encode(
        challenge_frame{version_, cfg_.store_id, cfg_.terminal_id, nonce_s_, std::move(mac)})});
    return out;
}

/// Server: the client's proof; then join the hub.
peer_actions peer_machine::on_auth(auth_frame& a) {
    auto expect = peer_mac(cfg_.secret, peer_role::client, cfg_.store_id, claimed_id_,
                           cfg_.terminal_id, nonce_c_, nonce_s_);
    if (!mac_equal(expect, a.mac)) {
        return refuse(close_code::policy_violation, "authentication failed",
                      close_cause::wrong_secret, true);
    }
    peer_id_ = claimed_id_;
    stage_ = stage::joining;
    peer_actions out;
    out.push_back(join_hub{peer_id_});
    return out;
}

/// Client: the server accepted us; join the hub, then answer with our own ready.
peer_actions peer_machine::on_ready(ready_frame& r) {
    if (auto why = check_ready_form(r); !why.empty())
        return refuse(close_code::policy_violation, why, close_cause::malformed);
    got_ready_ = true;
    peer_inc_ = r.inc;
    peer_ready_ = std::move(r);
    stage_ = stage::joining;
    peer_actions out;
    out.push_back(join_hub{peer_id_});
    return out;
}

peer_actions peer_machine::on_join(const std::string& refusal) {
    if (closing_ || stage_ != stage::joining)
        return {};
    if (!refusal.empty()) {
        return refuse(close_code::policy_violation, refusal, close_cause::hub_refused, true);
    }
    joined_ = true;
    stage_ = stage::open;
    ready_to_send_ = true;
    peer_actions out;
    if (!hwm_reading_) {
        hwm_reading_ = true;
        out.push_back(read_hwm{v2()});
    }
    return out;
}

peer_actions peer_machine::on_hwm(hwm_map own, tip_ids ids) {
    hwm_reading_ = false;
    peer_actions out;
    if (closing_)
        return out;
    if (ready_to_send_) {
        ready_to_send_ = false;
        send_ready(own, std::move(ids), out);
    }
    if (peer_ready_)
        check_peer_ready(own, out);
    return out;
}

// ---- data phase -----------------------------------------------------------------------------

peer_actions peer_machine::on_data_frame(frame& f) {
    const auto unexpected = [this](const char* what) {
        return refuse(close_code::policy_violation,
                      std::string("malformed frame: unexpected ") + what, close_cause::malformed);
    };
    if (std::holds_alternative<hello_frame>(f))
        return unexpected("hello");
    if (std::holds_alternative<challenge_frame>(f))
        return unexpected("challenge");
    if (std::holds_alternative<auth_frame>(f))
        return unexpected("auth");
    if (auto* r = std::get_if<ready_frame>(&f)) {
        if (got_ready_)
            return refuse(close_code::policy_violation, "malformed frame: second ready frame",
                          close_cause::malformed);
        if (auto why = check_ready_form(*r); !why.empty())
            return refuse(close_code::policy_violation, why, close_cause::malformed);
        got_ready_ = true;
        peer_inc_ = r->inc;
        peer_ready_ = std::move(*r);
        peer_actions out;
        if (!hwm_reading_) {
            hwm_reading_ = true;
            out.push_back(read_hwm{v2()});
        }
        return out;
    }
    if (auto* b = std::get_if<batch_frame>(&f))
        return on_batch(*b);
    if (auto* n = std::get_if<news_frame>(&f))
        return on_news_frame(*n);
    return on_ack(std::get<ack_frame>(f));
}

peer_actions peer_machine::on_batch(batch_frame& b) {
    if (b.n != next_batch_in_)
        return refuse(close_code::policy_violation,
                      "malformed frame: batch " + std::to_string(b.n) + " out of order",
                      close_cause::malformed);
    ++next_batch_in_;
    if (++commits_pending_ > cfg_.window)
        return refuse(close_code::policy_violation, "malformed frame: in-flight window exceeded",
                      close_cause::malformed);
    peer_actions out;
    // Rebuilding: the batch may carry our own origin, restored as own messages.
    out.push_back(store_batch{b.n, std::move(b.messages), std::move(b.floor), cfg_.rebuilding});
    return out;
}

peer_actions peer_machine::on_stored(std::uint64_t n, stored_outcome o) {
    if (commits_pending_ > 0)
        --commits_pending_;
    peer_actions out;
    if (closing_)
        return out;
    if (!o.ok) {
        if (!o.conflict.empty()) {
            // Not a malformed frame: the receiver holds this id under the same origin with other
            // content or at another seq (one id under two origins is stored, outbox schema 2).
            // Replication of that origin stops here until an operator resolves it
            // (docs/protocol.md).
            close(close_link{close_code::policy_violation,
                             "id conflict: " + o.conflict,
                             close_cause::id_conflict,
                             false,
                             false,
                             {{"conflict", o.conflict}}},
                  out);
            return out;
        }
        if (o.gap)
            return refuse(close_code::policy_violation,
                          "malformed frame: batch leaves a gap: " + o.error,
                          close_cause::malformed);
        close(close_link{close_code::internal_error,
                         "storage failure on receiver",
                         close_cause::storage_failure,
                         false,
                         false,
                         {{"error", o.error}}},
              out);
        return out;
    }
    if (v2()) { // the ack names the tip ids: read them first (acks stay in batch order)
        acks_waiting_.emplace_back(n, o.hwm);
        out.push_back(read_tip_ids{n, std::move(o.hwm)});
        return out;
    }
    out.push_back(send_frame{encode(ack_frame{n, std::move(o.hwm)})});
    return out;
}

// ---- sender ---------------------------------------------------------------------------------

/// Asks for what the peer lacks while the in-flight window has room, one read at a time.
void peer_machine::pump(peer_actions& out) {
    if (!sender_ || !ready_checked_ || closing_ || queue_full_)
        return;
    if (reading_) {
        rewake_ = true; // the answer may predate what woke us
        return;
    }
    if (inflight_ >= cfg_.window)
        return;
    reading_ = true;
    out.push_back(read_next_batch{peer_id_, cursor_, cfg_.batch_max_messages, cfg_.batch_max_bytes,
                                  serving_rebuild_});
}

peer_actions peer_machine::on_next_batch(std::vector<message> messages, hwm_map floor) {
    reading_ = false;
    bool again = std::exchange(rewake_, false);
    peer_actions out;
    if (closing_)
        return out;
    if (messages.empty()) {
        if (again)
            pump(out);
        return out;
    }
    for (const auto& [origin, first] : floor) {
        auto& c = cursor_[origin];
        c = std::max(c, first > 0 ? first - 1 : 0);
    }
    for (const auto& m : messages) {
        auto& c = cursor_[m.origin];
        c = std::max(c, m.seq);
    }
    ++inflight_;
    out.push_back(send_frame{
        encode(batch_frame{next_batch_out_++, std::move(messages), std::move(floor)}), true});
    pump(out);
    return out;
}

peer_actions peer_machine::on_wake() {
    peer_actions out;
    pump(out);
    return out;
}

peer_actions peer_machine::on_sender(bool on) {
    sender_ = on;
    peer_actions out;
    pump(out);
    return out;
}

peer_actions peer_machine::on_write_queue(bool full) {
    queue_full_ = full;
    peer_actions out;
    pump(out);
    return out;
}

// ---- endings --------------------------------------------------------------------------------

peer_actions peer_machine::on_auth_timeout() {
    peer_actions out;
    if (joined_ || closing_)
        return out;
    closing_ = true;
    out.push_back(abort_link{"authentication timed out"});
    return out;
}

peer_actions peer_machine::on_close_request(std::uint16_t code, std::string reason) {
    peer_actions out;
    close(close_link{code, std::move(reason), close_cause::requested, false, false, {}}, out);
    return out;
}

peer_actions peer_machine::refuse(std::uint16_t code, std::string why, close_cause cause,
                                  bool auth_failure) {
    peer_actions out;
    close(close_link{code, std::move(why), cause, true, auth_failure, {}}, out);
    return out;
}

void peer_machine::close(close_link c, peer_actions& out) {
    if (closing_)
        return;
    closing_ = true;
    out.push_back(std::move(c));
}

} // namespace lanesync::protocol
