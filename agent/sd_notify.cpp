#include "agent/sd_notify.hpp"

#include "base/log.hpp"

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

namespace lanesync::agent::sd {
namespace {

/// Decimal digits only, no sign, no blank; nullopt on anything else or overflow.
std::optional<std::uint64_t> decimal(const char* text) {
    if (text == nullptr || *text == '\0')
        return std::nullopt;
    std::uint64_t v = 0;
    for (const char* p = text; *p; ++p) {
        if (*p < '0' || *p > '9')
            return std::nullopt;
        auto d = static_cast<std::uint64_t>(*p - '0');
        if (v > (UINT64_MAX - d) / 10)
            return std::nullopt;
        v = v * 10 + d;
    }
    return v;
}

std::string with_commas(std::uint64_t n) {
    auto s = std::to_string(n);
    for (auto i = s.size(); i > 3; i -= 3)
        s.insert(i - 3, ",");
    return s;
}

} // namespace

std::optional<notify_address> parse_notify_socket(const char* value) {
    if (value == nullptr || value[0] == '\0')
        return std::nullopt;
    std::string_view v(value);
    constexpr std::size_t max_path = sizeof(sockaddr_un{}.sun_path) - 1;
    if (v.front() == '@') {
        if (v.size() < 2 || v.size() - 1 > max_path)
            return std::nullopt;
        return notify_address{std::string(v.substr(1)), true};
    }
    if (v.front() != '/' || v.size() > max_path)
        return std::nullopt;
    return notify_address{std::string(v), false};
}

std::optional<std::chrono::microseconds> watchdog_period(const char* usec, const char* pid,
                                                         std::int64_t self) {
    auto us = decimal(usec);
    // Below 2 ms (a typo, WATCHDOG_USEC=1) the io thread would do nothing but ping: off.
    if (!us || *us < 2'000)
        return std::nullopt;
    if (pid != nullptr && *pid != '\0') {
        auto p = decimal(pid);
        if (!p || static_cast<std::int64_t>(*p) != self)
            return std::nullopt; // meant for another process (e.g. our parent)
    }
    return std::chrono::microseconds(static_cast<std::int64_t>(*us / 2));
}

std::string status_line(const status_inputs& in) {
    std::string out;
    if (in.rebuilding) {
        out = "rebuilding from peers";
        if (!in.rebuild_progress.empty())
            out += " (" + in.rebuild_progress + ")";
        out += "; ";
    }
    out += "pending " + with_commas(in.pending) + ", peer_ack " + with_commas(in.peer_ack) +
           ", cloud_ack " + with_commas(in.cloud_ack) + ", failed " + with_commas(in.failed);
    out += "; peers " + std::to_string(in.peers_up) + "/" + std::to_string(in.peers_total) + " up";
    out += "; cloud " + (in.cloud.empty() ? std::string("off") : in.cloud);
    for (auto& c : out)
        if (c == '\n' || c == '\r')
            c = ' '; // one line: a newline would start another KEY=VALUE assignment
    return out;
}

notifier notifier::from_environment() {
    return notifier(parse_notify_socket(std::getenv("NOTIFY_SOCKET")),
                    watchdog_period(std::getenv("WATCHDOG_USEC"), std::getenv("WATCHDOG_PID"),
                                    static_cast<std::int64_t>(::getpid())));
}

notifier::notifier(std::optional<notify_address> address,
                   std::optional<std::chrono::microseconds> watchdog)
    : address_(std::move(address)), watchdog_(watchdog) {
    if (address_)
        fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
}

notifier::~notifier() {
    if (fd_ >= 0)
        ::close(fd_);
}

notifier::notifier(notifier&& other) noexcept
    : address_(std::move(other.address_)), watchdog_(other.watchdog_), fd_(other.fd_),
      warned_(other.warned_) {
    other.fd_ = -1;
    other.address_.reset();
}

bool notifier::send(std::string_view state) noexcept {
    if (!address_)
        return false;
    int err = 0;
    if (fd_ < 0) {
        err = EBADF;
    } else {
        sockaddr_un sa{};
        sa.sun_family = AF_UNIX;
        // Abstract: sun_path[0] is NUL and the name follows; the length counts no terminator.
        const std::size_t at = address_->abstract ? 1 : 0;
        std::memcpy(sa.sun_path + at, address_->name.data(), address_->name.size());
        auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + at +
                                          address_->name.size() + (address_->abstract ? 0 : 1));
        auto n = ::sendto(fd_, state.data(), state.size(), MSG_NOSIGNAL,
                          reinterpret_cast<const sockaddr*>(&sa), len);
        if (n == static_cast<ssize_t>(state.size()))
            return true;
        err = n < 0 ? errno : EMSGSIZE;
    }
    if (!warned_) {
        warned_ = true;
        try {
            log::warn("systemd.notify_failed", {{"error", std::strerror(err)}});
        } catch (...) {
        }
    }
    return false;
}

} // namespace lanesync::agent::sd
