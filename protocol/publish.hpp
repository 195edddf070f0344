#pragma once
/// The local API's publish request (POST /v1/messages) and its strict validation.

#include "protocol/message.hpp"
#include "protocol/result.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace lanesync::protocol {

/// A validated request to publish one message; the outbox assigns origin, seq and created_at.
struct publish_request {
    std::optional<std::string> id; ///< normalized UUID idempotency key, if the client gave one
    std::string topic;
    priority prio = priority::normal;
    std::string data; ///< canonical_json of the data object
};

/// Parses and validates a request body: {"topic": "...", "data": {...}, "id"?: "<uuid>",
/// "priority"?: "critical|high|normal|low"}. Unknown fields are refused. The caller checks the
/// body size (413) before calling. Errors are short sentences naming the field.
result<publish_request> parse_publish_request(std::string_view body);

/// Same checks for the CLI, where the parts arrive separately (`data` is JSON text).
result<publish_request> make_publish_request(std::string_view topic, std::string_view data_json,
                                             std::optional<std::string_view> id,
                                             std::optional<std::string_view> prio);

} // namespace lanesync::protocol
