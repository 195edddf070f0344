#pragma once
/// Private to conf/: the dotenv syntax layer. Turns file text into KEY/VALUE entries with line
/// numbers; knows nothing about which keys exist or what their values mean (config.cpp does).
/// Pure: no I/O, no environment. Errors are conf::config_error ("FILE:LINE: ...") and never
/// contain a value.

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace lanesync::conf::detail {

/// Largest env file accepted (an env file is a few dozen lines; anything bigger is a mistake).
inline constexpr std::size_t max_env_file_bytes = 1u << 20;

/// One `KEY=VALUE` line, the value already unquoted and unescaped.
struct entry {
    std::string key;
    std::string value;
    std::size_t line = 0; ///< 1-based
};

/// Parses the whole text. Throws config_error on the first syntax problem (size, NUL, invalid
/// UTF-8, stray carriage return, control character, missing '=', bad key name, bad quoting,
/// a key set twice). Entries come back in file order.
std::vector<entry> parse_dotenv(std::string_view text, const std::string& source);

/// Keys whose values must never appear in any message.
bool is_secret_key(std::string_view key);

/// `[A-Za-z_][A-Za-z0-9_]*`.
bool valid_key_name(std::string_view key);

/// A value for an error message: quoted, non-printable bytes escaped, cut to a readable length.
/// Never call it with a secret.
std::string quote_for_message(std::string_view value);

} // namespace lanesync::conf::detail
