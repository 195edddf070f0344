#pragma once
/// Private to conf/: the key table (SPEC section 4, docs/configuration.md). Each key's name,
/// shown default, empty-value rule, one-line description and parser are written once, in
/// keys.cpp; config.cpp reads the file, runs the parsers in file order and then the rules
/// between keys. tests/conf/doc_test.cpp checks docs/configuration.md against this table.

#include "conf/config.hpp"

#include <cstddef>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace lanesync::conf::detail {

/// The default LOCAL_API_PORT is TERMINAL_PORT plus this.
inline constexpr unsigned local_api_port_offset = 1000;

/// Where a key's value came from.
struct value_source {
    std::string value;
    std::size_t line = 0; ///< 1-based line in the file; 0 when from the environment
    bool from_env = false;
};

/// The values of one load, and the messages about them ("FILE:LINE: KEY: why").
class checker {
public:
    checker(std::string source, std::map<std::string, value_source> values)
        : source_(std::move(source)), values_(std::move(values)) {}

    /// The key's value, or nullptr when neither the file nor the environment sets it.
    const value_source* get(std::string_view key) const;
    bool set(std::string_view key) const { return get(key) != nullptr; }

    /// "FILE:LINE: KEY: why", "FILE: KEY: why (value from the environment; ...)" or
    /// "FILE: KEY: why".
    std::string message(std::string_view key, const std::string& why) const;

    [[noreturn]] void fail(std::string_view key, const std::string& why) const;

    /// Whole number in [lo, hi]: digits only, no sign, no blanks, no unit.
    std::uint64_t number(std::string_view key, const std::string& text, std::uint64_t lo,
                         std::uint64_t hi) const;

private:
    std::string source_;
    std::map<std::string, value_source> values_;
};

/// What a key's parser writes to.
struct key_state {
    config& cfg;
    const checker& chk;
    std::vector<warning>& warnings;
    bool quorum_set = false; ///< PEER_ACK_QUORUM was given (for its no-peers warning)
};

/// One key of the env file.
struct key_def {
    std::string_view name;
    /// The default as docs/configuration.md shows it: a value ("8123"), a rule
    /// ("TERMINAL_PORT + 1000"), or "" when unset means off or absent. Values are read from
    /// config's member initializers, so the shown default cannot drift from the real one.
    /// nullptr: the key is required (TERMINAL_ID).
    std::string (*default_text)();
    /// An empty value means "not set" (optional keys whose default is empty); for every
    /// other key an empty value is an error.
    bool empty_means_unset;
    /// One line; the key's row in docs/configuration.md contains it word for word.
    std::string_view description;
    /// Validates `value` (never empty) and stores it in st.cfg. Throws config_error through
    /// st.chk; a message never holds a secret value.
    void (*set)(key_state& st, std::string_view key, const std::string& value);

    bool required() const { return default_text == nullptr; }
};

/// Every key, in documentation order.
std::span<const key_def> key_table();

/// The key named `name` (case-sensitive), or nullptr.
const key_def* find_key(std::string_view name);

} // namespace lanesync::conf::detail
