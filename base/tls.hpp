#pragma once
/// The one TLS client policy of lanesync (STYLE habit 5), for peer links and the cloud
/// uploader alike: TLS 1.2 or later, peer verification always on, SNI for host names, and the
/// URL's host checked against the certificate. Trust roots are a parameter, never decided
/// here. Only boost/asio/ssl is needed by callers that hold the context.

#include <boost/system/error_code.hpp>

#include <memory>
#include <string>
#include <vector>

using SSL = struct ssl_st;

namespace boost::asio::ssl {
class context;
}

namespace lanesync::tls {

/// Which certificates a client trusts.
struct trust_roots {
    bool system_store = true;          ///< the operating system's trust store
    std::vector<std::string> ca_files; ///< PEM bundles added to (or, alone, instead of) it
};

/// A client context with the policy above. Throws std::runtime_error naming the CA file when
/// one cannot be loaded. A missing system store is not an error (the CA files may suffice).
std::unique_ptr<boost::asio::ssl::context> make_client_context(const trust_roots& roots);

/// Per connection, before the handshake: SNI (host names only, RFC 6066 section 3) and the
/// host check, by OpenSSL itself (SSL_set1_host / the IP form), so a mismatch shows as
/// "hostname mismatch" in the verify result. Returns false with `why` set on failure.
bool prepare_client(SSL* native, const std::string& host, std::string& why);

/// A failed handshake in words an operator can act on: a certificate problem named as such
/// ("certificate verify failed: …"), else the error's message.
std::string handshake_error_text(const boost::system::error_code& ec, SSL* native);

} // namespace lanesync::tls
