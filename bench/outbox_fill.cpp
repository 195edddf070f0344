// outbox_fill: writes N own messages into a lane's outbox file fast, for the scale benchmarks
// (scripts/bench/scale_bench.py: start-up and RSS of an agent with a large outbox, catch-up of
// a new peer). It goes through the outbox library as the agent does (outbox::store::
// publish_batch: seq, created_at, ids and every trigger-maintained count as a publish gives
// them), with `--batch` messages per request and `--inflight` requests outstanding, so the
// writer folds several requests into one transaction. The messages are the load generator's
// sale payload (bench/sale.cpp), state pending (no peer has them yet).
//
//   outbox_fill --path FILE --terminal L1 --store bench --messages 1000000
//               [--batch 5000] [--inflight 4] [--payload 250]
//
// Prints one JSON line: messages, seconds, rate (messages/s), commits, file_bytes. Exit 1 when
// any request failed (nothing half-written: each request is all or nothing), 2 on bad usage.

#include "bench/loadgen.hpp"
#include "outbox/outbox.hpp"
#include "protocol/publish.hpp"

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <iostream>
#include <mutex>
#include <string>
#include <vector>

using namespace lanesync;

namespace {

struct fill_options {
    std::string path, terminal, store = "bench";
    std::size_t messages = 0, batch = 5'000, inflight = 4, payload = 250;
};

/// Requests `first` .. `first + n - 1` of the sale payload, canonicalized as the API would.
std::vector<protocol::publish_request> make_batch(std::size_t first, std::size_t n,
                                                  std::size_t payload) {
    std::vector<protocol::publish_request> out;
    out.reserve(n);
    for (std::size_t i = first; i < first + n; ++i) {
        auto r = protocol::make_publish_request("transaction", bench::sale_json(i, payload),
                                                std::nullopt, std::nullopt);
        if (!r)
            throw std::runtime_error("sale payload refused: " + r.error());
        out.push_back(std::move(r.value()));
    }
    return out;
}

/// Keeps `o.inflight` publish_batch requests outstanding until every message is written.
/// Returns the number of failed requests (their first error in `error`).
std::size_t fill(outbox::store& s, const fill_options& o, std::string& error) {
    std::mutex m;
    std::condition_variable cv;
    std::size_t outstanding = 0, failed = 0;
    for (std::size_t first = 0; first < o.messages; first += o.batch) {
        auto n = std::min(o.batch, o.messages - first);
        auto reqs = make_batch(first, n, o.payload); // built while earlier requests commit
        std::unique_lock lock(m);
        cv.wait(lock, [&] { return outstanding < o.inflight; });
        ++outstanding;
        lock.unlock();
        s.publish_batch(std::move(reqs), [&](outbox::batch_outcome b) {
            std::lock_guard g(m);
            if (b.k != outbox::batch_outcome::stored) {
                if (failed++ == 0)
                    error = b.k == outbox::batch_outcome::conflict ? "conflict" : b.error;
            }
            --outstanding;
            cv.notify_all();
        });
    }
    std::unique_lock lock(m);
    cv.wait(lock, [&] { return outstanding == 0; });
    return failed;
}

} // namespace

int main(int argc, char** argv) {
    fill_options o;
    CLI::App app{"outbox_fill: writes N own messages into a lane's outbox through publish_batch"};
    app.add_option("--path", o.path, "Outbox file (created; must not hold other lanes' data)")
        ->required();
    app.add_option("--terminal", o.terminal, "TERMINAL_ID the file belongs to")->required();
    app.add_option("--store", o.store, "STORE_ID the file belongs to (bench)");
    app.add_option("--messages", o.messages, "Own messages to write")
        ->required()
        ->check(CLI::PositiveNumber);
    app.add_option("--batch", o.batch, "Messages per publish_batch request (5000)")
        ->check(CLI::PositiveNumber);
    app.add_option("--inflight", o.inflight, "Requests outstanding at once (4)")
        ->check(CLI::PositiveNumber);
    app.add_option("--payload", o.payload, "Bytes of each message's data object (250)")
        ->check(CLI::PositiveNumber);
    CLI11_PARSE(app, argc, argv);

    try {
        outbox::options so;
        so.path = o.path;
        so.terminal_id = o.terminal;
        so.store_id = o.store;
        auto s = outbox::store::open(so);
        std::atomic<std::uint64_t> commits{0};
        s->set_commit_listener([&](const outbox::commit_info&) { ++commits; });
        std::string error;
        auto t0 = std::chrono::steady_clock::now();
        auto failed = fill(*s, o, error);
        s->close();
        double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        nlohmann::json out = {{"messages", o.messages},
                              {"seconds", secs},
                              {"rate", secs > 0 ? static_cast<double>(o.messages) / secs : 0.0},
                              {"commits", commits.load()},
                              {"batch", o.batch},
                              {"inflight", o.inflight},
                              {"failed_requests", failed},
                              {"file_bytes", bench::outbox_file_bytes(o.path)}};
        if (failed)
            out["error"] = error;
        std::cout << out.dump() << std::endl;
        return failed ? 1 : 0;
    } catch (const std::exception& e) {
        std::cout << nlohmann::json{{"fatal", e.what()}}.dump() << std::endl;
        return 1;
    }
}
