#pragma once
/// The pure half of publishing and of waiting for acks (docs/api.md, "POST /v1/messages",
/// "Batches" and "Waiting for acks"): the body of POST /v1/messages as one message or a batch,
/// the `?wait=…&timeout_ms=…` query, where a wait stands, and the answers. No sockets and no
/// storage (STYLE habit 13): api_publish_handlers.cpp carries them out, tests call them directly.

#include "agent/api_routes.hpp"
#include "base/tuning.hpp"

#include <chrono>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace lanesync::agent::api {

/// `?wait=STATE&timeout_ms=N` of POST /v1/messages and GET /v1/messages/{id}.
struct wait_query {
    std::optional<outbox::state> target; ///< peer_ack or cloud_ack; none: answer at once
    std::chrono::milliseconds timeout = tuning::api_wait_default;
};

/// Checks the query: `wait` (peer_ack or cloud_ack) and `timeout_ms` (an integer from 1 to
/// tuning::api_wait_max, only with `wait`), each at most once, no other parameter. 400 otherwise,
/// and for wait=peer_ack on a lane without PEER_TERMINALS (`has_peers` false: it uploads pending
/// messages directly, so its messages never are peer_ack).
std::variant<wait_query, response> check_wait(const target& t, bool has_peers);

/// Where a wait stands.
enum class wait_verdict {
    reached, ///< the state or a later one (cloud_ack satisfies peer_ack)
    not_yet, ///< pending (or peer_ack while waiting for cloud_ack), or not held
    failed,  ///< the cloud rejected it: it will not get there without a retry
};
wait_verdict verdict(outbox::state target, std::optional<outbox::state> st);
/// A batch: failed when one failed, reached when every one reached, else not_yet.
wait_verdict verdict(outbox::state target, const std::vector<std::optional<outbox::state>>& sts);

/// A checked POST /v1/messages body.
struct publish_input {
    bool batch = false;                              ///< `{"messages": [...]}`
    std::vector<protocol::publish_request> requests; ///< one for a single message
};

/// Validates a POST /v1/messages request before anything is stored: Content-Type (415), body
/// size (413, the whole body against `max_message_bytes`), then protocol::parse_publish_body:
/// 400 for a malformed body, 413 for a batch over tuning::api_batch_max_messages, 400 with
/// `errors: [{index, error}]` when messages of a batch are invalid.
std::variant<publish_input, response>
check_publish_input(std::optional<std::string_view> content_type, std::string_view body,
                    std::size_t max_message_bytes);

/// 503 {"error": "too many waits …"} with Retry-After (tuning::api_waiters_retry_after).
response too_many_waiters();

/// The answer to a batch: 201 {"origin", "count", "messages": [{id, seq, state, status}]}
/// (status 201 created, 200 existing), 409 {"error", "errors": [{index, id, error}]} for the
/// conflicting messages (nothing stored), 503 on a storage failure.
response batch_answer(const outbox::batch_outcome& o);

/// The answer to a waited publish: publish_answer() with the state `now` (when known), and 202
/// instead of 201 / 200 when `target` is not reached.
response waited_publish_answer(outbox::publish_outcome o, outbox::state target,
                               std::optional<outbox::state> now);

/// The same for a batch: every message's state from `now` (when it has one per message), 201
/// when all reached `target`, else 202.
response waited_batch_answer(outbox::batch_outcome o, outbox::state target,
                             const std::vector<std::optional<outbox::state>>& now);

/// GET /v1/messages/{id}?wait=…: message_answer(), 202 instead of 200 when not reached.
response waited_message_answer(const std::string& id, const std::optional<outbox::record>& rec,
                               outbox::state target);

} // namespace lanesync::agent::api
