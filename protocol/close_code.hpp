#pragma once
/// The WebSocket close codes the peer protocol puts on the wire (RFC 6455 section 7.4.1;
/// SPEC section 7, docs/protocol.md "Close codes"), named once. Nothing else in lanesync
/// writes a close-code number. Whether an ending is worth retrying soon is not a close code:
/// see protocol/ending.hpp.

#include <cstdint>

namespace lanesync::protocol::close_code {

/// Normal closure.
inline constexpr std::uint16_t normal = 1000;
/// The lane is shutting down, or its sessions end because a rebuild starts ("rebuilding: ...")
/// or finished ("rebuild finished").
inline constexpr std::uint16_t going_away = 1001;
/// A frame that is not valid JSON (or not UTF-8).
inline constexpr std::uint16_t invalid_payload = 1007;
/// Policy violation: wrong frame for the state, bad field, over a limit, unknown version,
/// other store, duplicate id, failed authentication, gap, window exceeded, binary frame,
/// id conflict, incarnation mismatch, a v1 session with a rebuilding lane.
inline constexpr std::uint16_t policy_violation = 1008;
/// A frame over the size limit (docs/protocol.md "Transport"), announced or real. Beast sends
/// it (read_message_max); lanes/preauth.cpp counts and logs it.
inline constexpr std::uint16_t message_too_big = 1009;
/// The receiver could not commit a batch (storage failure).
inline constexpr std::uint16_t internal_error = 1011;

} // namespace lanesync::protocol::close_code
