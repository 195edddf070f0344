#include "lanes/session_support.hpp"

#include "base/log.hpp"
#include "base/tuning.hpp"
#include "protocol/close_code.hpp"
#include "protocol/message.hpp"

#include <charconv>

namespace lanesync::lanes::detail {
namespace {

std::string or_unknown(const std::string& id) {
    return id.empty() ? "?" : id;
}

std::string detail_of(const protocol::close_link& a, std::string_view key) {
    for (const auto& [k, v] : a.log)
        if (k == key)
            return v;
    return {};
}

std::uint64_t number(const std::string& s) {
    std::uint64_t n = 0;
    std::from_chars(s.data(), s.data() + s.size(), n);
    return n;
}

void write_cloud_through(hub& h, const std::string& peer, const std::string& origin,
                         std::uint64_t through) {
    h.outbox().origin_cloud_through(
        origin, through, [peer, origin, through](outbox::count_outcome o) {
            if (!o.ok)
                log::warn("peer.cloud_through_failed", {{"peer", peer},
                                                        {"origin", origin},
                                                        {"through", std::to_string(through)},
                                                        {"error", o.error}});
            else if (o.count)
                log::info("peer.cloud_through", {{"peer", peer},
                                                 {"origin", origin},
                                                 {"through", std::to_string(through)},
                                                 {"marked", std::to_string(o.count)}});
        });
}

} // namespace

peer_metrics& pm() {
    static peer_metrics m;
    return m;
}

protocol::peer_machine_config machine_config(const conf::config& cfg, int offer_version,
                                             const session_mode& mode) {
    protocol::peer_machine_config c;
    c.store_id = cfg.store_id;
    c.terminal_id = cfg.terminal_id;
    c.secret = cfg.peer_secret;
    c.version = tuning::peer_protocol_version;
    c.min_version = tuning::peer_protocol_min_version;
    c.offer_version = offer_version;
    c.window = tuning::peer_inflight_batches;
    c.batch_max_messages = tuning::peer_batch_max_messages;
    c.batch_max_bytes = tuning::peer_batch_max_bytes;
    c.nonce_bytes = tuning::peer_nonce_bytes;
    c.limits.max_messages = tuning::peer_batch_max_messages;
    c.limits.max_message_bytes = cfg.max_message_bytes;
    c.rebuilding = mode.rebuilding;
    c.incarnation = mode.incarnation;
    c.trust_caps = mode.trust_caps;
    return c;
}

protocol::stored_outcome to_protocol(outbox::replicas_outcome o) {
    protocol::stored_outcome s;
    s.ok = o.ok;
    s.conflict = std::move(o.conflict);
    s.gap = o.gap;
    s.error = std::move(o.error);
    s.inserted = o.inserted;
    s.hwm = std::move(o.hwm);
    return s;
}

void on_close_decided(hub& h, protocol::close_link& a, bool outbound, const std::string& peer_id,
                      const std::string& claimed_id, bool quiet) {
    using protocol::close_cause;
    if (a.auth_failure)
        pm().auth_failures.inc();
    if (a.cause == close_cause::malformed)
        pm().malformed.inc();
    const std::string peer = or_unknown(peer_id);
    if (quiet)
        ; // logged once, rate-limited, when the connection ends (lanes/preauth.hpp)
    else if (a.cause == close_cause::wrong_secret && !outbound)
        log::warn("peer.auth_failed", {{"peer", claimed_id}, {"reason", "wrong PEER_SECRET"}});
    else if (a.cause == close_cause::outbox_lost)
        log::error("peer.outbox_behind_peer", {{"peer", peer},
                                               {"peer_holds_seq", detail_of(a, "peer_holds_seq")},
                                               {"local_seq", detail_of(a, "local_seq")},
                                               {"peer_tip_id", detail_of(a, "peer_tip_id")},
                                               {"local_id", detail_of(a, "local_id")}});
    else if (a.cause == close_cause::incarnation_mismatch)
        log::error("peer.incarnation_mismatch", {{"peer", peer}, {"reason", a.reason}});
    else if (a.cause == close_cause::id_conflict)
        log::error("peer.id_conflict", {{"peer", peer}, {"conflict", detail_of(a, "conflict")}});
    else if (a.cause == close_cause::storage_failure)
        log::error("peer.store_failed", {{"peer", peer}, {"error", detail_of(a, "error")}});
    if (a.refusal && !quiet)
        log::warn("peer.refused",
                  {{"peer", peer}, {"code", std::to_string(a.code)}, {"reason", a.reason}});
    // What the lane does about it. The outbox-lost close carries the reason the rebuild shows
    // ("rebuilding: peer holds seq N of L1 but this lane only M").
    if (a.cause == close_cause::outbox_lost) {
        h.rebuild().outbox_lost(peer_id, a.reason, number(detail_of(a, "local_seq")),
                                protocol::now_ms());
    } else if (a.cause == close_cause::incarnation_mismatch) {
        h.rebuild().conflict(peer_id, peer + ": " + a.reason);
    }
}

void on_peer_closed(hub& h, const std::string& peer, std::string_view reason) {
    if (reason.starts_with("incarnation mismatch"))
        h.rebuild().conflict(peer, or_unknown(peer) + ": " + std::string(reason));
}

void on_news(hub& h, const protocol::news_received& a) {
    h.cover().on_news(a.peer, a.seen, a.cover, a.holds, protocol::now_ms());
    for (const auto& [origin, through] : a.cloud)
        if (origin != h.cfg().terminal_id && h.cover().take_cloud_through(origin, through))
            write_cloud_through(h, a.peer, origin, through);
    const auto& self = h.cfg().terminal_id;
    if (a.own_cloud_through > 0 && h.cover().take_cloud_through(self, a.own_cloud_through))
        write_cloud_through(h, a.peer, self, a.own_cloud_through);
    if (a.own_cloud_floor > 0)
        h.rebuild().cloud_floor(a.own_cloud_floor); // applied once the restore is done
}

void lift_trust_cap(hub& h, const protocol::lift_trust_cap& a) {
    std::weak_ptr<hub> weak = h.shared_from_this();
    h.outbox().lift_trust_cap(a.peer, [weak, a](outbox::count_outcome o) {
        auto lane = weak.lock();
        if (!lane)
            return;
        if (!o.ok) {
            log::warn("lane.trust_cap_lift_failed", {{"peer", a.peer}, {"error", o.error}});
            return;
        }
        lane->rebuild().cap_lifted(a.peer);
        log::info("lane.trust_cap_lifted", {{"peer", a.peer}, {"seq", std::to_string(a.seq)}});
    });
}

} // namespace lanesync::lanes::detail
