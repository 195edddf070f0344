#pragma once
/// Helpers for the agent tests: a temporary folder, a real outbox, an api_server running on
/// its own io_context thread (port 0), and a small Beast client whose every operation has a
/// deadline (tcp_stream timeouts), so a broken server fails a test instead of hanging it.

#include "agent/api_server.hpp"
#include "base/metrics.hpp"
#include "conf/config.hpp"
#include "outbox/outbox.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>

namespace lanesync::agent::test {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using nlohmann::json;
using namespace std::chrono_literals;

/// A fresh folder under the system temp dir, removed at the end.
struct temp_dir {
    std::filesystem::path path;
    temp_dir() {
        std::random_device rd;
        path = std::filesystem::temp_directory_path() /
               ("lanesync-agent-test-" + std::to_string(rd()) + "-" + std::to_string(rd()));
        std::filesystem::create_directories(path);
    }
    ~temp_dir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
};

inline conf::config test_config(const std::filesystem::path& dir, std::size_t max_bytes = 8192) {
    conf::config c;
    c.source = (dir / "L1.env").string();
    c.terminal_id = "L1";
    c.store_id = "store-1";
    c.local_api_port = 0;
    c.outbox_path = (dir / "L1.db").string();
    c.max_message_bytes = max_bytes;
    c.peer_secret = "peer-secret-XYZZY-0123456789";
    c.supabase_service_key = "service-key-PLUGH-abcdefghijkl";
    return c;
}

/// A real outbox and an api_server on 127.0.0.1:0, served by one io_context thread. The outbox's
/// commit listener wakes the API's waits for acks, as agent/node.cpp wires it. `with_peer`: a
/// PEER_TERMINALS entry (nobody behind it: there is no gossip), so wait=peer_ack is allowed.
struct api_fixture {
    temp_dir dir;
    conf::config cfg;
    std::unique_ptr<outbox::store> store;
    net::io_context ioc{1};
    std::optional<net::executor_work_guard<net::io_context::executor_type>> work;
    std::unique_ptr<api_server> api;
    std::thread thread;
    bool stopped = false;

    explicit api_fixture(std::size_t max_bytes = 8192, bool with_peer = false)
        : cfg(test_config(dir.path, max_bytes)) {
        if (with_peer) {
            auto u = conf::parse_peer_url("ws://127.0.0.1:9/v1/peer");
            REQUIRE(u);
            cfg.peers.push_back(*u);
        }
        store = outbox::store::open({cfg.outbox_path, cfg.terminal_id, cfg.store_id, false});
        api = std::make_unique<api_server>(ioc, api_deps{&cfg, store.get(), nullptr, nullptr});
        store->set_commit_listener([this](const outbox::commit_info& ci) { api->on_commit(ci); });
        api->start();
        work.emplace(ioc.get_executor());
        thread = std::thread([this] { ioc.run(); });
    }

    /// Stops the server; true when its `done` ran within the deadline.
    bool stop(std::chrono::milliseconds deadline = 5000ms) {
        if (stopped)
            return true;
        stopped = true;
        std::promise<void> p;
        auto f = p.get_future();
        api->stop([&p] { p.set_value(); });
        bool ok = f.wait_for(deadline) == std::future_status::ready;
        work.reset();
        ioc.stop();
        thread.join();
        return ok;
    }

    ~api_fixture() {
        stop();
        store->set_commit_listener(nullptr);
        api.reset();
        store->close();
    }

    std::uint16_t port() const { return api->port(); }

    /// Own messages in every state.
    std::uint64_t total() {
        auto c = store->get_counts();
        return c.pending + c.peer_ack + c.cloud_ack + c.failed;
    }
};

/// A client connection. Each call runs the client io_context until the operation finished;
/// the stream's deadline bounds every operation.
struct client {
    net::io_context ioc;
    beast::tcp_stream stream{ioc};
    beast::flat_buffer buffer;
    std::chrono::milliseconds deadline = 5000ms;

    explicit client(std::uint16_t port) {
        boost::system::error_code ec;
        stream.expires_after(deadline);
        stream.async_connect(tcp::endpoint(net::ip::make_address_v4("127.0.0.1"), port),
                             [&](boost::system::error_code e) { ec = e; });
        run();
        REQUIRE_MESSAGE(!ec, "connect: " << ec.message());
    }

    void run() {
        ioc.restart();
        ioc.run();
    }

    /// Sends a request and reads the answer; REQUIREs success.
    http::response<http::string_body> request(http::request<http::string_body> req) {
        auto r = try_request(std::move(req));
        REQUIRE_MESSAGE(r.has_value(), "request failed: " << last_error.message());
        return std::move(*r);
    }

    boost::system::error_code last_error;

    /// Writes a request without reading the answer (read it later with read_response()).
    void write_request(http::request<http::string_body> req) {
        auto ec = write(std::move(req));
        REQUIRE_MESSAGE(!ec, "write: " << ec.message());
    }

    /// Writes a request (Host set, payload prepared); the write's error.
    boost::system::error_code write(http::request<http::string_body> req) {
        if (!req.count(http::field::host))
            req.set(http::field::host, "127.0.0.1");
        req.prepare_payload();
        boost::system::error_code ec;
        stream.expires_after(deadline);
        http::async_write(stream, req, [&](boost::system::error_code e, std::size_t) { ec = e; });
        run();
        return ec;
    }

    std::optional<http::response<http::string_body>>
    try_request(http::request<http::string_body> req) {
        if (auto ec = write(std::move(req))) {
            last_error = ec;
            return std::nullopt;
        }
        return read_response();
    }

    std::optional<http::response<http::string_body>> read_response() {
        http::response_parser<http::string_body> p;
        p.body_limit(64u << 20);
        boost::system::error_code ec;
        stream.expires_after(deadline);
        http::async_read(stream, buffer, p,
                         [&](boost::system::error_code e, std::size_t) { ec = e; });
        run();
        if (ec) {
            last_error = ec;
            return std::nullopt;
        }
        return p.release();
    }

    /// Writes raw bytes.
    boost::system::error_code write_raw(const std::string& bytes) {
        boost::system::error_code ec;
        stream.expires_after(deadline);
        net::async_write(stream, net::buffer(bytes),
                         [&](boost::system::error_code e, std::size_t) { ec = e; });
        run();
        return ec;
    }

    /// Reads until the server closes (or the deadline); returns what arrived and the error
    /// that ended the read (eof for a clean close, timeout when the server kept it open).
    std::pair<std::string, boost::system::error_code> read_until_closed() {
        std::string got(static_cast<const char*>(buffer.data().data()), buffer.size());
        buffer.consume(buffer.size());
        boost::system::error_code ec;
        stream.expires_after(deadline);
        std::array<char, 4096> chunk{};
        std::function<void()> step;
        step = [&] {
            stream.async_read_some(net::buffer(chunk),
                                   [&](boost::system::error_code e, std::size_t n) {
                                       got.append(chunk.data(), n);
                                       if (e) {
                                           ec = e;
                                           return;
                                       }
                                       step();
                                   });
        };
        step();
        run();
        return {got, ec};
    }
};

inline http::request<http::string_body> get(const std::string& target) {
    return {http::verb::get, target, 11};
}

inline http::request<http::string_body>
post(const std::string& target, const std::string& body,
     std::optional<std::string> content_type = "application/json") {
    http::request<http::string_body> r{http::verb::post, target, 11};
    if (content_type)
        r.set(http::field::content_type, *content_type);
    r.body() = body;
    return r;
}

/// One request on a new connection.
inline http::response<http::string_body> once(std::uint16_t port,
                                              http::request<http::string_body> req) {
    client c(port);
    return c.request(std::move(req));
}

inline json body_json(const http::response<http::string_body>& r) {
    json j = json::parse(r.body(), nullptr, false);
    REQUIRE_MESSAGE(!j.is_discarded(), "not JSON: " << r.body());
    return j;
}

inline bool contains(const std::string& hay, const std::string& needle) {
    return hay.find(needle) != std::string::npos;
}

/// Polls `pred` (a condition with a deadline, not a sleep used as synchronisation) until it
/// holds or `within` passed; its last answer.
inline bool eventually(const std::function<bool()>& pred,
                       std::chrono::milliseconds within = std::chrono::seconds(10)) {
    const auto deadline = std::chrono::steady_clock::now() + within;
    while (std::chrono::steady_clock::now() < deadline) {
        if (pred())
            return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(2)); // the polling interval
    }
    return pred();
}

/// lanesync_api_waiting_messages: the messages local API requests wait on now (?wait=).
inline double waiting() {
    return metrics::global()
        .get_gauge("lanesync_api_waiting_messages",
                   "Messages that local API requests wait on now (?wait=peer_ack|cloud_ack)")
        .value();
}

/// Peer L2 acked own seqs 1..through (committed before it returns).
inline void peer_acked(outbox::store& s, std::uint64_t through) {
    std::promise<outbox::peer_ack_outcome> p;
    s.peer_acked("L2", through, 1, [&p](outbox::peer_ack_outcome o) { p.set_value(o); });
    REQUIRE(p.get_future().get().ok);
}

} // namespace lanesync::agent::test
