#pragma once
/// Private to lanes/: abuse of the peer port made visible and bounded. Every inbound
/// connection that ends before its session is authenticated is counted once, by reason, in
/// `lanesync_peer_preauth_failures_total{reason=...}` and logged as one `peer.preauth_failed`
/// warning with the remote address, rate-limited per reason (base/log_limit.hpp), so that a
/// flood (slowloris, idle sockets, wrong secrets, port scans) shows in /metrics and cannot fill
/// the disk with log lines. A frame over the size limit is closed with 1009 by Beast; it is
/// counted as malformed and logged (`peer.frame_too_big`, rate-limited). docs/protocol.md
/// "Abuse of the peer port".

#include "protocol/peer_machine.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace lanesync::lanes::detail {

enum class preauth_reason {
    timeout,              ///< TLS, upgrade or authentication not finished in 10 s
    tls,                  ///< the TLS handshake failed
    refused_upgrade,      ///< an HTTP request that is not a WebSocket upgrade on /v1/peer
    bad_handshake,        ///< not HTTP, a failed WebSocket accept, a bad frame before auth
    wrong_secret,         ///< a mac did not verify
    identity,             ///< version, store or terminal id refused
    duplicate,            ///< the terminal id is already connected
    closed,               ///< the client went away before authenticating (EOF, reset)
    oversized_frame,      ///< a frame over the limit before authentication (closed 1009)
    too_many_connections, ///< over PEER_MAX_CONNECTIONS: closed at accept
};

std::string_view to_string(preauth_reason r);

/// How an inbound session that never authenticated ended, as the session saw it.
struct preauth_end {
    bool auth_timed_out = false; ///< our authentication deadline (or the idle timeout) fired
    std::optional<protocol::close_cause> cause; ///< the refusal this lane decided, if any
    bool too_big = false;                       ///< Beast refused a frame over the limit
    bool bad_frame = false; ///< Beast refused a frame (bad UTF-8, bad opcode, bad length)
};

/// Pure: the reason an unauthenticated inbound session is counted under.
preauth_reason classify_preauth(const preauth_end& e);

/// Counts one failure and writes the (rate-limited) warning. `detail`: the refusal or error
/// text (never a secret). Registers every reason's series on first use.
void note_preauth_failure(preauth_reason r, const std::string& remote, const std::string& detail);

/// A frame Beast refused in an authenticated session (`too_big`: over the size limit, closed
/// 1009; else invalid UTF-8 1007 or another protocol error 1002): counted as malformed and
/// logged (`peer.frame_too_big` / `peer.bad_frame`, rate-limited).
void note_bad_frame(const std::string& peer, const std::string& remote, const std::string& what,
                    bool too_big);

/// Registers the series (so /metrics lists every reason at 0 before any failure).
void register_preauth_metrics();

} // namespace lanesync::lanes::detail
