// The uploader's pacing rules (cloud/pacing.hpp): which rounds may be in flight together (the
// priority barrier) and the adaptive request timeout. Pure functions: no sockets, no clock.

#include "cloud/pacing.hpp"

#include <doctest/doctest.h>

using namespace lanesync;
using namespace lanesync::cloud;
using namespace std::chrono_literals;
using P = protocol::priority;

namespace {

std::vector<outbox::record> records(std::initializer_list<P> prios) {
    std::vector<outbox::record> out;
    for (auto p : prios) {
        outbox::record r;
        r.msg.prio = p;
        out.push_back(r);
    }
    return out;
}

constexpr priority_span span(P most, P least) {
    return {static_cast<std::uint8_t>(most), static_cast<std::uint8_t>(least)};
}

answer_times answered(std::initializer_list<std::chrono::milliseconds> took) {
    answer_times t;
    for (auto ms : took)
        t.answered(ms);
    return t;
}

} // namespace

TEST_CASE("span_of: the most and least urgent priority of a round") {
    CHECK(span_of(records({P::normal})) == span(P::normal, P::normal));
    CHECK(span_of(records({P::high, P::normal, P::critical})) == span(P::critical, P::normal));
    CHECK(span_of(records({P::low, P::low})) == span(P::low, P::low));
}

TEST_CASE("may_start_beside: a batch's priority is its most urgent message; a lower one waits") {
    // Nothing in flight: any round.
    CHECK(may_start_beside({}, span(P::low, P::low)));
    // The same single level: the pipelined case of a steady backlog.
    CHECK(may_start_beside({span(P::normal, P::normal)}, span(P::normal, P::normal)));
    // A lower-priority batch is not sent until the higher-priority one was answered.
    CHECK_FALSE(may_start_beside({span(P::high, P::high)}, span(P::normal, P::normal)));
    CHECK_FALSE(may_start_beside({span(P::critical, P::normal)}, span(P::normal, P::normal)));
    CHECK_FALSE(may_start_beside({span(P::high, P::normal)}, span(P::normal, P::low)));
    // Mixed batches of one top level (own messages in seq order) still overlap.
    CHECK(may_start_beside({span(P::high, P::normal)}, span(P::high, P::low)));
    CHECK(may_start_beside({span(P::normal, P::normal)}, span(P::normal, P::low)));
    // A more urgent round (new critical writes) may start beside a running lower one.
    CHECK(may_start_beside({span(P::low, P::low)}, span(P::critical, P::high)));
    // Every running round counts.
    CHECK_FALSE(may_start_beside({span(P::low, P::low), span(P::high, P::high)},
                                 span(P::normal, P::normal)));
}

TEST_CASE("rounds_allowed: the configured window, one while failing") {
    CHECK(rounds_allowed(2, 0) == 2);
    CHECK(rounds_allowed(4, 0) == 4);
    CHECK(rounds_allowed(2, 1) == 1);
    CHECK(rounds_allowed(2, 7) == 1);
    CHECK(rounds_allowed(0, 0) == 1); // never zero: the uploader would stall
}

TEST_CASE("request_timeout: the cap until an answer, then ten times the slowest recent one") {
    const auto floor = 5s, cap = 30s;
    CHECK(request_timeout(answer_times{}, floor, cap) == cap);
    // Fast answers: the floor (a lost request is found in 5 s, not 30).
    CHECK(request_timeout(answered({20ms, 35ms, 31ms}), floor, cap) == floor);
    // Slower answers: ten times the slowest of the recent ones.
    CHECK(request_timeout(answered({800ms, 1200ms, 900ms}), floor, cap) == 12s);
    // Never above the cap.
    CHECK(request_timeout(answered({5s}), floor, cap) == cap);
    // A cap below the floor (tests shrink it) wins.
    CHECK(request_timeout(answered({10ms}), floor, 200ms) == 200ms);
}

TEST_CASE("request_timeout: each timeout in a row doubles it, an answer resets that") {
    const auto floor = 5s, cap = 30s;
    auto t = answered({20ms});
    t.timed_out();
    CHECK(request_timeout(t, floor, cap) == 10s);
    t.timed_out();
    CHECK(request_timeout(t, floor, cap) == 20s);
    t.timed_out();
    CHECK(request_timeout(t, floor, cap) == cap);
    t.answered(25ms);
    CHECK(t.timeouts_in_row == 0);
    CHECK(request_timeout(t, floor, cap) == floor);
}

TEST_CASE("answer_times keeps the latest answers only") {
    answer_times t;
    t.answered(3s); // an old slow answer...
    for (std::size_t i = 0; i < answer_times::keep; ++i)
        t.answered(10ms); // ...pushed out by newer fast ones
    CHECK(t.recent.size() == answer_times::keep);
    CHECK(request_timeout(t, 5s, 30s) == 5s);
}
