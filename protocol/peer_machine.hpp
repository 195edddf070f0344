#pragma once
/// The peer protocol's rules as a pure state machine (docs/protocol.md; STYLE habit 13): it
/// takes decoded frames and local events and returns actions. No Asio, no SQLite, no clock,
/// no logging: lanes/peer_session.cpp moves the bytes, calls the outbox and the hub, and
/// feeds their answers back here.
///
/// Life of a session:
///   client: start() sends hello (the offered version) -> challenge (checked) -> auth ->
///           ready (join, read hwm, send our ready, check the peer's) -> data phase
///   server: hello (checked; served in the version it offers when we speak it) -> challenge ->
///           auth (checked; join, read hwm, send ready) -> the peer's ready (read hwm, check)
///           -> data phase
/// Protocol v2 (docs/protocol.md): ready and ack marks name the tip id they confirm. The
/// peer's mark of our own origin is trusted only when our own message at that seq has that
/// id (read_own_mark, at the peer's ready and on every ack); otherwise (or when the mark is
/// above our hwm, in v1 too) our outbox lost messages the peer holds: the session closes 1001
/// "rebuilding: ..." and the lane rebuilds; nothing is promoted. Lane rebuild
/// (peer_machine_rebuild.cpp): a rebuilding lane's ready says so, it reports the peer's mark
/// of its origin (own_reported) and restores what the peer sends of it (store_batch.restore);
/// a peer serving it checks its replica at the rebuilding lane's mark (read_origin_mark) and
/// then sends that origin too. A lane left out of our rebuild (trust_caps) is refused above
/// its cap as "incarnation mismatch". News (v2, data phase): sent on request (on_news),
/// delivered after the peer's ready passed (news_received).
/// Data phase, both roles at once: a sender (cursor per origin, at most `window` batches in
/// flight, one outbox read at a time, paused while the write queue is full) and a receiver
/// (batches in order, at most `window` commits pending, an ack per stored batch, in order).
///
/// Thread contract: none of its own; one session drives it from one strand.

#include "protocol/close_code.hpp"
#include "protocol/frames.hpp"
#include "protocol/version.hpp"

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace lanesync::protocol {

struct peer_machine_config {
    std::string store_id;
    std::string terminal_id; ///< this lane's id
    std::string secret;      ///< PEER_SECRET
    int version = 2;         ///< highest version spoken: tuning::peer_protocol_version
    int min_version = 1;     ///< lowest version served: tuning::peer_protocol_min_version
    int offer_version = 0;   ///< client: the version to offer (0: `version`); the link's choice
    std::size_t window = 4;  ///< tuning::peer_inflight_batches, both directions
    std::size_t batch_max_messages = 256;
    std::size_t batch_max_bytes = 4u << 20;
    std::size_t nonce_bytes = 32;
    frame_limits limits;
    /// This lane is rebuilding its own origin from its peers (outbox meta.rebuild_reason set):
    /// the ready says `rebuild: true` and the rules of "Rebuilding side" apply (v2 only).
    bool rebuilding = false;
    /// This lane's incarnation (outbox meta.incarnation), sent as the ready's `inc` in v2.
    std::string incarnation;
    /// terminal -> trust cap: that lane was excluded from this lane's rebuild when the own
    /// hwm was the cap, so its marks of our origin above the cap are never trusted.
    std::map<std::string, std::uint64_t> trust_caps;
};

/// What a close is about, so the session logs and counts it the way it always did.
enum class close_cause {
    malformed,            ///< bad frame, wrong frame in the data phase, order, window, gap
    wrong_frame,          ///< a valid frame the handshake did not expect at this point
    identity,             ///< version, store or own id refused
    wrong_secret,         ///< a mac did not verify
    hub_refused,          ///< the hub refused to join (duplicate terminal id)
    outbox_lost,          ///< the peer holds more of our own origin than we do: rebuild
    incarnation_mismatch, ///< the peer holds other messages of an origin than that origin
    id_conflict,          ///< the receiver's outbox found the same id with other content
    storage_failure,      ///< the receiver's outbox could not commit
    requested,            ///< the lane asked (shutdown)
};

// ---- actions (what the session must do, in order) -------------------------------------------

/// Write one text frame. `batch`: a batch frame (counted in the per-peer status).
struct send_frame {
    std::string text;
    bool batch = false;
};
/// Commit a received batch in one transaction; answer with on_stored(n, ...).
struct store_batch {
    std::uint64_t n = 0;
    std::vector<message> messages;
    hwm_map floor;
    /// This lane is rebuilding: messages of its own origin are stored as own (restored).
    bool restore = false;
};
/// Read this lane's hwm map (v2: and the tip id at each mark); answer with on_hwm().
struct read_hwm {
    bool ids = false;
};
/// v2, after a commit: read the ids of the messages held at these marks (this lane's tips) for
/// the ack of batch `n`; answer with on_ack_ids(n, ...).
struct read_tip_ids {
    std::uint64_t n = 0;
    hwm_map at;
};
/// v2: read this lane's own hwm and the id of its own message at `seq`, to check the peer's
/// mark of our origin; answer with on_own_mark(seq, ...).
struct read_own_mark {
    std::uint64_t seq = 0;
};
/// Read what the peer lacks above `after`; answer with on_next_batch().
struct read_next_batch {
    std::string peer;
    hwm_map after;
    std::size_t limit = 0;
    std::size_t max_bytes = 0;
    /// Serving a rebuild: the peer's own origin too (from its cursor in `after`).
    bool include_peer_origin = false;
};
/// The peer confirmed holding this lane's own messages 1..through.
struct peer_acked {
    std::string peer;
    std::uint64_t through = 0;
};
/// The peer is authenticated: register with the hub; answer with on_join().
struct join_hub {
    std::string peer;
};
/// Close with a close frame (after the frames already queued). `refusal`: the session logs
/// it as peer.refused and makes `reason` the session's end reason. `log` holds extra fields
/// for the cause's own log line (outbox_lost: the two seqs).
struct close_link {
    std::uint16_t code = close_code::policy_violation;
    std::string reason;
    close_cause cause = close_cause::malformed;
    bool refusal = true;
    bool auth_failure = false; ///< counted in lanesync_peer_auth_failures_total
    std::vector<std::pair<std::string, std::string>> log;
};
/// Rebuilding side, once per session at the peer's ready: what the peer holds of our origin
/// (its mark {seq, id}; seq 0 and no id when it holds nothing), for protocol::rebuild_progress.
struct own_reported {
    std::string peer;
    std::uint64_t seq = 0;
    std::string id;
};
/// Serving a rebuild: read our replica's id of `origin` (the rebuilding peer) at `seq`; answer
/// with on_origin_mark(origin, seq, id), id empty when not held.
struct read_origin_mark {
    std::string origin;
    std::uint64_t seq = 0;
};
/// The peer's news, after its ready was checked. `cloud` never holds our own origin:
/// `own_cloud_through` is the peer's cloud[our id] capped at the peer's last verified mark of
/// our origin (0 when none), the only part of it this lane may apply.
struct news_received {
    std::string peer;
    std::map<std::string, std::uint64_t> seen;
    hwm_map cloud;
    std::vector<std::string> cover;
    std::vector<std::string> holds; ///< as sent (empty when the peer sent none)
    std::uint64_t own_cloud_through = 0;
    /// Rebuilding only: the peer's cloud[our id] uncapped. The cloud holds our origin's 1..N
    /// (of the incarnation that was lost, too), so the rebuild must not hand those seqs out
    /// again: the lane raises its own hwm to it (an own floor). 0 otherwise.
    std::uint64_t own_cloud_floor = 0;
};
/// A lane left out of our rebuild proved it holds our origin's new history: its ready mark was
/// at or below its trust cap (checked) and it has since acked past the cap with our own ids.
/// The cap goes (outbox lift_trust_cap), so its next sessions are trusted as any peer's.
struct lift_trust_cap {
    std::string peer;
    std::uint64_t seq = 0; ///< the verified mark above the cap
};
/// v3: the peer's catalog_have (the pages of ours it acked are in `have.acked`).
struct catalog_have_received {
    std::string peer;
    catalog_have_frame have;
};
/// v3: a catalog page from the peer, in order. The lane decides it (protocol/catalog_sync.hpp
/// accept_page), applies or ignores it, then answers on_catalog_done(n) and sends its have.
struct catalog_page_received {
    std::string peer;
    catalog_frame page;
};
/// Drop the connection without a close frame (authentication timed out).
struct abort_link {
    std::string reason;
};

using peer_action =
    std::variant<send_frame, store_batch, read_hwm, read_tip_ids, read_own_mark, read_next_batch,
                 peer_acked, join_hub, close_link, abort_link, own_reported, read_origin_mark,
                 news_received, lift_trust_cap, catalog_have_received, catalog_page_received>;
using peer_actions = std::vector<peer_action>;

/// The outcome of a store_batch, in protocol terms (lanes/ converts the outbox's).
struct stored_outcome {
    bool ok = false;
    std::string conflict; ///< set when the same id is held with other content
    bool gap = false;     ///< the batch would leave a gap
    std::string error;
    std::size_t inserted = 0;
    hwm_map hwm; ///< everything held after the commit (sent in the ack)
};

class peer_machine {
public:
    peer_machine(peer_machine_config cfg, peer_role role);

    /// The session is open: the client sends hello, the server waits.
    peer_actions start();

    /// One text WebSocket message from the peer (decoded here with the configured limits).
    peer_actions on_text(std::string_view text);
    /// One binary WebSocket message (never part of the protocol).
    peer_actions on_binary();
    /// One decoded frame.
    peer_actions on_frame(frame f);

    /// Answers to the actions above.
    peer_actions on_join(const std::string& refusal);
    peer_actions on_hwm(hwm_map own, tip_ids ids = {});
    peer_actions on_ack_ids(std::uint64_t n, tip_ids ids);
    /// `id`: our own message at `seq`, empty when not held (never handed out, or pruned).
    peer_actions on_own_mark(std::uint64_t seq, std::uint64_t own_hwm, const std::string& id);
    /// Serving a rebuild: our replica's id of `origin` at `seq`, empty when not held.
    peer_actions on_origin_mark(const std::string& origin, std::uint64_t seq,
                                const std::string& id);
    peer_actions on_next_batch(std::vector<message> messages, hwm_map floor);
    peer_actions on_stored(std::uint64_t n, stored_outcome o);

    /// Local events.
    peer_actions on_auth_timeout();
    peer_actions on_wake();
    peer_actions on_sender(bool on);
    /// The write queue is full (true) or has room again (false): back-pressure on the sender.
    peer_actions on_write_queue(bool full);
    /// Send this news (v2 only): a news frame once our ready went out. Before that the latest
    /// news given is kept and sent right after our ready; in a v1 session nothing, ever.
    peer_actions on_news(news n);
    /// v3 only (nothing in a v1/v2 session, ever): send our catalog_have with these scopes; its
    /// `acked` is set here (on_catalog_done). Before our ready the latest is kept and sent
    /// right after it.
    peer_actions on_catalog_have(std::vector<catalog_have_entry> scopes);
    /// v3 only, after our ready (the peer's have, which pages answer, is delivered only then):
    /// send this catalog page (numbered by the catalog_sender).
    peer_actions on_catalog_send(const catalog_frame& f);
    /// The lane applied or ignored the peer's catalog page `n`: it counts for our next have's
    /// `acked` (the highest n with every page up to it done).
    void on_catalog_done(std::uint64_t n);
    /// The lane wants the link closed (shutdown).
    peer_actions on_close_request(std::uint16_t code, std::string reason);

    peer_role role() const { return role_; }
    /// The version this session speaks (offered by the client, served by the server).
    int version() const { return version_; }
    /// Joined the hub (the session counts as authenticated from here).
    bool authenticated() const { return joined_; }
    /// A close or abort was requested: the session stops feeding frames and drains.
    bool closing() const { return closing_; }
    /// The peer's terminal id once its mac verified; empty before.
    const std::string& peer_id() const { return peer_id_; }
    /// The id the peer claimed (hello or challenge), verified or not; for logs.
    const std::string& claimed_id() const { return claimed_id_; }
    std::size_t in_flight() const { return inflight_; }
    std::size_t commits_pending() const { return commits_pending_; }
    const hwm_map& cursor() const { return cursor_; }
    /// The peer's `inc` from its ready (for status); empty before it or when it sent none.
    const std::string& incarnation_of_peer() const { return peer_inc_; }
    /// The peer's ready said `rebuild: true` and passed: this session serves its rebuild.
    bool serving_rebuild() const { return serving_rebuild_; }

private:
    enum class stage { idle, hello_sent, challenge_sent, auth_sent, joining, open };

    bool v2() const { return version_ >= 2; }
    bool v3() const { return version_ >= 3; }
    peer_actions on_catalog_frame(frame& f);
    void flush_catalog_have(peer_actions& out);
    void deliver_catalog_have(peer_actions& out);
    std::string check_identity(int version, const std::string& store,
                               const std::string& terminal) const;
    std::string check_marks_form(bool frame_v2, const hwm_map& marks) const;
    std::string check_ready_form(const ready_frame& r) const;
    void send_ready(const hwm_map& own, tip_ids ids, peer_actions& out);
    peer_actions on_handshake_frame(frame& f);
    peer_actions on_data_frame(frame& f);
    peer_actions on_challenge(challenge_frame& ch);
    peer_actions on_hello(hello_frame& h);
    peer_actions on_auth(auth_frame& a);
    peer_actions on_ready(ready_frame& r);
    peer_actions on_batch(batch_frame& b);
    peer_actions on_ack(ack_frame& a);
    peer_actions on_news_frame(news_frame& n);
    void check_peer_ready(const hwm_map& own, peer_actions& out);
    void check_own_origin(const ready_frame& peer, const hwm_map& own, peer_actions& out);
    bool serve_rebuild(ready_frame& peer, const hwm_map& own, peer_actions& out);
    void check_rebuilding_ready(std::uint64_t peer_holds, std::uint64_t we_hold, std::string id,
                                peer_actions& out);
    bool over_trust_cap(std::uint64_t seq, peer_actions& out);
    /// A verified mark of our origin: lifts the peer's trust cap once it is above it.
    void maybe_lift_cap(std::uint64_t seq, peer_actions& out);
    void refuse_mismatch(std::string why, std::vector<std::pair<std::string, std::string>> log,
                         peer_actions& out);
    void deliver_news(peer_actions& out);
    void ready_passed(peer_actions& out);
    void check_own_mark(std::uint64_t seq, std::string id, bool at_ready, peer_actions& out);
    void refuse_outbox_lost(std::string why, std::uint64_t peer_holds, std::uint64_t we_hold,
                            std::vector<std::pair<std::string, std::string>> ids,
                            peer_actions& out);
    void pump(peer_actions& out);

    peer_actions refuse(std::uint16_t code, std::string why, close_cause cause,
                        bool auth_failure = false);
    void close(close_link c, peer_actions& out);

    peer_machine_config cfg_;
    peer_role role_;
    stage stage_ = stage::idle;
    bool joined_ = false;
    bool closing_ = false;
    std::string peer_id_;
    std::string nonce_c_, nonce_s_;
    std::string claimed_id_;
    int version_ = 0; ///< negotiated: offered (client) or served (server)
    std::string peer_inc_;

    // own hwm reads: one at a time; its answer serves whatever waits for it
    bool hwm_reading_ = false;
    bool ready_to_send_ = false;            ///< joined: our ready frame waits for the hwm
    std::optional<ready_frame> peer_ready_; ///< the peer's ready waits for the hwm
    bool got_ready_ = false;                ///< the peer's ready frame arrived
    bool ready_checked_ = false;            ///< ... and passed the outbox-lost check
    bool ready_sent_ = false;               ///< our ready frame went out
    std::optional<news> news_out_;          ///< news waiting for our ready
    std::optional<news_frame> news_in_;     ///< the peer's news waiting for its ready's check

    // the peer's ready between its checks (serving a rebuild: the origin mark first)
    ready_frame checking_;
    hwm_map checking_own_;
    bool serving_rebuild_ = false;
    bool origin_checking_ = false; ///< a read_origin_mark is out

    // sender side
    bool sender_ = false;
    bool queue_full_ = false;
    bool reading_ = false; ///< a read_next_batch is out
    bool rewake_ = false;  ///< woken while reading: read again even after an empty answer
    hwm_map cursor_;       ///< per origin: highest seq the peer has or is in flight
    std::size_t inflight_ = 0;
    std::uint64_t next_batch_out_ = 1;
    std::uint64_t next_ack_in_ = 1;

    // v2: the peer's marks of our own origin waiting for read_own_mark, in order
    struct own_mark_check {
        std::uint64_t seq = 0;
        std::string id;
        bool at_ready = false;
    };
    std::deque<own_mark_check> checks_;
    bool cap_cleared_ = false;      ///< the peer's ready mark was at or below its trust cap
    bool cap_lifted_ = false;       ///< ... and lift_trust_cap went out (once)
    std::uint64_t trusted_seq_ = 0; ///< the highest mark of ours found true so far
    std::string trusted_id_;

    // v3 catalog frames
    std::optional<std::vector<catalog_have_entry>> have_out_; ///< waits for our ready
    std::optional<catalog_have_frame> have_in_;               ///< the peer's, ditto
    std::uint64_t next_catalog_in_ = 1;
    std::map<std::uint64_t, std::string> catalog_pending_; ///< pages given to the lane: n -> scope
    std::uint64_t catalog_acked_ = 0;

    // receiver side
    std::deque<std::pair<std::uint64_t, hwm_map>> acks_waiting_; ///< v2: acks waiting for ids
    std::uint64_t next_batch_in_ = 1;
    std::size_t commits_pending_ = 0;
};

} // namespace lanesync::protocol
