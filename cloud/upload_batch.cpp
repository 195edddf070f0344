// One batch of the uploader: encode, cut to the byte cap, send, and carry out what decide()
// (policy.cpp) says about the answer. The rules live in policy.cpp; this file only acts.

#include "base/backoff.hpp"
#include "base/log.hpp"
#include "base/text.hpp"
#include "cloud/uploader_impl.hpp"
#include "protocol/message.hpp"

#include <boost/asio/bind_executor.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <map>
#include <set>
#include <string_view>

namespace lanesync::cloud {

namespace net = boost::asio;
using clock_type = std::chrono::steady_clock;

namespace {

/// The origin of each id of `b` (ids are unique in a batch: compose_round).
void set_origins(std::vector<outbox::cloud_result>& results, const batch& b) {
    std::map<std::string_view, const std::string*> origin_of;
    for (const auto& p : b)
        origin_of.emplace(p.id, &p.origin);
    for (auto& r : results)
        if (auto it = origin_of.find(r.id); it != origin_of.end())
            r.origin = *it->second;
}

std::size_t covered_in(const batch& b) {
    return static_cast<std::size_t>(
        std::count_if(b.begin(), b.end(), [](const piece& p) { return !p.origin.empty(); }));
}

std::string seq_or_dash(const batch& b, bool first) {
    if (b.empty())
        return "-";
    return std::to_string(first ? b.front().seq : b.back().seq);
}

} // namespace

void uploader::impl::count_request(std::string_view outcome) {
    if (auto it = requests_.find(outcome); it != requests_.end())
        it->second->inc();
}

net::awaitable<bool> uploader::impl::upload(round_state& r, std::vector<outbox::record> recs) {
    if (recs.empty()) { // a heartbeat round (step)
        auto op = heartbeat(r);
        co_return co_await std::move(op);
    }
    // Data that is not a JSON object can never be accepted: fail it here with the reason
    // instead of letting it spoil every batch it is in.
    batch unencodable;
    batch all = encode(recs, unencodable);
    if (!unencodable.empty()) {
        const std::string reason = "data is not a JSON object";
        auto op = reject(r, unencodable, reason);
        if (!co_await std::move(op))
            co_return false;
    }
    if (all.empty())
        co_return r.changed > 0;

    // A split pushes its two halves to the front, so the batch is worked through in seq order.
    std::deque<batch> todo;
    todo.push_back(take_first(all));
    while (!todo.empty()) {
        if (stopping_ || paused_) // the rest is read again after resume
            co_return false;
        batch b = std::move(todo.front());
        todo.pop_front();
        auto op = send(r, std::move(b), todo);
        if (!co_await std::move(op))
            co_return false;
    }
    // Go on at once only if the outbox moved: answers that changed nothing (ids the store no
    // longer holds as ready) must not turn the loop into a busy loop.
    if (r.changed == 0)
        log::warn("cloud.outbox.unchanged", {{"reason", "answers applied to no ready message"}});
    co_return r.changed > 0;
}

/// Encodes the records; those that cannot be encoded go to `unencodable` (id, seq, origin).
/// A replica of another origin (a covered upload) keeps its origin's terminalId and carries
/// uploadedBy = this lane.
batch uploader::impl::encode(const std::vector<outbox::record>& recs, batch& unencodable) const {
    batch out;
    for (const auto& r : recs) {
        bool covered = !r.msg.origin.empty() && r.msg.origin != cfg_.terminal_id;
        std::string origin = covered ? r.msg.origin : std::string();
        auto json = wire::encode_message(r, cfg_.store_id,
                                         covered ? std::string_view(cfg_.terminal_id) : "");
        if (json)
            out.push_back({r.msg.id, r.msg.seq, std::move(*json), std::move(origin)});
        else
            unencodable.push_back({r.msg.id, r.msg.seq, {}, std::move(origin)});
    }
    return out;
}

/// The first request's share under the byte cap: at least one message; the rest go in the
/// next request (the next turn reads them again).
batch uploader::impl::take_first(batch& all) const {
    batch first;
    std::size_t bytes = 0;
    for (auto& p : all) {
        if (!first.empty() && wire::wrapped_size(bytes + p.json.size(), first.size() + 1,
                                                 wire::max_lane_bytes) > byte_cap_)
            break;
        bytes += p.json.size();
        first.push_back(std::move(p));
    }
    return first;
}

/// Sends one batch, asks the policy what the result means and carries it out.
net::awaitable<bool> uploader::impl::send(round_state& r, batch b, std::deque<batch>& todo) {
    sent_batch sent;
    sent.function = cfg_.supabase_function;
    std::vector<std::string> parts;
    for (const auto& p : b) {
        parts.push_back(p.json);
        sent.ids.push_back(p.id);
    }
    auto summary = lane_json();
    const std::string lane = co_await std::move(summary);
    auto body = wire::wrap_messages(parts, lane);
    sent.body_bytes = body.size();

    auto started = clock_type::now();
    auto sending = post(r, std::move(body));
    auto res = co_await std::move(sending);
    if (!lane.empty() && lane_refused(res)) {
        // The cloud's function does not take our summary (a version apart): never again from
        // this process, and the same batch goes again at once without it.
        send_lane_ = false;
        log::warn("cloud.lane_refused", {{"error", wire::error_text(res.body)},
                                         {"effect", "summaries and heartbeats off"}});
        auto again = send(r, std::move(b), todo);
        co_return co_await std::move(again);
    }
    auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - started).count();
    if (stopping_ && res.fail != http_result::failure::none)
        res.fail = http_result::failure::cancelled; // stop() closed the connection under it

    auto d = decide(res, sent);
    auto op = carry_out(r, std::move(d), std::move(b), todo, ms);
    co_return co_await std::move(op);
}

/// The lane summary this request carries: the outbox's counts (a read on the reader thread),
/// the links, the failures in a row. Empty (the request goes without it) once the cloud
/// refused one, and when the read fails: never a summary of zeros in place of the real one.
net::awaitable<std::string> uploader::impl::lane_json() {
    if (!send_lane_)
        co_return std::string();
    auto reading = db_.read([](outbox::store& s) { return s.get_counts(); },
                            net::as_tuple(net::use_awaitable));
    auto [e, counts] = co_await std::move(reading);
    if (e) {
        log::warn("cloud.lane_summary_failed", {{"error", text::what(e)}});
        co_return std::string();
    }
    if (detached_)
        co_return std::string();
    auto s = wire::summarize(counts, protocol::now_ms());
    const peer_count p = peers_ ? peers_() : peer_count{0, cfg_.peers.size()};
    s.peers_up = p.up;
    s.peers_configured = p.configured;
    s.retry_depth = failures_;
    co_return wire::encode_lane(s, cfg_.store_id, cfg_.terminal_id);
}

/// An idle lane's heartbeat: `{"messages":[],"lane":{...}}`. Its failure is counted and
/// logged; it changes no message and starts no backoff (the next upload finds an outage
/// itself), though it shows in status as the last attempt like any request.
net::awaitable<bool> uploader::impl::heartbeat(round_state& r) {
    auto summary = lane_json();
    const std::string lane = co_await std::move(summary);
    if (lane.empty())
        co_return false;
    auto sending = post(r, wire::wrap_messages({}, lane));
    auto res = co_await std::move(sending);
    if (res.fail == http_result::failure::none && res.status >= 200 && res.status < 300) {
        heartbeats_ok_->inc();
        log::debug("cloud.heartbeat", {{"status", std::to_string(res.status)}});
    } else if (lane_refused(res)) {
        send_lane_ = false;
        log::warn("cloud.lane_refused", {{"error", wire::error_text(res.body)},
                                         {"effect", "summaries and heartbeats off"}});
    } else if (!stopping_) {
        heartbeats_failed_->inc();
        log::warn("cloud.heartbeat_failed",
                  {{"status", std::to_string(res.status)},
                   {"error", res.fail == http_result::failure::none ? wire::error_text(res.body)
                                                                    : res.error}});
    }
    co_return false;
}

/// One request with its status bookkeeping and its adaptive deadline (the client owns
/// connect, TLS, keep-alive).
net::awaitable<http_result> uploader::impl::post(round_state& r, std::string body) {
    if (failures_ > 0)
        retries_->inc();
    ++requests_out_;
    last_request_ = clock_type::now();
    edit_status([&](status& s) {
        s.in_flight = true;
        s.requests_in_flight = requests_out_;
        s.last_attempt_at_ms = protocol::now_ms();
    });
    r.client->set_timeout(
        request_timeout(times_, lim_.request_timeout_floor, lim_.request_timeout));
    auto started = clock_type::now();
    auto sending = r.client->post(std::move(body));
    auto res = co_await std::move(sending);
    if (res.fail == http_result::failure::none)
        times_.answered(
            std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - started));
    else if (res.fail == http_result::failure::timeout)
        times_.timed_out();
    --requests_out_;
    edit_status([&](status& s) {
        s.in_flight = requests_out_ > 0;
        s.requests_in_flight = requests_out_;
        if (res.fail == http_result::failure::none)
            s.last_http_status = res.status;
    });
    co_return res;
}

/// Does what the policy decided. True: go on with the next batch of `todo`.
net::awaitable<bool> uploader::impl::carry_out(round_state& r, decision d, batch b,
                                               std::deque<batch>& todo, std::int64_t ms) {
    using k = decision::kind; // not `kind`: policy.cpp has that alias (one unity TU)
    switch (d.k) {
    case k::cancelled:
        log::info("cloud.upload.cancelled", {{"batch", std::to_string(b.size())}});
        co_return false;
    case k::ack:
    case k::ack_and_retry: {
        auto op = record_answer(r, std::move(d), b, ms);
        co_return co_await std::move(op);
    }
    case k::split:
        count_request(d.outcome);
        edit_status([](status& s) { ++s.requests_failed; });
        split(d, std::move(b), todo);
        co_return true; // an answer, not an outage: no backoff
    case k::fail: {
        count_request(d.outcome);
        edit_status([](status& s) { ++s.requests_failed; });
        auto op = reject(r, b, d.reason);
        co_return co_await std::move(op);
    }
    case k::retry:
    case k::retry_slowly:
    case k::auth_error: {
        count_request(d.outcome);
        auto floor = d.k == k::retry_slowly ? lim_.not_found_retry : std::chrono::milliseconds{};
        failed(b, d.http_status, std::move(d.error), ms, d.outcome, floor);
        co_return false;
    }
    }
    co_return false;
}

/// A 2xx: records the usable results, then succeeds or (partly unusable) fails the rest.
net::awaitable<bool> uploader::impl::record_answer(round_state& r, decision d, const batch& b,
                                                   std::int64_t ms) {
    outbox::cloud_outcome out;
    out.ok = true;
    if (!d.results.empty()) {
        set_origins(d.results, b);
        auto applying = apply(r, std::move(d.results));
        out = co_await std::move(applying);
        if (!out.ok) {
            count_request("ok");
            failed(b, d.http_status, "outbox write failed: " + out.error, ms, "ok");
            co_return false;
        }
    }
    count_request(d.outcome);
    if (d.k == decision::kind::ack) {
        succeeded(r, b, d.http_status, ms, out);
        co_return true;
    }
    const std::set<std::string> again(d.retry.begin(), d.retry.end());
    batch rest;
    for (const auto& p : b)
        if (again.contains(p.id))
            rest.push_back(p);
    log::warn("cloud.response.invalid", {{"status", std::to_string(d.http_status)},
                                         {"problem", d.problem},
                                         {"applied", std::to_string(out.acked + out.failed)},
                                         {"retrying", std::to_string(rest.size())}});
    failed(rest.empty() ? b : rest, d.http_status, std::move(d.error), ms, d.outcome);
    co_return false;
}

/// Puts the two halves of `b` at the front of `todo` (first half first).
void uploader::impl::split(const decision& d, batch b, std::deque<batch>& todo) {
    if (d.byte_cap)
        byte_cap_ = std::min(byte_cap_, *d.byte_cap);
    std::size_t parts_bytes = 0;
    for (const auto& p : b)
        parts_bytes += p.json.size();
    log::warn("cloud.upload.split",
              {{"status", std::to_string(d.http_status)},
               {"batch", std::to_string(b.size())},
               {"bytes", std::to_string(wire::wrapped_size(parts_bytes, b.size()))},
               {"first_seq", std::to_string(b.front().seq)},
               {"last_seq", std::to_string(b.back().seq)}});
    auto mid = b.begin() + static_cast<std::ptrdiff_t>(d.split_at);
    batch left(std::make_move_iterator(b.begin()), std::make_move_iterator(mid));
    batch right(std::make_move_iterator(mid), std::make_move_iterator(b.end()));
    todo.push_front(std::move(right));
    todo.push_front(std::move(left));
}

/// Marks these messages failed in the outbox with `reason` (a permanent answer).
net::awaitable<bool> uploader::impl::reject(round_state& r, const batch& b,
                                            const std::string& reason) {
    std::vector<outbox::cloud_result> results;
    for (const auto& p : b)
        results.push_back({p.id, outbox::cloud_result::rejected, log::redact(reason), p.origin});
    auto op = apply(r, std::move(results));
    auto out = co_await std::move(op);
    if (!out.ok) {
        failed(b, 0, "outbox write failed: " + out.error, 0, {});
        co_return false;
    }
    co_return true;
}

/// Records the cloud's answers in the outbox (writer thread) and waits for the commit.
net::awaitable<outbox::cloud_outcome>
uploader::impl::apply(round_state& r, std::vector<outbox::cloud_result> results) {
    for (const auto& res : results) {
        if (res.k != outbox::cloud_result::rejected)
            continue;
        if (res.origin.empty())
            log::warn("cloud.message.rejected", {{"id", res.id}, {"reason", res.error}});
        else
            log::warn("cloud.message.rejected",
                      {{"id", res.id}, {"origin", res.origin}, {"reason", res.error}});
    }
    // The covered results, kept for the metric once the commit is known good.
    std::vector<outbox::cloud_result> covered;
    for (const auto& res : results)
        if (!res.origin.empty() && res.k != outbox::cloud_result::rejected)
            covered.push_back({res.id, res.k, {}, res.origin});
    // Build the operation first and await a named object: GCC 12 mishandles class temporaries
    // that live across a co_await suspension. The write commits on the writer thread; the
    // coroutine resumes on the strand.
    auto op = db_.cloud_acked(std::move(results), net::use_awaitable);
    auto out = co_await std::move(op);
    if (out.ok) {
        r.changed += out.acked + out.failed;
        acked_->inc(out.acked);
        failed_->inc(out.failed);
        for (auto ms : out.latency_ms)
            latency_->observe(static_cast<double>(ms) / 1000.0);
        edit_status([&](status& s) {
            s.messages_acked += out.acked;
            s.messages_rejected += out.failed;
        });
        count_covered(covered);
    } else {
        log::error("cloud.outbox.write_failed", {{"error", out.error}});
    }
    co_return out;
}

/// lanesync_cloud_covered_messages_total{origin} and status: replicas the cloud confirmed.
void uploader::impl::count_covered(const std::vector<outbox::cloud_result>& applied) {
    if (applied.empty())
        return;
    for (const auto& r : applied) {
        auto it = covered_.find(r.origin);
        if (it == covered_.end()) {
            // The origin is a valid terminal id (covered_origins), safe in a label value.
            auto* c = &metrics::global().get_counter(
                "lanesync_cloud_covered_messages_total",
                "Replicas uploaded on their origin's behalf (takeover) that the cloud confirmed.",
                "origin=\"" + r.origin + "\"");
            it = covered_.emplace(r.origin, c).first;
        }
        it->second->inc();
    }
    edit_status([&](status& s) { s.messages_covered += applied.size(); });
}

/// A success ends the backoff, unless another round failed since this one started (its
/// answer says nothing about that failure's cause: the backoff of that failure stands).
void uploader::impl::succeeded(const round_state& r, const batch& b, int http_status,
                               std::int64_t ms, const outbox::cloud_outcome& out) {
    bool clears = r.epoch == failure_epoch_;
    if (clears) {
        failures_ = 0;
        next_attempt_ = {};
        backoff_->set(0);
    }
    edit_status([&](status& s) {
        s.last_success_at_ms = protocol::now_ms();
        s.last_http_status = http_status;
        if (clears) {
            s.last_error.clear();
            s.next_attempt_at_ms.reset();
            s.current_backoff_ms = 0;
            s.consecutive_failures = 0;
        }
        ++s.requests_ok;
    });
    log::info("cloud.upload.ok", {{"batch", std::to_string(b.size())},
                                  {"covered", std::to_string(covered_in(b))},
                                  {"first_seq", std::to_string(b.front().seq)},
                                  {"last_seq", std::to_string(b.back().seq)},
                                  {"ms", std::to_string(ms)},
                                  {"acked", std::to_string(out.acked)},
                                  {"rejected", std::to_string(out.failed)},
                                  {"connections", std::to_string(r.client->connections_opened())}});
}

/// A failure: back off (full jitter, at least `floor`), show it, count an attempt on `b`.
/// `outcome` empty: not a request (an outbox read or write failed).
void uploader::impl::failed(const batch& b, int http_status, std::string error, std::int64_t ms,
                            std::string_view outcome, std::chrono::milliseconds floor) {
    ++failures_;
    ++failure_epoch_;
    auto delay =
        std::max(backoff::full_jitter(cfg_.backoff_base, cfg_.backoff_max, failures_ - 1), floor)
            .count();
    // Never earlier than a wait already planned: with two rounds in flight, a second failure
    // (its jitter may be near 0) must not cut the first one's wait short (a 404's floor).
    next_attempt_ = std::max(next_attempt_, clock_type::now() + std::chrono::milliseconds(delay));
    work_hint_ = true; // retry on the timer, without waiting for a new local write
    backoff_->set(static_cast<double>(delay) / 1000.0);
    error = log::redact(std::move(error));
    bool was_request = !outcome.empty();
    edit_status([&](status& s) {
        s.last_error = error;
        if (http_status)
            s.last_http_status = http_status;
        s.next_attempt_at_ms = protocol::now_ms() + delay;
        s.current_backoff_ms = delay;
        s.consecutive_failures = failures_;
        if (was_request)
            ++s.requests_failed;
    });
    note_attempt(b);
    log::warn("cloud.upload.failed",
              {{"batch", std::to_string(b.size())},
               {"first_seq", seq_or_dash(b, true)},
               {"last_seq", seq_or_dash(b, false)},
               {"outcome", outcome.empty() ? std::string("outbox") : std::string(outcome)},
               {"status", http_status ? std::to_string(http_status) : std::string("-")},
               {"error", error},
               {"attempt", std::to_string(failures_)},
               {"retry_in_ms", std::to_string(delay)},
               {"ms", std::to_string(ms)}});
}

/// Counts one failed attempt on each own message of `b` (fire and forget: status shows
/// attempts; note_attempt names own messages by id, so covered replicas are left out).
void uploader::impl::note_attempt(const batch& b) {
    if (b.empty() || detached_)
        return;
    std::vector<std::string> ids;
    for (const auto& p : b)
        if (p.origin.empty())
            ids.push_back(p.id);
    if (ids.empty())
        return;
    // Nothing waits for it; the completion runs on the strand.
    db_.note_attempt(std::move(ids), net::bind_executor(strand_, [](outbox::count_outcome o) {
                         if (!o.ok)
                             log::warn("cloud.note_attempt.failed", {{"error", o.error}});
                     }));
}

} // namespace lanesync::cloud
