#include "outbox/outbox.hpp"

#include "outbox/detail/store_impl.hpp"

#include <future>

namespace lanesync::outbox {

std::string_view to_string(state s) {
    switch (s) {
    case state::pending:
        return "pending";
    case state::peer_ack:
        return "peer_ack";
    case state::cloud_ack:
        return "cloud_ack";
    case state::failed:
        return "failed";
    }
    return "pending";
}

std::optional<state> parse_state(std::string_view text) {
    for (state s : {state::pending, state::peer_ack, state::cloud_ack, state::failed})
        if (text == to_string(s))
            return s;
    return std::nullopt;
}

std::unique_ptr<store> store::open(const options& opts) {
    return std::make_unique<detail::sqlite_store>(opts);
}

namespace {

/// Calls an asynchronous write and blocks until its callback ran.
template <class Out, class Start> Out wait_for(Start&& start) {
    std::promise<Out> p;
    auto f = p.get_future();
    start([&p](Out out) { p.set_value(std::move(out)); });
    return f.get();
}

} // namespace

publish_outcome publish_sync(store& s, protocol::publish_request req) {
    return wait_for<publish_outcome>(
        [&](auto done) { s.publish(std::move(req), std::move(done)); });
}

batch_outcome publish_batch_sync(store& s, std::vector<protocol::publish_request> reqs) {
    return wait_for<batch_outcome>(
        [&](auto done) { s.publish_batch(std::move(reqs), std::move(done)); });
}

count_outcome retry_sync(store& s, std::vector<std::string> ids) {
    return wait_for<count_outcome>([&](auto done) { s.retry(std::move(ids), std::move(done)); });
}

count_outcome prune_sync(store& s, std::int64_t older_than_ms, std::size_t max_rows) {
    return wait_for<count_outcome>(
        [&](auto done) { s.prune(older_than_ms, max_rows, std::move(done)); });
}

} // namespace lanesync::outbox
