#pragma once
/// How fast the uploader may go, as pure rules (no Asio, no clock): which upload rounds may be
/// unanswered at once (the priority barrier) and how long one request may take (the adaptive
/// timeout). tests/cloud/pacing_test.cpp calls them directly; uploader.cpp and upload_batch.cpp
/// carry them out. docs/uploader.md ("Requests in flight", "Timeouts") describes them.

#include "outbox/outbox.hpp"

#include <chrono>
#include <cstdint>
#include <deque>
#include <vector>

namespace lanesync::cloud {

/// The priority levels one round carries (protocol::priority: 0 critical .. 3 low): its most
/// and its least urgent message.
struct priority_span {
    std::uint8_t most_urgent = 0;
    std::uint8_t least_urgent = 0;
    bool operator==(const priority_span&) const = default;
};

/// The span of a round's records (`recs` not empty).
priority_span span_of(const std::vector<outbox::record>& recs);

/// May a round with span `next` be sent while the rounds of `running` are unanswered? A
/// batch's priority is that of its most urgent message; a lower-priority batch is not sent
/// until every higher-priority batch has been answered. The outbox gives the backlog most
/// urgent first, so rounds of one level overlap, a more urgent one (a critical sale written
/// during a backlog of low ones) may start beside them, and the step down to a lower level
/// (the last critical batch answered, then the high ones) waits for the answers.
bool may_start_beside(const std::vector<priority_span>& running, priority_span next);

/// The rounds that may be unanswered at once: `max_in_flight`, but 1 while the last request
/// failed (`consecutive_failures` > 0), so a retry probes the cloud alone instead of sending
/// every waiting batch into an outage.
std::size_t rounds_allowed(std::size_t max_in_flight, std::uint32_t consecutive_failures);

/// The answer times of the latest successful requests, newest last (at most `keep`).
struct answer_times {
    static constexpr std::size_t keep = 32;
    std::deque<std::chrono::milliseconds> recent;
    std::uint32_t timeouts_in_row = 0; ///< requests cut by the timeout since the last answer

    void answered(std::chrono::milliseconds took); ///< an HTTP answer came (any status)
    void timed_out();                              ///< the request was cut by its timeout
};

/// The deadline of the next request: `cap` until a request has been answered; then ten times
/// the slowest recent answer, at least `floor`, doubled for each timeout in a row, at most
/// `cap`. A cloud that hangs one request is found in seconds instead of `cap`; one that is
/// slow for all of them gets the time it needs after a timeout or two (a cut request is sent
/// again: the cloud answers "duplicate" for what it had stored).
std::chrono::milliseconds request_timeout(const answer_times& t, std::chrono::milliseconds floor,
                                          std::chrono::milliseconds cap);

} // namespace lanesync::cloud
