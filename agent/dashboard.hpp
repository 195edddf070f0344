#pragma once
/// The live dashboard page served by GET / (docs/api.md): agent/dashboard.html, embedded in
/// the binary at build time (agent/dashboard_embed.cmake). The page is static; it reads
/// /v1/status and /metrics of this lane (and of the lanes named in `?lanes=`) every second.

#include <string>
#include <string_view>

namespace lanesync::agent::dashboard {

/// The page, byte for byte as in agent/dashboard.html.
std::string_view html();

/// The Content-Security-Policy sent with the page: nothing external is loaded; the one inline
/// <style> and the one inline <script> are allowed by their SHA-256 hashes (computed once from
/// the embedded page, so editing the HTML needs no header update); fetches go only to this
/// agent and to other loopback agents (http://127.0.0.1:* and http://localhost:*).
/// Thread-safe (computed on first use).
const std::string& content_security_policy();

/// "sha256-<base64>" of `text`: the CSP source expression allowing an inline element whose
/// content is exactly `text`.
std::string csp_hash(std::string_view text);

} // namespace lanesync::agent::dashboard
