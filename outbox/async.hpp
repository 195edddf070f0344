#pragma once
/// The one Asio-facing boundary of the outbox (docs/outbox.md, "Threads"): every asynchronous
/// caller (the local API, peer sessions, the uploader) talks to the store through this adapter.
///
/// - Writes are the store's group-committed writes; their completion is posted from the writer
///   thread to the handler's associated executor.
/// - Reads run on the outbox's own reader thread (store::post_read); their completion is posted
///   to the handler's associated executor. No SQLite call and no lock wait on an io thread.
/// - health() takes the store's snapshot, which never waits on the write lock.
///
/// The handler's associated executor (a strand from bind_executor, a coroutine's executor with
/// use_awaitable) defaults to the adapter's executor. A completion never runs inline in the
/// initiating call, nor on the writer or reader thread. While an operation is pending, work is
/// counted on both executors, so io_context::run() does not return under it.
///
/// Works with plain callbacks, boost::asio::bind_executor(strand, cb),
/// boost::asio::use_awaitable and as_tuple(use_awaitable). GCC 12: build the arguments of a
/// co_await into named locals first.
///
/// Failed reads: the named reads (get, counts, ...) log `outbox.read_failed` and complete with
/// an empty value (no record, zero counts, no messages), because their signatures carry no
/// error. A caller that must tell a failure apart uses read(f, token), whose completion is
/// void(std::exception_ptr, R) (use_awaitable rethrows it).
///
/// Thread-safe: every member may be called from any thread. The store outlives the adapter and
/// every pending operation.

#include "outbox/outbox.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>

#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace lanesync::outbox {

namespace detail {
/// Logs `outbox.read_failed` for a named read that threw (async.cpp).
void log_read_failure(const char* read, std::exception_ptr e) noexcept;
} // namespace detail

class async_store {
public:
    using executor_type = boost::asio::any_io_executor;

    /// `ex`: where completions run when the handler has no associated executor (normally the
    /// agent's io_context). `s` outlives the adapter.
    async_store(executor_type ex, store& s) : ex_(std::move(ex)), store_(&s) {}

    executor_type get_executor() const noexcept { return ex_; }

    /// The blocking store, for the CLI and tests only (never from an io thread).
    store& sync() noexcept { return *store_; }
    const std::string& terminal_id() const noexcept { return store_->terminal_id(); }

    // ---- writes (group-committed on the writer thread) ----------------------------------------

    template <class Token> auto publish(protocol::publish_request req, Token&& token) {
        return write<publish_outcome>(std::forward<Token>(token),
                                      [req = std::move(req)](store& s, auto done) mutable {
                                          s.publish(std::move(req), std::move(done));
                                      });
    }

    /// All of `reqs` in one transaction, or none (store::publish_batch).
    template <class Token>
    auto publish_batch(std::vector<protocol::publish_request> reqs, Token&& token) {
        return write<batch_outcome>(std::forward<Token>(token),
                                    [reqs = std::move(reqs)](store& s, auto done) mutable {
                                        s.publish_batch(std::move(reqs), std::move(done));
                                    });
    }

    /// `restore_own`: a rebuild, own-origin messages are stored as own (store::store_replicas).
    template <class Token>
    auto store_replicas(std::vector<protocol::message> msgs, protocol::hwm_map floor,
                        bool restore_own, Token&& token) {
        return write<replicas_outcome>(
            std::forward<Token>(token), [msgs = std::move(msgs), floor = std::move(floor),
                                         restore_own](store& s, auto done) mutable {
                s.store_replicas(std::move(msgs), std::move(floor), restore_own, std::move(done));
            });
    }

    /// The same with restore_own = false.
    template <class Token>
    auto store_replicas(std::vector<protocol::message> msgs, protocol::hwm_map floor,
                        Token&& token) {
        return store_replicas(std::move(msgs), std::move(floor), false, std::forward<Token>(token));
    }

    template <class Token>
    auto peer_acked(std::string peer, std::uint64_t through, std::size_t quorum, Token&& token) {
        return write<peer_ack_outcome>(
            std::forward<Token>(token),
            [peer = std::move(peer), through, quorum](store& s, auto done) mutable {
                s.peer_acked(std::move(peer), through, quorum, std::move(done));
            });
    }

    template <class Token> auto cloud_acked(std::vector<cloud_result> results, Token&& token) {
        return write<cloud_outcome>(std::forward<Token>(token),
                                    [results = std::move(results)](store& s, auto done) mutable {
                                        s.cloud_acked(std::move(results), std::move(done));
                                    });
    }

    template <class Token> auto note_attempt(std::vector<std::string> ids, Token&& token) {
        return write<count_outcome>(std::forward<Token>(token),
                                    [ids = std::move(ids)](store& s, auto done) mutable {
                                        s.note_attempt(std::move(ids), std::move(done));
                                    });
    }

    template <class Token> auto retry(std::vector<std::string> ids, Token&& token) {
        return write<count_outcome>(std::forward<Token>(token),
                                    [ids = std::move(ids)](store& s, auto done) mutable {
                                        s.retry(std::move(ids), std::move(done));
                                    });
    }

    template <class Token>
    auto prune(std::int64_t older_than_ms, std::size_t max_rows, Token&& token) {
        return write<count_outcome>(std::forward<Token>(token),
                                    [older_than_ms, max_rows](store& s, auto done) {
                                        s.prune(older_than_ms, max_rows, std::move(done));
                                    });
    }

    template <class Token>
    auto origin_cloud_through(std::string origin, std::uint64_t through, Token&& token) {
        return write<count_outcome>(
            std::forward<Token>(token),
            [origin = std::move(origin), through](store& s, auto done) mutable {
                s.origin_cloud_through(std::move(origin), through, std::move(done));
            });
    }

    template <class Token> auto begin_rebuild(std::string reason, Token&& token) {
        return write<count_outcome>(std::forward<Token>(token),
                                    [reason = std::move(reason)](store& s, auto done) mutable {
                                        s.begin_rebuild(std::move(reason), std::move(done));
                                    });
    }

    template <class Token>
    auto finish_rebuild(std::vector<std::string> excluded_terminals, Token&& token) {
        return write<count_outcome>(
            std::forward<Token>(token),
            [excluded = std::move(excluded_terminals)](store& s, auto done) mutable {
                s.finish_rebuild(std::move(excluded), std::move(done));
            });
    }

    template <class Token> auto lift_trust_cap(std::string terminal, Token&& token) {
        return write<count_outcome>(std::forward<Token>(token),
                                    [terminal = std::move(terminal)](store& s, auto done) mutable {
                                        s.lift_trust_cap(std::move(terminal), std::move(done));
                                    });
    }

    /// One catalog page in one transaction (store::apply_catalog).
    template <class Token>
    auto apply_catalog(protocol::catalog_page page, std::string source, Token&& token) {
        return write<catalog_outcome>(
            std::forward<Token>(token),
            [page = std::move(page), source = std::move(source)](store& s, auto done) mutable {
                s.apply_catalog(std::move(page), std::move(source), std::move(done));
            });
    }

    template <class Token> auto purge_catalog(std::int64_t older_than_ms, Token&& token) {
        return write<count_outcome>(std::forward<Token>(token),
                                    [older_than_ms](store& s, auto done) mutable {
                                        s.purge_catalog(older_than_ms, std::move(done));
                                    });
    }

    // ---- reads (the outbox reader thread) -----------------------------------------------------

    template <class Token> auto catalog_scopes(Token&& token) {
        return named_read<std::vector<protocol::catalog_scope_state>>(
            "catalog_scopes", std::forward<Token>(token),
            [](store& s) { return s.catalog_scopes(); });
    }

    template <class Token> auto catalog_get(std::string scope, std::string key, Token&& token) {
        return named_read<std::optional<protocol::catalog_change>>(
            "catalog_get", std::forward<Token>(token),
            [scope = std::move(scope), key = std::move(key)](store& s) {
                return s.catalog_get(scope, key);
            });
    }

    template <class Token>
    auto catalog_since(std::string scope, std::int64_t since, std::size_t limit, Token&& token) {
        return named_read<std::vector<protocol::catalog_change>>(
            "catalog_since", std::forward<Token>(token),
            [scope = std::move(scope), since, limit](store& s) {
                return s.catalog_since(scope, since, limit);
            });
    }

    template <class Token>
    auto catalog_keys_after(std::string scope, std::string after_key, std::size_t limit,
                            Token&& token) {
        return named_read<std::vector<protocol::catalog_change>>(
            "catalog_keys_after", std::forward<Token>(token),
            [scope = std::move(scope), after_key = std::move(after_key), limit](store& s) {
                return s.catalog_keys_after(scope, after_key, limit);
            });
    }

    template <class Token> auto get(std::string id, Token&& token) {
        return named_read<std::optional<record>>(
            "get", std::forward<Token>(token),
            [id = std::move(id)](store& s) { return s.get(id); });
    }

    /// The state of each id's copy as get() would pick it (nullopt: not held), no data read.
    template <class Token> auto states(std::vector<std::string> ids, Token&& token) {
        return named_read<std::vector<std::optional<state>>>(
            "states", std::forward<Token>(token),
            [ids = std::move(ids)](store& s) { return s.states(ids); });
    }

    template <class Token> auto counts(Token&& token) {
        return named_read<outbox::counts>("counts", std::forward<Token>(token),
                                          [](store& s) { return s.get_counts(); });
    }

    template <class Token> auto hwm(Token&& token) {
        return named_read<protocol::hwm_map>("hwm", std::forward<Token>(token),
                                             [](store& s) { return s.hwm(); });
    }

    /// Every origin's hwm with the id at each mark, from one read transaction.
    template <class Token> auto tips(Token&& token) {
        return named_read<outbox::tips>("tips", std::forward<Token>(token), [](store& s) {
            outbox::tips t;
            t.hwm = s.hwm();
            t.ids = s.ids_at(t.hwm);
            return t;
        });
    }

    /// The ids held at these marks.
    template <class Token> auto ids_at(protocol::hwm_map at, Token&& token) {
        return named_read<protocol::tip_ids>(
            "ids_at", std::forward<Token>(token),
            [at = std::move(at)](store& s) { return s.ids_at(at); });
    }

    /// This lane's own hwm and the id of its own message at `seq`.
    template <class Token> auto own_mark(std::uint64_t seq, Token&& token) {
        return named_read<outbox::own_mark>("own_mark", std::forward<Token>(token),
                                            [seq](store& s) {
                                                const auto& own = s.terminal_id();
                                                outbox::own_mark m;
                                                auto h = s.hwm();
                                                m.hwm = h.count(own) ? h.at(own) : 0;
                                                auto ids = s.ids_at({{own, seq}});
                                                if (ids.count(own))
                                                    m.id = ids.at(own);
                                                return m;
                                            });
    }

    template <class Token> auto cloud_through(Token&& token) {
        return named_read<protocol::hwm_map>("cloud_through", std::forward<Token>(token),
                                             [](store& s) { return s.cloud_through(); });
    }

    /// `include_peer_origin`: serving a rebuilding peer, its own origin is sent too.
    template <class Token>
    auto next_for_peer(std::string peer, protocol::hwm_map after, std::size_t limit,
                       std::size_t max_bytes, bool include_peer_origin, Token&& token) {
        return named_read<store::peer_batch>(
            "next_for_peer", std::forward<Token>(token),
            [peer = std::move(peer), after = std::move(after), limit, max_bytes,
             include_peer_origin](store& s) {
                return s.next_for_peer(peer, after, limit, max_bytes, include_peer_origin);
            });
    }

    /// The same with include_peer_origin = false.
    template <class Token>
    auto next_for_peer(std::string peer, protocol::hwm_map after, std::size_t limit,
                       std::size_t max_bytes, Token&& token) {
        return next_for_peer(std::move(peer), std::move(after), limit, max_bytes, false,
                             std::forward<Token>(token));
    }

    template <class Token>
    auto next_replicas_for_cloud(std::vector<std::string> origins, std::size_t limit,
                                 Token&& token) {
        return named_read<std::vector<record>>("next_replicas_for_cloud",
                                               std::forward<Token>(token),
                                               [origins = std::move(origins), limit](store& s) {
                                                   return s.next_replicas_for_cloud(origins, limit);
                                               });
    }

    template <class Token> auto origin_summaries(Token&& token) {
        return named_read<std::vector<origin_summary>>(
            "origin_summaries", std::forward<Token>(token),
            [](store& s) { return s.origin_summaries(); });
    }

    template <class Token> auto incarnation(Token&& token) {
        return named_read<std::string>("incarnation", std::forward<Token>(token),
                                       [](store& s) { return s.incarnation(); });
    }

    template <class Token> auto get_rebuild_state(Token&& token) {
        return named_read<rebuild_state>("get_rebuild_state", std::forward<Token>(token),
                                         [](store& s) { return s.get_rebuild_state(); });
    }

    template <class Token>
    auto next_for_cloud(std::size_t limit, bool include_pending, Token&& token) {
        return named_read<std::vector<record>>("next_for_cloud", std::forward<Token>(token),
                                               [limit, include_pending](store& s) {
                                                   return s.next_for_cloud(limit, include_pending);
                                               });
    }

    template <class Token> auto list(state st, std::size_t limit, Token&& token) {
        return named_read<std::vector<record>>("list", std::forward<Token>(token),
                                               [st, limit](store& s) { return s.list(st, limit); });
    }

    template <class Token> auto peer_marks(Token&& token) {
        return named_read<std::vector<peer_mark>>("peer_marks", std::forward<Token>(token),
                                                  [](store& s) { return s.peer_marks(); });
    }

    /// The store's health snapshot; never waits on the write lock nor behind queued reads.
    template <class Token> auto health(Token&& token) {
        return boost::asio::async_initiate<Token, void(outbox::health)>(
            [this](auto handler) {
                auto done = completion<outbox::health>(std::move(handler));
                done(store_->health());
            },
            token);
    }

    /// Runs `f(store&)` on the reader thread (it may call any of the store's reads, several in
    /// a row) and completes with void(std::exception_ptr, R): null and f's result, or what f
    /// threw and a default-constructed R. `f` must be copyable; R default-constructible.
    template <class F, class Token> auto read(F f, Token&& token) {
        using R = std::decay_t<std::invoke_result_t<F&, store&>>;
        return boost::asio::async_initiate<Token, void(std::exception_ptr, R)>(
            [this](auto handler, F fn) {
                auto done = completion<std::exception_ptr, R>(std::move(handler));
                store_->post_read([s = store_, fn = std::move(fn), done]() mutable {
                    std::exception_ptr e;
                    R out{};
                    try {
                        out = fn(*s);
                    } catch (...) {
                        e = std::current_exception();
                    }
                    done(std::move(e), std::move(out));
                });
            },
            token, std::move(f));
    }

private:
    /// A pending operation: the handler and the work it counts on both executors. complete()
    /// posts the handler (with the results) to its associated executor; called exactly once.
    template <class Handler> struct pending {
        using handler_executor = boost::asio::associated_executor_t<Handler, executor_type>;

        pending(Handler h, const executor_type& ex)
            : handler(std::move(h)), io_work(ex),
              handler_work(boost::asio::get_associated_executor(handler, ex)) {}

        template <class... Args> void complete(Args... args) {
            auto ex = handler_work.get_executor();
            // The work guards travel with the handler and are released after it ran.
            boost::asio::post(
                ex, [h = std::move(handler), args = std::make_tuple(std::move(args)...),
                     io = std::move(io_work), hw = std::move(handler_work)]() mutable {
                    std::apply([&](auto&... a) { std::move(h)(std::move(a)...); }, args);
                });
        }

        Handler handler;
        boost::asio::executor_work_guard<executor_type> io_work;
        boost::asio::executor_work_guard<handler_executor> handler_work;
    };

    /// A copyable callable (fits std::function) that completes `handler` with its arguments.
    template <class... Args, class Handler> auto completion(Handler&& handler) {
        auto p =
            std::make_shared<pending<std::decay_t<Handler>>>(std::forward<Handler>(handler), ex_);
        return [p](Args... args) { p->complete(std::move(args)...); };
    }

    template <class Out, class Token, class Start> auto write(Token&& token, Start start) {
        return boost::asio::async_initiate<Token, void(Out)>(
            [this](auto handler, Start st) {
                std::function<void(Out)> done = completion<Out>(std::move(handler));
                st(*store_, std::move(done));
            },
            token, std::move(start));
    }

    template <class R, class Token, class F> auto named_read(const char* name, Token&& token, F f) {
        return boost::asio::async_initiate<Token, void(R)>(
            [this, name](auto handler, F fn) {
                auto done = completion<R>(std::move(handler));
                store_->post_read([s = store_, name, fn = std::move(fn), done]() mutable {
                    R out{};
                    try {
                        out = fn(*s);
                    } catch (...) {
                        detail::log_read_failure(name, std::current_exception());
                        out = R{};
                    }
                    done(std::move(out));
                });
            },
            token, std::move(f));
    }

    executor_type ex_;
    store* store_;
};

} // namespace lanesync::outbox
