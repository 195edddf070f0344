#include "base/backoff.hpp"

#include <openssl/rand.h>

#include <algorithm>

namespace lanesync::backoff {

std::int64_t full_jitter_ms(std::int64_t base_ms, std::int64_t max_ms, std::uint32_t attempt,
                            std::uint64_t random_value) {
    base_ms = std::max<std::int64_t>(base_ms, 0);
    max_ms = std::max<std::int64_t>(max_ms, 0);
    std::int64_t cap = std::min(base_ms, max_ms);
    // Doubling, saturating at max (no overflow however large `attempt` grows).
    for (std::uint32_t i = 0; i < attempt && cap < max_ms && cap > 0; ++i)
        cap = cap > max_ms / 2 ? max_ms : cap * 2;
    return static_cast<std::int64_t>(random_value % (static_cast<std::uint64_t>(cap) + 1));
}

std::chrono::milliseconds full_jitter(std::chrono::milliseconds base, std::chrono::milliseconds max,
                                      std::uint32_t attempt) {
    return std::chrono::milliseconds(
        full_jitter_ms(base.count(), max.count(), attempt, random_u64()));
}

std::uint64_t random_u64() {
    std::uint64_t v = 0;
    // RAND_bytes only fails when the OpenSSL RNG cannot be seeded; v stays 0 (no delay).
    RAND_bytes(reinterpret_cast<unsigned char*>(&v), sizeof v);
    return v;
}

} // namespace lanesync::backoff
