#pragma once
/// Private to conf/: the small URL grammar of PEER_TERMINALS and SUPABASE_URL,
/// `scheme://host[:port][/path]`, with the reason when a URL is rejected (SUPABASE_URL's
/// parser is public: conf::parse_cloud_url in config.hpp).
/// Pure: no DNS, no sockets (inet_pton only).

#include "conf/config.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace lanesync::conf::detail {

/// True for an IPv4 or IPv6 literal (no brackets, no zone id).
bool is_ip_literal(std::string_view s);

/// parse_peer_url with the reason: on failure returns nullopt and sets `why`.
std::optional<peer_url> parse_peer_url_why(std::string_view text, std::string& why);

} // namespace lanesync::conf::detail
