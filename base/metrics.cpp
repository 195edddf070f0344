#include "base/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>

namespace lanesync::metrics {

histogram::histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)), buckets_(bounds_.size() + 1, 0) {}

void histogram::observe(double v) {
    auto it = std::lower_bound(bounds_.begin(), bounds_.end(), v);
    std::lock_guard lock(mutex_);
    ++buckets_[static_cast<std::size_t>(it - bounds_.begin())];
    sum_ += v;
    ++count_;
}

histogram::snapshot histogram::snap() const {
    std::lock_guard lock(mutex_);
    snapshot s;
    s.bounds = bounds_;
    std::uint64_t acc = 0;
    for (auto b : buckets_) {
        acc += b;
        s.cumulative.push_back(acc);
    }
    s.sum = sum_;
    s.count = count_;
    return s;
}

std::vector<double> latency_buckets() {
    return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300};
}

namespace {

std::string fmt_double(double v) {
    if (std::isinf(v))
        return v > 0 ? "+Inf" : "-Inf";
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", v);
    return buf;
}

std::string with_labels(const std::string& name, const std::string& labels,
                        const std::string& extra = {}) {
    std::string all = labels;
    if (!extra.empty())
        all += (all.empty() ? "" : ",") + extra;
    return all.empty() ? name : name + "{" + all + "}";
}

} // namespace

counter& registry::get_counter(std::string_view name, std::string_view help,
                               std::string_view labels) {
    std::lock_guard lock(mutex_);
    for (auto& s : series_)
        if (s.k == kind::counter && s.name == name && s.labels == labels)
            return *s.c;
    auto& c = counters_.emplace_back();
    series_.push_back(
        {std::string(name), std::string(help), std::string(labels), kind::counter, &c});
    return c;
}

gauge& registry::get_gauge(std::string_view name, std::string_view help, std::string_view labels) {
    std::lock_guard lock(mutex_);
    for (auto& s : series_)
        if (s.k == kind::gauge && s.name == name && s.labels == labels)
            return *s.g;
    auto& g = gauges_.emplace_back();
    series_.push_back(
        {std::string(name), std::string(help), std::string(labels), kind::gauge, nullptr, &g});
    return g;
}

histogram& registry::get_histogram(std::string_view name, std::string_view help,
                                   std::string_view labels, std::vector<double> bounds) {
    std::lock_guard lock(mutex_);
    for (auto& s : series_)
        if (s.k == kind::histogram && s.name == name && s.labels == labels)
            return *s.h;
    auto& h = histograms_.emplace_back(std::move(bounds));
    series_.push_back({std::string(name), std::string(help), std::string(labels), kind::histogram,
                       nullptr, nullptr, &h});
    return h;
}

void registry::add_collector(std::function<void()> fn) {
    std::lock_guard lock(mutex_);
    collectors_.push_back(std::move(fn));
}

std::string registry::render() {
    std::vector<std::function<void()>> collectors;
    {
        std::lock_guard lock(mutex_);
        collectors = collectors_;
    }
    for (auto& fn : collectors)
        fn();

    std::lock_guard lock(mutex_);
    // Group series by family name, keeping first-registration order of families.
    std::vector<std::string> order;
    std::map<std::string, std::vector<const series*>> families;
    for (const auto& s : series_) {
        if (!families.count(s.name))
            order.push_back(s.name);
        families[s.name].push_back(&s);
    }
    std::string out;
    for (const auto& name : order) {
        const auto& list = families[name];
        const series& first = *list.front();
        out += "# HELP " + name + " " + first.help + "\n";
        out += "# TYPE " + name + " " +
               (first.k == kind::counter ? "counter"
                : first.k == kind::gauge ? "gauge"
                                         : "histogram") +
               "\n";
        for (const series* s : list) {
            switch (s->k) {
            case kind::counter:
                out += with_labels(name, s->labels) + " " + std::to_string(s->c->value()) + "\n";
                break;
            case kind::gauge:
                out += with_labels(name, s->labels) + " " + fmt_double(s->g->value()) + "\n";
                break;
            case kind::histogram: {
                auto snap = s->h->snap();
                for (std::size_t i = 0; i < snap.bounds.size(); ++i)
                    out += with_labels(name + "_bucket", s->labels,
                                       "le=\"" + fmt_double(snap.bounds[i]) + "\"") +
                           " " + std::to_string(snap.cumulative[i]) + "\n";
                out += with_labels(name + "_bucket", s->labels, "le=\"+Inf\"") + " " +
                       std::to_string(snap.count) + "\n";
                out += with_labels(name + "_sum", s->labels) + " " + fmt_double(snap.sum) + "\n";
                out += with_labels(name + "_count", s->labels) + " " + std::to_string(snap.count) +
                       "\n";
                break;
            }
            }
        }
    }
    return out;
}

registry& global() {
    static registry r;
    return r;
}

} // namespace lanesync::metrics
