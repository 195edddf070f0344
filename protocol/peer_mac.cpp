// The peer handshake's crypto helpers of protocol/frames.hpp: peer_mac, mac_equal, random_hex
// (OpenSSL).
#include "protocol/frames.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include <stdexcept>

namespace lanesync::protocol {

std::string peer_mac(std::string_view secret, peer_role role, std::string_view store,
                     std::string_view client_terminal, std::string_view server_terminal,
                     std::string_view client_nonce, std::string_view server_nonce) {
    std::string msg = "lanesync-peer/1\n";
    msg += role == peer_role::client ? "client" : "server";
    for (auto part : {store, client_terminal, server_terminal, client_nonce, server_nonce}) {
        msg += '\n';
        msg += part;
    }
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (!HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
              reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), out, &len))
        throw std::runtime_error("OpenSSL HMAC failed");
    static constexpr char hex[] = "0123456789abcdef";
    std::string r;
    r.reserve(len * 2);
    for (unsigned int i = 0; i < len; ++i) {
        r += hex[out[i] >> 4];
        r += hex[out[i] & 0x0F];
    }
    return r;
}

bool mac_equal(std::string_view a, std::string_view b) {
    if (a.size() != b.size())
        return false;
    return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string random_hex(std::size_t bytes) {
    std::string raw(bytes, '\0');
    if (RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(bytes)) != 1)
        throw std::runtime_error("OpenSSL RAND_bytes failed");
    static constexpr char hex[] = "0123456789abcdef";
    std::string r;
    r.reserve(bytes * 2);
    for (unsigned char c : raw) {
        r += hex[c >> 4];
        r += hex[c & 0x0F];
    }
    return r;
}

} // namespace lanesync::protocol
