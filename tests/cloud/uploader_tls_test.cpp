// The uploader over HTTPS against the fake cloud with a test CA made at test time (openssl CLI):
// the right CA works, a wrong CA or a wrong host name fails closed with a clear status error.

#include "cloud/uploader.hpp"

#include "fake_cloud.hpp"

#include <doctest/doctest.h>

using namespace lanesync;
using namespace lanesync::cloud_testing;

namespace {

const std::string tls_key = "sk_tls_test_SECRET_77e1";

struct tls_rig {
    temp_dir dir;
    boost::asio::io_context ioc;
    std::unique_ptr<outbox::store> store;
    std::unique_ptr<fake_cloud> cloud;
    conf::config cfg;
    std::unique_ptr<cloud::uploader> up;

    tls_rig(const std::string& cert, const std::string& key, const std::string& host,
            const std::string& ca_file) {
        outbox::options o;
        o.path = dir.file("L1.db");
        o.terminal_id = "L1";
        o.store_id = "store-1";
        store = outbox::store::open(o);
        cloud = std::make_unique<fake_cloud>(
            ioc, [](const seen_request& q) { return ack_all(q); },
            fake_cloud::tls_files{cert, key});
        cfg.terminal_id = "L1";
        cfg.supabase_url = cloud->url(host);
        cfg.cloud_heartbeat = std::chrono::milliseconds(0);
        cfg.supabase_service_key = tls_key;
        cfg.supabase_ca_file = ca_file;
        cfg.backoff_base = std::chrono::milliseconds(10);
        cfg.backoff_max = std::chrono::milliseconds(100);
        protocol::publish_request r;
        r.topic = "transaction";
        r.data = R"({"n":1})";
        REQUIRE(outbox::publish_sync(*store, r).k == outbox::publish_outcome::created);
        cloud::limits lim;
        lim.request_timeout = std::chrono::milliseconds(3000);
        up = std::make_unique<cloud::uploader>(ioc, *store, cfg, lim);
        up->start();
    }

    ~tls_rig() {
        bool stopped = false;
        up->stop([&] { stopped = true; });
        CHECK(run_until(ioc, [&] { return stopped; }));
        up.reset();
        cloud.reset();
        store->close();
    }
};

} // namespace

TEST_CASE("TLS: the configured CA verifies the server; SNI and hostname check pass") {
    const auto& p = pki();
    tls_rig r(p.localhost_cert, p.localhost_key, "localhost", p.ca);
    REQUIRE(run_until(r.ioc, [&] { return r.store->get_counts().cloud_ack == 1; }));
    CHECK(r.cloud->requests().size() == 1);
    CHECK(r.cloud->tls_failures() == 0);
    CHECK(r.up->get_status().last_error.empty());
}

TEST_CASE("TLS: a server certificate from another CA fails closed with a clear error") {
    const auto& p = pki();
    tls_rig r(p.localhost_cert, p.localhost_key, "localhost", p.other_ca);
    REQUIRE(run_until(r.ioc, [&] { return r.up->get_status().consecutive_failures >= 2; }));
    auto s = r.up->get_status();
    CHECK(s.last_error.find("TLS certificate verification failed for localhost") == 0);
    CHECK(s.last_error.find(tls_key) == std::string::npos);
    CHECK_FALSE(s.last_http_status);
    CHECK(r.cloud->requests().empty()); // nothing, the key included, was sent
    CHECK(r.store->get_counts().cloud_ack == 0);
    CHECK(r.store->get_counts().pending == 1);
}

TEST_CASE("TLS: without SUPABASE_CA_FILE a private CA is not trusted (system store only)") {
    const auto& p = pki();
    tls_rig r(p.localhost_cert, p.localhost_key, "localhost", "");
    REQUIRE(run_until(r.ioc, [&] { return r.up->get_status().consecutive_failures >= 1; }));
    CHECK(r.up->get_status().last_error.find("TLS certificate verification failed") == 0);
    CHECK(r.cloud->requests().empty());
}

TEST_CASE("TLS: a certificate for another host name fails closed") {
    const auto& p = pki();
    // Signed by the trusted CA, but issued for other.example while we connect to localhost.
    tls_rig r(p.other_cert, p.other_key, "localhost", p.ca);
    REQUIRE(run_until(r.ioc, [&] { return r.up->get_status().consecutive_failures >= 1; }));
    auto s = r.up->get_status();
    CHECK(s.last_error == "TLS certificate verification failed for localhost: hostname mismatch");
    CHECK(r.cloud->requests().empty());
}

TEST_CASE("TLS: an IP address not in the certificate fails closed") {
    const auto& p = pki();
    tls_rig r(p.localhost_cert, p.localhost_key, "127.0.0.1", p.ca);
    REQUIRE(run_until(r.ioc, [&] { return r.up->get_status().consecutive_failures >= 1; }));
    CHECK(r.up->get_status().last_error.find("TLS certificate verification failed for 127.0.0.1") ==
          0);
    CHECK(r.cloud->requests().empty());
}

TEST_CASE("TLS: an unreadable SUPABASE_CA_FILE stops construction with a clear error") {
    boost::asio::io_context ioc;
    temp_dir dir;
    outbox::options o;
    o.path = dir.file("L1.db");
    o.terminal_id = "L1";
    o.store_id = "store-1";
    auto store = outbox::store::open(o);
    conf::config cfg;
    cfg.terminal_id = "L1";
    cfg.supabase_url = "https://localhost:1";
    cfg.supabase_service_key = tls_key;
    cfg.supabase_ca_file = dir.file("missing-ca.pem");
    CHECK_THROWS_WITH_AS(cloud::uploader(ioc, *store, cfg), doctest::Contains("SUPABASE_CA_FILE"),
                         std::runtime_error);
    store->close();
}
