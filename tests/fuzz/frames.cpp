// libFuzzer target: one peer frame (protocol/frames.cpp decode_frame). Properties: a refusal
// names one of the two close codes it may send with a non-empty reason; a decoded frame encodes
// to text that decodes again to the same frame.
#include "protocol/frames.hpp"
#include "fuzz_check.hpp"

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <variant>

namespace {

using namespace lanesync::protocol;

bool same(const frame& a, const frame& b) {
    if (a.index() != b.index())
        return false;
    // Compare through the encoder: the frame structs have no operator==.
    return std::visit([](const auto& f) { return encode(f); }, a) ==
           std::visit([](const auto& f) { return encode(f); }, b);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
    std::string_view text(reinterpret_cast<const char*>(bytes), size);
    frame_limits limits;
    limits.max_messages = 8;
    limits.max_message_bytes = 4096;
    limits.max_origins = 16;
    auto d = decode_frame(text, limits);
    if (auto* e = std::get_if<decode_error>(&d)) {
        FUZZ_CHECK(e->close_code == close_code::invalid_payload ||
                   e->close_code == close_code::policy_violation);
        FUZZ_CHECK(!e->reason.empty());
        return 0;
    }
    const auto& f = std::get<frame>(d);
    auto again = decode_frame(std::visit([](const auto& x) { return encode(x); }, f), limits);
    FUZZ_CHECK(std::holds_alternative<frame>(again));
    FUZZ_CHECK(same(f, std::get<frame>(again)));
    return 0;
}
