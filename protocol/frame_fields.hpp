#pragma once
/// Private to protocol/: what every frame decoder (frames.cpp, frames_catalog.cpp) reads a
/// field with, and the close a malformed frame gets.

#include "protocol/frames.hpp"

#include <nlohmann/json.hpp>

#include <string>

namespace lanesync::protocol::detail {

/// A malformed or forbidden frame: closed with 1008 and `why`.
inline decode_error policy(std::string why) {
    return decode_error{close_code::policy_violation, std::move(why)};
}

/// obj[key] as a string; sets `err` when missing or not a string.
inline const std::string* get_string(const nlohmann::json& obj, const char* key, std::string& err) {
    auto it = obj.find(key);
    if (it == obj.end() || !it->is_string()) {
        err = std::string("field ") + key + " must be a string";
        return nullptr;
    }
    return &it->get_ref<const std::string&>();
}

} // namespace lanesync::protocol::detail
