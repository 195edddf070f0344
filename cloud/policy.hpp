#pragma once
/// The uploader's rules, apart from its mechanism (STYLE habits 8 and 13): what one request's
/// result means — ack, fail, split, retry — as pure functions. No Asio, no sockets, no clock:
/// tests/cloud/policy_test.cpp calls them directly; upload_batch.cpp carries the answer out.
/// docs/uploader.md ("Reading the answer") is the table these functions implement.

#include "cloud/http_result.hpp"
#include "outbox/outbox.hpp"

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace lanesync::cloud {

/// Is a failure worth retrying? One place for the rules (STYLE habit 8). `http_status` 0 means
/// the request never got an answer (connect, TLS, timeout, truncated).
bool is_transient(int http_status);

/// What was sent: the batch's message ids in order and the request body's size.
struct sent_batch {
    std::vector<std::string> ids;
    std::size_t body_bytes = 0;
    std::string function; ///< SUPABASE_FUNCTION, named in the 404 status line
};

/// What to do with one request's result. Every request that got an HTTP answer or failed in
/// transport maps to exactly one kind.
struct decision {
    enum class kind {
        cancelled,     ///< cut by stop(): record nothing, send nothing more
        ack,           ///< 2xx, every message answered: record `results`; success
        ack_and_retry, ///< 2xx, partly unusable: record `results`, retry `retry` after backoff
        split,         ///< an answer about the request, several messages: send both halves now
        fail,          ///< an answer about the request, one message: fail it with `reason`
        retry,         ///< transient (no answer, 5xx, 408, 429, 3xx ...): retry after backoff
        retry_slowly,  ///< 404, the function is not deployed: backoff, at least the 404 floor
        auth_error,    ///< 401/403: the service key was refused; backoff, messages never fail
    };
    kind k = kind::retry;
    std::string outcome; ///< metrics label (lanesync_upload_requests_total{outcome})
    int http_status = 0; ///< 0 when no HTTP answer arrived

    std::vector<outbox::cloud_result> results; ///< ack, ack_and_retry: what to record
    std::vector<std::string> retry;            ///< ack_and_retry: ids to send again
    std::string problem; ///< ack_and_retry: what was wrong with the answer (log line)

    std::size_t split_at = 0;            ///< split: size of the first half
    std::optional<std::size_t> byte_cap; ///< split after 413: later batches at most this large

    std::string reason; ///< fail: the message's failure reason (before log::redact)
    std::string error;  ///< retry kinds and ack_and_retry: the status line (never response text)
};

/// The rules for one request's result (docs/uploader.md, "Reading the answer").
decision decide(const http_result& res, const sent_batch& sent);

/// A 400 about the request's `lane` object (its error starts with "lane": "lane.pending must
/// be ...", "lane has unknown field(s) ..."): a cloud function that does not take this lane's
/// summary. The batch is sent again without it, never split or failed for it.
bool lane_refused(const http_result& res);

// ---- covered uploads (replica takeover, docs/uploader.md "Covered uploads") -----------------

/// The origins to ask the outbox for, from what `set_cover` returned: valid terminal ids other
/// than `self`, each once, sorted (byte order).
std::vector<std::string> covered_origins(std::vector<std::string> cover, std::string_view self);

/// One round's batch, most urgent first: this lane's `own` messages (as
/// outbox::store::next_for_cloud gives them: priority, then seq) and the `covered` replicas
/// (next_replicas_for_cloud: priority, origin, seq) merged by priority, own first within a
/// level, at most `limit`; what does not fit waits for a later round. A replica is left for a
/// later round when its id is already in the batch (the same id held as own and as another
/// origin's replica, or under two origins): the cloud answers by id, so one request never
/// carries an id twice.
std::vector<outbox::record> compose_round(std::vector<outbox::record> own,
                                          std::vector<outbox::record> covered, std::size_t limit);

} // namespace lanesync::cloud
