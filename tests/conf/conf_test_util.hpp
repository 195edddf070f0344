#pragma once
/// Helpers for the conf tests: a fake environment instead of the real one, and short ways to
/// load text that must succeed or must fail.

#include "conf/config.hpp"

#include <doctest/doctest.h>

#include <map>
#include <string>

namespace lanesync::conf::test {

inline const std::string src = "t.env";

/// An environment holding exactly `vars`.
inline env_lookup env(std::map<std::string, std::string> vars = {}) {
    return [vars = std::move(vars)](const std::string& key) -> std::optional<std::string> {
        auto it = vars.find(key);
        if (it == vars.end())
            return std::nullopt;
        return it->second;
    };
}

/// Loads `text` (no inherited environment unless given); fails the test on an error.
inline loaded ok(const std::string& text, env_lookup lookup = env()) {
    try {
        return load_text(text, src, std::move(lookup));
    } catch (const config_error& e) {
        FAIL("unexpected config_error: " << e.what());
    }
    return {};
}

/// Loads `text`, which must fail; returns what().
inline std::string err(const std::string& text, env_lookup lookup = env()) {
    try {
        load_text(text, src, std::move(lookup));
    } catch (const config_error& e) {
        return e.what();
    }
    FAIL("expected a config_error for:\n" << text);
    return {};
}

/// `err` for one key on line 2, after a valid TERMINAL_ID line.
inline std::string bad(const std::string& key, const std::string& value) {
    return err("TERMINAL_ID=L1\n" + key + "=" + value + "\n");
}

/// `ok` for one key on line 2, after a valid TERMINAL_ID line.
inline config good(const std::string& key, const std::string& value) {
    return ok("TERMINAL_ID=L1\n" + key + "=" + value + "\n").cfg;
}

inline bool contains(const std::string& hay, const std::string& needle) {
    return hay.find(needle) != std::string::npos;
}

} // namespace lanesync::conf::test
