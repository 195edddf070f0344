// Unit tests for protocol/ending.hpp: which session endings are permanent.

#include "protocol/close_code.hpp"
#include "protocol/ending.hpp"

#include <doctest/doctest.h>

using namespace lanesync::protocol;

namespace {
ending classify(std::string_view reason, decided_by who = decided_by::us,
                session_stage stage = session_stage::authenticating,
                std::uint16_t code = close_code::policy_violation) {
    return classify_ending(stage, code, reason, who);
}
} // namespace

TEST_SUITE("ending") {

    TEST_CASE("wrong secret is permanent, whichever side found it") {
        auto us = classify("authentication failed: peer does not know PEER_SECRET");
        CHECK(us.permanent());
        CHECK(us.text == "wrong PEER_SECRET");
        CHECK(classify("authentication failed", decided_by::peer).permanent());
    }

    TEST_CASE("another store and an unsupported version are permanent") {
        auto s = classify("store mismatch: peer is in store a, this lane in b", decided_by::peer);
        CHECK(s.permanent());
        CHECK(s.text == "other store");
        auto v = classify("unsupported protocol version 2 (this lane speaks 1)");
        CHECK(v.permanent());
        CHECK(v.text == "no protocol version in common");
    }

    TEST_CASE("outbox lost or replaced is permanent, also when the reason was cut") {
        auto full =
            classify("peer holds seq 30 of L1 but this lane only 5: outbox lost or replaced",
                     decided_by::us, session_stage::authenticated);
        CHECK(full.permanent());
        CHECK(full.text == "outbox lost or replaced");
        CHECK(classify("peer holds seq 30 of L1-with-a-long-id but this lane only 5: outb",
                       decided_by::peer, session_stage::authenticated)
                  .permanent());
    }

    TEST_CASE("duplicate terminal ids are transient: they clear when the old session dies") {
        CHECK_FALSE(classify("duplicate terminal id: L2 is already connected").permanent());
        CHECK_FALSE(classify("duplicate terminal id: L1 is this lane's own id").permanent());
    }

    TEST_CASE("id conflicts, gaps, malformed frames and storage failures are transient") {
        CHECK_FALSE(classify("id conflict: message id x of L1:1 is already held as L3:2",
                             decided_by::peer, session_stage::authenticated)
                        .permanent());
        CHECK_FALSE(classify("malformed frame: batch leaves a gap: x").permanent());
        CHECK_FALSE(classify("malformed frame: in-flight window exceeded").permanent());
        CHECK_FALSE(classify("storage failure on receiver", decided_by::peer,
                             session_stage::authenticated, close_code::internal_error)
                        .permanent());
    }

    TEST_CASE("network endings, shutdown and timeouts are transient") {
        CHECK_FALSE(classify("cannot connect: Connection refused", decided_by::transport,
                             session_stage::connecting, 0)
                        .permanent());
        CHECK_FALSE(
            classify("authentication timed out", decided_by::us, session_stage::authenticating, 0)
                .permanent());
        CHECK_FALSE(classify("lane shutting down", decided_by::peer, session_stage::authenticated,
                             close_code::going_away)
                        .permanent());
        // A reason text only counts with a policy close: a transport error never is permanent.
        CHECK_FALSE(classify("authentication failed", decided_by::transport).permanent());
        CHECK_FALSE(classify("authentication failed", decided_by::us, session_stage::connecting)
                        .permanent());
        CHECK(classify("x").text.empty());
    }

    TEST_CASE("class names") {
        CHECK(std::string(to_string(ending_class::permanent)) == "permanent");
        CHECK(std::string(to_string(ending_class::transient)) == "transient");
    }

} // TEST_SUITE
