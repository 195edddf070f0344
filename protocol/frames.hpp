#pragma once
/// Peer protocol frames (docs/protocol.md). Every frame is one WebSocket text message holding
/// one JSON object with a "type". Pure: encoders build strings, decode_frame() validates
/// strictly and says which close code a bad frame deserves. No sockets here.

#include "protocol/catalog.hpp"
#include "protocol/close_code.hpp"
#include "protocol/message.hpp"

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace lanesync::protocol {

/// Per-origin high-water marks: origin terminal id -> highest seq held contiguously from 1.
using hwm_map = std::map<std::string, std::uint64_t>;
/// Protocol v2: the id of the message held at each origin's mark (its tip), origin -> id. An
/// origin without an entry has no tip id (nothing held, or the tip was pruned after cloud_ack).
using tip_ids = std::map<std::string, std::string>;

/// Client -> server, first frame: who I am and my nonce.
struct hello_frame {
    int version = 0;
    std::string store;
    std::string terminal;
    std::string nonce; ///< hex
};
/// Server -> client: who I am, my nonce, and my proof (mac over both nonces, see peer_mac).
struct challenge_frame {
    int version = 0;
    std::string store;
    std::string terminal;
    std::string nonce;
    std::string mac; ///< hex HMAC-SHA256
};
/// Client -> server: the client's proof.
struct auth_frame {
    std::string mac;
};
/// Both directions once authenticated: what I hold (anti-entropy starts from here). `v2`: the
/// marks are v2 objects `{"seq": N, "id": "<tip id>"}` (ids in `ids`), else v1 numbers.
/// v2 only (never encoded in v1): `inc`, the sender's incarnation (32 lowercase hex, empty =
/// not sent), and `rebuild`, the sender is rebuilding its own origin from its peers.
struct ready_frame {
    hwm_map hwm;
    tip_ids ids = {};
    bool v2 = false;
    std::string inc = {};
    bool rebuild = false;
};
/// Messages the other side lacks. `floor[o] = f` says every message of origin o below seq f is
/// known to be in the cloud and was pruned here, so the receiver may treat it as held.
struct batch_frame {
    std::uint64_t n = 0; ///< batch number on this link, 1, 2, 3 ...
    std::vector<message> messages;
    hwm_map floor;
};
/// Receiver -> sender, only after the batch is durably committed: batch n is stored, and
/// this is everything I now hold.
struct ack_frame {
    std::uint64_t n = 0;
    hwm_map hwm;
    tip_ids ids = {}; ///< v2: the tip id of each mark
    bool v2 = false;
};

/// v2, data phase, both directions: what the sender knows about the other lanes.
struct news {
    /// terminal -> ms since the sender (or a lane it heard from) last had an authenticated
    /// session with it (0: connected now); never the sender itself.
    std::map<std::string, std::uint64_t> seen = {};
    /// origin -> highest seq known committed in the cloud contiguously from 1.
    hwm_map cloud = {};
    /// the origins the sender uploads on behalf of right now.
    std::vector<std::string> cover = {};
    /// the origins (never the sender) the sender holds messages of above their cloud_through as
    /// it knows it: the candidates for its takeover of them. Sorted by the sender.
    std::vector<std::string> holds = {};
};
/// `{"type":"news","seen":{..},"cloud":{..},"cover":[..],"holds":[..]}`: seen, cloud and cover
/// required, holds optional (absent = empty: an earlier v2 sender), always encoded; each at
/// most frame_limits::max_origins entries, terminal-id syntax, numbers 0..2^53, the arrays
/// name an origin once.
struct news_frame : news {};

/// v3: what the sender holds of one scope (docs/protocol.md "Catalog").
struct catalog_have_entry {
    std::string scope;
    std::int64_t through = 0; ///< complete through this version
    std::int64_t horizon = 0; ///< tombstones at or below it may be gone
    /// The sender's scope is mid-snapshot: `busy` from another source (the cloud, another peer:
    /// do not serve it), `yours` from the receiver of this frame (continue or restart it).
    enum class snapshot_state { none, busy, yours } snapshot = snapshot_state::none;

    friend bool operator==(const catalog_have_entry&, const catalog_have_entry&) = default;
};
/// v3, data phase, both directions: `{"type":"catalog_have","acked":N,"scopes":[...]}`. Sent
/// after the ready, whenever the sender's catalog changed, and as the ack of catalog pages:
/// `acked` = the highest catalog frame n of this link such that every page up to it was applied
/// or ignored (0: none). Scopes are distinct, at most frame_limits::max_scopes.
struct catalog_have_frame {
    std::uint64_t acked = 0;
    std::vector<catalog_have_entry> scopes;
};
/// v3, data phase: one page of one scope (protocol/catalog.hpp catalog_page; `resume` is never
/// sent between lanes). `n`: 1, 2, 3 ... per link and direction. `since`: a catch-up page
/// holds the changes above it (the receiver's through it answers); 0 in snapshot pages
/// (`reset`, `continues_snapshot`), which hold live rows in key order.
struct catalog_frame {
    std::uint64_t n = 0;
    std::int64_t since = 0;
    catalog_page page;
};

using frame = std::variant<hello_frame, challenge_frame, auth_frame, ready_frame, batch_frame,
                           ack_frame, news_frame, catalog_have_frame, catalog_frame>;

/// Limits applied while decoding a frame.
struct frame_limits {
    std::size_t max_messages = 256;          ///< messages in one batch
    std::size_t max_message_bytes = 262'144; ///< canonical data size of one message
    std::size_t max_origins = 1024;          ///< entries in one hwm/floor map
    std::size_t max_scopes = 256;            ///< scopes in one catalog_have
    std::size_t max_catalog_changes = 1000;  ///< changes in one catalog page
    /// canonical data size of one catalog change (head office's rows are not messages: their
    /// own cap, under the frame size limit with room for the rest of a page)
    std::size_t max_catalog_data_bytes = 4u << 20;
};

/// Why a frame was refused, with the WebSocket close code to send:
/// close_code::invalid_payload (not JSON, not UTF-8) or close_code::policy_violation (wrong
/// shape, bad field, over a limit).
struct decode_error {
    std::uint16_t close_code = ::lanesync::protocol::close_code::policy_violation;
    std::string reason;
};

using decode_result = std::variant<frame, decode_error>;

decode_result decode_frame(std::string_view text, const frame_limits& limits);

std::string encode(const hello_frame& f);
std::string encode(const challenge_frame& f);
std::string encode(const auth_frame& f);
std::string encode(const ready_frame& f);
std::string encode(const batch_frame& f);
std::string encode(const ack_frame& f);
std::string encode(const news_frame& f);
std::string encode(const catalog_have_frame& f);
std::string encode(const catalog_frame& f);

namespace detail {
/// protocol/frames_catalog.cpp: the v3 frames' decoders (called by decode_frame).
decode_result decode_catalog_have(const nlohmann::json& j, const frame_limits& lim);
decode_result decode_catalog(const nlohmann::json& j, const frame_limits& lim);
} // namespace detail

/// Size of one message inside a batch frame, for batch byte caps: an upper bound of its
/// encoded length (at most about 150 bytes over).
std::size_t encoded_size(const message& m);

/// Which side computes a mac.
enum class peer_role { client, server };

/// HMAC-SHA256 keyed by PEER_SECRET over
///   "lanesync-peer/1" | role | store | client terminal | server terminal | client nonce | server
///   nonce
/// joined with '\n', as lowercase hex. Role-bound so a mac can never be reflected back.
std::string peer_mac(std::string_view secret, peer_role role, std::string_view store,
                     std::string_view client_terminal, std::string_view server_terminal,
                     std::string_view client_nonce, std::string_view server_nonce);

/// Constant-time comparison of two hex macs.
bool mac_equal(std::string_view a, std::string_view b);

/// `bytes` random bytes from OpenSSL as lowercase hex.
std::string random_hex(std::size_t bytes);

} // namespace lanesync::protocol
