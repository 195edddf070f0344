#include "protocol/version.hpp"

#include <algorithm>
#include <charconv>

namespace lanesync::protocol {
namespace {

constexpr std::string_view unsupported_prefix = "unsupported protocol version ";
constexpr std::string_view speaks_marker = "(this lane speaks ";

std::string range_text(version_range r) {
    return r.min == r.max ? std::to_string(r.max)
                          : std::to_string(r.min) + "-" + std::to_string(r.max);
}

/// Parses "N" or "A-B" at the start of `s`; false when it is neither.
bool parse_range(std::string_view s, version_range& out) {
    int a = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), a);
    if (ec != std::errc{} || a < 0)
        return false;
    int b = a;
    if (p != s.data() + s.size() && *p == '-') {
        auto [q, ec2] = std::from_chars(p + 1, s.data() + s.size(), b);
        if (ec2 != std::errc{} || b < a)
            return false;
        p = q;
    }
    if (p == s.data() + s.size() || *p != ')')
        return false;
    out = {a, b};
    return true;
}

} // namespace

int serve_version(int offered, version_range ours) {
    return ours.speaks(offered) ? offered : 0;
}

std::string version_refusal(int offered, version_range ours) {
    if (offered < ours.min)
        return "no version in common: peer offered " + std::to_string(offered) +
               ", this lane speaks " + range_text(ours);
    return std::string(unsupported_prefix) + std::to_string(offered) + " " +
           std::string(speaks_marker) + range_text(ours) + ")";
}

int retry_version(std::string_view reason, int offered, version_range ours) {
    if (reason.substr(0, unsupported_prefix.size()) != unsupported_prefix)
        return 0;
    auto at = reason.find(speaks_marker);
    version_range theirs;
    if (at == std::string_view::npos ||
        !parse_range(reason.substr(at + speaks_marker.size()), theirs))
        return 0;
    int best = std::min(ours.max, theirs.max);
    if (best < std::max(ours.min, theirs.min) || best == offered)
        return 0;
    return best;
}

} // namespace lanesync::protocol
