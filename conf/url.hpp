#pragma once
/// Private to conf/: the small URL grammar of PEER_TERMINALS and SUPABASE_URL,
/// `scheme://host[:port][/path]`, with the reason when a URL is rejected.
/// Pure: no DNS, no sockets (inet_pton only).

#include "conf/config.hpp"

#include <optional>
#include <string>
#include <string_view>

namespace lanesync::conf::detail {

/// True for an IPv4 or IPv6 literal (no brackets, no zone id).
bool is_ip_literal(std::string_view s);

/// True when `host` (as stored in peer_url::host, IPv6 without brackets) is a loopback name
/// or address: localhost, 127.0.0.0/8, ::1.
bool is_loopback_host(std::string_view host);

/// parse_peer_url with the reason: on failure returns nullopt and sets `why`.
std::optional<peer_url> parse_peer_url_why(std::string_view text, std::string& why);

/// SUPABASE_URL: http(s)://host[:port], an optional trailing '/' dropped. Returns the
/// normalized URL (lowercase scheme, no trailing slash), or nullopt and sets `why`.
/// `loopback` is set to whether the host is a loopback host.
std::optional<std::string> parse_cloud_url_why(std::string_view text, std::string& why,
                                               bool& loopback);

} // namespace lanesync::conf::detail
