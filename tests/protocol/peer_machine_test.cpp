// Unit tests for protocol/peer_machine.hpp: every rule a peer session enforces, without
// sockets. A "wire" helper plays the other lane by hand (frames built with encode() and macs
// with peer_mac()), or connects two machines to each other. The machine is a v2 lane; the
// hand-played lanes here speak v1 (a v1 frame script against a v2 lane), the v2 rules are in
// peer_machine_v2_test.cpp.

#include "peer_machine_util.hpp"

TEST_SUITE("peer_machine") {

    // ---- authentication: order and roles -----------------------------------------------------

    TEST_CASE("two machines authenticate each other and exchange ready frames") {
        peer_machine c(config("L2"), peer_role::client);
        peer_machine s(config("L1"), peer_role::server);
        hwm_map c_hwm{{"L2", 3}}, s_hwm{{"L1", 7}};
        // Runs every action of one side against the other until both are quiet.
        std::vector<std::pair<peer_machine*, peer_actions>> work{{&c, c.start()}};
        int joins = 0;
        while (!work.empty()) {
            auto [from, out] = std::move(work.back());
            work.pop_back();
            peer_machine* to = from == &c ? &s : &c;
            for (auto& a : out) {
                if (auto* f = std::get_if<send_frame>(&a))
                    work.push_back({to, to->on_text(f->text)});
                else if (std::holds_alternative<join_hub>(a))
                    ++joins, work.push_back({from, from->on_join("")});
                else if (std::holds_alternative<read_hwm>(a))
                    work.push_back({from, from->on_hwm(from == &c ? c_hwm : s_hwm)});
                else
                    CHECK_FALSE(std::holds_alternative<close_link>(a));
            }
        }
        CHECK(joins == 2);
        CHECK(c.authenticated());
        CHECK(s.authenticated());
        CHECK(c.peer_id() == "L1");
        CHECK(s.peer_id() == "L2");
        CHECK(c.cursor() == hwm_map{}); // L1's own origin is skipped
        CHECK(s.cursor() == hwm_map{}); // and L2's
        CHECK_FALSE(c.closing());
        CHECK_FALSE(s.closing());
    }

    TEST_CASE("the client sends hello first and nothing else until the challenge") {
        client_side c;
        auto h = c.start();
        CHECK(h.version == 1);
        CHECK(h.store == store);
        CHECK(h.terminal == "L2");
        CHECK(h.nonce.size() == 64);
        CHECK(c.m.start().empty()); // once only
        CHECK_FALSE(c.m.authenticated());
    }

    TEST_CASE("the server sends nothing before hello, and refuses data before authentication") {
        peer_machine s(config("L1"), peer_role::server);
        CHECK(s.start().empty());
        auto c = closed(s.on_text(encode(ready_frame{})));
        CHECK(c.code == close_code::policy_violation);
        CHECK(c.reason == "expected a hello frame");
        CHECK(c.cause == close_cause::wrong_frame);
        CHECK(c.refusal);
        CHECK_FALSE(c.auth_failure);
        CHECK(s.closing());
        CHECK(s.on_text(encode(hello_frame{1, store, "PY", nonce_peer})).empty()); // closed
    }

    TEST_CASE("the server wants auth after its challenge, the client a challenge then ready") {
        server_side s;
        s.hello();
        CHECK(closed(s.m.on_text(encode(hello_frame{1, store, "PY", nonce_peer}))).reason ==
              "expected an auth frame");

        client_side c;
        c.start();
        CHECK(closed(c.m.on_text(encode(ready_frame{}))).reason == "expected a challenge frame");

        client_side c2;
        c2.start();
        sent_one<auth_frame>(c2.m.on_text(encode(c2.challenge())));
        CHECK(closed(c2.m.on_text(encode(auth_frame{std::string(64, 'a')}))).reason ==
              "expected a ready frame");
        CHECK_FALSE(c2.m.authenticated());
    }

    TEST_CASE("the server's challenge carries its role-bound proof") {
        server_side s;
        auto ch = s.hello();
        CHECK(ch.terminal == "L1");
        CHECK(ch.store == store);
        CHECK(ch.version == 1);
        CHECK(ch.mac ==
              peer_mac(secret, peer_role::server, store, "PY", "L1", nonce_peer, ch.nonce));
        CHECK(ch.nonce != nonce_peer);
    }

    // ---- identity: version, store, own id ----------------------------------------------------

    TEST_CASE("an unsupported protocol version is refused by either role") {
        server_side s;
        auto out = s.m.on_text(encode(hello_frame{99, store, "PY", nonce_peer}));
        auto c = closed(out);
        CHECK(c.code == close_code::policy_violation);
        CHECK(c.reason == "unsupported protocol version 99 (this lane speaks 1-2)");
        CHECK(c.cause == close_cause::identity);
        CHECK(c.auth_failure); // counted on the server
        CHECK(all<send_frame>(out).empty());

        client_side cl;
        cl.start();
        auto cc = closed(cl.m.on_text(encode(cl.challenge(secret, 2))));
        CHECK(cc.reason == "unsupported protocol version 2 (this lane speaks 1)");
        CHECK_FALSE(cc.auth_failure); // not counted on the client (as before)
    }

    TEST_CASE("a peer of another store is refused by either role") {
        server_side s;
        auto c = closed(s.m.on_text(encode(hello_frame{1, "store-x", "PY", nonce_peer})));
        CHECK(c.reason == "store mismatch: peer is in store store-x, this lane in store-t");
        client_side cl;
        cl.start();
        CHECK(closed(cl.m.on_text(encode(cl.challenge(secret, 1, "store-x")))).reason ==
              "store mismatch: peer is in store store-x, this lane in store-t");
    }

    TEST_CASE("a peer claiming this lane's own id is refused by either role") {
        server_side s;
        auto c = closed(s.m.on_text(encode(hello_frame{1, store, "L1", nonce_peer})));
        CHECK(c.reason == "duplicate terminal id: L1 is this lane's own id");
        client_side cl;
        cl.start();
        CHECK(closed(cl.m.on_text(encode(cl.challenge(secret, 1, store, "L2")))).reason ==
              "duplicate terminal id: L2 is this lane's own id");
    }

    // ---- macs: wrong secret both directions, replay, reflection ------------------------------

    TEST_CASE("wrong secret: the server refuses a client mac made with another secret") {
        server_side s;
        s.hello();
        auto c = closed(s.m.on_text(encode(auth_frame{s.client_mac("another-secret-456789")})));
        CHECK(c.code == close_code::policy_violation);
        CHECK(c.reason == "authentication failed");
        CHECK(c.cause == close_cause::wrong_secret);
        CHECK(c.auth_failure);
        CHECK(s.m.peer_id().empty());
        CHECK(s.m.claimed_id() == "PY");
        CHECK_FALSE(s.m.authenticated());
    }

    TEST_CASE("wrong secret: the client refuses a server that does not know PEER_SECRET") {
        client_side c;
        c.start();
        auto out = c.m.on_text(encode(c.challenge("another-secret-456789")));
        auto cl = closed(out);
        CHECK(cl.reason == "authentication failed: peer does not know PEER_SECRET");
        CHECK(cl.cause == close_cause::wrong_secret);
        CHECK(cl.auth_failure);
        CHECK(all<send_frame>(out).empty()); // no auth frame: our mac is never shown
        CHECK(c.m.peer_id().empty());
    }

    TEST_CASE("replay: an auth frame recorded from another session is refused") {
        server_side first;
        first.hello();
        auto recorded = first.client_mac();
        first.m.on_text(encode(auth_frame{recorded}));
        CHECK(first.m.peer_id() == "PY");

        server_side second; // a fresh server nonce
        second.hello();
        CHECK(second.nonce_s != first.nonce_s);
        CHECK(closed(second.m.on_text(encode(auth_frame{recorded}))).reason ==
              "authentication failed");
    }

    TEST_CASE("reflection: the server's own mac sent back as auth is refused") {
        server_side s;
        auto ch = s.hello();
        CHECK(closed(s.m.on_text(encode(auth_frame{ch.mac}))).cause == close_cause::wrong_secret);
    }

    TEST_CASE("a hub refusal (duplicate terminal id) closes with its reason") {
        server_side s;
        s.hello();
        s.m.on_text(encode(auth_frame{s.client_mac()}));
        auto c = closed(s.m.on_join("duplicate terminal id: PY is already connected"));
        CHECK(c.code == close_code::policy_violation);
        CHECK(c.reason == "duplicate terminal id: PY is already connected");
        CHECK(c.cause == close_cause::hub_refused);
        CHECK(c.auth_failure);
        CHECK_FALSE(s.m.authenticated());
    }

    TEST_CASE("authentication timeout aborts before joining, and is ignored after") {
        server_side s;
        s.hello();
        auto out = s.m.on_auth_timeout();
        CHECK(only<abort_link>(out).reason == "authentication timed out");
        CHECK(s.m.closing());

        server_side t;
        t.open();
        CHECK(t.m.on_auth_timeout().empty());
        CHECK_FALSE(t.m.closing());
    }

    // ---- ready ------------------------------------------------------------------------------

    TEST_CASE("a second ready frame is refused, in either role") {
        server_side s;
        s.open();
        s.ready({});
        auto c = closed(s.m.on_text(encode(ready_frame{})));
        CHECK(c.reason == "malformed frame: second ready frame");
        CHECK(c.cause == close_cause::malformed);

        client_side cl;
        cl.open();
        CHECK(closed(cl.m.on_text(encode(ready_frame{}))).reason ==
              "malformed frame: second ready frame");
    }

    TEST_CASE("handshake frames in the data phase are malformed") {
        for (int which = 0; which < 3; ++which) {
            server_side s;
            s.open();
            s.ready({});
            std::string text =
                which == 0 ? encode(hello_frame{1, store, "PY", nonce_peer})
                : which == 1
                    ? encode(challenge_frame{1, store, "PY", nonce_peer, std::string(64, 'a')})
                    : encode(auth_frame{std::string(64, 'a')});
            const char* what[] = {"hello", "challenge", "auth"};
            auto c = closed(s.m.on_text(text));
            CHECK(c.reason == std::string("malformed frame: unexpected ") + what[which]);
            CHECK(c.cause == close_cause::malformed);
        }
    }

    TEST_CASE("ready sets the cursor from the peer's hwm, skipping the peer's own origin") {
        server_side s;
        s.open({{"L1", 5}});
        s.m.on_sender(true);
        auto out = s.ready({{"PY", 9}, {"L3", 4}, {"L1", 2}}, {{"L1", 5}});
        CHECK(only<peer_acked>(out).through == 2);
        auto r = only<read_next_batch>(out);
        CHECK(r.peer == "PY");
        CHECK(r.after == hwm_map{{"L3", 4}, {"L1", 2}});
    }

    TEST_CASE("the peer acks with hwm 0 of ours on ready (last ack time is recorded)") {
        server_side s;
        s.open();
        auto out = s.ready({});
        CHECK(only<peer_acked>(out).through == 0);
        CHECK_FALSE(has<read_next_batch>(out)); // not the sender
    }

    // ---- outbox lost ------------------------------------------------------------------------

    TEST_CASE("outbox lost: a peer holding more of our origin than we do starts a rebuild") {
        server_side s;
        s.open({{"L1", 5}});
        s.m.on_sender(true);
        auto out = s.ready({{"L1", 30}}, {{"L1", 5}});
        auto c = closed(out);
        CHECK(c.code == close_code::going_away);
        CHECK(c.reason == "rebuilding: peer holds seq 30 of L1 but this lane only 5");
        CHECK(c.cause == close_cause::outbox_lost);
        CHECK(c.refusal);
        CHECK(c.log == std::vector<std::pair<std::string, std::string>>{{"peer_holds_seq", "30"},
                                                                        {"local_seq", "5"}});
        CHECK_FALSE(has<peer_acked>(out)); // no false peer_ack
        CHECK_FALSE(has<read_next_batch>(out));
    }

    TEST_CASE("outbox lost, client role: our ready goes out first, then the refusal") {
        client_side c;
        auto out = c.open({{"L2", 7}}, {{"L2", 0}});
        REQUIRE(out.size() == 2);
        CHECK(std::holds_alternative<send_frame>(out[0]));
        CHECK(closed(out).reason == "rebuilding: peer holds seq 7 of L2 but this lane only 0");
    }

    TEST_CASE("a peer holding exactly what we hold is fine") {
        client_side c;
        auto out = c.open({{"L2", 7}}, {{"L2", 7}});
        CHECK_FALSE(has<close_link>(out));
        CHECK(only<peer_acked>(out).through == 7);
    }

    // ---- receiver: order, window, gaps, duplicates, id conflicts ------------------------------

    TEST_CASE("batches are stored in order and acked after the commit, in order") {
        server_side s;
        s.open();
        s.ready({});
        auto out = s.m.on_text(encode(batch_frame{1, {msg("PY", 1)}, {}}));
        auto st = only<store_batch>(out);
        CHECK(st.n == 1);
        CHECK(st.messages.size() == 1);
        CHECK(all<send_frame>(out).empty()); // no ack before the commit
        CHECK(s.m.commits_pending() == 1);
        out = s.m.on_stored(1, stored_outcome{true, "", false, "", 1, {{"PY", 1}}});
        auto ack = sent_one<ack_frame>(out);
        CHECK(ack.n == 1);
        CHECK(ack.hwm == hwm_map{{"PY", 1}});
        CHECK(s.m.commits_pending() == 0);
    }

    TEST_CASE("a batch out of order is refused") {
        server_side s;
        s.open();
        s.ready({});
        auto c = closed(s.m.on_text(encode(batch_frame{2, {msg("PY", 1)}, {}})));
        CHECK(c.code == close_code::policy_violation);
        CHECK(c.reason == "malformed frame: batch 2 out of order");
        CHECK(c.cause == close_cause::malformed);
    }

    TEST_CASE("the receiver's window: a fifth uncommitted batch is refused") {
        server_side s;
        s.open();
        s.ready({});
        for (std::uint64_t n = 1; n <= 4; ++n)
            CHECK(has<store_batch>(s.m.on_text(encode(batch_frame{n, {msg("PY", n)}, {}}))));
        auto c = closed(s.m.on_text(encode(batch_frame{5, {msg("PY", 5)}, {}})));
        CHECK(c.reason == "malformed frame: in-flight window exceeded");
    }

    TEST_CASE("the receiver's window frees up as commits complete") {
        server_side s;
        s.open();
        s.ready({});
        for (std::uint64_t n = 1; n <= 4; ++n)
            s.m.on_text(encode(batch_frame{n, {msg("PY", n)}, {}}));
        s.m.on_stored(1, stored_outcome{true, "", false, "", 1, {{"PY", 1}}});
        CHECK(has<store_batch>(s.m.on_text(encode(batch_frame{5, {msg("PY", 5)}, {}}))));
    }

    TEST_CASE("a batch that leaves a gap is refused as malformed") {
        server_side s;
        s.open();
        s.ready({});
        s.m.on_text(encode(batch_frame{1, {msg("PY", 5)}, {}}));
        stored_outcome o;
        o.gap = true;
        o.error = "PY:5 after hwm 0";
        auto c = closed(s.m.on_stored(1, o));
        CHECK(c.code == close_code::policy_violation);
        CHECK(c.reason == "malformed frame: batch leaves a gap: PY:5 after hwm 0");
        CHECK(c.refusal);
    }

    TEST_CASE("duplicates are acknowledged and ignored") {
        server_side s;
        s.open({{"PY", 1}});
        s.ready({});
        s.m.on_text(encode(batch_frame{1, {msg("PY", 1)}, {}}));
        auto out = s.m.on_stored(1, stored_outcome{true, "", false, "", 0, {{"PY", 1}}});
        CHECK(sent_one<ack_frame>(out).hwm == hwm_map{{"PY", 1}});
        CHECK_FALSE(has<close_link>(out));
    }

    TEST_CASE("an id conflict closes with its own reason, not as malformed") {
        server_side s;
        s.open();
        s.ready({});
        s.m.on_text(encode(batch_frame{1, {msg("PY", 1)}, {}}));
        stored_outcome o;
        o.conflict = "message id X of PY:1 is already held as L3:2";
        auto out = s.m.on_stored(1, o);
        auto c = closed(out);
        CHECK(c.code == close_code::policy_violation);
        CHECK(c.reason == "id conflict: message id X of PY:1 is already held as L3:2");
        CHECK(c.cause == close_cause::id_conflict);
        CHECK_FALSE(c.refusal);
        CHECK(all<send_frame>(out).empty()); // no ack
    }

    TEST_CASE("a storage failure closes with 1011") {
        server_side s;
        s.open();
        s.ready({});
        s.m.on_text(encode(batch_frame{1, {msg("PY", 1)}, {}}));
        stored_outcome o;
        o.error = "disk I/O error";
        auto c = closed(s.m.on_stored(1, o));
        CHECK(c.code == close_code::internal_error);
        CHECK(c.reason == "storage failure on receiver");
        CHECK(c.cause == close_cause::storage_failure);
        CHECK(c.log ==
              std::vector<std::pair<std::string, std::string>>{{"error", "disk I/O error"}});
    }

    TEST_CASE("a commit that completes after the close sends nothing") {
        server_side s;
        s.open();
        s.ready({});
        s.m.on_text(encode(batch_frame{1, {msg("PY", 1)}, {}}));
        s.m.on_close_request(close_code::going_away, "lane shutting down");
        CHECK(s.m.on_stored(1, stored_outcome{true, "", false, "", 1, {{"PY", 1}}}).empty());
    }

    // ---- sender: window, cursor, acks, back-pressure -----------------------------------------

    TEST_CASE("the sender fills the window, then waits for acks") {
        server_side s;
        s.open({{"L1", 100}});
        s.m.on_sender(true);
        auto out = s.ready({}, {{"L1", 100}});
        for (std::uint64_t n = 1; n <= 4; ++n) {
            auto r = only<read_next_batch>(out);
            CHECK(r.after == (n == 1 ? hwm_map{} : hwm_map{{"L1", (n - 1) * 10}}));
            std::vector<message> ms;
            for (std::uint64_t q = (n - 1) * 10 + 1; q <= n * 10; ++q)
                ms.push_back(msg("L1", q));
            out = s.m.on_next_batch(ms, {});
            auto b = sent_one<batch_frame>(out);
            CHECK(b.n == n);
            CHECK(all<send_frame>(out)[0].batch);
        }
        CHECK(s.m.in_flight() == 4);
        CHECK_FALSE(has<read_next_batch>(out)); // window full
        out = s.m.on_text(encode(ack_frame{1, {{"L1", 10}}}));
        CHECK(only<peer_acked>(out).through == 10);
        CHECK(only<read_next_batch>(out).after == hwm_map{{"L1", 40}});
        CHECK(s.m.in_flight() == 3);
    }

    TEST_CASE("an empty read stops the pump until the next wake") {
        server_side s;
        s.open();
        s.m.on_sender(true);
        auto out = s.ready({});
        REQUIRE(has<read_next_batch>(out));
        CHECK(s.m.on_next_batch({}, {}).empty());
        CHECK(has<read_next_batch>(s.m.on_wake()));
    }

    TEST_CASE("a wake during a read reads again even when the answer is empty") {
        server_side s;
        s.open();
        s.m.on_sender(true);
        REQUIRE(has<read_next_batch>(s.ready({})));
        CHECK(s.m.on_wake().empty()); // one read at a time
        CHECK(has<read_next_batch>(s.m.on_next_batch({}, {})));
    }

    TEST_CASE("only the sender reads; becoming the sender starts the pump") {
        server_side s;
        s.open();
        CHECK_FALSE(has<read_next_batch>(s.ready({})));
        CHECK(s.m.on_wake().empty());
        CHECK(has<read_next_batch>(s.m.on_sender(true)));
    }

    TEST_CASE("the sender does not read before the peer's ready passed its check") {
        server_side s;
        s.open();
        CHECK(s.m.on_sender(true).empty());
        CHECK(s.m.on_wake().empty());
    }

    TEST_CASE("floors raise the cursor below the first message sent") {
        server_side s;
        s.open();
        s.m.on_sender(true);
        s.ready({});
        s.m.on_next_batch({msg("L3", 51)}, {{"L3", 51}});
        s.m.on_text(encode(ack_frame{1, {}}));
        CHECK(s.m.cursor().at("L3") == 51);
    }

    TEST_CASE("acks raise the cursor, but never for the peer's own origin") {
        server_side s;
        s.open();
        s.m.on_sender(true);
        s.ready({});
        s.m.on_next_batch({msg("L3", 1)}, {});
        auto out = s.m.on_text(encode(ack_frame{1, {{"L3", 9}, {"PY", 50}}}));
        CHECK_FALSE(has<peer_acked>(out)); // the ack says nothing of L1's own messages
        CHECK(s.m.cursor().at("L3") == 9);
        CHECK(s.m.cursor().count("PY") == 0);
    }

    TEST_CASE("ack mismatch: an ack without a batch in flight or out of order is refused") {
        server_side s;
        s.open();
        s.ready({});
        auto c = closed(s.m.on_text(encode(ack_frame{1, {}})));
        CHECK(c.reason == "malformed frame: ack 1 does not match a batch");

        server_side t;
        t.open();
        t.m.on_sender(true);
        t.ready({});
        t.m.on_next_batch({msg("L1", 1)}, {});
        CHECK(closed(t.m.on_text(encode(ack_frame{2, {}}))).reason ==
              "malformed frame: ack 2 does not match a batch");
    }

    TEST_CASE("back-pressure: a full write queue pauses reads, a drained one resumes them") {
        server_side s;
        s.open();
        s.m.on_sender(true);
        s.ready({});
        CHECK(s.m.on_write_queue(true).empty());
        s.m.on_next_batch({msg("L1", 1)}, {}); // the read that was out still sends
        CHECK(s.m.in_flight() == 1);
        CHECK(s.m.on_wake().empty());
        CHECK(has<read_next_batch>(s.m.on_write_queue(false)));
    }

    // ---- framing and closing -------------------------------------------------------------------

    TEST_CASE("not JSON closes with 1007, a bad field and a binary frame with 1008") {
        peer_machine a(config("L1"), peer_role::server);
        auto c = closed(a.on_text("{not json"));
        CHECK(c.code == close_code::invalid_payload);
        CHECK(c.reason == "malformed frame: frame is not valid JSON");
        CHECK(c.cause == close_cause::malformed);

        peer_machine b(config("L1"), peer_role::server);
        CHECK(closed(b.on_text(R"({"type":"nope"})")).code == close_code::policy_violation);

        peer_machine d(config("L1"), peer_role::server);
        auto bin = closed(d.on_binary());
        CHECK(bin.code == close_code::policy_violation);
        CHECK(bin.reason == "malformed frame: binary frames are not part of the protocol");
    }

    TEST_CASE("a requested close is not a refusal, and only the first close counts") {
        server_side s;
        s.open();
        auto c = closed(s.m.on_close_request(close_code::going_away, "lane shutting down"));
        CHECK(c.code == close_code::going_away);
        CHECK_FALSE(c.refusal);
        CHECK(c.cause == close_cause::requested);
        CHECK(s.m.on_close_request(close_code::going_away, "again").empty());
        CHECK(s.m.on_text(encode(ready_frame{})).empty());
    }

    TEST_CASE("decode errors use the named codes") {
        CHECK(close_code::invalid_payload == 1007);
        CHECK(close_code::policy_violation == 1008);
        CHECK(close_code::internal_error == 1011);
        CHECK(close_code::going_away == 1001);
        auto r = decode_frame("[]", frame_limits{});
        CHECK(std::get<decode_error>(r).close_code == close_code::policy_violation);
    }

} // TEST_SUITE
