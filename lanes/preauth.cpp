#include "lanes/preauth.hpp"

#include "base/log.hpp"
#include "base/log_limit.hpp"
#include "base/metrics.hpp"
#include "lanes/session_support.hpp"

#include <array>

namespace lanesync::lanes::detail {
namespace {

constexpr std::array all_reasons{
    preauth_reason::timeout,         preauth_reason::tls,
    preauth_reason::refused_upgrade, preauth_reason::bad_handshake,
    preauth_reason::wrong_secret,    preauth_reason::identity,
    preauth_reason::duplicate,       preauth_reason::closed,
    preauth_reason::oversized_frame, preauth_reason::too_many_connections};

struct preauth_metrics {
    std::array<metrics::counter*, all_reasons.size()> by_reason{};
    preauth_metrics() {
        for (std::size_t i = 0; i < all_reasons.size(); ++i)
            by_reason[i] = &metrics::global().get_counter(
                "lanesync_peer_preauth_failures_total",
                "Inbound peer connections that ended before authentication, by reason",
                "reason=\"" + std::string(to_string(all_reasons[i])) + "\"");
    }
};

preauth_metrics& metrics_of() {
    static preauth_metrics m;
    return m;
}

log::limited_lines& preauth_lines() {
    static log::limited_lines l("peer.preauth_failed");
    return l;
}

log::limited_lines& too_big_lines() {
    static log::limited_lines l("peer.bad_frame");
    return l;
}

} // namespace

std::string_view to_string(preauth_reason r) {
    switch (r) {
    case preauth_reason::timeout:
        return "timeout";
    case preauth_reason::tls:
        return "tls";
    case preauth_reason::refused_upgrade:
        return "refused_upgrade";
    case preauth_reason::bad_handshake:
        return "bad_handshake";
    case preauth_reason::wrong_secret:
        return "wrong_secret";
    case preauth_reason::identity:
        return "identity";
    case preauth_reason::duplicate:
        return "duplicate";
    case preauth_reason::closed:
        return "closed";
    case preauth_reason::oversized_frame:
        return "oversized_frame";
    case preauth_reason::too_many_connections:
        return "too_many_connections";
    }
    return "closed";
}

preauth_reason classify_preauth(const preauth_end& e) {
    using protocol::close_cause;
    if (e.cause) {
        switch (*e.cause) {
        case close_cause::wrong_secret:
            return preauth_reason::wrong_secret;
        case close_cause::identity:
            return preauth_reason::identity;
        case close_cause::hub_refused:
            return preauth_reason::duplicate;
        default:
            return preauth_reason::bad_handshake; // malformed or unexpected frames
        }
    }
    if (e.too_big)
        return preauth_reason::oversized_frame;
    if (e.bad_frame)
        return preauth_reason::bad_handshake;
    if (e.auth_timed_out)
        return preauth_reason::timeout;
    return preauth_reason::closed;
}

void note_preauth_failure(preauth_reason r, const std::string& remote, const std::string& detail) {
    auto& m = metrics_of();
    m.by_reason[static_cast<std::size_t>(r)]->inc();
    if (r == preauth_reason::oversized_frame)
        pm().malformed.inc();
    const std::string reason(to_string(r));
    if (preauth_lines().gate(reason))
        log::warn("peer.preauth_failed", {{"remote", remote.empty() ? "?" : remote},
                                          {"reason", reason},
                                          {"detail", log::redact(detail)}});
}

void note_bad_frame(const std::string& peer, const std::string& remote, const std::string& what,
                    bool too_big) {
    pm().malformed.inc();
    const char* event = too_big ? "peer.frame_too_big" : "peer.bad_frame";
    if (too_big_lines().gate(event))
        log::warn(event, {{"peer", peer.empty() ? "?" : peer},
                          {"remote", remote.empty() ? "?" : remote},
                          {"error", what}});
}

void register_preauth_metrics() {
    metrics_of();
}

} // namespace lanesync::lanes::detail
