// lanes/preauth.hpp: which reason an inbound connection that never authenticated is counted
// under (lanesync_peer_preauth_failures_total{reason=...}).
#include "lanes/preauth.hpp"

#include <doctest/doctest.h>

using namespace lanesync;
using lanes::detail::classify_preauth;
using lanes::detail::preauth_end;
using lanes::detail::preauth_reason;
using protocol::close_cause;

TEST_CASE("classify_preauth: a refusal names its cause") {
    CHECK(classify_preauth({false, close_cause::wrong_secret, false, false}) ==
          preauth_reason::wrong_secret);
    CHECK(classify_preauth({false, close_cause::identity, false, false}) ==
          preauth_reason::identity);
    CHECK(classify_preauth({false, close_cause::hub_refused, false, false}) ==
          preauth_reason::duplicate);
    CHECK(classify_preauth({false, close_cause::malformed, false, false}) ==
          preauth_reason::bad_handshake);
    CHECK(classify_preauth({false, close_cause::wrong_frame, false, false}) ==
          preauth_reason::bad_handshake);
    // A refusal wins over a deadline that fired while the close went out.
    CHECK(classify_preauth({true, close_cause::wrong_secret, false, false}) ==
          preauth_reason::wrong_secret);
}

TEST_CASE("classify_preauth: frames the WebSocket layer refused, deadlines, and the rest") {
    CHECK(classify_preauth({false, std::nullopt, true, false}) == preauth_reason::oversized_frame);
    CHECK(classify_preauth({true, std::nullopt, true, false}) == preauth_reason::oversized_frame);
    CHECK(classify_preauth({false, std::nullopt, false, true}) == preauth_reason::bad_handshake);
    CHECK(classify_preauth({true, std::nullopt, false, false}) == preauth_reason::timeout);
    CHECK(classify_preauth({}) == preauth_reason::closed);
}

TEST_CASE("every reason has its own label") {
    using lanes::detail::to_string;
    CHECK(to_string(preauth_reason::timeout) == "timeout");
    CHECK(to_string(preauth_reason::tls) == "tls");
    CHECK(to_string(preauth_reason::refused_upgrade) == "refused_upgrade");
    CHECK(to_string(preauth_reason::bad_handshake) == "bad_handshake");
    CHECK(to_string(preauth_reason::wrong_secret) == "wrong_secret");
    CHECK(to_string(preauth_reason::identity) == "identity");
    CHECK(to_string(preauth_reason::duplicate) == "duplicate");
    CHECK(to_string(preauth_reason::closed) == "closed");
    CHECK(to_string(preauth_reason::oversized_frame) == "oversized_frame");
    CHECK(to_string(preauth_reason::too_many_connections) == "too_many_connections");
}
