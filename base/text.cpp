#include "base/text.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>

namespace lanesync::text {

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out)
        if (c >= 'A' && c <= 'Z')
            c = static_cast<char>(c - 'A' + 'a');
    return out;
}

std::string upper(std::string_view s) {
    std::string out(s);
    for (char& c : out)
        if (c >= 'a' && c <= 'z')
            c = static_cast<char>(c - 'a' + 'A');
    return out;
}

std::string join(const std::vector<std::string>& items, std::string_view sep) {
    std::string out;
    for (std::size_t i = 0; i < items.size(); ++i) {
        if (i)
            out += sep;
        out += items[i];
    }
    return out;
}

bool is_loopback_host(std::string_view host) {
    std::string t = lower(host);
    if (t == "localhost")
        return true;
    in_addr a4{};
    if (inet_pton(AF_INET, t.c_str(), &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    in6_addr a6{};
    if (inet_pton(AF_INET6, t.c_str(), &a6) == 1)
        return std::memcmp(&a6, &in6addr_loopback, sizeof a6) == 0;
    return false;
}

std::string what(std::exception_ptr e) {
    if (!e)
        return {};
    try {
        std::rethrow_exception(e);
    } catch (const std::exception& ex) {
        return ex.what();
    } catch (...) {
        return "unknown exception";
    }
}

} // namespace lanesync::text
