#include "protocol/rebuild.hpp"

#include "base/text.hpp"

#include <algorithm>

namespace lanesync::protocol {

std::string thousands(std::uint64_t n) {
    std::string digits = std::to_string(n);
    std::string r;
    const std::size_t first = digits.size() % 3 == 0 ? 3 : digits.size() % 3;
    r.append(digits, 0, first);
    for (std::size_t i = first; i < digits.size(); i += 3) {
        r += ',';
        r.append(digits, i, 3);
    }
    return r;
}

rebuild_progress::rebuild_progress(std::vector<std::string> links, std::uint64_t own_hwm_at_start)
    : links_(std::move(links)), start_(own_hwm_at_start), hwm_(own_hwm_at_start) {}

void rebuild_progress::report(rebuild_report r) {
    if (!r.link.empty()) {
        if (!r.terminal.empty())
            link_terminal_[r.link] = r.terminal;
        if (std::find(reported_links_.begin(), reported_links_.end(), r.link) ==
            reported_links_.end())
            reported_links_.push_back(r.link);
    }
    const std::string key = r.terminal.empty() ? r.link : r.terminal;
    auto it = by_terminal_.find(key);
    if (it == by_terminal_.end())
        by_terminal_.emplace(key, std::move(r));
    else if (r.seq > it->second.seq)
        it->second = std::move(r);
}

void rebuild_progress::link_terminal(const std::string& link, const std::string& terminal) {
    if (!link.empty() && !terminal.empty())
        link_terminal_[link] = terminal;
}

void rebuild_progress::exclude(const std::string& link_or_terminal) {
    if (std::find(excluded_.begin(), excluded_.end(), link_or_terminal) == excluded_.end())
        excluded_.push_back(link_or_terminal);
}

void rebuild_progress::own_hwm(std::uint64_t hwm) {
    hwm_ = std::max(hwm_, hwm);
}

void rebuild_progress::conflict(std::string text) {
    if (std::find(conflicts_.begin(), conflicts_.end(), text) == conflicts_.end())
        conflicts_.push_back(std::move(text));
}

std::string rebuild_progress::terminal_of(const std::string& link) const {
    auto it = link_terminal_.find(link);
    return it == link_terminal_.end() ? std::string() : it->second;
}

/// A peer is excluded by its URL or by its terminal id (the link's, when known).
bool rebuild_progress::is_excluded(const std::string& link, const std::string& terminal) const {
    const std::string t = terminal.empty() ? terminal_of(link) : terminal;
    for (const auto& x : excluded_) {
        if ((!link.empty() && x == link) || (!t.empty() && x == t))
            return true;
        if (!t.empty() && terminal_of(x) == t) // excluded by the URL of the link to t
            return true;
    }
    return false;
}

std::uint64_t rebuild_progress::target() const {
    std::uint64_t t = 0;
    for (const auto& [key, r] : by_terminal_)
        if (!is_excluded(r.link, r.terminal))
            t = std::max(t, r.seq);
    return t;
}

std::uint64_t rebuild_progress::restored() const {
    return hwm_ > start_ ? hwm_ - start_ : 0;
}

std::string rebuild_progress::from() const {
    const rebuild_report* best = nullptr;
    for (const auto& [key, r] : by_terminal_)
        if (!is_excluded(r.link, r.terminal) && r.seq > 0 && (!best || r.seq > best->seq))
            best = &r;
    return best ? best->terminal : std::string();
}

std::vector<std::string> rebuild_progress::waiting_for() const {
    std::vector<std::string> r;
    for (const auto& link : links_) {
        const std::string t = terminal_of(link);
        if (is_excluded(link, t))
            continue;
        const bool reported =
            std::find(reported_links_.begin(), reported_links_.end(), link) !=
                reported_links_.end() ||
            (!t.empty() && by_terminal_.count(t) > 0); // an inbound session of that lane
        if (!reported)
            r.push_back(t.empty() ? link : t);
    }
    return r;
}

std::vector<std::string> rebuild_progress::excluded() const {
    std::vector<std::string> r;
    for (const auto& x : excluded_) {
        const std::string t = terminal_of(x);
        r.push_back(t.empty() ? x : t);
    }
    std::sort(r.begin(), r.end());
    r.erase(std::unique(r.begin(), r.end()), r.end());
    return r;
}

bool rebuild_progress::done() const {
    return waiting_for().empty() && hwm_ >= target();
}

std::string rebuild_progress::text() const {
    std::string s = "rebuilding";
    if (auto f = from(); !f.empty())
        s += " from " + f;
    s += ": " + thousands(hwm_) + " of " + thousands(target());
    auto w = waiting_for();
    if (!w.empty()) {
        s += " (waiting for " + text::join(w) + ")";
    }
    return s;
}

} // namespace lanesync::protocol
