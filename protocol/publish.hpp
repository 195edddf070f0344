#pragma once
/// The local API's publish request (POST /v1/messages) and its strict validation.

#include "protocol/message.hpp"
#include "protocol/result.hpp"

#include <cstddef>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lanesync::protocol {

/// A validated request to publish one message; the outbox assigns origin, seq and created_at.
struct publish_request {
    std::optional<std::string> id; ///< normalized UUID idempotency key, if the client gave one
    std::string topic;
    priority prio = priority::normal;
    bool prio_given = false; ///< the request named its priority (else TOPIC_PRIORITY may)
    std::string data;        ///< canonical_json of the data object
};

/// A per-topic default priority (TOPIC_PRIORITY=transaction:high,audit:low).
using topic_priorities = std::map<std::string, priority, std::less<>>;

/// The priority a request is stored with: the one it named, else its topic's default from
/// `defaults`, else normal. Sets req.prio.
void apply_topic_priority(publish_request& req, const topic_priorities& defaults);

/// Parses and validates a request body: {"topic": "...", "data": {...}, "id"?: "<uuid>",
/// "priority"?: "critical|high|normal|low"}. Unknown fields are refused. The caller checks the
/// body size (413) before calling. Errors are short sentences naming the field.
result<publish_request> parse_publish_request(std::string_view body);

/// One message of a batch that failed validation.
struct publish_error {
    std::size_t index = 0; ///< position in "messages", from 0
    std::string error;     ///< the sentence parse_publish_request would give for it alone
};

/// A POST /v1/messages body: one message, or a batch `{"messages": [m, ...]}`.
struct publish_body {
    bool batch = false;
    std::size_t batch_size = 0;            ///< entries in "messages" (batch only)
    std::vector<publish_request> requests; ///< the valid messages, in order
    std::vector<publish_error> errors;     ///< a batch's invalid entries, by index
};

/// Parses a body that is one message (exactly as parse_publish_request) or a batch: an object
/// whose only field is "messages", an array of 1 or more message objects, each checked as a
/// single body. A failure is a body that is unusable as a whole (not JSON, not an object, a
/// single message's error, a malformed "messages"). A batch longer than `max_batch` comes back
/// with `batch_size` set and no entry checked (the caller refuses it as too large).
result<publish_body> parse_publish_body(std::string_view body, std::size_t max_batch);

/// Same checks for the CLI, where the parts arrive separately (`data` is JSON text).
result<publish_request> make_publish_request(std::string_view topic, std::string_view data_json,
                                             std::optional<std::string_view> id,
                                             std::optional<std::string_view> prio);

} // namespace lanesync::protocol
