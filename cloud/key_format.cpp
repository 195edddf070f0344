#include "cloud/key_format.hpp"

namespace lanesync::cloud {
namespace {

bool base64url_char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

} // namespace

bool is_jwt_shaped(std::string_view key) {
    int parts = 1;
    std::size_t part_len = 0;
    for (char c : key) {
        if (c == '.') {
            if (part_len == 0 || ++parts > 3)
                return false;
            part_len = 0;
        } else if (base64url_char(c)) {
            ++part_len;
        } else {
            return false;
        }
    }
    return parts == 3 && part_len > 0;
}

} // namespace lanesync::cloud
