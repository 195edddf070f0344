#pragma once
/// Test support for the uploader tests: a scripted in-process HTTP/HTTPS server standing in
/// for the edge function (127.0.0.1, port 0), and helpers to drive the io_context, make temp
/// dirs and TLS certificates. Beast stays in fake_cloud_test.cpp so the test files including
/// this header compile quickly.

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace lanesync::cloud_testing {

using namespace std::chrono_literals;

/// One request as the fake cloud received it.
struct seen_request {
    std::size_t index = 0;                    ///< 0-based, in arrival order
    std::size_t connection = 0;               ///< 1-based number of the TCP connection it came on
    std::chrono::steady_clock::time_point at; ///< when the whole request had been read
    std::string method, target;
    std::map<std::string, std::string> headers; ///< names in lowercase
    std::string body;

    /// messageId / seq of every message in the body, in order (empty if the body is not JSON).
    std::vector<std::string> ids() const;
    std::vector<std::uint64_t> seqs() const;
};

/// What the fake cloud does with one request.
struct reply {
    enum class action {
        respond,        ///< send the response below
        close,          ///< close the connection without answering
        close_mid_body, ///< send the headers and half of the body, then close
        hang,           ///< never answer (until the client gives up)
    };
    action act = action::respond;
    int status = 200;
    std::string body;
    bool keep_alive = true;   ///< "Connection: close" when false
    bool close_after = false; ///< answer as keep-alive, then close the socket at once
};

/// 200 with "stored" for every message of the request.
reply ack_all(const seen_request& req);
/// 200 with the given status per message ("stored", "duplicate", "rejected", or "" to leave
/// the message out); `error` used for "rejected".
reply answer_each(
    const seen_request& req,
    const std::function<std::string(const std::string& id, std::uint64_t seq)>& status,
    const std::string& error = "rejected by test");
/// A plain status with a JSON error body.
reply status_only(int status, const std::string& error = "test");

class fake_cloud {
public:
    using script = std::function<reply(const seen_request&)>;
    struct tls_files {
        std::string cert_chain; ///< PEM, server certificate first
        std::string key;        ///< PEM private key
    };

    fake_cloud(boost::asio::io_context& ioc, script s, std::optional<tls_files> tls = {});
    ~fake_cloud();
    fake_cloud(const fake_cloud&) = delete;
    fake_cloud& operator=(const fake_cloud&) = delete;

    std::uint16_t port() const;
    /// "http://127.0.0.1:PORT" (or https://, with `host` instead of 127.0.0.1).
    std::string url(const std::string& host = "127.0.0.1") const;
    const std::vector<seen_request>& requests() const;
    std::size_t connections() const;  ///< accepted so far
    std::size_t tls_failures() const; ///< TLS handshakes that failed
    void set_script(script s);
    /// Closes every open connection from the server side (an idle keep-alive timeout).
    void close_connections();
    std::size_t open_connections() const;

private:
    struct state;
    std::shared_ptr<state> st_;
};

/// Runs `ioc` until `pred()` holds or `timeout` passes; returns pred(). Never sleeps blindly.
bool run_until(boost::asio::io_context& ioc, const std::function<bool()>& pred,
               std::chrono::milliseconds timeout = 10s);
/// Runs `ioc` for `d` (only for "nothing happens" checks).
void run_for(boost::asio::io_context& ioc, std::chrono::milliseconds d);

/// A fresh directory under /tmp, removed with everything in it on destruction.
struct temp_dir {
    temp_dir();
    ~temp_dir();
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;
    std::string file(const std::string& name) const { return path + "/" + name; }
    std::string path;
};

/// Test PKI made with the openssl CLI, once per process: a CA, a server certificate for
/// "localhost" signed by it, a server certificate for "other.example" signed by it, and an
/// unrelated CA.
struct test_pki {
    std::string ca, other_ca; ///< CA certificates (PEM files)
    std::string localhost_cert, localhost_key;
    std::string other_cert, other_key; ///< issued for other.example
};
const test_pki& pki();

} // namespace lanesync::cloud_testing
