// prune_bench: what retention costs ingest. An outbox holds N own messages in cloud_ack, all
// past the retention; while C publish chains run (a closed loop, each completion issuing that
// chain's next publish, like C POS clients waiting for their 201), the prune runs
//   none      no prune: the baseline latency
//   one       everything in one transaction (how lanesync pruned before retention batches)
//   batched   transactions of --batch rows, one after the other (the agent, agent/retention.hpp)
// and it prints, per mode, the publish p50 / p99 / max latency while the prune ran, the
// prune's duration and the outbox file's size before the prune and after refilling it (freed
// pages are reused: the file does not grow back).
//
//   prune_bench [--messages N] [--concurrency C] [--batch ROWS] [--dir DIR] [--smoke]

#include "base/tuning.hpp"
#include "bench/loadgen.hpp"
#include "outbox/outbox.hpp"
#include "protocol/message.hpp"
#include "protocol/publish.hpp"

#include <CLI/CLI.hpp>

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <future>
#include <iostream>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace lanesync;
namespace fs = std::filesystem;
using clock_type = std::chrono::steady_clock;

namespace {

struct options {
    std::size_t messages = 1'000'000, concurrency = 8, batch = tuning::prune_batch_rows;
    std::size_t payload = 250;
    std::string dir;
};

struct row {
    std::string mode;
    std::size_t pruned = 0, transactions = 0, publishes = 0;
    double prune_s = 0, p50_ms = 0, p99_ms = 0, max_ms = 0;
    std::uintmax_t bytes_before = 0, bytes_refilled = 0;
};

double percentile(std::vector<double> v, double p) {
    if (v.empty())
        return 0;
    auto k = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1));
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
    return v[k];
}

/// `n` own messages (the load generator's sale payload), then all of them cloud_ack.
void fill_cloud_acked(outbox::store& s, std::size_t n, std::size_t payload) {
    constexpr std::size_t chunk = 5'000;
    std::size_t first = 0;
    while (first < n) {
        std::vector<protocol::publish_request> reqs;
        for (std::size_t i = first; i < std::min(n, first + chunk); ++i) {
            auto r = protocol::make_publish_request("transaction", bench::sale_json(i, payload),
                                                    std::nullopt, std::nullopt);
            if (!r)
                throw std::runtime_error("sale payload refused: " + r.error());
            reqs.push_back(std::move(r.value()));
        }
        first += reqs.size();
        auto b = outbox::publish_batch_sync(s, std::move(reqs));
        if (b.k != outbox::batch_outcome::stored)
            throw std::runtime_error("fill failed: " + b.error);
    }
    std::promise<outbox::count_outcome> p;
    s.origin_cloud_through(s.terminal_id(), static_cast<std::uint64_t>(-1) >> 1,
                           [&](outbox::count_outcome o) { p.set_value(std::move(o)); });
    if (!p.get_future().get().ok)
        throw std::runtime_error("marking cloud_ack failed");
}

/// C publish chains until `stop` is set; returns each publish's latency in ms.
class ingest {
public:
    ingest(outbox::store& s, std::size_t c, std::size_t payload) : s_(s), payload_(payload) {
        for (std::size_t k = 0; k < c; ++k)
            issue();
    }

    std::vector<double> finish() {
        stop_ = true;
        std::unique_lock lock(m_);
        cv_.wait(lock, [&] { return running_ == 0; });
        return lat_;
    }

private:
    void issue() {
        {
            std::lock_guard g(m_);
            if (stop_)
                return;
            ++running_;
        }
        auto t0 = clock_type::now();
        auto r = protocol::make_publish_request("transaction", bench::sale_json(next_++, payload_),
                                                std::nullopt, std::nullopt);
        s_.publish(std::move(r.value()), [this, t0](outbox::publish_outcome o) {
            const double ms =
                std::chrono::duration<double, std::milli>(clock_type::now() - t0).count();
            {
                std::lock_guard g(m_);
                if (o.k == outbox::publish_outcome::created)
                    lat_.push_back(ms);
                --running_;
            }
            cv_.notify_all();
            issue();
        });
    }

    outbox::store& s_;
    std::size_t payload_;
    std::atomic<std::size_t> next_{10'000'000};
    std::atomic<bool> stop_{false};
    std::mutex m_;
    std::condition_variable cv_;
    std::size_t running_ = 0;
    std::vector<double> lat_;
};

row run_mode(const options& o, const std::string& mode) {
    row r;
    r.mode = mode;
    const std::string path = o.dir + "/prune-" + mode + ".db";
    for (const char* ext : {"", "-wal", "-shm"})
        fs::remove(path + ext);
    outbox::options so;
    so.path = path;
    so.terminal_id = "L1";
    so.store_id = "bench";
    auto s = outbox::store::open(so);
    fill_cloud_acked(*s, o.messages, o.payload);
    r.bytes_before = bench::outbox_file_bytes(path);
    const auto cutoff = protocol::now_ms() + 1; // everything held is past it

    ingest load(*s, o.concurrency, o.payload);
    std::this_thread::sleep_for(std::chrono::milliseconds(200)); // load running before the prune
    auto t0 = clock_type::now();
    if (mode == "none") {
        std::this_thread::sleep_for(std::chrono::seconds(2)); // a window of plain ingest
    } else {
        const std::size_t step = mode == "one" ? static_cast<std::size_t>(-1) : o.batch;
        outbox::count_outcome c;
        do {
            c = outbox::prune_sync(*s, cutoff, step);
            if (!c.ok)
                throw std::runtime_error("prune failed: " + c.error);
            r.pruned += c.count;
            ++r.transactions;
        } while (c.count == step);
    }
    r.prune_s = std::chrono::duration<double>(clock_type::now() - t0).count();
    auto lat = load.finish();
    r.publishes = lat.size();
    r.p50_ms = percentile(lat, 0.50);
    r.p99_ms = percentile(lat, 0.99);
    r.max_ms = lat.empty() ? 0 : *std::max_element(lat.begin(), lat.end());
    if (mode != "none") {
        fill_cloud_acked(*s, o.messages, o.payload); // into the pages the prune freed
        r.bytes_refilled = bench::outbox_file_bytes(path);
    }
    s->close();
    for (const char* ext : {"", "-wal", "-shm"})
        fs::remove(path + ext);
    return r;
}

} // namespace

int main(int argc, char** argv) {
    options o;
    bool smoke = false;
    CLI::App app{"prune_bench: publish latency while retention prunes a large outbox"};
    app.add_option("--messages", o.messages, "cloud_ack messages to prune (1000000)")
        ->check(CLI::PositiveNumber);
    app.add_option("--concurrency", o.concurrency, "publish chains running meanwhile (8)")
        ->check(CLI::PositiveNumber);
    app.add_option("--batch", o.batch, "rows per transaction of the batched prune")
        ->check(CLI::PositiveNumber);
    app.add_option("--dir", o.dir, "folder for the outbox files (default: a temporary one)");
    app.add_flag("--smoke", smoke, "20000 messages: checks that the bench works");
    CLI11_PARSE(app, argc, argv);
    if (smoke)
        o.messages = 20'000;
    bool own_dir = o.dir.empty();
    if (own_dir) {
        o.dir =
            (fs::temp_directory_path() / ("prune_bench-" + std::to_string(::getpid()))).string();
        fs::create_directories(o.dir);
    }
    int rc = 0;
    try {
        std::printf("prune of %zu cloud_ack messages while %zu publish chains run (batch %zu)\n",
                    o.messages, o.concurrency, o.batch);
        std::printf("%-8s %9s %6s %9s %9s %8s %8s %8s %10s %10s\n", "mode", "pruned", "txns",
                    "prune_s", "publishes", "p50_ms", "p99_ms", "max_ms", "file_MB", "refill_MB");
        for (const char* mode : {"none", "one", "batched"}) {
            auto r = run_mode(o, mode);
            std::printf("%-8s %9zu %6zu %9.2f %9zu %8.2f %8.2f %8.2f %10.1f %10.1f\n",
                        r.mode.c_str(), r.pruned, r.transactions, r.prune_s, r.publishes, r.p50_ms,
                        r.p99_ms, r.max_ms, static_cast<double>(r.bytes_before) / 1e6,
                        static_cast<double>(r.bytes_refilled) / 1e6);
            std::fflush(stdout);
            if (r.mode != "none" && r.pruned != o.messages) {
                std::fprintf(stderr, "prune_bench: %s pruned %zu of %zu\n", r.mode.c_str(),
                             r.pruned, o.messages);
                rc = 1;
            }
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "prune_bench: %s\n", e.what());
        rc = 1;
    }
    if (own_dir)
        fs::remove_all(o.dir);
    return rc;
}
