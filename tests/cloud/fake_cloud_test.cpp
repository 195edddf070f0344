// The fake edge function used by the uploader tests (fake_cloud.hpp), and checks of the fake
// itself. A small Beast server per test on 127.0.0.1:0, scripted per request.

#include "fake_cloud.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <doctest/doctest.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <stdexcept>

namespace lanesync::cloud_testing {

namespace net = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace http = boost::beast::http;
using tcp = net::ip::tcp;

namespace {
constexpr auto tuple_awaitable = net::as_tuple(net::use_awaitable);
} // namespace

// ---- replies -------------------------------------------------------------------------------

std::vector<std::string> seen_request::ids() const {
    std::vector<std::string> out;
    auto j = nlohmann::json::parse(body, nullptr, false);
    if (j.is_object() && j.contains("messages") && j["messages"].is_array())
        for (const auto& m : j["messages"])
            if (m.is_object() && m.contains("messageId") && m["messageId"].is_string())
                out.push_back(m["messageId"].get<std::string>());
    return out;
}

std::vector<std::uint64_t> seen_request::seqs() const {
    std::vector<std::uint64_t> out;
    auto j = nlohmann::json::parse(body, nullptr, false);
    if (j.is_object() && j.contains("messages") && j["messages"].is_array())
        for (const auto& m : j["messages"])
            if (m.is_object() && m.contains("seq") && m["seq"].is_number_unsigned())
                out.push_back(m["seq"].get<std::uint64_t>());
    return out;
}

reply answer_each(const seen_request& req,
                  const std::function<std::string(const std::string&, std::uint64_t)>& status,
                  const std::string& error) {
    auto ids = req.ids();
    auto seqs = req.seqs();
    nlohmann::json results = nlohmann::json::array();
    for (std::size_t i = 0; i < ids.size(); ++i) {
        auto s = status(ids[i], i < seqs.size() ? seqs[i] : 0);
        if (s.empty())
            continue;
        nlohmann::json r = {{"messageId", ids[i]}, {"status", s}};
        if (s == "rejected")
            r["error"] = error;
        results.push_back(r);
    }
    reply rep;
    rep.body = nlohmann::json{{"results", results}}.dump();
    return rep;
}

reply ack_all(const seen_request& req) {
    return answer_each(req, [](const std::string&, std::uint64_t) { return "stored"; });
}

reply status_only(int status, const std::string& error) {
    reply r;
    r.status = status;
    r.body = nlohmann::json{{"error", error}}.dump();
    return r;
}

// ---- the server ------------------------------------------------------------------------------

struct fake_cloud::state : std::enable_shared_from_this<state> {
    state(net::io_context& io, script s) : ioc(io), acceptor(io), script_fn(std::move(s)) {}

    net::io_context& ioc;
    tcp::acceptor acceptor;
    script script_fn;
    std::optional<ssl::context> tls;
    std::vector<seen_request> requests;
    std::size_t connections = 0;
    std::size_t tls_failures = 0;
    std::set<beast::tcp_stream*> open; ///< live connections, for close_connections()
    bool closed = false;

    net::awaitable<void> accept_loop(std::shared_ptr<state> self);
    net::awaitable<void> session(std::shared_ptr<state> self, tcp::socket socket);
    template <class Stream>
    net::awaitable<void> serve(Stream& stream, beast::tcp_stream& lowest, std::size_t conn);
};

net::awaitable<void> fake_cloud::state::accept_loop(std::shared_ptr<state> self) {
    for (;;) {
        auto [ec, socket] = co_await acceptor.async_accept(tuple_awaitable);
        if (ec || closed)
            co_return;
        net::co_spawn(ioc, session(self, std::move(socket)), net::detached);
    }
}

net::awaitable<void> fake_cloud::state::session(std::shared_ptr<state> self, tcp::socket socket) {
    auto conn = ++connections;
    if (tls) {
        beast::ssl_stream<beast::tcp_stream> stream(beast::tcp_stream(std::move(socket)), *tls);
        auto& lowest = beast::get_lowest_layer(stream);
        open.insert(&lowest);
        lowest.expires_after(10s);
        auto [ec] = co_await stream.async_handshake(ssl::stream_base::server, tuple_awaitable);
        if (ec) {
            ++tls_failures;
        } else {
            lowest.expires_never();
            co_await serve(stream, lowest, conn);
        }
        open.erase(&lowest);
    } else {
        beast::tcp_stream stream(std::move(socket));
        open.insert(&stream);
        co_await serve(stream, stream, conn);
        open.erase(&stream);
    }
    (void)self;
}

template <class Stream>
net::awaitable<void> fake_cloud::state::serve(Stream& stream, beast::tcp_stream& lowest,
                                              std::size_t conn) {
    beast::flat_buffer buffer;
    for (;;) {
        http::request_parser<http::string_body> parser;
        parser.body_limit(64u << 20);
        auto [ec, n] = co_await http::async_read(stream, buffer, parser, tuple_awaitable);
        (void)n;
        if (ec)
            co_return;
        auto req = parser.release();
        seen_request seen;
        seen.index = requests.size();
        seen.connection = conn;
        seen.at = std::chrono::steady_clock::now();
        seen.method = std::string(req.method_string());
        seen.target = std::string(req.target());
        for (const auto& f : req) {
            std::string name(f.name_string());
            for (auto& c : name)
                c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
            seen.headers[name] = std::string(f.value());
        }
        seen.body = req.body();
        requests.push_back(seen);
        reply r = script_fn ? script_fn(seen) : ack_all(seen);

        switch (r.act) {
        case reply::action::close:
            lowest.close();
            co_return;
        case reply::action::hang: {
            // Wait for the client to give up (its close ends this read).
            http::request<http::string_body> ignored;
            co_await http::async_read(stream, buffer, ignored, tuple_awaitable);
            lowest.close();
            co_return;
        }
        case reply::action::close_mid_body: {
            std::string body = r.body.empty() ? std::string(200, ' ') : r.body;
            std::string raw = "HTTP/1.1 " + std::to_string(r.status) +
                              " OK\r\nContent-Type: application/json\r\nContent-Length: " +
                              std::to_string(body.size()) + "\r\n\r\n" +
                              body.substr(0, body.size() / 2);
            co_await net::async_write(stream, net::buffer(raw), tuple_awaitable);
            lowest.close();
            co_return;
        }
        case reply::action::respond:
            break;
        }

        http::response<http::string_body> res{static_cast<http::status>(r.status), 11};
        res.set(http::field::content_type, "application/json");
        res.keep_alive(r.keep_alive && req.keep_alive());
        res.body() = r.body;
        res.prepare_payload();
        auto [wec, wn] = co_await http::async_write(stream, res, tuple_awaitable);
        (void)wn;
        if (wec || !res.keep_alive() || r.close_after) {
            lowest.close();
            co_return;
        }
    }
}

fake_cloud::fake_cloud(net::io_context& ioc, script s, std::optional<tls_files> tls)
    : st_(std::make_shared<state>(ioc, std::move(s))) {
    if (tls) {
        st_->tls.emplace(ssl::context::tls_server);
        st_->tls->use_certificate_chain_file(tls->cert_chain);
        st_->tls->use_private_key_file(tls->key, ssl::context::pem);
    }
    tcp::endpoint ep(net::ip::make_address("127.0.0.1"), 0);
    st_->acceptor.open(ep.protocol());
    st_->acceptor.set_option(tcp::acceptor::reuse_address(true));
    st_->acceptor.bind(ep);
    st_->acceptor.listen();
    net::co_spawn(ioc, st_->accept_loop(st_), net::detached);
}

fake_cloud::~fake_cloud() {
    st_->closed = true;
    boost::system::error_code ec;
    st_->acceptor.close(ec);
    close_connections();
    st_->script_fn = nullptr; // may capture test locals; the sessions answer ack_all from now on
}

std::uint16_t fake_cloud::port() const {
    return st_->acceptor.local_endpoint().port();
}

std::string fake_cloud::url(const std::string& host) const {
    return std::string(st_->tls ? "https://" : "http://") + host + ":" + std::to_string(port());
}

const std::vector<seen_request>& fake_cloud::requests() const {
    return st_->requests;
}
std::size_t fake_cloud::connections() const {
    return st_->connections;
}
std::size_t fake_cloud::tls_failures() const {
    return st_->tls_failures;
}
void fake_cloud::set_script(script s) {
    st_->script_fn = std::move(s);
}
std::size_t fake_cloud::open_connections() const {
    return st_->open.size();
}

void fake_cloud::close_connections() {
    for (auto* s : st_->open)
        s->close();
}

// ---- helpers ---------------------------------------------------------------------------------

bool run_until(net::io_context& ioc, const std::function<bool()>& pred,
               std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!pred()) {
        if (std::chrono::steady_clock::now() >= deadline)
            return pred();
        if (ioc.stopped())
            ioc.restart();
        ioc.run_one_for(5ms);
    }
    return true;
}

void run_for(net::io_context& ioc, std::chrono::milliseconds d) {
    auto deadline = std::chrono::steady_clock::now() + d;
    while (std::chrono::steady_clock::now() < deadline) {
        if (ioc.stopped())
            ioc.restart();
        ioc.run_one_for(5ms);
    }
}

temp_dir::temp_dir() {
    std::string tmpl = "/tmp/lanesync-cloud-test-XXXXXX";
    if (!mkdtemp(tmpl.data()))
        throw std::runtime_error("mkdtemp failed");
    path = tmpl;
}

temp_dir::~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
}

namespace {

void sh(const std::string& cmd) {
    std::string full = cmd + " >/dev/null 2>&1";
    if (std::system(full.c_str()) != 0)
        throw std::runtime_error("command failed: " + cmd);
}

void write_file(const std::string& path, const std::string& text) {
    std::ofstream f(path);
    f << text;
}

test_pki make_pki() {
    static temp_dir dir; // lives for the process
    auto f = [&](const std::string& n) { return dir.file(n); };
    const std::string ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    auto make_ca = [&](const std::string& name, const std::string& cn) {
        sh("openssl req -x509 -new " + ec + " -keyout " + f(name + ".key") + " -out " +
           f(name + ".pem") + " -days 2 -subj '/CN=" + cn + "'" +
           " -addext 'basicConstraints=critical,CA:TRUE'" +
           " -addext 'keyUsage=critical,keyCertSign,cRLSign'");
    };
    auto make_leaf = [&](const std::string& name, const std::string& dns) {
        write_file(f(name + ".ext"), "subjectAltName=DNS:" + dns +
                                         "\nbasicConstraints=CA:FALSE\n"
                                         "keyUsage=digitalSignature\n"
                                         "extendedKeyUsage=serverAuth\n");
        sh("openssl req -new " + ec + " -keyout " + f(name + ".key") + " -out " + f(name + ".csr") +
           " -subj '/CN=" + dns + "'");
        sh("openssl x509 -req -in " + f(name + ".csr") + " -CA " + f("ca.pem") + " -CAkey " +
           f("ca.key") + " -CAcreateserial -out " + f(name + ".pem") + " -days 2 -extfile " +
           f(name + ".ext"));
    };
    make_ca("ca", "lanesync test CA");
    make_ca("other_ca", "unrelated test CA");
    make_leaf("localhost", "localhost");
    make_leaf("other", "other.example");
    return {f("ca.pem"),        f("other_ca.pem"), f("localhost.pem"),
            f("localhost.key"), f("other.pem"),    f("other.key")};
}

} // namespace

const test_pki& pki() {
    static const test_pki p = make_pki();
    return p;
}

} // namespace lanesync::cloud_testing

// ---- checks of the fake itself ---------------------------------------------------------------

using namespace lanesync::cloud_testing;

TEST_CASE("fake cloud: answers a scripted request and counts connections") {
    net::io_context ioc;
    fake_cloud cloud(ioc, [](const seen_request& r) { return ack_all(r); });

    // A raw HTTP client: two requests on one keep-alive connection.
    tcp::socket sock(ioc);
    sock.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), cloud.port()));
    beast::tcp_stream stream(std::move(sock));
    http::request<http::string_body> req{http::verb::post, "/functions/v1/x", 11};
    req.set(http::field::host, "127.0.0.1");
    req.body() = R"({"messages":[{"messageId":"a","seq":1}]})";
    req.prepare_payload();
    bool done = false;
    http::response<http::string_body> res;
    beast::flat_buffer buf;
    http::async_write(stream, req, [&](beast::error_code ec, std::size_t) {
        REQUIRE_FALSE(ec);
        http::async_read(stream, buf, res, [&](beast::error_code ec2, std::size_t) {
            REQUIRE_FALSE(ec2);
            done = true;
        });
    });
    REQUIRE(run_until(ioc, [&] { return done; }));
    CHECK(res.result_int() == 200);
    auto j = nlohmann::json::parse(res.body());
    CHECK(j["results"][0]["messageId"] == "a");
    CHECK(j["results"][0]["status"] == "stored");
    REQUIRE(cloud.requests().size() == 1);
    CHECK(cloud.requests()[0].seqs() == std::vector<std::uint64_t>{1});
    CHECK(cloud.connections() == 1);
}

TEST_CASE("fake cloud: the test PKI is made once and has the expected files") {
    const auto& p = pki();
    for (const auto& f :
         {p.ca, p.other_ca, p.localhost_cert, p.localhost_key, p.other_cert, p.other_key})
        CHECK(std::filesystem::exists(f));
}
