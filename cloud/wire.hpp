#pragma once
/// The uploader's side of the cloud wire contract (SPEC section 8), as pure functions: the
/// endpoint from the parsed SUPABASE_URL, the request body, and the reading of the answer. No Asio,
/// no sockets: tests call these directly. Private to cloud/ (the uploader and its tests).

#include "cloud/http_result.hpp"
#include "conf/config.hpp"
#include "outbox/outbox.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lanesync::cloud::wire {

/// Where requests go: `POST {SUPABASE_URL}/functions/v1/{SUPABASE_FUNCTION}`.
struct endpoint {
    bool tls = false;
    std::string host; ///< name or IP literal, without brackets
    std::uint16_t port = 0;
    std::string target;      ///< path prefix of the URL + /functions/v1/<function>
    std::string host_header; ///< Host header value: host, or host:port when not the default
    bool host_is_ip = false; ///< no SNI for IP literals (RFC 6066 section 3)

    /// "https://host:port" without the target, for messages (the URL never holds a secret:
    /// conf::parse_cloud_url refuses user info).
    std::string origin() const;
};

/// The endpoint for SUPABASE_URL, parsed once by conf (conf::cloud_url), and
/// SUPABASE_FUNCTION (validated by conf as well).
endpoint make_endpoint(const conf::cloud_url& url, std::string_view function);

/// One message as the JSON object the function expects, compact text. nullopt when the stored
/// data is not a JSON object (the cloud could never accept it). `uploaded_by` non-empty: a
/// replica uploaded on its origin's behalf (takeover); `terminalId` stays the origin and the
/// object gains `"uploadedBy": uploaded_by`. Empty: the field is left out (own messages).
std::optional<std::string> encode_message(const outbox::record& rec, std::string_view store_id,
                                          std::string_view uploaded_by = {});

/// The lane's summary that every upload request carries and an idle lane sends as a heartbeat
/// (docs/cloud.md "Lane health"): head office's view of every lane.
struct lane_summary {
    std::int64_t at_ms = 0; ///< the lane's clock when it was taken
    std::uint64_t pending = 0, peer_ack = 0, cloud_ack = 0, failed = 0; ///< own messages
    std::optional<std::int64_t> oldest_pending_age_ms, oldest_peer_ack_age_ms;
    std::uint64_t last_seq = 0; ///< highest own seq handed out
    std::size_t peers_up = 0, peers_configured = 0;
    std::uint32_t retry_depth = 0; ///< upload failures in a row now
};

/// The summary of the outbox's counts at `now_ms` (an age is never negative).
lane_summary summarize(const outbox::counts& c, std::int64_t now_ms);

/// The `lane` object: {"storeId","terminalId","agentVersion","at","pending","peerAck",
/// "cloudAck","failed","oldestPendingAgeMs","oldestPeerAckAgeMs","lastSeq","peersUp",
/// "peersConfigured","retryDepth"}, compact. At most max_lane_bytes.
std::string encode_lane(const lane_summary& s, std::string_view store_id,
                        std::string_view terminal_id);
/// Room the byte cap keeps for the `lane` member (ids of at most 64 + 32 characters).
inline constexpr std::size_t max_lane_bytes = 512;

/// `{"messages":[<parts joined by commas>]}`, with `,"lane":<lane>` before the closing brace
/// when `lane` is not empty. No parts and a lane: a heartbeat.
std::string wrap_messages(const std::vector<std::string>& parts, std::string_view lane = {});

/// Size wrap_messages() would produce, without building it.
std::size_t wrapped_size(std::size_t parts_bytes, std::size_t parts, std::size_t lane_bytes = 0);

/// What a 2xx answer said, read defensively. Only well-formed results for ids that were in
/// the batch land in `results` (at most one per id). Everything else is counted, and the ids
/// without a usable answer are listed in `missing` so the caller retries them.
struct decoded {
    bool parsed = false;        ///< a JSON object with a "results" array
    std::size_t batch_size = 0; ///< ids in the batch
    std::vector<outbox::cloud_result> results;
    std::vector<std::string> missing; ///< batch ids without a usable result
    std::size_t unknown_ids = 0;      ///< results naming an id not in the batch
    std::size_t malformed = 0;        ///< entries that are not {messageId, status}
    std::size_t conflicting = 0;      ///< ids answered twice, differently
    std::size_t rejected = 0;         ///< results with status "rejected"

    bool clean() const {
        return parsed && missing.empty() && unknown_ids == 0 && malformed == 0 && conflicting == 0;
    }
    /// One line for logs and status ("2 of 5 results missing, 1 for unknown ids"); empty when
    /// clean. Never contains response text.
    std::string problem() const;
};

decoded decode_results(std::string_view body, const std::vector<std::string>& batch_ids);

/// The highest-seq query (docs/cloud.md "Highest seq"): `GET <target>?storeId=S&terminalId=T`.
/// Both ids have the URL-safe syntax conf enforces (A-Z a-z 0-9 _ -), so nothing is escaped.
std::string highest_seq_target(const endpoint& ep, std::string_view store_id,
                               std::string_view terminal_id);

/// What one highest-seq request said: the seq, or why the cloud could not tell (one line, no
/// secrets: built from the failure text, the HTTP status and the answer's "error"). A 200 must
/// be `{"storeId": S, "terminalId": T, "highestSeq": N}` for this lane with N an integer in
/// 0..2^53, else it is a malformed answer.
struct highest_seq_answer {
    std::optional<std::uint64_t> seq;
    std::string error; ///< set when seq is empty
};
highest_seq_answer read_highest_seq(const http_result& r, std::string_view store_id,
                                    std::string_view terminal_id);

/// The "error" (or "message") string of an error body like {"error":"..."}, cut to one line
/// of at most `max` bytes; empty when there is none. Used as a message's failure reason.
std::string error_text(std::string_view body, std::size_t max = 300);

} // namespace lanesync::cloud::wire
