#include "protocol/message.hpp"

#include <nlohmann/json.hpp>
#include <openssl/rand.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <stdexcept>
#include <utility>
#include <vector>

namespace lanesync::protocol {
namespace {

bool all_of_set(std::string_view s, std::size_t max, bool (*ok)(char)) {
    if (s.empty() || s.size() > max)
        return false;
    for (char c : s)
        if (!ok(c))
            return false;
    return true;
}

bool id_char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

bool topic_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' || c == '-';
}

bool hex_char(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

} // namespace

std::string_view to_string(priority p) {
    switch (p) {
    case priority::critical:
        return "critical";
    case priority::high:
        return "high";
    case priority::normal:
        return "normal";
    case priority::low:
        return "low";
    }
    return "normal";
}

std::optional<priority> parse_priority(std::string_view t) {
    if (t == "critical")
        return priority::critical;
    if (t == "high")
        return priority::high;
    if (t == "normal")
        return priority::normal;
    if (t == "low")
        return priority::low;
    return std::nullopt;
}

bool valid_terminal_id(std::string_view s) {
    return all_of_set(s, 32, id_char);
}
bool valid_store_id(std::string_view s) {
    return all_of_set(s, 64, id_char);
}
bool valid_topic(std::string_view s) {
    return all_of_set(s, 64, topic_char);
}

bool valid_uuid(std::string_view s) {
    if (s.size() != 36)
        return false;
    for (std::size_t i = 0; i < s.size(); ++i) {
        bool dash = (i == 8 || i == 13 || i == 18 || i == 23);
        if (dash ? s[i] != '-' : !hex_char(s[i]))
            return false;
    }
    return true;
}

std::string normalize_uuid(std::string_view s) {
    std::string out(s);
    for (auto& c : out)
        if (c >= 'A' && c <= 'F')
            c = static_cast<char>(c - 'A' + 'a');
    return out;
}

std::string new_uuid_v7() {
    std::array<unsigned char, 16> b{};
    if (RAND_bytes(b.data() + 6, 10) != 1)
        throw std::runtime_error("OpenSSL RAND_bytes failed");
    auto ms = static_cast<std::uint64_t>(now_ms());
    for (int i = 0; i < 6; ++i)
        b[static_cast<std::size_t>(i)] = static_cast<unsigned char>(ms >> (8 * (5 - i)));
    b[6] = static_cast<unsigned char>((b[6] & 0x0F) | 0x70); // version 7
    b[8] = static_cast<unsigned char>((b[8] & 0x3F) | 0x80); // variant 10
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    out.reserve(36);
    for (std::size_t i = 0; i < b.size(); ++i) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out += '-';
        out += hex[b[i] >> 4];
        out += hex[b[i] & 0x0F];
    }
    return out;
}

bool json_too_deep(const nlohmann::json& j, std::size_t max_depth) {
    // Explicit stack: nlohmann's dump() recurses once per level, so a deep document must be
    // refused before anything serializes it.
    std::vector<std::pair<const nlohmann::json*, std::size_t>> stack{{&j, 1}};
    while (!stack.empty()) {
        auto [node, depth] = stack.back();
        stack.pop_back();
        if (!node->is_structured())
            continue;
        if (depth > max_depth)
            return true;
        for (const auto& child : *node)
            if (child.is_structured())
                stack.emplace_back(&child, depth + 1);
    }
    return false;
}

std::string canonical_json(const nlohmann::json& j) {
    // nlohmann::json keeps object keys in a std::map, so dump() is sorted and compact.
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::strict);
}

std::string format_time_ms(std::int64_t unix_ms) {
    std::time_t secs = static_cast<std::time_t>(unix_ms / 1000);
    int millis = static_cast<int>(unix_ms % 1000);
    if (millis < 0) {
        millis += 1000;
        --secs;
    }
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, millis);
    return buf;
}

std::int64_t now_ms() {
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

} // namespace lanesync::protocol
