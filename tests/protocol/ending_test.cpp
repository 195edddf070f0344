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

    TEST_CASE("another store is permanent") {
        auto s = classify("store mismatch: peer is in store a, this lane in b", decided_by::peer);
        CHECK(s.permanent());
        CHECK(s.text == "other store");
    }

    TEST_CASE("a v1 lane's version refusal: transient, reconnect at once with v1") {
        auto v = classify_ending(session_stage::authenticating, close_code::policy_violation,
                                 "unsupported protocol version 2 (this lane speaks 1)",
                                 decided_by::peer, {2, {1, 2}});
        CHECK_FALSE(v.permanent());
        CHECK(v.retry_version == 1);
        CHECK(v.text.empty());
    }

    TEST_CASE("no version in common is the only permanent version ending") {
        auto none = classify("no version in common: peer offered 0, this lane speaks 1-2",
                             decided_by::peer);
        CHECK(none.permanent());
        CHECK(none.text == "no protocol version in common");
        CHECK(classify("no version in common: peer offered 0, this lane speaks 1-2").permanent());
        // A peer that speaks neither 1 nor 2.
        auto other = classify_ending(session_stage::authenticating, close_code::policy_violation,
                                     "unsupported protocol version 2 (this lane speaks 5)",
                                     decided_by::peer, {2, {1, 2}});
        CHECK(other.permanent());
        CHECK(other.text == "no protocol version in common");
        CHECK(other.retry_version == 0);
        // Refused again with the version we fell back to: no loop.
        CHECK(classify_ending(session_stage::authenticating, close_code::policy_violation,
                              "unsupported protocol version 1 (this lane speaks 1)",
                              decided_by::peer, {1, {1, 2}})
                  .permanent());
    }

    TEST_CASE("a lane's refusal as outbox lost or replaced is permanent, also when cut") {
        auto full =
            classify("peer holds seq 30 of L1 but this lane only 5: outbox lost or replaced",
                     decided_by::us, session_stage::authenticated);
        CHECK(full.permanent());
        CHECK(full.text == "outbox lost or replaced");
        CHECK(classify("peer holds seq 30 of L1-with-a-long-id but this lane only 5: outb",
                       decided_by::peer, session_stage::authenticated)
                  .permanent());
        // v2: the peer holds another message at a seq we handed out (the tip ids differ).
        CHECK(classify("peer holds seq 100 of L1 as 0a1b2c3d4e5f but this lane's is 0f1e2d3c4b5a "
                       "(hwm 150): outbox lost or replaced",
                       decided_by::peer, session_stage::authenticated)
                  .permanent());
        CHECK(classify("peer holds seq 100 of L1-long as 0a1b2c3d4e5f but this lane's is 0f1e2",
                       decided_by::us, session_stage::authenticated)
                  .permanent());
    }

    TEST_CASE("a rebuild starting: transient, reconnect at once, whichever side decided") {
        for (auto who : {decided_by::us, decided_by::peer}) {
            auto e = classify_ending(session_stage::authenticated, close_code::going_away,
                                     "rebuilding: peer holds seq 100 of L1 but this lane only 5",
                                     who, {2, {1, 2}});
            CHECK_FALSE(e.permanent());
            CHECK(e.retry_version == 2); // at once, the version the link offered
            CHECK(e.text == "rebuilding");
        }
        // The v2 id form, cut on the wire: still "rebuilding", never "outbox lost".
        auto cut = classify_ending(session_stage::authenticated, close_code::going_away,
                                   "rebuilding: peer holds seq 100 of L1 as 0a1b2c3d4e5f but th",
                                   decided_by::peer, {1, {1, 2}});
        CHECK_FALSE(cut.permanent());
        CHECK(cut.retry_version == 1);
        // No offer known (an inbound session): our highest version.
        CHECK(classify("rebuilding: x", decided_by::peer, session_stage::authenticated,
                       close_code::going_away)
                  .retry_version == 1); // version_offer{}: ours = 1-1
    }

    TEST_CASE("a rebuild finished: transient, reconnect at once") {
        auto e = classify_ending(session_stage::authenticated, close_code::going_away,
                                 "rebuild finished", decided_by::peer, {2, {1, 2}});
        CHECK_FALSE(e.permanent());
        CHECK(e.retry_version == 2);
        CHECK(e.text == "rebuild finished");
        CHECK(classify_ending(session_stage::authenticated, close_code::going_away,
                              "rebuild finished", decided_by::us, {2, {1, 2}})
                  .retry_version == 2);
    }

    TEST_CASE("a rebuild's reasons count only in a close frame") {
        CHECK(classify_ending(session_stage::authenticated, 0, "rebuilding: x",
                              decided_by::transport, {2, {1, 2}})
                  .retry_version == 0);
        CHECK(classify_ending(session_stage::connecting, close_code::going_away, "rebuild finished",
                              decided_by::peer, {2, {1, 2}})
                  .retry_version == 0);
        CHECK(classify_ending(session_stage::authenticated, close_code::going_away,
                              "lane shutting down", decided_by::peer, {2, {1, 2}})
                  .retry_version == 0);
    }

    TEST_CASE("an incarnation mismatch is permanent, whichever side found it") {
        for (const char* why :
             {"incarnation mismatch: this lane holds L1:60 as 0a1b2c3d4e5f, L1 holds 0f1e2d3c4b5a",
              "incarnation mismatch: peer holds L1:60 as 0a1b2c3d4e5f, this lane's is 0f1e2d3c4b5a",
              "incarnation mismatch: L3 was excluded from this lane's rebuild at seq 50"}) {
            for (auto who : {decided_by::us, decided_by::peer}) {
                auto e = classify(why, who, session_stage::authenticated);
                CHECK(e.permanent());
                CHECK(e.text == "incarnation mismatch");
                CHECK(e.retry_version == 0);
            }
        }
    }

    TEST_CASE("a rebuild refused by a v1 session is transient") {
        CHECK_FALSE(classify("rebuild needs protocol v2: this lane is rebuilding, the session "
                             "speaks 1",
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
