#include "agent/dashboard.hpp"

#include <openssl/evp.h>
#include <openssl/sha.h>

#include <stdexcept>

namespace lanesync::agent::dashboard {
namespace {

constexpr std::string_view page =
#include "dashboard_html.inc"
    ;

/// The text between `open` and the next `close`; the page must hold exactly one such element,
/// written without attributes (a start-up error otherwise: the hash would allow nothing).
std::string_view inline_content(std::string_view open, std::string_view close) {
    auto start = page.find(open);
    if (start == std::string_view::npos || page.find(open, start + 1) != std::string_view::npos)
        throw std::logic_error("agent/dashboard.html must contain exactly one " +
                               std::string(open));
    start += open.size();
    auto end = page.find(close, start);
    if (end == std::string_view::npos)
        throw std::logic_error("agent/dashboard.html: " + std::string(open) + " is not closed");
    return page.substr(start, end - start);
}

} // namespace

std::string_view html() {
    return page;
}

std::string csp_hash(std::string_view text) {
    unsigned char digest[SHA256_DIGEST_LENGTH];
    unsigned int len = 0;
    if (EVP_Digest(text.data(), text.size(), digest, &len, EVP_sha256(), nullptr) != 1)
        throw std::runtime_error("SHA-256 failed");
    unsigned char b64[4 * ((SHA256_DIGEST_LENGTH + 2) / 3) + 1];
    int n = EVP_EncodeBlock(b64, digest, static_cast<int>(len));
    return "sha256-" + std::string(reinterpret_cast<const char*>(b64), static_cast<std::size_t>(n));
}

const std::string& content_security_policy() {
    static const std::string csp = [] {
        auto script = csp_hash(inline_content("<script>", "</script>"));
        auto style = csp_hash(inline_content("<style>", "</style>"));
        std::string p = "default-src 'none'; ";
        p += "script-src '" + script + "'; ";
        p += "style-src '" + style + "'; ";
        p += "connect-src 'self' http://127.0.0.1:* http://localhost:*; ";
        p += "img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
        return p;
    }();
    return csp;
}

} // namespace lanesync::agent::dashboard
