#include "conf/dotenv.hpp"

#include "conf/config.hpp"

#include <cstdio>
#include <unordered_map>

namespace lanesync::conf::detail {
namespace {

bool is_blank(char c) {
    return c == ' ' || c == '\t';
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && is_blank(s.front()))
        s.remove_prefix(1);
    while (!s.empty() && is_blank(s.back()))
        s.remove_suffix(1);
    return s;
}

std::string location(const std::string& source, std::size_t line) {
    return source + ":" + std::to_string(line);
}

[[noreturn]] void fail_line(const std::string& source, std::size_t line, const std::string& why) {
    throw config_error(location(source, line) + ": " + why);
}

[[noreturn]] void fail_key(const std::string& source, std::size_t line, std::string_view key,
                           const std::string& why) {
    throw config_error(location(source, line) + ": " + std::string(key) + ": " + why);
}

/// Length of the valid UTF-8 sequence starting at s[i], or 0 when it is not valid (overlong
/// forms, surrogates and code points above U+10FFFF are invalid too).
std::size_t utf8_sequence_length(std::string_view s, std::size_t i) {
    auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
    unsigned char c = byte(i);
    if (c < 0x80)
        return 1;
    std::size_t n = 0;
    unsigned char lo = 0x80, hi = 0xBF; // allowed range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0)
            lo = 0xA0; // overlong
        if (c == 0xED)
            hi = 0x9F; // UTF-16 surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0)
            lo = 0x90; // overlong
        if (c == 0xF4)
            hi = 0x8F; // above U+10FFFF
    } else {
        return 0;
    }
    if (i + n > s.size())
        return 0;
    if (byte(i + 1) < lo || byte(i + 1) > hi)
        return 0;
    for (std::size_t k = 2; k < n; ++k)
        if (byte(i + k) < 0x80 || byte(i + k) > 0xBF)
            return 0;
    return n;
}

/// Rejects bytes that have no business in an env file line (already without its '\n' and
/// its CRLF '\r'). Says what and where, never the text.
void check_line_bytes(std::string_view line, const std::string& source, std::size_t number) {
    for (std::size_t i = 0; i < line.size();) {
        unsigned char c = static_cast<unsigned char>(line[i]);
        if (c == 0)
            fail_line(source, number, "NUL byte in the file (is this a binary file?)");
        if (c == '\r')
            fail_line(source, number,
                      "carriage return in the middle of a line (only \\n or \\r\\n line endings "
                      "are accepted)");
        if ((c < 0x20 && c != '\t') || c == 0x7F) {
            char buf[64];
            std::snprintf(buf, sizeof buf, "control character U+%04X (column %zu)", c, i + 1);
            fail_line(source, number, buf);
        }
        std::size_t n = utf8_sequence_length(line, i);
        if (n == 0)
            fail_line(source, number,
                      "invalid UTF-8 (column " + std::to_string(i + 1) +
                          "); save the file as UTF-8");
        i += n;
    }
}

/// Double-quoted value: `rest` starts just after the opening quote. Returns the unescaped
/// value and sets `after` to what follows the closing quote.
std::string parse_double_quoted(std::string_view rest, std::string_view& after,
                                const std::string& source, std::size_t number,
                                std::string_view key) {
    std::string out;
    for (std::size_t i = 0; i < rest.size(); ++i) {
        char c = rest[i];
        if (c == '"') {
            after = rest.substr(i + 1);
            return out;
        }
        if (c != '\\') {
            out += c;
            continue;
        }
        if (i + 1 == rest.size())
            break; // a backslash at the very end escapes nothing: unterminated
        char e = rest[++i];
        switch (e) {
        case 'n':
            out += '\n';
            break;
        case 't':
            out += '\t';
            break;
        case '"':
            out += '"';
            break;
        case '\\':
            out += '\\';
            break;
        case '$':
            out += '$';
            break;
        default: {
            std::string why = "unknown escape sequence";
            // The escaped character is part of the value: show it only for non-secrets.
            if (!is_secret_key(key) && static_cast<unsigned char>(e) >= 0x20 &&
                static_cast<unsigned char>(e) < 0x7F)
                why += std::string(" \\") + e;
            why += " in double quotes (known: \\n \\t \\\" \\\\ \\$; write \\\\ for a "
                   "backslash, or use single quotes for a literal value)";
            fail_key(source, number, key, why);
        }
        }
    }
    fail_key(source, number, key,
             "unterminated double quote (the closing \" must be on the same line)");
}

/// What may follow a closing quote: blanks, then optionally a `#` comment.
void check_after_quote(std::string_view after, const std::string& source, std::size_t number,
                       std::string_view key) {
    after = trim(after);
    if (!after.empty() && after.front() != '#')
        fail_key(source, number, key,
                 "unexpected text after the closing quote (only a # comment may follow)");
}

/// Throws for a key outside [A-Za-z_][A-Za-z0-9_]*, naming the first bad character.
void check_key_name(std::string_view key, const std::string& source, std::size_t number) {
    if (valid_key_name(key))
        return;
    // Show the key only up to the first bad character: past it may be a value
    // typed with the wrong separator (PEER_SECRET:value=...).
    std::size_t bad = 0;
    while (bad < key.size() && valid_key_name(key.substr(0, bad + 1)))
        ++bad;
    std::string why = "invalid key name";
    if (bad > 0)
        why += " starting " + quote_for_message(key.substr(0, bad));
    unsigned char c = static_cast<unsigned char>(key[bad]);
    if (bad == 0 && c >= '0' && c <= '9')
        why += ": a key must not start with a digit";
    else if (c >= 0x21 && c < 0x7F)
        why += std::string(": '") + key[bad] + "' is not allowed";
    else if (c == ' ' || c == '\t')
        why += ": blanks are not allowed inside a key";
    why += " (keys match [A-Za-z_][A-Za-z0-9_]*)";
    fail_line(source, number, why);
}

/// The value of a line from the text after '=' (leading blanks kept): quoted or unquoted.
std::string parse_value(std::string_view raw, const std::string& source, std::size_t number,
                        std::string_view key) {
    std::string_view rest = trim(raw);
    if (!rest.empty() && rest.front() == '\'') {
        auto close = rest.find('\'', 1);
        if (close == std::string_view::npos)
            fail_key(source, number, key,
                     "unterminated single quote (the closing ' must be on the same line)");
        check_after_quote(rest.substr(close + 1), source, number, key);
        return std::string(rest.substr(1, close - 1));
    }
    if (!rest.empty() && rest.front() == '"') {
        std::string_view after;
        std::string value = parse_double_quoted(rest.substr(1), after, source, number, key);
        check_after_quote(after, source, number, key);
        return value;
    }
    // Unquoted: a '#' after a blank starts a comment; a '#' inside a word is kept
    // (KEY=a#b is "a#b"; KEY=a #b is "a").
    std::size_t cut = raw.size();
    for (std::size_t i = 1; i < raw.size(); ++i) {
        if (raw[i] == '#' && is_blank(raw[i - 1])) {
            cut = i;
            break;
        }
    }
    return std::string(trim(raw.substr(0, cut)));
}

} // namespace

bool is_secret_key(std::string_view key) {
    return key == "PEER_SECRET" || key == "SUPABASE_SERVICE_KEY";
}

bool valid_key_name(std::string_view key) {
    if (key.empty())
        return false;
    for (std::size_t i = 0; i < key.size(); ++i) {
        char c = key[i];
        bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
        bool digit = c >= '0' && c <= '9';
        if (!(alpha || (digit && i > 0)))
            return false;
    }
    return true;
}

std::string quote_for_message(std::string_view value) {
    constexpr std::size_t max_shown = 80;
    std::string out = "\"";
    std::size_t shown = 0;
    for (char ch : value) {
        if (shown == max_shown) {
            out += "...";
            break;
        }
        unsigned char c = static_cast<unsigned char>(ch);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += ch;
        } else if (c == '\n') {
            out += "\\n";
        } else if (c == '\t') {
            out += "\\t";
        } else if (c < 0x20 || c == 0x7F) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02X", c);
            out += buf;
        } else {
            out += ch; // printable ASCII, or part of a UTF-8 sequence (already validated)
        }
        ++shown;
    }
    out += '"';
    return out;
}

std::vector<entry> parse_dotenv(std::string_view text, const std::string& source) {
    if (text.size() > max_env_file_bytes)
        throw config_error(source + ": file is too large (" + std::to_string(text.size()) +
                           " bytes, at most 1 MiB); is this really an env file?");
    // Editors on Windows like to start UTF-8 files with a byte order mark; it is not content.
    if (text.starts_with("\xEF\xBB\xBF"))
        text.remove_prefix(3);

    std::vector<entry> entries;
    std::unordered_map<std::string, std::size_t> first_line; // key -> line it was set on
    std::size_t number = 0;
    while (!text.empty()) {
        ++number;
        auto nl = text.find('\n');
        std::string_view line = text.substr(0, nl);
        text.remove_prefix(nl == std::string_view::npos ? text.size() : nl + 1);
        if (line.ends_with('\r')) // CRLF line endings
            line.remove_suffix(1);
        check_line_bytes(line, source, number);

        line = trim(line);
        if (line.empty() || line.front() == '#')
            continue;
        // `export KEY=VALUE` (shell style): the prefix is ignored. A key named `export` is
        // still possible: `export=1` has no blank after the word.
        if (line.starts_with("export") && line.size() > 6 && is_blank(line[6]))
            line = trim(line.substr(6));

        auto eq = line.find('=');
        if (eq == std::string_view::npos)
            fail_line(source, number, "expected KEY=VALUE (this line has no '=')");
        std::string_view key = trim(line.substr(0, eq));
        if (key.empty())
            fail_line(source, number, "missing key name before '='");
        check_key_name(key, source, number);

        // The value as written after '=', leading blanks kept.
        std::string value = parse_value(line.substr(eq + 1), source, number, key);
        std::string k(key);
        auto [it, inserted] = first_line.emplace(k, number);
        if (!inserted)
            fail_key(source, number, key,
                     "set twice (first on line " + std::to_string(it->second) + ", again on line " +
                         std::to_string(number) + "); keep one");
        entries.push_back({std::move(k), std::move(value), number});
    }
    return entries;
}

} // namespace lanesync::conf::detail
