#pragma once
/// The message model shared by the outbox, the peer protocol, the local API and the uploader.
/// Pure: no Asio, no SQLite. Validation functions never throw.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

namespace lanesync::protocol {

/// Delivery priority given by the POS app. Stored and forwarded with the message; ordering is
/// always per-origin seq (never priority, never wall clocks).
enum class priority : std::uint8_t { critical = 0, high = 1, normal = 2, low = 3 };

std::string_view to_string(priority p);
std::optional<priority> parse_priority(std::string_view text);

/// One business event as it travels between lanes and to the cloud.
struct message {
    std::string id;                   ///< UUID, lowercase canonical 8-4-4-4-12 form
    std::string origin;               ///< terminal id of the lane that accepted it
    std::uint64_t seq = 0;            ///< 1, 2, 3 ... per origin, without gaps
    std::string topic;                ///< [a-z0-9_.-]{1,64}
    priority prio = priority::normal; ///< see priority
    std::string data; ///< the JSON object, canonical compact text (see canonical_json)
    std::int64_t created_at_ms = 0; ///< unix milliseconds on the origin lane; informational

    friend bool operator==(const message&, const message&) = default;
};

/// `[A-Za-z0-9_-]{1,32}`: TERMINAL_ID and the ids peers present.
bool valid_terminal_id(std::string_view s);
/// `[A-Za-z0-9_-]{1,64}`: STORE_ID.
bool valid_store_id(std::string_view s);
/// `[a-z0-9_.-]{1,64}`.
bool valid_topic(std::string_view s);
/// 8-4-4-4-12 hex digits, either case.
bool valid_uuid(std::string_view s);
/// Lowercases a valid UUID.
std::string normalize_uuid(std::string_view s);
/// A new random UUIDv7 (RFC 9562: 48-bit unix ms, version 7, variant 10, random bits from OpenSSL).
std::string new_uuid_v7();

/// The one serialization of a JSON value used everywhere data is stored or compared:
/// compact, keys sorted, UTF-8 (nlohmann's dump of a parsed value).
std::string canonical_json(const nlohmann::json& j);

/// Deepest nesting of arrays/objects accepted in `data` (the edge function accepts 64 too).
inline constexpr std::size_t max_json_depth = 64;

/// True when `j` nests arrays/objects deeper than `max_depth` (iterative: safe on any input).
bool json_too_deep(const nlohmann::json& j, std::size_t max_depth = max_json_depth);

/// RFC 3339 UTC with milliseconds: 2026-11-22T03:57:20.123Z.
std::string format_time_ms(std::int64_t unix_ms);
/// Current wall-clock time in unix milliseconds (timestamps only; never used for ordering).
std::int64_t now_ms();

} // namespace lanesync::protocol
