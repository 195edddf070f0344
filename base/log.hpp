#pragma once
/// One line per event, text (default) or JSON, to stderr.
///
///     2026-11-22T03:57:20.123Z info  L1 peer.connected peer=L2 url=ws://127.0.0.1:8124/v1/peer
///     {"ts":"2026-11-22T03:57:20.123Z","level":"info","lane":"L1","event":"peer.connected","peer":"L2"}
///
/// Under systemd (stderr is the journal: JOURNAL_STREAM names it)
/// each line starts with the journal's priority prefix ("<6>" info, "<4>" warn, "<3>" error,
/// "<7>" debug/trace) and carries no timestamp, since the journal stamps it:
///
///     <6>info  L1 peer.connected peer=L2 url=ws://127.0.0.1:8124/v1/peer
///
/// Secrets registered with add_secret() are replaced by "***" in every line, as a last line of
/// defence: code must not pass secrets to the logger in the first place.
/// Thread-safe: every call may come from any thread; a line is written with one write().

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>

namespace lanesync::log {

enum class level { trace, debug, info, warn, error, off };

/// Parses "trace".."error"/"off"; returns false on anything else.
bool parse_level(std::string_view text, level& out);
std::string_view to_string(level l);

struct options {
    level min_level = level::info;
    bool json = false;
    std::string lane; ///< terminal id printed on every line
};
void configure(const options& o);
/// The lowest level written from now on (a live reload of LOG_LEVEL); the rest of the options
/// stay.
void set_level(level l);
/// Registers a secret to redact from every line (again for the same one: no-op).
void add_secret(std::string secret);
bool enabled(level l);

using field = std::pair<std::string_view, std::string>;

/// Writes one event line: `event` is a dotted name (peer.connected), fields are key=value.
void write(level l, std::string_view event, std::initializer_list<field> fields = {});

inline void trace(std::string_view e, std::initializer_list<field> f = {}) {
    write(level::trace, e, f);
}
inline void debug(std::string_view e, std::initializer_list<field> f = {}) {
    write(level::debug, e, f);
}
inline void info(std::string_view e, std::initializer_list<field> f = {}) {
    write(level::info, e, f);
}
inline void warn(std::string_view e, std::initializer_list<field> f = {}) {
    write(level::warn, e, f);
}
inline void error(std::string_view e, std::initializer_list<field> f = {}) {
    write(level::error, e, f);
}

/// Replaces registered secrets in `text` (used by status/error paths too).
std::string redact(std::string text);

} // namespace lanesync::log
