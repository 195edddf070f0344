#pragma once
// Helpers of the peer_machine tests (peer_machine_test.cpp: v1 scripts and the rules of both
// versions; peer_machine_v2_test.cpp: v2 marks and version negotiation). A "wire" helper plays
// the other lane by hand (frames built with encode() and macs with peer_mac()).

#include "protocol/peer_machine.hpp"

#include <doctest/doctest.h>

#include <string>
#include <variant>
#include <vector>

using namespace lanesync::protocol;

namespace {

const std::string secret = "a-shared-secret-0123";
const std::string store = "store-t";
const std::string nonce_peer = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

/// A v2 lane (speaks 1-2, offers 2).
peer_machine_config config(const std::string& me, const std::string& key = secret) {
    peer_machine_config c;
    c.store_id = store;
    c.terminal_id = me;
    c.secret = key;
    c.version = 2;
    c.min_version = 1;
    return c;
}

peer_machine_config offer_config(const std::string& me, int offer) {
    auto c = config(me);
    c.offer_version = offer;
    return c;
}

template <class A> std::vector<A> all(const peer_actions& out) {
    std::vector<A> r;
    for (const auto& a : out)
        if (auto* x = std::get_if<A>(&a))
            r.push_back(*x);
    return r;
}

template <class A> bool has(const peer_actions& out) {
    return !all<A>(out).empty();
}

template <class A> A only(const peer_actions& out) {
    auto r = all<A>(out);
    REQUIRE(r.size() == 1);
    return r[0];
}

/// The frames a list of actions sends, decoded.
std::vector<frame> frames(const peer_actions& out) {
    std::vector<frame> r;
    for (const auto& s : all<send_frame>(out)) {
        auto d = decode_frame(s.text, frame_limits{});
        REQUIRE(std::holds_alternative<frame>(d));
        r.push_back(std::get<frame>(d));
    }
    return r;
}

template <class F> F sent_one(const peer_actions& out) {
    auto fs = frames(out);
    REQUIRE(fs.size() == 1);
    REQUIRE(std::holds_alternative<F>(fs[0]));
    return std::get<F>(fs[0]);
}

close_link closed(const peer_actions& out) {
    return only<close_link>(out);
}

/// A message id: `incarnation` tells two outboxes of one lane apart (a wiped lane's new
/// messages get other ids at the same seqs).
std::string id_of(const std::string& origin, std::uint64_t seq, int incarnation = 0) {
    std::string tail = std::to_string(seq);
    std::string org = origin.size() >= 2 ? origin.substr(origin.size() - 2) : origin;
    std::string hex;
    for (char c : org)
        hex += "0123456789abcdef"[static_cast<unsigned char>(c) % 16];
    return "0190a5d3-ac96-7f4b-bc" + hex + "-" + std::to_string(incarnation % 10) +
           std::string(11 - tail.size(), '0') + tail;
}

message msg(const std::string& origin, std::uint64_t seq, int incarnation = 0) {
    message m;
    m.id = id_of(origin, seq, incarnation);
    m.origin = origin;
    m.seq = seq;
    m.topic = "transaction";
    m.data = "{}";
    m.created_at_ms = 1;
    return m;
}

/// The tip ids of a hwm map, as a lane holding the messages of msg() (incarnation 0) has them.
tip_ids tips_of(const hwm_map& h, int incarnation = 0) {
    tip_ids ids;
    for (const auto& [origin, seq] : h)
        if (seq > 0)
            ids[origin] = id_of(origin, seq, incarnation);
    return ids;
}

/// A server machine "L1" (a v2 lane: speaks 1-2) driven through a hand-played client "PY" up
/// to the data phase; the client's hello offers version 1 unless told otherwise.
struct server_side {
    peer_machine m{config("L1"), peer_role::server};
    int v = 1; ///< the version the hand-played client offers
    std::string nonce_s;

    /// hello -> challenge; returns the challenge.
    challenge_frame hello(const std::string& term = "PY", int version = 0,
                          const std::string& st = store) {
        auto out = m.on_text(encode(hello_frame{version ? version : v, st, term, nonce_peer}));
        auto ch = sent_one<challenge_frame>(out);
        nonce_s = ch.nonce;
        return ch;
    }
    std::string client_mac(const std::string& key = secret, const std::string& term = "PY") {
        return peer_mac(key, peer_role::client, store, term, "L1", nonce_peer, nonce_s);
    }
    /// Through auth, join and our ready; `own` is L1's hwm.
    void open(const hwm_map& own = {}) {
        hello();
        auto out = m.on_text(encode(auth_frame{client_mac()}));
        CHECK(only<join_hub>(out).peer == "PY");
        out = m.on_join("");
        CHECK(only<read_hwm>(out).ids == (v >= 2));
        out = m.on_hwm(own, tips_of(own));
        auto r = sent_one<ready_frame>(out);
        CHECK(r.hwm == own);
        CHECK(r.v2 == (v >= 2 && !own.empty())); // an empty map reads as either
        CHECK(m.authenticated());
    }
    /// The client's ready; answers the hwm read with `own`. Returns what followed.
    peer_actions ready(const hwm_map& peer_hwm, const hwm_map& own = {},
                       const tip_ids& peer_ids = {}) {
        auto out = m.on_text(encode(ready_frame{peer_hwm, peer_ids, v >= 2}));
        REQUIRE(has<read_hwm>(out));
        return m.on_hwm(own, tips_of(own));
    }
};

/// A client machine "L2" driven through a hand-played server "L1". By default its link offers
/// version 1 (a v2 lane whose link fell back, talking to a v1 lane).
struct client_side {
    peer_machine m;
    int v;
    explicit client_side(int offer = 1)
        : m(offer_config("L2", offer), peer_role::client), v(offer) {}
    std::string nonce_c;

    hello_frame start() {
        auto h = sent_one<hello_frame>(m.start());
        nonce_c = h.nonce;
        return h;
    }
    challenge_frame challenge(const std::string& key = secret, int version = 0,
                              const std::string& st = store, const std::string& term = "L1") {
        return challenge_frame{
            version ? version : v, st, term, nonce_peer,
            peer_mac(key, peer_role::server, store, "L2", term, nonce_c, nonce_peer)};
    }
    /// Through challenge, auth, ready, join, hwm: the data phase with the server's hwm.
    peer_actions open(const hwm_map& server_hwm = {}, const hwm_map& own = {},
                      const tip_ids& server_ids = {}) {
        start();
        auto a = sent_one<auth_frame>(m.on_text(encode(challenge())));
        CHECK(a.mac == peer_mac(secret, peer_role::client, store, "L2", "L1", nonce_c, nonce_peer));
        auto out = m.on_text(encode(ready_frame{server_hwm, server_ids, v >= 2}));
        CHECK(only<join_hub>(out).peer == "L1");
        out = m.on_join("");
        REQUIRE(has<read_hwm>(out));
        return m.on_hwm(own, tips_of(own));
    }
};

} // namespace
