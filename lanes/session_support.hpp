#pragma once
/// Private to lanes/peer_session.cpp: the parts of a session that need no Beast (so they
/// compile once, not once per stream type): the machine's configuration, the peer metric
/// series, the log lines of each kind of close, and what the lane does with a peer's news.

#include "base/metrics.hpp"
#include "conf/config.hpp"
#include "lanes/hub.hpp"
#include "outbox/outbox.hpp"
#include "protocol/peer_machine.hpp"

#include <string>
#include <string_view>

namespace lanesync::lanes::detail {

struct peer_metrics {
    metrics::counter& frames_in = metrics::global().get_counter(
        "lanesync_peer_frames_total", "Peer protocol frames", "direction=\"in\"");
    metrics::counter& frames_out = metrics::global().get_counter(
        "lanesync_peer_frames_total", "Peer protocol frames", "direction=\"out\"");
    metrics::counter& malformed = metrics::global().get_counter(
        "lanesync_peer_malformed_frames_total", "Peer frames refused as malformed");
    metrics::counter& auth_failures = metrics::global().get_counter(
        "lanesync_peer_auth_failures_total", "Peer connections refused during authentication");
    metrics::counter& replicas_stored = metrics::global().get_counter(
        "lanesync_replicas_stored_total", "Copies of other lanes' messages stored");
    metrics::counter& restored = metrics::global().get_counter(
        "lanesync_rebuild_restored_total", "Own messages restored from peers by rebuilds");
};

peer_metrics& pm();

/// The machine's configuration for a new session in the lane's current mode.
protocol::peer_machine_config machine_config(const conf::config& cfg, int offer_version,
                                             const session_mode& mode);

protocol::stored_outcome to_protocol(outbox::replicas_outcome o);

/// A close this lane decided: the log lines and counters of its kind, and what the lane does
/// about it (outbox lost: a rebuild; incarnation mismatch: a conflict of the rebuild). An
/// "outbox lost" from a peer with a trust cap is turned into an incarnation mismatch (`a` is
/// changed: the close then goes out so). `quiet`: an inbound connection refused before it
/// authenticated; its one (rate-limited) log line is lanes/preauth.hpp's, not these.
void on_close_decided(hub& h, protocol::close_link& a, bool outbound, const std::string& peer,
                      const std::string& claimed_id, bool quiet = false);

/// A close the peer decided: an incarnation mismatch it found is a conflict of our rebuild.
void on_peer_closed(hub& h, const std::string& peer, std::string_view reason);

/// A peer's news: liveness, who covers whom, and the cloud_through it knows (written to the
/// outbox only when it is news here).
void on_news(hub& h, const protocol::news_received& a);
/// The peer proved it holds our new history past its trust cap: the cap goes (outbox, mode).
void lift_trust_cap(hub& h, const protocol::lift_trust_cap& a);

} // namespace lanesync::lanes::detail
