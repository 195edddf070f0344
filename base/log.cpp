#include "base/log.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <mutex>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

namespace lanesync::log {
namespace {

/// stderr goes to the journal: JOURNAL_STREAM names stderr's device:inode (systemd sets it
/// when stdout or stderr is connected to the journal). The unit file sets nothing else that
/// this could rely on (INVOCATION_ID is inherited by everything a service starts).
bool detect_journal() {
    if (const char* js = std::getenv("JOURNAL_STREAM"); js && *js) {
        struct stat st {};
        if (::fstat(STDERR_FILENO, &st) == 0) {
            const std::string mine = std::to_string(static_cast<unsigned long long>(st.st_dev)) +
                                     ":" +
                                     std::to_string(static_cast<unsigned long long>(st.st_ino));
            if (mine == js)
                return true;
        }
    }
    // Not INVOCATION_ID: every process started under a service inherits it (a CI runner, a
    // StandardError=file: unit), and those logs need their timestamps.
    return false;
}

/// The syslog priority prefix the journal reads off each line (sd-daemon(3) SD_ERR...).
const char* journal_prefix(level l) {
    switch (l) {
    case level::error:
        return "<3>";
    case level::warn:
        return "<4>";
    case level::info:
        return "<6>";
    default:
        return "<7>";
    }
}

struct logger_state {
    std::mutex mutex;
    options opts;
    bool journal = detect_journal();
    std::vector<std::string> secrets;
    std::atomic<int> min_level{static_cast<int>(level::info)};
};

logger_state& state() {
    static logger_state s;
    return s;
}

std::string timestamp_now() {
    using namespace std::chrono;
    auto now = system_clock::now();
    auto ms = duration_cast<milliseconds>(now.time_since_epoch()).count();
    std::time_t secs = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[64];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                  static_cast<int>(ms % 1000));
    return buf;
}

bool needs_quotes(std::string_view v) {
    if (v.empty())
        return true;
    for (char c : v)
        if (c == ' ' || c == '"' || c == '=' || c == '\n' || c == '\r' || c == '\t')
            return true;
    return false;
}

std::string redact_locked(std::string text, const std::vector<std::string>& secrets) {
    for (const auto& s : secrets) {
        if (s.empty())
            continue;
        for (auto pos = text.find(s); pos != std::string::npos; pos = text.find(s, pos + 3))
            text.replace(pos, s.size(), "***");
    }
    return text;
}

} // namespace

bool parse_level(std::string_view t, level& out) {
    static constexpr std::pair<std::string_view, level> names[] = {
        {"trace", level::trace}, {"debug", level::debug},  {"info", level::info},
        {"warn", level::warn},   {"warning", level::warn}, {"error", level::error},
        {"off", level::off}};
    for (auto [n, l] : names)
        if (n == t) {
            out = l;
            return true;
        }
    return false;
}

std::string_view to_string(level l) {
    switch (l) {
    case level::trace:
        return "trace";
    case level::debug:
        return "debug";
    case level::info:
        return "info";
    case level::warn:
        return "warn";
    case level::error:
        return "error";
    case level::off:
        return "off";
    }
    return "?";
}

void configure(const options& o) {
    auto& s = state();
    std::lock_guard lock(s.mutex);
    s.opts = o;
    s.min_level = static_cast<int>(o.min_level);
}

void set_level(level l) {
    auto& s = state();
    std::lock_guard lock(s.mutex);
    s.opts.min_level = l;
    s.min_level = static_cast<int>(l);
}

void add_secret(std::string secret) {
    if (secret.empty())
        return;
    auto& s = state();
    std::lock_guard lock(s.mutex);
    if (std::find(s.secrets.begin(), s.secrets.end(), secret) == s.secrets.end())
        s.secrets.push_back(std::move(secret)); // once: every line is redacted against each
}

bool enabled(level l) {
    return l != level::off && static_cast<int>(l) >= state().min_level.load();
}

std::string redact(std::string text) {
    auto& s = state();
    std::lock_guard lock(s.mutex);
    return redact_locked(std::move(text), s.secrets);
}

void write(level l, std::string_view event, std::initializer_list<field> fields) {
    if (!enabled(l))
        return;
    auto& s = state();
    std::lock_guard lock(s.mutex);
    // Under the journal: the priority as a "<N>" prefix and no timestamp (the journal stamps
    // every line itself; two timestamps per line is noise).
    std::string line = s.journal ? journal_prefix(l) : "";
    if (s.opts.json) {
        nlohmann::ordered_json j;
        if (!s.journal)
            j["ts"] = timestamp_now();
        j["level"] = to_string(l);
        if (!s.opts.lane.empty())
            j["lane"] = s.opts.lane;
        j["event"] = event;
        for (const auto& [k, v] : fields)
            j[std::string(k)] = v;
        line += j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    } else {
        if (!s.journal) {
            line += timestamp_now();
            line += ' ';
        }
        auto lv = to_string(l);
        line += lv;
        line.append(6 - lv.size(), ' ');
        line += s.opts.lane.empty() ? std::string("-") : s.opts.lane;
        line += ' ';
        line += event;
        for (const auto& [k, v] : fields) {
            line += ' ';
            line += k;
            line += '=';
            if (needs_quotes(v)) {
                line += nlohmann::json(v).dump(-1, ' ', false,
                                               nlohmann::json::error_handler_t::replace);
            } else {
                line += v;
            }
        }
    }
    line = redact_locked(std::move(line), s.secrets);
    line += '\n';
    // One write() per line so lines from several threads or processes never interleave.
    std::size_t off = 0;
    while (off < line.size()) {
        auto n = ::write(STDERR_FILENO, line.data() + off, line.size() - off);
        if (n <= 0)
            break;
        off += static_cast<std::size_t>(n);
    }
}

} // namespace lanesync::log
