#pragma once
/// The service manager's readiness protocol (sd_notify(3), "NOTIFY_SOCKET"), written here in a
/// few lines instead of linking libsystemd: one datagram of `KEY=VALUE` lines per state change,
/// sent to the unix datagram socket named by $NOTIFY_SOCKET (a path, or `@name` for the
/// abstract namespace). Outside systemd (no NOTIFY_SOCKET) every send is a no-op.
///
/// The agent (agent/node.cpp) sends `READY=1` once the outbox is open and both listeners are
/// bound, `STATUS=...` every few seconds, `WATCHDOG=1` from the io thread at half of
/// $WATCHDOG_USEC, and `STOPPING=1` when shutdown starts. docs/configuration.md, "Running under
/// systemd".

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace lanesync::agent::sd {

/// Where NOTIFY_SOCKET points: a filesystem path, or a name in the abstract namespace.
struct notify_address {
    std::string name;      ///< the path, or the abstract name without its leading '@'
    bool abstract = false; ///< `@name`: sun_path starts with a NUL byte
};

/// Parses NOTIFY_SOCKET: an absolute path or `@name`, short enough for sockaddr_un
/// (107 bytes). nullopt when unset, empty or anything else (vsock addresses are not supported).
std::optional<notify_address> parse_notify_socket(const char* value);

/// How often to send WATCHDOG=1: half of WATCHDOG_USEC (decimal microseconds > 0), when
/// WATCHDOG_PID is unset or equals `self`. nullopt otherwise (no watchdog asked for).
std::optional<std::chrono::microseconds> watchdog_period(const char* usec, const char* pid,
                                                         std::int64_t self);

/// What the one-line STATUS= summary is made of (plain numbers: no dependency on the outbox).
struct status_inputs {
    std::uint64_t pending = 0, peer_ack = 0, cloud_ack = 0, failed = 0;
    std::size_t peers_up = 0, peers_total = 0;
    std::string cloud; ///< "off", "ok", "retrying", "paused" (the word of `lanesync status`)
    bool rebuilding = false;
    std::string rebuild_progress; ///< e.g. "rebuilding from L2: 3,200 of 10,000" (may be empty)
};

/// "pending 0, peer_ack 2, cloud_ack 35, failed 0; peers 2/2 up; cloud ok", prefixed with
/// "rebuilding from peers (...); " while a rebuild runs. One line, no newline.
std::string status_line(const status_inputs& in);

/// A connected sender. Not thread-safe: the agent uses it from its io thread (and from the
/// thread that runs the io_context before it starts: the same thread).
class notifier {
public:
    /// Reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID of this process.
    static notifier from_environment();
    explicit notifier(std::optional<notify_address> address,
                      std::optional<std::chrono::microseconds> watchdog = std::nullopt);
    ~notifier();
    notifier(notifier&& other) noexcept;
    notifier& operator=(notifier&&) = delete;
    notifier(const notifier&) = delete;
    notifier& operator=(const notifier&) = delete;

    bool enabled() const { return address_.has_value(); }
    std::optional<std::chrono::microseconds> watchdog() const { return watchdog_; }

    /// Sends `state` ("READY=1\nSTATUS=...") as one datagram. Returns false when disabled or
    /// when the send failed (the reason is logged once, at the first failure); never throws.
    bool send(std::string_view state) noexcept;

private:
    std::optional<notify_address> address_;
    std::optional<std::chrono::microseconds> watchdog_;
    int fd_ = -1;
    bool warned_ = false;
};

} // namespace lanesync::agent::sd
