#pragma once
/// Peer protocol version negotiation (docs/protocol.md "Versions"), pure and unit-tested.
///
/// The client offers one version in its hello (its highest, or the one its link remembered).
/// A server serves any version it speaks; it refuses a higher one with
/// "unsupported protocol version V (this lane speaks A-B)" (a v1 lane: "... speaks 1)"), and
/// one below its range with "no version in common: ...". A client refused with "unsupported
/// protocol version" reconnects at once with the highest version both speak
/// (retry_version); when there is none, or a lane says "no version in common", the ending is
/// permanent (protocol/ending.cpp).

#include <string>
#include <string_view>

namespace lanesync::protocol {

/// The versions one lane speaks, lowest to highest.
struct version_range {
    int min = 1;
    int max = 1;
    bool speaks(int v) const { return v >= min && v <= max; }
};

/// Server: the version a hello offering `offered` is served with, or 0 to refuse it.
int serve_version(int offered, version_range ours);

/// The refusal for a version this lane does not speak: "unsupported protocol version V (this
/// lane speaks 1)" / "(this lane speaks 1-2)" above our range, "no version in common: peer
/// offered V, this lane speaks 1-2" below it.
std::string version_refusal(int offered, version_range ours);

/// Client: the version to reconnect with after the peer refused `offered` with `reason`: the
/// highest version both speak, from the range the reason names. 0 when the reason is not a
/// version refusal, names no range, or there is no version in common (or no other version to
/// try: it never answers `offered` again).
int retry_version(std::string_view reason, int offered, version_range ours);

} // namespace lanesync::protocol
