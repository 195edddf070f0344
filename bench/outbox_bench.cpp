// outbox_bench: how far group commit carries publish throughput.
//
// For each concurrency C it opens a fresh outbox (WAL, synchronous=FULL: one fsync per commit)
// and publishes N messages with C publishes in flight at all times, then prints msgs/s, the
// number of commits (= WAL fsyncs), messages per commit, and p50/p99 publish latency (from
// publish() to its completion, i.e. to durable commit).
//
// Two ways to keep C in flight:
//   inflight  C independent chains: each completion issues that chain's next publish (a
//             closed loop, like C HTTP clients each waiting for its 201). Default.
//   threads   C OS threads, each calling publish_sync in a loop.
//   async     C chains like inflight, through outbox::async_store on one io_context thread
//             (what the local API does): each completion runs on the io thread.
//
//   outbox_bench [--messages N] [--concurrency 1,8,64,256]
//                [--mode inflight|threads|async|both|all] [--payload BYTES] [--dir DIR] [--smoke]
//   (both = inflight + threads; all = the three)

#include "outbox/async.hpp"
#include "outbox/outbox.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <iostream>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

using namespace lanesync;
namespace fs = std::filesystem;
using clock_type = std::chrono::steady_clock;

namespace {

struct config {
    std::size_t messages = 20'000;
    std::vector<std::size_t> concurrency = {1, 8, 64, 256};
    bool inflight = true;
    bool threads = false;
    bool async = false;
    std::size_t payload = 200;
    std::string dir;
};

struct result {
    std::string mode;
    std::size_t c = 0;
    std::size_t n = 0;
    double seconds = 0;
    std::uint64_t commits = 0;
    double p50_ms = 0, p99_ms = 0;
    std::size_t failed = 0;
};

[[noreturn]] void usage(const std::string& why) {
    std::cerr << "outbox_bench: " << why << "\n"
              << "usage: outbox_bench [--messages N] [--concurrency 1,8,64,256]\n"
              << "                    [--mode inflight|threads|async|both|all] [--payload BYTES]\n"
              << "                    [--dir DIR] [--smoke]\n";
    std::exit(2);
}

std::size_t parse_size(std::string_view text, const char* what) {
    std::size_t v = 0;
    auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || p != text.data() + text.size() || v == 0)
        usage(std::string("bad ") + what + ": '" + std::string(text) + "'");
    return v;
}

config parse_args(int argc, char** argv) {
    config c;
    for (int i = 1; i < argc; ++i) {
        std::string_view a = argv[i];
        auto value = [&]() -> std::string_view {
            if (i + 1 >= argc)
                usage(std::string(a) + " needs a value");
            return argv[++i];
        };
        if (a == "--messages") {
            c.messages = parse_size(value(), "--messages");
        } else if (a == "--concurrency") {
            c.concurrency.clear();
            std::string_view list = value();
            while (!list.empty()) {
                auto comma = list.find(',');
                c.concurrency.push_back(parse_size(list.substr(0, comma), "--concurrency"));
                list =
                    comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
            }
        } else if (a == "--mode") {
            auto m = value();
            if (m != "inflight" && m != "threads" && m != "async" && m != "both" && m != "all")
                usage("bad --mode");
            c.inflight = m == "inflight" || m == "both" || m == "all";
            c.threads = m == "threads" || m == "both" || m == "all";
            c.async = m == "async" || m == "all";
        } else if (a == "--payload") {
            c.payload = parse_size(value(), "--payload");
        } else if (a == "--dir") {
            c.dir = value();
        } else if (a == "--smoke") {
            c.messages = 2'000;
        } else if (a == "--help" || a == "-h") {
            usage("help");
        } else {
            usage("unknown argument " + std::string(a));
        }
    }
    return c;
}

double percentile(std::vector<double>& v, double p) {
    if (v.empty())
        return 0;
    auto k = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1));
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
    return v[k];
}

protocol::publish_request make_request(std::size_t payload, std::size_t i) {
    protocol::publish_request r;
    r.topic = "transaction";
    r.data = "{\"i\":" + std::to_string(i) + ",\"pad\":\"" +
             std::string(payload > 20 ? payload - 20 : 1, 'x') + "\"}";
    return r;
}

/// C chains of publishes, each completion starting that chain's next publish.
void run_inflight(outbox::store& s, const config& cfg, std::size_t c, std::vector<double>& lat,
                  std::size_t& failed) {
    struct shared_state {
        std::atomic<std::size_t> issued{0};
        std::atomic<std::size_t> done{0};
        std::atomic<std::size_t> failed{0};
        std::promise<void> finished;
    } st;
    lat.assign(cfg.messages, 0.0);
    std::function<void()> issue;
    issue = [&] {
        auto i = st.issued.fetch_add(1);
        if (i >= cfg.messages)
            return;
        auto t0 = clock_type::now();
        s.publish(make_request(cfg.payload, i), [&, i, t0](outbox::publish_outcome o) {
            lat[i] = std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
            if (o.k != outbox::publish_outcome::created)
                ++st.failed;
            if (st.done.fetch_add(1) + 1 == cfg.messages)
                st.finished.set_value();
            else
                issue();
        });
    };
    auto f = st.finished.get_future();
    for (std::size_t k = 0; k < c; ++k)
        issue();
    f.wait();
    failed = st.failed;
}

/// C chains through outbox::async_store; completions (and the next publish) on one io thread.
void run_async(outbox::store& s, const config& cfg, std::size_t c, std::vector<double>& lat,
               std::size_t& failed) {
    boost::asio::io_context ioc(1);
    outbox::async_store as(ioc.get_executor(), s);
    std::size_t issued = 0, bad = 0; // io thread only
    lat.assign(cfg.messages, 0.0);
    std::function<void()> issue;
    issue = [&] {
        auto i = issued++;
        if (i >= cfg.messages)
            return;
        auto t0 = clock_type::now();
        as.publish(make_request(cfg.payload, i), [&, i, t0](outbox::publish_outcome o) {
            lat[i] = std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
            if (o.k != outbox::publish_outcome::created)
                ++bad;
            issue();
        });
    };
    boost::asio::post(ioc, [&] {
        for (std::size_t k = 0; k < c; ++k)
            issue();
    });
    ioc.run(); // returns once every chain ended (the adapter keeps work while one is pending)
    failed = bad;
}

/// C threads, each publishing synchronously in a loop.
void run_threads(outbox::store& s, const config& cfg, std::size_t c, std::vector<double>& lat,
                 std::size_t& failed) {
    std::atomic<std::size_t> next{0}, bad{0};
    lat.assign(cfg.messages, 0.0);
    std::vector<std::thread> ts;
    for (std::size_t k = 0; k < c; ++k)
        ts.emplace_back([&] {
            for (;;) {
                auto i = next.fetch_add(1);
                if (i >= cfg.messages)
                    return;
                auto t0 = clock_type::now();
                auto o = outbox::publish_sync(s, make_request(cfg.payload, i));
                lat[i] = std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
                if (o.k != outbox::publish_outcome::created)
                    ++bad;
            }
        });
    for (auto& t : ts)
        t.join();
    failed = bad;
}

result run_one(const config& cfg, const fs::path& dir, const std::string& mode, std::size_t c) {
    auto path = dir / ("bench-" + mode + "-" + std::to_string(c) + ".db");
    for (auto suffix : {"", "-wal", "-shm"})
        fs::remove(path.string() + suffix);
    outbox::options o;
    o.path = path.string();
    o.terminal_id = "BENCH";
    o.store_id = "bench";
    auto s = outbox::store::open(o);
    std::atomic<std::uint64_t> commits{0};
    s->set_commit_listener([&](const outbox::commit_info&) { ++commits; });

    result r;
    r.mode = mode;
    r.c = c;
    r.n = cfg.messages;
    std::vector<double> lat;
    auto t0 = clock_type::now();
    if (mode == "inflight")
        run_inflight(*s, cfg, c, lat, r.failed);
    else if (mode == "async")
        run_async(*s, cfg, c, lat, r.failed);
    else
        run_threads(*s, cfg, c, lat, r.failed);
    r.seconds = std::chrono::duration<double>(clock_type::now() - t0).count();
    r.commits = commits;
    r.p50_ms = percentile(lat, 0.50);
    r.p99_ms = percentile(lat, 0.99);
    s->close();
    s.reset();
    for (auto suffix : {"", "-wal", "-shm"})
        fs::remove(path.string() + suffix);
    return r;
}

} // namespace

int main(int argc, char** argv) {
    auto cfg = parse_args(argc, argv);
    bool own_dir = cfg.dir.empty();
    fs::path dir;
    if (own_dir) {
        auto tmpl = (fs::temp_directory_path() / "lanesync-bench-XXXXXX").string();
        if (!mkdtemp(tmpl.data())) {
            std::perror("mkdtemp");
            return 1;
        }
        dir = tmpl;
    } else {
        dir = cfg.dir;
        fs::create_directories(dir);
    }

    std::printf(
        "outbox_bench: %zu messages of ~%zu bytes per run, WAL + synchronous=FULL, dir %s\n",
        cfg.messages, cfg.payload, dir.string().c_str());
    std::printf("%-9s %6s %10s %9s %12s %9s %9s %7s\n", "mode", "C", "msgs/s", "commits",
                "msgs/commit", "p50 ms", "p99 ms", "failed");
    int rc = 0;
    try {
        std::vector<std::string> modes;
        if (cfg.inflight)
            modes.push_back("inflight");
        if (cfg.threads)
            modes.push_back("threads");
        if (cfg.async)
            modes.push_back("async");
        for (const auto& mode : modes)
            for (auto c : cfg.concurrency) {
                auto r = run_one(cfg, dir, mode, c);
                std::printf("%-9s %6zu %10.0f %9llu %12.1f %9.3f %9.3f %7zu\n", r.mode.c_str(), r.c,
                            static_cast<double>(r.n) / r.seconds,
                            static_cast<unsigned long long>(r.commits),
                            r.commits ? static_cast<double>(r.n) / static_cast<double>(r.commits)
                                      : 0.0,
                            r.p50_ms, r.p99_ms, r.failed);
                std::fflush(stdout);
                if (r.failed)
                    rc = 1;
            }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "outbox_bench: %s\n", e.what());
        rc = 1;
    }
    if (own_dir) {
        std::error_code ec;
        fs::remove_all(dir, ec);
    }
    return rc;
}
