// local_http: the CLI's blocking request to a running agent's local API, on the one HTTP client
// (cloud/http_client.hpp) run on an io_context of its own.
#include "agent/cli.hpp"

#include "base/text.hpp"
#include "cloud/http_client.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace lanesync::agent {

namespace net = boost::asio;

namespace {

/// Largest answer the CLI accepts from the agent.
constexpr std::size_t max_reply_bytes = 64u << 20;

/// The agent's local API: plain HTTP on the IPv4 loopback address.
cloud::wire::endpoint local_endpoint(std::uint16_t port) {
    cloud::wire::endpoint ep;
    ep.host = "127.0.0.1";
    ep.host_is_ip = true;
    ep.port = port;
    ep.host_header = "127.0.0.1:" + std::to_string(port);
    return ep;
}

} // namespace

http_reply local_http(std::uint16_t port, std::string_view method, std::string_view target,
                      std::chrono::milliseconds timeout, std::string_view body) {
    http_reply out;
    try {
        net::io_context ioc(1);
        // No TLS context (plain http://) and no key: the local API needs neither.
        cloud::http_client client(ioc.get_executor(), local_endpoint(port), nullptr, {}, timeout,
                                  max_reply_bytes);
        auto exchange = [&]() -> net::awaitable<void> {
            auto op = client.send(std::string(method), std::string(target), std::string(body));
            cloud::http_result r = co_await std::move(op);
            if (r.fail != cloud::http_result::failure::none) {
                out.error = std::move(r.error);
                co_return;
            }
            out.status = r.status;
            out.body = std::move(r.body);
        };
        net::co_spawn(ioc, exchange(), [&](std::exception_ptr e) {
            if (e) {
                out.status = 0;
                out.error = text::what(e);
            }
        });
        ioc.run();
    } catch (const std::exception& e) {
        out.status = 0;
        out.error = e.what();
    }
    return out;
}

} // namespace lanesync::agent
