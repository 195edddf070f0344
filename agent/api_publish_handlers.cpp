// POST /v1/messages (one message or a batch) and the waits for acks of ?wait=peer_ack|cloud_ack
// (docs/api.md): the checks and answers are pure (api_publish.cpp); the wait registers with the
// registry (api_waiters.cpp), which is woken by commits. Everything here runs on the session's
// strand; the outbox's and the registry's completions are posted back to it.
#include "agent/api_session.hpp"

#include <boost/asio/bind_executor.hpp>

#include <utility>
#include <variant>

namespace lanesync::agent {

void http_session::start_publish(const api::target& t) {
    auto& req = parser_->get();
    std::optional<std::string_view> ct;
    if (auto it = req.find(http::field::content_type); it != req.end())
        ct = it->value();
    auto checked = api::check_publish_input(ct, req.body(), state_->max_message_bytes());
    if (auto* r = std::get_if<api::response>(&checked))
        return send(std::move(*r));
    auto w = api::check_wait(t, state_->has_peers());
    if (auto* r = std::get_if<api::response>(&w))
        return send(std::move(*r));
    auto in = std::get<api::publish_input>(std::move(checked));
    for (auto& r : in.requests) // a request without "priority" takes its topic's default
        protocol::apply_topic_priority(r, state_->deps().cfg->topic_priority);
    const auto& q = std::get<api::wait_query>(w);
    // The places are taken before anything is stored, so a refusal stores nothing.
    if (q.target && !reserve_wait(q, in.batch ? ack_wait::kind::batch : ack_wait::kind::publish,
                                  in.requests.size()))
        return send(api::too_many_waiters());
    if (!in.batch)
        topic_ = in.requests.front().topic;
    auto* g = state_->deps().gossip;
    if (!g)
        return publish_admitted(std::move(in), std::nullopt);
    // The answer may come from another strand (the start check ending): back to ours.
    g->admit([self = shared_from_this(),
              in = std::move(in)](std::optional<lanes::rebuild_view> no) mutable {
        net::post(self->stream_.get_executor(),
                  [self, in = std::move(in), no = std::move(no)]() mutable {
                      self->guarded([&] { self->publish_admitted(std::move(in), std::move(no)); });
                  });
    });
}

void http_session::publish_admitted(api::publish_input in, std::optional<lanes::rebuild_view> no) {
    if (no) {
        forget_wait();
        return send(api::rebuilding_answer(*no));
    }
    // Group-committed on the outbox writer (a batch is one request: one transaction);
    // completes on this session's strand.
    auto ex = stream_.get_executor();
    if (in.batch) {
        state_->outbox().publish_batch(
            std::move(in.requests),
            net::bind_executor(ex, [self = shared_from_this()](outbox::batch_outcome o) {
                self->guarded([&] { self->on_batch_published(std::move(o)); });
            }));
        return;
    }
    state_->outbox().publish(
        std::move(in.requests.front()),
        net::bind_executor(ex, [self = shared_from_this()](outbox::publish_outcome o) {
            self->guarded([&] { self->on_published(std::move(o)); });
        }));
}

void http_session::on_published(outbox::publish_outcome o) {
    const bool stored =
        o.k == outbox::publish_outcome::created || o.k == outbox::publish_outcome::existing;
    if (o.k == outbox::publish_outcome::created)
        am().accepted.inc();
    if (stored) {
        am().publish_seconds.observe(
            std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count());
        published_id_ = o.rec.msg.id;
        published_seq_ = o.rec.msg.seq;
    }
    if (!wait_ || !stored) {
        forget_wait();
        return send(api::publish_answer(o));
    }
    wait_->ids = {o.rec.msg.id};
    const auto st = o.rec.st;
    wait_->single = std::move(o);
    if (api::verdict(wait_->target, st) != api::wait_verdict::not_yet)
        return answer_wait(ack_waiters::states{st}); // an existing message already there
    begin_wait();
}

void http_session::on_batch_published(outbox::batch_outcome o) {
    if (o.k == outbox::batch_outcome::stored) {
        for (const auto& it : o.items)
            if (it.k == outbox::publish_outcome::created)
                am().accepted.inc();
        am().publish_seconds.observe(
            std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count());
    }
    if (!wait_ || o.k != outbox::batch_outcome::stored) {
        forget_wait();
        return send(api::batch_answer(o));
    }
    ack_waiters::states sts;
    for (const auto& it : o.items) {
        wait_->ids.push_back(it.rec.msg.id);
        sts.emplace_back(it.rec.st);
    }
    wait_->batch = std::move(o);
    if (api::verdict(wait_->target, sts) != api::wait_verdict::not_yet)
        return answer_wait(sts);
    begin_wait();
}

void http_session::on_got_for_wait(std::optional<outbox::record> rec) {
    if (!wait_)
        return;
    if (!rec || api::verdict(wait_->target, rec->st) != api::wait_verdict::not_yet)
        return answer_wait(rec); // unknown id (404), or already there (200) or failed (202)
    begin_wait();
}

bool http_session::reserve_wait(const api::wait_query& q, ack_wait::kind k, std::size_t n) {
    if (!state_->waiters().reserve(n))
        return false;
    wait_.emplace();
    wait_->k = k;
    wait_->target = *q.target;
    wait_->timeout = q.timeout;
    wait_->places = n;
    ++wait_gen_;
    return true;
}

void http_session::begin_wait() {
    phase_ = phase::waiting;
    if (stopping_)
        return settle_wait(std::nullopt); // the API stops: answer with the state now
    const auto gen = wait_gen_;
    auto self = shared_from_this();
    // The registry completes on its strand: back to ours.
    wait_->ticket =
        state_->waiters().add(wait_->ids, wait_->target, [self, gen](ack_waiters::states sts) {
            net::post(self->stream_.get_executor(), [self, gen, sts = std::move(sts)] {
                self->guarded([&] {
                    if (self->current_wait(gen))
                        self->settle_wait(sts);
                });
            });
        });
    wait_->added = true;
    // The timeout: answer 202 with the state then.
    wait_timer_.expires_after(wait_->timeout);
    wait_timer_.async_wait([self, gen](error_code ec) {
        if (ec || !self->current_wait(gen))
            return;
        self->guarded([&] { self->settle_wait(std::nullopt); });
    });
    // The client leaving ends the wait: watch the connection without reading from it.
    stream_.socket().async_wait(tcp::socket::wait_read,
                                [self, gen](error_code ec) { self->on_client_readable(gen, ec); });
}

void http_session::on_client_readable(std::uint64_t gen, error_code ec) {
    if (ec == net::error::operation_aborted || !current_wait(gen))
        return; // the wait ended and cancelled the watch, or it is being answered
    error_code aec;
    const auto n = stream_.socket().available(aec);
    if (!ec && !aec && n > 0)
        return; // the next request arrived early: it stays queued, the wait goes on
    // EOF or an error: nobody will read the answer.
    log::debug("api.wait_abandoned", {{"path", path_}});
    forget_wait();
    do_close();
}

void http_session::settle_wait(std::optional<ack_waiters::states> known) {
    wait_->settling = true;
    wait_timer_.cancel();
    error_code ec;
    stream_.socket().cancel(ec); // the watch: the answer and the next read use the socket now
    if (wait_->added)
        state_->waiters().cancel(wait_->ticket); // no-op when the registry ended it
    const auto gen = wait_gen_;
    auto ex = stream_.get_executor();
    if (wait_->k == ack_wait::kind::get) {
        state_->outbox().get(wait_->ids.front(),
                             net::bind_executor(ex, [self = shared_from_this(),
                                                     gen](std::optional<outbox::record> r) {
                                 self->guarded([&] {
                                     if (self->wait_ && self->wait_gen_ == gen)
                                         self->answer_wait(r);
                                 });
                             }));
        return;
    }
    if (known)
        return answer_wait(*known);
    state_->outbox().states(
        wait_->ids, net::bind_executor(ex, [self = shared_from_this(), gen](ack_waiters::states s) {
            self->guarded([&] {
                if (self->wait_ && self->wait_gen_ == gen)
                    self->answer_wait(s);
            });
        }));
}

void http_session::answer_wait(const ack_waiters::states& sts) {
    auto w = std::move(*wait_);
    forget_wait();
    if (w.k == ack_wait::kind::batch)
        return send(api::waited_batch_answer(std::move(w.batch), w.target, sts));
    std::optional<outbox::state> now;
    if (sts.size() == 1)
        now = sts.front();
    send(api::waited_publish_answer(std::move(w.single), w.target, now));
}

void http_session::answer_wait(const std::optional<outbox::record>& rec) {
    const auto target = wait_->target;
    const auto id = wait_->ids.front();
    forget_wait();
    send(api::waited_message_answer(id, rec, target));
}

void http_session::forget_wait() {
    if (!wait_)
        return;
    if (wait_->added) {
        if (!wait_->settling) {
            wait_timer_.cancel();
            error_code ec;
            stream_.socket().cancel(ec);
        }
        state_->waiters().cancel(wait_->ticket); // gives the places back
    } else {
        state_->waiters().release(wait_->places);
    }
    wait_.reset();
}

} // namespace lanesync::agent
