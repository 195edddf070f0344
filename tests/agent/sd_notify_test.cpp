// agent/sd_notify: the service manager's notify protocol. The pure parts (NOTIFY_SOCKET,
// WATCHDOG_USEC, the STATUS= line), the sender against real unix datagram sockets (a path and
// an abstract `@name`), and the real `lanesync agent` process with NOTIFY_SOCKET pointing at a
// socket of this test: READY=1 only once both listeners accept, WATCHDOG=1 at half of
// WATCHDOG_USEC, STOPPING=1 on SIGTERM, and journal-style log lines under JOURNAL_STREAM.

#include "agent/sd_notify.hpp"

#include "agent_test_util.hpp"

#include <arpa/inet.h>
#include <csignal>
#include <fcntl.h>
#include <fstream>
#include <netinet/in.h>
#include <poll.h>
#include <sstream>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <random>
#include <regex>
#include <vector>

using namespace lanesync;
using namespace lanesync::agent;
using lanesync::agent::test::eventually;
using lanesync::agent::test::temp_dir;
using namespace std::chrono_literals;

namespace {

/// A bound unix datagram socket: the service manager's end.
struct receiver {
    int fd = -1;
    std::string notify_socket; ///< the NOTIFY_SOCKET value naming it
    explicit receiver(bool abstract, const std::filesystem::path& dir = {}) {
        fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        REQUIRE(fd >= 0);
        sockaddr_un sa{};
        sa.sun_family = AF_UNIX;
        socklen_t len = 0;
        if (abstract) {
            std::random_device rd;
            std::string name =
                "lanesync-notify-test-" + std::to_string(rd()) + std::to_string(rd());
            std::memcpy(sa.sun_path + 1, name.data(), name.size());
            len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
            notify_socket = "@" + name;
        } else {
            notify_socket = (dir / "notify.sock").string();
            std::memcpy(sa.sun_path, notify_socket.data(), notify_socket.size());
            len =
                static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + notify_socket.size() + 1);
        }
        REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&sa), len) == 0);
    }
    ~receiver() { ::close(fd); }
    /// The next datagram within `within`, or nullopt.
    std::optional<std::string> next(std::chrono::milliseconds within) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(within.count())) != 1)
            return std::nullopt;
        char buf[4096];
        auto n = ::recv(fd, buf, sizeof buf, 0);
        if (n < 0)
            return std::nullopt;
        return std::string(buf, static_cast<std::size_t>(n));
    }
};

std::uint16_t free_port() {
    int s = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    socklen_t len = sizeof a;
    ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
    ::close(s);
    return ntohs(a.sin_port);
}

bool accepts(std::uint16_t port) {
    int s = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = ::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(s);
    return ok;
}

/// The agent as a child process; killed and reaped whatever happens to the test.
struct child {
    pid_t pid = -1;
    std::optional<int> status;
    /// Runs `args` with this process's environment less the service manager's variables,
    /// plus `env`; stderr to `stderr_path`. Everything is prepared before fork().
    child(const std::vector<std::string>& args, const std::vector<std::string>& env,
          const std::string& stderr_path) {
        static const char* const managed[] = {"NOTIFY_SOCKET=", "WATCHDOG_USEC=", "WATCHDOG_PID=",
                                              "INVOCATION_ID=", "JOURNAL_STREAM="};
        std::vector<std::string> vars;
        for (char** e = environ; *e; ++e) {
            std::string_view v(*e);
            bool drop = false;
            for (const char* m : managed)
                drop = drop || v.rfind(m, 0) == 0;
            if (!drop)
                vars.emplace_back(v);
        }
        vars.insert(vars.end(), env.begin(), env.end());
        std::vector<char*> envp, argv;
        for (auto& v : vars)
            envp.push_back(v.data());
        envp.push_back(nullptr);
        std::vector<std::string> args_copy = args;
        for (auto& a : args_copy)
            argv.push_back(a.data());
        argv.push_back(nullptr);
        int fd = ::open(stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        REQUIRE(fd >= 0);
        pid = ::fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            ::dup2(fd, STDERR_FILENO); // dup2 clears O_CLOEXEC on the copy
            ::execve(argv[0], argv.data(), envp.data());
            ::_exit(127);
        }
        ::close(fd);
    }
    bool reaped() {
        if (status)
            return true;
        int st = 0;
        if (::waitpid(pid, &st, WNOHANG) == pid)
            status = st;
        return status.has_value();
    }
    ~child() {
        if (!reaped()) {
            ::kill(pid, SIGKILL);
            int st = 0;
            ::waitpid(pid, &st, 0);
        }
    }
};

std::string read_file(const std::filesystem::path& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

} // namespace

TEST_CASE("parse_notify_socket: a path or @abstract; nothing else") {
    auto p = sd::parse_notify_socket("/run/systemd/notify");
    REQUIRE(p);
    CHECK(p->name == "/run/systemd/notify");
    CHECK_FALSE(p->abstract);
    auto a = sd::parse_notify_socket("@/org/freedesktop/systemd1/notify/123");
    REQUIRE(a);
    CHECK(a->name == "/org/freedesktop/systemd1/notify/123");
    CHECK(a->abstract);
    CHECK_FALSE(sd::parse_notify_socket(nullptr));
    CHECK_FALSE(sd::parse_notify_socket(""));
    CHECK_FALSE(sd::parse_notify_socket("@"));
    CHECK_FALSE(sd::parse_notify_socket("relative/path"));
    CHECK_FALSE(sd::parse_notify_socket("vsock:2:1234"));
    CHECK_FALSE(sd::parse_notify_socket(("/" + std::string(107, 'x')).c_str())); // too long
    CHECK(sd::parse_notify_socket(("/" + std::string(106, 'x')).c_str()));
}

TEST_CASE("watchdog_period: half of WATCHDOG_USEC, only for this process") {
    CHECK(sd::watchdog_period("20000000", nullptr, 42) == std::chrono::microseconds(10000000));
    CHECK(sd::watchdog_period("20000000", "42", 42) == std::chrono::microseconds(10000000));
    CHECK(sd::watchdog_period("20000000", "", 42) == std::chrono::microseconds(10000000));
    CHECK_FALSE(sd::watchdog_period("20000000", "41", 42)); // our parent's watchdog
    CHECK_FALSE(sd::watchdog_period(nullptr, nullptr, 42));
    CHECK_FALSE(sd::watchdog_period("0", nullptr, 42));
    CHECK_FALSE(sd::watchdog_period("1", nullptr, 42)); // below 2 ms: the io thread would spin
    CHECK_FALSE(sd::watchdog_period("-5", nullptr, 42));
    CHECK_FALSE(sd::watchdog_period("10s", nullptr, 42));
    CHECK_FALSE(sd::watchdog_period("99999999999999999999999", nullptr, 42));
}

TEST_CASE("status_line: counts by state, peers up, cloud; the rebuild first") {
    sd::status_inputs in{3, 2, 12345, 1, 1, 2, "retrying", false, ""};
    CHECK(sd::status_line(in) ==
          "pending 3, peer_ack 2, cloud_ack 12,345, failed 1; peers 1/2 up; cloud retrying");
    in.rebuilding = true;
    in.rebuild_progress = "rebuilding from L2: 3,200 of 10,000";
    in.cloud = "";
    CHECK(sd::status_line(in) ==
          "rebuilding from peers (rebuilding from L2: 3,200 of 10,000); pending 3, peer_ack 2, "
          "cloud_ack 12,345, failed 1; peers 1/2 up; cloud off");
    in.rebuild_progress = "a\nb";
    CHECK(sd::status_line(in).find('\n') == std::string::npos);
}

TEST_CASE("notifier: one datagram to a path socket and to an abstract socket") {
    temp_dir dir;
    for (bool abstract : {false, true}) {
        receiver r(abstract, dir.path);
        sd::notifier n(sd::parse_notify_socket(r.notify_socket.c_str()));
        REQUIRE(n.enabled());
        CHECK(n.send("READY=1\nSTATUS=started"));
        CHECK(r.next(5s) == std::optional<std::string>("READY=1\nSTATUS=started"));
    }
    sd::notifier off(std::nullopt);
    CHECK_FALSE(off.enabled());
    CHECK_FALSE(off.send("READY=1"));
    // Nobody listening: a failure, reported by the return value, never thrown.
    sd::notifier gone(sd::parse_notify_socket((dir.path / "nobody.sock").string().c_str()));
    CHECK_FALSE(gone.send("WATCHDOG=1"));
}

TEST_CASE("lanesync agent under NOTIFY_SOCKET: READY after the listeners, WATCHDOG, STOPPING") {
    temp_dir dir;
    receiver r(true); // the abstract namespace, as systemd's own socket
    const auto peer_port = free_port();
    auto api_port = free_port();
    while (api_port == peer_port)
        api_port = free_port();
    const auto env_path = dir.path / "L1.env";
    std::ofstream(env_path) << "TERMINAL_ID=L1\nTERMINAL_BIND=127.0.0.1\nTERMINAL_PORT="
                            << peer_port << "\nLOCAL_API_PORT=" << api_port
                            << "\nPEER_SECRET=notify-test-secret-0123456789\nOUTBOX_PATH="
                            << (dir.path / "L1.db").string() << "\n";
    const auto log_path = dir.path / "agent.log";
    const std::string bin = std::string(LANESYNC_BINARY_DIR) + "/lanesync";
    // WATCHDOG_USEC=300 ms: a ping every 150 ms. JOURNAL_STREAM naming the log file (its
    // stderr): logs as under systemd.
    std::ofstream(log_path).flush();
    struct stat st {};
    REQUIRE(::stat(log_path.c_str(), &st) == 0);
    const std::string journal_stream = std::to_string(static_cast<unsigned long long>(st.st_dev)) +
                                       ":" +
                                       std::to_string(static_cast<unsigned long long>(st.st_ino));
    child agent({bin, "agent", "--env", env_path.string()},
                {"NOTIFY_SOCKET=" + r.notify_socket, "WATCHDOG_USEC=300000",
                 "JOURNAL_STREAM=" + journal_stream},
                log_path.string());

    // READY=1 comes once: both listeners accept connections at that moment.
    std::optional<std::string> ready;
    const auto start_deadline = std::chrono::steady_clock::now() + 30s;
    while (!ready && std::chrono::steady_clock::now() < start_deadline) {
        auto d = r.next(1000ms);
        if (d && d->rfind("READY=1", 0) == 0)
            ready = d;
        REQUIRE_FALSE(agent.reaped());
    }
    REQUIRE_MESSAGE(ready, "no READY=1; agent log:\n" << read_file(log_path));
    CHECK(accepts(api_port));
    CHECK(accepts(peer_port));
    CHECK(ready->find("\nSTATUS=started") != std::string::npos);

    // WATCHDOG=1 at half of WATCHDOG_USEC, and a STATUS= summary.
    std::vector<std::chrono::steady_clock::time_point> pings;
    std::string status;
    const auto watch_deadline = std::chrono::steady_clock::now() + 10s;
    while ((pings.size() < 6 || status.empty()) &&
           std::chrono::steady_clock::now() < watch_deadline) {
        auto d = r.next(1000ms);
        if (!d)
            continue;
        if (*d == "WATCHDOG=1")
            pings.push_back(std::chrono::steady_clock::now());
        else if (d->rfind("STATUS=", 0) == 0)
            status = d->substr(7);
    }
    REQUIRE(pings.size() >= 6);
    const auto mean = (pings.back() - pings.front()) / static_cast<int>(pings.size() - 1);
    const auto mean_ms = std::chrono::duration_cast<std::chrono::milliseconds>(mean).count();
    MESSAGE("mean watchdog interval " << mean_ms << " ms (expected 150)");
    CHECK(mean_ms >= 120);
    CHECK(mean_ms <= 400); // a loaded 2-core machine may delay a timer, never hasten it
    CHECK(status == "pending 0, peer_ack 0, cloud_ack 0, failed 0; peers 0/0 up; cloud off");

    // SIGTERM: STOPPING=1 first, then a clean exit.
    REQUIRE(::kill(agent.pid, SIGTERM) == 0);
    bool stopping = false;
    const auto stop_deadline = std::chrono::steady_clock::now() + 20s;
    while (!stopping && std::chrono::steady_clock::now() < stop_deadline) {
        auto d = r.next(1000ms);
        stopping = d && d->rfind("STOPPING=1", 0) == 0;
    }
    CHECK(stopping);
    REQUIRE(eventually([&] { return agent.reaped(); }, 20s));
    CHECK(WIFEXITED(*agent.status));
    CHECK(WEXITSTATUS(*agent.status) == 0);

    // Journal style: a priority prefix, no timestamp of our own.
    const auto log = read_file(log_path);
    CHECK(log.find("<6>info  L1 agent.started ") != std::string::npos);
    CHECK(log.find("<6>info  L1 systemd.ready watchdog_ms=150") != std::string::npos);
    CHECK_FALSE(std::regex_search(log, std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)")));
    std::istringstream lines(log);
    for (std::string line; std::getline(lines, line);)
        CHECK_MESSAGE(std::regex_match(line, std::regex(R"(<[3467]>\S.*)")), line);
}

TEST_CASE("lanesync agent without NOTIFY_SOCKET: plain timestamped log lines") {
    temp_dir dir;
    const auto env_path = dir.path / "L1.env";
    const auto peer_port = free_port();
    std::ofstream(env_path) << "TERMINAL_ID=L1\nTERMINAL_BIND=127.0.0.1\nTERMINAL_PORT="
                            << peer_port << "\nLOCAL_API_PORT=" << free_port()
                            << "\nPEER_SECRET=notify-test-secret-0123456789\nOUTBOX_PATH="
                            << (dir.path / "L1.db").string() << "\n";
    const auto log_path = dir.path / "agent.log";
    const std::string bin = std::string(LANESYNC_BINARY_DIR) + "/lanesync";
    child agent({bin, "agent", "--env", env_path.string()}, {}, log_path.string());
    REQUIRE(eventually([&] { return accepts(peer_port); }, 30s));
    REQUIRE(::kill(agent.pid, SIGTERM) == 0);
    REQUIRE(eventually([&] { return agent.reaped(); }, 20s));
    const auto log = read_file(log_path);
    CHECK(std::regex_search(
        log,
        std::regex(R"((^|\n)\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z info  L1 agent\.started )")));
    CHECK(log.find("<6>") == std::string::npos);
    CHECK(log.find("systemd.ready") == std::string::npos);
}
