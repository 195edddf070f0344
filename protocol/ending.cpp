#include "protocol/ending.hpp"

#include "protocol/close_code.hpp"

namespace lanesync::protocol {
namespace {

bool starts_with(std::string_view s, std::string_view prefix) {
    return s.substr(0, prefix.size()) == prefix;
}

bool contains(std::string_view s, std::string_view part) {
    return s.find(part) != std::string_view::npos;
}

/// Endings known by the reason prefix protocol/peer_machine*.cpp sends with them. The reason
/// may be cut to 120 bytes on the wire; every prefix here is far shorter.
struct reason_rule {
    std::string_view prefix;
    const char* text;
};

// clang-format off
/// Permanent refusals.
constexpr reason_rule permanent_rules[] = {
    {"authentication failed",        "wrong PEER_SECRET"},
    {"store mismatch",               "other store"},
    {"no version in common",         "no protocol version in common"},
    {"incarnation mismatch",         "incarnation mismatch"},
};

/// Endings a rebuild makes on purpose: the link reconnects at once (in rebuild mode, or in
/// normal mode after it), offering the same version.
constexpr reason_rule at_once_rules[] = {
    {"rebuilding:",                  "rebuilding"},
    {"rebuild finished",             "rebuild finished"},
};
// clang-format on

} // namespace

ending classify_ending(session_stage stage, std::uint16_t code, std::string_view reason,
                       decided_by who, const version_offer& offer) {
    if (stage == session_stage::connecting || who == decided_by::transport || code == 0)
        return {};
    // Either lane decided a rebuild starts ("rebuilding: ...", 1001) or one finished: again at
    // once, the way a version fallback reconnects (retry_version), with the version offered.
    for (const auto& r : at_once_rules)
        if (starts_with(reason, r.prefix))
            return {ending_class::transient, r.text,
                    offer.offered > 0 ? offer.offered : offer.ours.max};
    // Only a policy refusal by one of the two lanes can be permanent; a connect failure, a
    // network error or a storage failure may clear by itself.
    if (code != close_code::policy_violation)
        return {};
    for (const auto& r : permanent_rules)
        if (starts_with(reason, r.prefix))
            return {ending_class::permanent, r.text};
    if (starts_with(reason, "unsupported protocol version")) {
        // The peer names the versions it speaks: reconnect at once with the highest one we
        // share. None (or we refused the peer's): no version in common.
        int v = who == decided_by::peer ? retry_version(reason, offer.offered, offer.ours) : 0;
        if (v > 0)
            return {ending_class::transient, {}, v};
        return {ending_class::permanent, "no protocol version in common"};
    }
    // A v1 lane's (or an older v2 lane's) refusal "peer holds seq N of L1 but this lane only M:
    // outbox lost or replaced"; the suffix may be cut on the wire when the ids are long, the
    // prefix never is. A lane of this version starts a rebuild instead ("rebuilding:" above).
    if (contains(reason, "outbox lost or replaced") ||
        (starts_with(reason, "peer holds seq ") && contains(reason, " but this lane")))
        return {ending_class::permanent, "outbox lost or replaced"};
    return {};
}

const char* to_string(ending_class c) {
    return c == ending_class::permanent ? "permanent" : "transient";
}

} // namespace lanesync::protocol
