#include "conf/url.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <charconv>

namespace lanesync::conf::detail {
namespace {

/// The pieces of `scheme://authority[rest]`.
struct url_parts {
    std::string scheme;    ///< lowercased
    std::string authority; ///< as written
    std::string host;      ///< IPv6 without brackets
    std::optional<std::uint16_t> port;
    std::string rest; ///< path, query and fragment as written ("" when none)
};

bool is_hostname_char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

/// A DNS name (labels of [A-Za-z0-9_-], 1..63 chars, no leading or trailing '-') or an IPv4
/// literal. All-numeric names must be valid IPv4 (catches 999.0.0.1 and 10.0.1).
bool valid_host_name(std::string_view host, std::string& why) {
    if (host.size() > 253) {
        why = "host name is too long (at most 253 characters)";
        return false;
    }
    bool numeric = std::all_of(host.begin(), host.end(),
                               [](char c) { return (c >= '0' && c <= '9') || c == '.'; });
    if (numeric) {
        in_addr a{};
        std::string s(host);
        if (inet_pton(AF_INET, s.c_str(), &a) != 1) {
            why = "host is not a valid IPv4 address";
            return false;
        }
        return true;
    }
    std::size_t start = 0;
    while (true) {
        auto dot = host.find('.', start);
        std::string_view label = host.substr(
            start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
        if (label.empty() || label.size() > 63) {
            why = "host name has an empty or over-long label";
            return false;
        }
        if (!std::all_of(label.begin(), label.end(), is_hostname_char)) {
            why = "host name may contain only letters, digits, '-', '_' and '.'";
            return false;
        }
        if (label.front() == '-' || label.back() == '-') {
            why = "a host name label must not start or end with '-'";
            return false;
        }
        if (dot == std::string_view::npos)
            return true;
        start = dot + 1;
    }
}

bool parse_port(std::string_view s, std::uint16_t& out, std::string& why) {
    if (s.empty()) {
        why = "empty port after ':'";
        return false;
    }
    unsigned long v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec == std::errc::result_out_of_range ||
        (ec == std::errc() && p == s.data() + s.size() && (v == 0 || v > 65535))) {
        why = "port is out of range (1..65535)";
        return false;
    }
    if (ec != std::errc() || p != s.data() + s.size()) {
        why = "port is not a number";
        return false;
    }
    out = static_cast<std::uint16_t>(v);
    return true;
}

/// `host[:port]` or `[v6][:port]` (user info already refused) into out.host and out.port.
bool split_authority(std::string_view auth, url_parts& out, std::string& why) {
    std::string_view port_text;
    bool has_port = false;
    if (auth.front() == '[') {
        auto close = auth.find(']');
        if (close == std::string_view::npos) {
            why = "unclosed '[' in IPv6 address";
            return false;
        }
        std::string inner(auth.substr(1, close - 1));
        in6_addr a{};
        if (inet_pton(AF_INET6, inner.c_str(), &a) != 1) {
            why = "not a valid IPv6 address inside [...]";
            return false;
        }
        out.host = inner;
        std::string_view tail = auth.substr(close + 1);
        if (!tail.empty()) {
            if (tail.front() != ':') {
                why = "unexpected text after ']' (expected :port)";
                return false;
            }
            has_port = true;
            port_text = tail.substr(1);
        }
    } else {
        auto colon = auth.find(':');
        if (colon != std::string_view::npos &&
            auth.find(':', colon + 1) != std::string_view::npos) {
            why = "an IPv6 address must be written in brackets, e.g. [::1]:8124";
            return false;
        }
        std::string_view host = auth.substr(0, colon);
        if (host.empty()) {
            why = "missing host";
            return false;
        }
        if (!valid_host_name(host, why))
            return false;
        out.host = std::string(host);
        if (colon != std::string_view::npos) {
            has_port = true;
            port_text = auth.substr(colon + 1);
        }
    }
    if (has_port) {
        std::uint16_t p = 0;
        if (!parse_port(port_text, p, why))
            return false;
        out.port = p;
    }
    return true;
}

bool split_url(std::string_view text, url_parts& out, std::string& why) {
    if (text.empty()) {
        why = "empty URL";
        return false;
    }
    for (char c : text) {
        auto u = static_cast<unsigned char>(c);
        if (u <= 0x20 || u >= 0x7F) {
            why = "URL contains a blank, a control or a non-ASCII character";
            return false;
        }
    }
    auto sep = text.find("://");
    if (sep == std::string_view::npos || sep == 0) {
        why = "missing scheme";
        return false;
    }
    out.scheme.clear();
    for (char c : text.substr(0, sep)) {
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'))) {
            why = "malformed scheme";
            return false;
        }
        out.scheme += static_cast<char>(c | 0x20); // ASCII lowercase
    }
    std::string_view after = text.substr(sep + 3);
    auto end = after.find_first_of("/?#");
    std::string_view auth = after.substr(0, end);
    out.rest = end == std::string_view::npos ? std::string() : std::string(after.substr(end));
    out.authority = std::string(auth);
    out.port.reset();
    if (auth.empty()) {
        why = "missing host";
        return false;
    }
    if (auth.find('@') != std::string_view::npos) {
        why = "user info (user@ or user:password@) is not allowed in the URL";
        return false;
    }
    return split_authority(auth, out, why);
}

} // namespace

bool is_ip_literal(std::string_view s) {
    std::string t(s);
    in_addr a4{};
    in6_addr a6{};
    return inet_pton(AF_INET, t.c_str(), &a4) == 1 || inet_pton(AF_INET6, t.c_str(), &a6) == 1;
}

std::optional<peer_url> parse_peer_url_why(std::string_view text, std::string& why) {
    url_parts parts;
    if (!split_url(text, parts, why)) {
        if (why == "missing scheme")
            why = "missing scheme (expected ws://host:port or wss://host:port)";
        return std::nullopt;
    }
    if (parts.scheme != "ws" && parts.scheme != "wss") {
        why = "scheme must be ws:// or wss://";
        return std::nullopt;
    }
    if (!parts.port) {
        why = "missing port (expected " + parts.scheme + "://host:port)";
        return std::nullopt;
    }
    peer_url u;
    u.text = std::string(text);
    u.tls = parts.scheme == "wss";
    u.host = parts.host;
    u.port = *parts.port;
    if (parts.rest.empty() || parts.rest == "/") {
        u.target = "/v1/peer";
    } else if (parts.rest.front() != '/' || parts.rest.find_first_of("?#") != std::string::npos) {
        why = "a query or fragment is not allowed (expected an optional /path)";
        return std::nullopt;
    } else {
        u.target = parts.rest;
    }
    return u;
}

} // namespace lanesync::conf::detail

namespace lanesync::conf {

std::optional<peer_url> parse_peer_url(const std::string& text) {
    std::string why;
    return detail::parse_peer_url_why(text, why);
}

std::optional<cloud_url> parse_cloud_url(std::string_view text, std::string* why_out) {
    std::string why;
    auto fail = [&](std::string reason) -> std::optional<cloud_url> {
        if (why_out)
            *why_out = std::move(reason);
        return std::nullopt;
    };
    detail::url_parts parts;
    if (!detail::split_url(text, parts, why))
        return fail(why == "missing scheme" ? "missing scheme (expected https://host[:port])"
                                            : why);
    if (parts.scheme != "http" && parts.scheme != "https")
        return fail("scheme must be http:// or https://");
    if (!parts.rest.empty() && parts.rest != "/")
        return fail("must not have a path, query or fragment (lanesync appends "
                    "/functions/v1/<SUPABASE_FUNCTION> itself)");
    cloud_url u;
    u.text = parts.scheme + "://" + parts.authority;
    u.tls = parts.scheme == "https";
    u.host = parts.host;
    u.host_is_ip = detail::is_ip_literal(parts.host);
    u.port = parts.port.value_or(u.tls ? 443 : 80);
    return u;
}

std::optional<cloud_url> cloud_url_of(const config& cfg, std::string& why) {
    if (cfg.supabase_url.empty()) {
        why = "the cloud is off (SUPABASE_URL is not set)";
        return std::nullopt;
    }
    if (cfg.cloud && cfg.cloud->text == cfg.supabase_url)
        return cfg.cloud;
    return parse_cloud_url(cfg.supabase_url, &why);
}

} // namespace lanesync::conf
