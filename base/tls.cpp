#include "base/tls.hpp"

#include <boost/asio/ip/address.hpp>
#include <boost/asio/ssl/context.hpp>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <stdexcept>

namespace lanesync::tls {

namespace ssl = boost::asio::ssl;

std::unique_ptr<ssl::context> make_client_context(const trust_roots& roots) {
    auto ctx = std::make_unique<ssl::context>(ssl::context::tls_client);
    ctx->set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                     ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    if (SSL_CTX_set_min_proto_version(ctx->native_handle(), TLS1_2_VERSION) != 1)
        throw std::runtime_error("cannot require TLS 1.2 or later");
    ctx->set_verify_mode(ssl::verify_peer);
    boost::system::error_code ec;
    if (roots.system_store)
        ctx->set_default_verify_paths(ec); // a machine without a store may still have CA files
    for (const auto& file : roots.ca_files) {
        ctx->load_verify_file(file, ec);
        if (ec)
            throw std::runtime_error(file + ": cannot load CA certificates: " + ec.message());
    }
    return ctx;
}

bool prepare_client(SSL* native, const std::string& host, std::string& why) {
    boost::system::error_code ipec;
    boost::asio::ip::make_address(host, ipec);
    const bool is_ip = !ipec;
    if (!is_ip && SSL_set_tlsext_host_name(native, host.c_str()) != 1) {
        why = "cannot set TLS server name " + host;
        return false;
    }
    X509_VERIFY_PARAM* param = SSL_get0_param(native);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    const int ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str())
                         : X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size());
    if (ok != 1) {
        why = "cannot set the TLS host check for " + host;
        return false;
    }
    SSL_set_verify(native, SSL_VERIFY_PEER, nullptr);
    return true;
}

std::string handshake_error_text(const boost::system::error_code& ec, SSL* native) {
    const long verify = SSL_get_verify_result(native);
    if (verify != X509_V_OK)
        return std::string("certificate verify failed: ") + X509_verify_cert_error_string(verify);
    return ec.message();
}

} // namespace lanesync::tls
