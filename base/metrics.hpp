#pragma once
/// Process-wide Prometheus metrics: counters, gauges and histograms, rendered in the text
/// exposition format by GET /metrics. Series are created once (at start-up or first use) and
/// live for the whole process; references stay valid.
/// Thread-safe: counters and gauges are atomics; histograms take a small mutex per observe.

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace lanesync::metrics {

class counter {
public:
    void inc(std::uint64_t n = 1) { v_.fetch_add(n, std::memory_order_relaxed); }
    std::uint64_t value() const { return v_.load(std::memory_order_relaxed); }

private:
    std::atomic<std::uint64_t> v_{0};
};

class gauge {
public:
    void set(double v) { v_.store(v, std::memory_order_relaxed); }
    double value() const { return v_.load(std::memory_order_relaxed); }

private:
    std::atomic<double> v_{0};
};

class histogram {
public:
    explicit histogram(std::vector<double> upper_bounds);
    void observe(double v);
    struct snapshot {
        std::vector<double> bounds;
        std::vector<std::uint64_t> cumulative; ///< one per bound, then +Inf
        double sum = 0;
        std::uint64_t count = 0;
    };
    snapshot snap() const;

private:
    mutable std::mutex mutex_;
    std::vector<double> bounds_;
    std::vector<std::uint64_t> buckets_; ///< non-cumulative, bounds_.size() + 1
    double sum_ = 0;
    std::uint64_t count_ = 0;
};

/// Latency buckets in seconds, 1 ms .. 5 min.
std::vector<double> latency_buckets();

class registry {
public:
    /// `name` without labels (lanesync_accepted_total); `labels` like `outcome="ok"` or empty.
    /// Calling twice with the same name and labels returns the same series.
    counter& get_counter(std::string_view name, std::string_view help,
                         std::string_view labels = {});
    gauge& get_gauge(std::string_view name, std::string_view help, std::string_view labels = {});
    histogram& get_histogram(std::string_view name, std::string_view help,
                             std::string_view labels = {},
                             std::vector<double> bounds = latency_buckets());

    /// Runs before each render (e.g. to refresh gauges from the outbox). Set at start-up.
    void add_collector(std::function<void()> fn);

    /// Prometheus text format 0.0.4.
    std::string render();

private:
    enum class kind { counter, gauge, histogram };
    struct series {
        std::string name, help, labels;
        kind k;
        counter* c = nullptr;
        gauge* g = nullptr;
        histogram* h = nullptr;
    };
    std::mutex mutex_;
    std::deque<counter> counters_;
    std::deque<gauge> gauges_;
    std::deque<histogram> histograms_;
    std::vector<series> series_;
    std::vector<std::function<void()>> collectors_;
};

/// The process-wide registry.
registry& global();

} // namespace lanesync::metrics
