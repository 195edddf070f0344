// The registry of waits for acks: woken by commits, one batched state read per wake.
#include "agent/api_waiters.hpp"

#include "agent/api_publish.hpp"

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/post.hpp>

#include <algorithm>

namespace lanesync::agent {

namespace net = boost::asio;

ack_waiters::ack_waiters(net::io_context& ioc, outbox::async_store& outbox, std::size_t cap)
    : strand_(net::make_strand(ioc)), outbox_(outbox), cap_(cap),
      waiting_gauge_(metrics::global().get_gauge(
          "lanesync_api_waiting_messages",
          "Messages that local API requests wait on now (?wait=peer_ack|cloud_ack)")),
      reads_(metrics::global().get_counter(
          "lanesync_api_wait_reads_total",
          "State reads of the waited messages (one per commit that may move them)")) {}

bool ack_waiters::reserve(std::size_t n) {
    auto cur = used_.load();
    do {
        if (n > cap_ || cur > cap_ - n)
            return false;
    } while (!used_.compare_exchange_weak(cur, cur + n));
    return true;
}

void ack_waiters::release(std::size_t n) {
    give_back(n);
}

void ack_waiters::give_back(std::size_t n) {
    used_.fetch_sub(n);
}

std::uint64_t ack_waiters::add(std::vector<std::string> ids, outbox::state target, done_fn done) {
    const auto ticket = next_ticket_.fetch_add(1);
    net::post(strand_, [self = shared_from_this(), ticket,
                        w = wait{std::move(ids), target, std::move(done)}]() mutable {
        self->on_add(ticket, std::move(w));
    });
    return ticket;
}

void ack_waiters::cancel(std::uint64_t ticket) {
    net::post(strand_, [self = shared_from_this(), ticket] { self->remove(ticket); });
}

void ack_waiters::wake(const outbox::commit_info& ci) {
    // Only these change a waited message's state; a new own message or replica does not.
    if (!(ci.new_peer_ack || ci.new_cloud_state) || used_.load() == 0)
        return;
    net::post(strand_, [self = shared_from_this()] { self->request_read(); });
}

void ack_waiters::on_add(std::uint64_t ticket, wait w) {
    for (const auto& id : w.ids)
        by_id_[id].push_back(ticket);
    waiting_ += w.ids.size();
    waits_.emplace(ticket, std::move(w));
    // Its message may have moved between its commit and now: read it once.
    request_read();
    waiting_gauge_.set(static_cast<double>(waiting_)); // after the read is queued (tests)
}

void ack_waiters::remove(std::uint64_t ticket) {
    auto it = waits_.find(ticket);
    if (it == waits_.end())
        return;
    for (const auto& id : it->second.ids) {
        auto b = by_id_.find(id);
        if (b == by_id_.end())
            continue;
        std::erase(b->second, ticket);
        if (b->second.empty())
            by_id_.erase(b);
    }
    give_back(it->second.ids.size());
    waiting_ -= it->second.ids.size();
    waiting_gauge_.set(static_cast<double>(waiting_));
    waits_.erase(it);
}

// One read of every waited id on the outbox reader thread; a wake meanwhile asks for another.
void ack_waiters::request_read() {
    if (waits_.empty()) {
        dirty_ = false;
        return;
    }
    if (reading_) {
        dirty_ = true;
        return;
    }
    reading_ = true;
    dirty_ = false;
    reads_.inc();
    std::vector<std::string> ids;
    ids.reserve(by_id_.size());
    for (const auto& [id, tickets] : by_id_)
        ids.push_back(id);
    auto shared = std::make_shared<const std::vector<std::string>>(std::move(ids));
    outbox_.states(*shared,
                   net::bind_executor(strand_, [self = shared_from_this(), shared](states sts) {
                       self->on_read(*shared, sts);
                   }));
}

void ack_waiters::on_read(const std::vector<std::string>& ids, const states& sts) {
    reading_ = false;
    // A failed read (logged by the outbox) comes back empty: the waits go on.
    if (sts.size() == ids.size()) {
        std::unordered_map<std::string_view, std::optional<outbox::state>> seen;
        for (std::size_t i = 0; i < ids.size(); ++i)
            seen.emplace(ids[i], sts[i]);
        std::vector<std::pair<std::uint64_t, states>> ended;
        for (const auto& [ticket, w] : waits_) {
            states mine;
            mine.reserve(w.ids.size());
            for (const auto& id : w.ids) {
                auto it = seen.find(id);
                if (it == seen.end())
                    break; // added after this read started: the next read covers it
                mine.push_back(it->second);
            }
            if (mine.size() == w.ids.size() &&
                api::verdict(w.target, mine) != api::wait_verdict::not_yet)
                ended.emplace_back(ticket, std::move(mine));
        }
        for (auto& [ticket, mine] : ended) {
            auto done = std::move(waits_.at(ticket).done);
            remove(ticket);
            done(std::move(mine));
        }
    }
    if (dirty_)
        request_read();
}

} // namespace lanesync::agent
