// lanesync_loadgen --jetstream: the same schedules and payload as the HTTP driver, published to
// a JetStream stream through libnats (the C client) with asynchronous publish and an ack
// handler. Built only when CMake finds libnats.
//
// Each message carries its intended send time in a header; the ack handler (on a libnats
// thread) measures from it. Open loop: message j is due at t0 + j / rate, the publishing thread
// sleeps until then and never waits for acks, so a late publish still counts from its intended
// time. Closed loop: a semaphore keeps K publishes in flight; the clock starts once a slot is
// free, as it does for the HTTP driver.
#include "bench/loadgen.hpp"

#include <nats/nats.h>

#include <charconv>
#include <memory>
#include <mutex>
#include <optional>
#include <semaphore>
#include <stdexcept>
#include <string>
#include <thread>

namespace lanesync::bench {

namespace {

constexpr const char* intended_header = "Loadgen-Intended-Ns";
/// Most publishes a closed loop can keep in flight (the semaphore's bound).
constexpr std::ptrdiff_t max_inflight = 1 << 20;

/// What the ack handler shares with the publishing thread.
struct acks {
    std::mutex mu;
    recorder rec;
    std::size_t answered = 0;
    std::optional<std::counting_semaphore<max_inflight>> slots; ///< closed loop only
};

void check(natsStatus s, const std::string& what) {
    if (s == NATS_OK)
        return;
    natsStatus last = NATS_OK;
    const char* detail = nats_GetLastError(&last);
    throw std::runtime_error(what + ": " + natsStatus_GetText(s) +
                             (detail && *detail ? std::string(" (") + detail + ")" : ""));
}

/// The libnats handles of one run, released in reverse order.
struct handles {
    natsOptions* opts = nullptr;
    natsConnection* nc = nullptr;
    jsCtx* js = nullptr;
    ~handles() {
        jsCtx_Destroy(js);
        natsConnection_Destroy(nc);
        natsOptions_Destroy(opts);
        nats_Close();
    }
};

std::string ack_error(const jsPubAckErr* pae) {
    if (!pae)
        return "no ack";
    if (pae->ErrCode != 0)
        return "js " + std::to_string(static_cast<int>(pae->ErrCode));
    return natsStatus_GetText(pae->Err);
}

/// jsPubAckHandler: one answer from the stream (on a libnats thread). We own `msg`.
void on_ack(jsCtx*, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae, void* closure) {
    auto& a = *static_cast<acks*>(closure);
    auto now = clock_type::now();
    const char* v = nullptr;
    std::int64_t ns = 0;
    if (natsMsgHeader_Get(msg, intended_header, &v) == NATS_OK && v)
        std::from_chars(v, v + std::char_traits<char>::length(v), ns);
    {
        std::lock_guard lk(a.mu);
        a.rec.finished_at(now);
        ++a.answered;
        if (pa)
            a.rec.ok(now - clock_type::time_point(std::chrono::nanoseconds(ns)), 1);
        else
            a.rec.error(ack_error(pae), 1);
    }
    if (a.slots)
        a.slots->release();
    natsMsg_Destroy(msg);
}

/// Creates the stream (file storage, `js_replicas`) unless it exists. A cluster that has just
/// started may still be electing its meta leader: retried for up to 20 s.
void ensure_stream(jsCtx* js, const options& o) {
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    const char* subjects[] = {o.js_subject.c_str()};
    sc.Name = o.js_stream.c_str();
    sc.Subjects = subjects;
    sc.SubjectsLen = 1;
    sc.Storage = js_FileStorage;
    sc.Replicas = o.js_replicas;
    auto deadline = clock_type::now() + std::chrono::seconds(20);
    for (;;) {
        jsStreamInfo* si = nullptr;
        jsErrCode jerr = static_cast<jsErrCode>(0);
        natsStatus s = js_AddStream(&si, js, &sc, nullptr, &jerr);
        jsStreamInfo_Destroy(si);
        if (s == NATS_OK || jerr == JSStreamNameExistErr)
            return;
        if (clock_type::now() > deadline)
            check(s, "creating stream " + o.js_stream);
        std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
}

std::string message_body(const options& o, std::size_t i) {
    return R"({"topic":"transaction","data":)" + sale_json(i, o.payload) + "}";
}

/// Publishes message `j` asynchronously, stamped with `intended`; a refused publish is
/// recorded at once.
void publish(handles& h, acks& a, const options& o, std::size_t j,
             clock_type::time_point intended) {
    auto body = message_body(o, j);
    natsMsg* m = nullptr;
    check(natsMsg_Create(&m, o.js_subject.c_str(), nullptr, body.data(),
                         static_cast<int>(body.size())),
          "natsMsg_Create");
    auto stamp = std::to_string(intended.time_since_epoch().count());
    natsMsgHeader_Set(m, intended_header, stamp.c_str());
    natsStatus s = js_PublishMsgAsync(h.js, &m, nullptr);
    if (s == NATS_OK)
        return;
    natsMsg_Destroy(m); // still ours when the publish failed
    std::lock_guard lk(a.mu);
    ++a.answered;
    a.rec.error(natsStatus_GetText(s), 1);
    if (a.slots)
        a.slots->release();
}

void connect(handles& h, acks& a, const options& o, bool open) {
    check(natsOptions_Create(&h.opts), "natsOptions_Create");
    check(natsOptions_SetURL(h.opts, o.jetstream.c_str()), "natsOptions_SetURL");
    // Open loop: each publish is written at once, as each HTTP request is (latency). Closed
    // loop: the library's flusher coalesces writes (throughput), as a bulk client would.
    check(natsOptions_SetSendAsap(h.opts, open), "natsOptions_SetSendAsap");
    check(natsConnection_Connect(&h.nc, h.opts), "connecting to " + o.jetstream);
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = 10'000;
    // The closed loop bounds itself (a.slots); the library must never stall a publish.
    jo.PublishAsync.MaxPending = open ? 10'000'000 : static_cast<std::int64_t>(o.inflight) + 1;
    jo.PublishAsync.StallWait = 60'000;
    jo.PublishAsync.AckHandler = on_ack;
    jo.PublishAsync.AckHandlerClosure = &a;
    check(natsConnection_JetStream(&h.js, h.nc, &jo), "JetStream context");
}

} // namespace

nlohmann::json run_jetstream(const options& o) {
    if (o.batch > 1)
        return {{"skipped", "batch publish is a lanesync API (JetStream publishes one by one)"}};
    if (!o.wait.empty())
        return {{"skipped", "--wait is a lanesync API (a JetStream ack is its replication ack)"}};
    schedule sched = schedule::from(o);
    acks a;
    if (!sched.open)
        a.slots.emplace(static_cast<std::ptrdiff_t>(o.inflight));
    handles h;
    connect(h, a, o, sched.open);
    ensure_stream(h.js, o);
    // One synchronous publish first, not counted: the stream and its leader are ready.
    auto first = message_body(o, 0);
    jsPubAck* pa = nullptr;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    check(js_Publish(&pa, h.js, o.js_subject.c_str(), first.data(), static_cast<int>(first.size()),
                     nullptr, &jerr),
          "first publish to " + o.js_stream);
    jsPubAck_Destroy(pa);

    auto t0 = clock_type::now() + std::chrono::milliseconds(1);
    for (std::size_t j = 0; j < sched.requests; ++j) {
        if (a.slots)
            a.slots->acquire();
        auto intended = sched.open ? sched.intended(t0, j) : clock_type::now();
        if (sched.open)
            std::this_thread::sleep_until(intended);
        publish(h, a, o, j, intended);
    }
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = 60'000;
    js_PublishAsyncComplete(h.js, &po); // a timeout leaves the rest counted as "no ack" below
    std::lock_guard lk(a.mu);
    if (a.answered < sched.requests)
        a.rec.error("no ack", sched.requests - a.answered);
    return a.rec.summary(t0);
}

} // namespace lanesync::bench
