#pragma once
/// The one retry delay rule of lanesync: capped exponential backoff with full jitter (SPEC
/// section 2, item 6). Used by the peer link supervisor and the cloud uploader. Pure apart
/// from the random draw; no Asio.

#include <chrono>
#include <cstdint>

namespace lanesync::backoff {

/// Full jitter: uniform in [0, min(max, base * 2^attempt)] drawn from `random_value`.
/// Doubling saturates at `max_ms` (no overflow however large `attempt` grows); negative
/// inputs count as 0.
std::int64_t full_jitter_ms(std::int64_t base_ms, std::int64_t max_ms, std::uint32_t attempt,
                            std::uint64_t random_value);

/// The same with a fresh random value (OpenSSL's RAND_bytes).
std::chrono::milliseconds full_jitter(std::chrono::milliseconds base, std::chrono::milliseconds max,
                                      std::uint32_t attempt);

/// 64 random bits from OpenSSL.
std::uint64_t random_u64();

} // namespace lanesync::backoff
