#pragma once
/// Small text helpers shared by every folder: ASCII case folding, the loopback-host test, and
/// the text of a caught exception. Pure (no I/O); thread-safe.

#include <exception>
#include <string>
#include <string_view>
#include <vector>

namespace lanesync::text {

/// ASCII lowercase copy (bytes outside A-Z are kept: UTF-8 stays intact, no locale).
std::string lower(std::string_view s);

/// ASCII uppercase copy.
std::string upper(std::string_view s);

/// The items joined with `sep` ("L2, L3"); "" for none. For log fields and status lines.
std::string join(const std::vector<std::string>& items, std::string_view sep = ", ");

/// True when `host` (IPv6 without brackets) is a loopback name or address: `localhost`
/// (any case), 127.0.0.0/8, ::1.
bool is_loopback_host(std::string_view host);

/// The what() of the exception `e` holds, "unknown exception" for one not derived from
/// std::exception, "" for a null `e`. For co_spawn completion handlers and catch-all blocks:
///
///     [](std::exception_ptr e) { if (e) log::error("x.crashed", {{"error", text::what(e)}}); }
std::string what(std::exception_ptr e);

} // namespace lanesync::text
