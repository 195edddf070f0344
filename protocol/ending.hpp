#pragma once
/// Why a peer session ended, classified by retryability in one pure function (STYLE habit 8,
/// LiteCore's C4Error::mayBeTransient). The link supervisor (lanes/peer_link.cpp) waits the
/// short full-jitter backoff after a transient ending and the long one
/// (tuning::peer_reconnect_permanent) after a permanent one, and status and /metrics show
/// which it was. No Asio here.

#include "protocol/version.hpp"

#include <cstdint>
#include <string>
#include <string_view>

namespace lanesync::protocol {

/// How far a session got before it ended.
enum class session_stage {
    connecting,     ///< TCP connect, TLS handshake or WebSocket upgrade
    authenticating, ///< hello / challenge / auth / ready
    authenticated,  ///< joined the hub: data phase
};

/// Which side decided the ending.
enum class decided_by {
    us,        ///< this lane refused or closed (a close frame we sent)
    peer,      ///< the other lane sent a close frame
    transport, ///< neither: network error, timeout, TLS failure, connection reset
};

enum class ending_class { transient, permanent };

struct ending {
    ending_class cls = ending_class::transient;
    /// A short operator-facing name of the cause, e.g. "wrong PEER_SECRET"; empty when the
    /// ending is an ordinary transient one (network, shutdown, timeout).
    std::string text;
    /// Reconnect at once (no backoff) offering this version, and keep offering it on this
    /// link: the peer refused our protocol version but speaks this one, or a rebuild started
    /// or finished ("rebuilding: ...", "rebuild finished": the version offered). 0 otherwise.
    int retry_version = 0;
    bool permanent() const { return cls == ending_class::permanent; }
};

/// What a link offered in its hello and the versions this lane speaks (for version endings).
struct version_offer {
    int offered = 0;
    version_range ours;
};

/// Classifies one ending from where the session was, the close code sent or received (0 when
/// there was no close frame), the close reason (ours or the peer's, as sent on the wire) and
/// who decided. Permanent: wrong PEER_SECRET, other store, no protocol version in common
/// ("no version in common", or an "unsupported protocol version" refusal naming no version we
/// speak), "incarnation mismatch" (a peer holds other messages of an origin than the origin
/// does, or was left out of its rebuild), a v1 lane's "outbox lost or replaced" — none of them
/// clears without an operator. Transient with `retry_version` set (again at once): a peer's
/// "unsupported protocol version" refusal naming a version both speak, and either side's
/// "rebuilding: ..." or "rebuild finished" close (with the offered version, else ours.max).
/// Everything else is transient, including a duplicate terminal id (it clears when the old
/// session dies), an id conflict, a storage failure, a malformed frame and every network
/// error.
ending classify_ending(session_stage stage, std::uint16_t close_code, std::string_view reason,
                       decided_by who, const version_offer& offer = {});

const char* to_string(ending_class c);

} // namespace lanesync::protocol
