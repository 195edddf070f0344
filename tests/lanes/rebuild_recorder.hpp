#pragma once
// Test support for the rebuild controller tests (rebuild_test.cpp, rebuild_cloud_test.cpp): a
// recorder of what the controller asks of the world, whose outbox writes complete when told.
#include "lanes/rebuild.hpp"

#include <doctest/doctest.h>

#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace lanesync::rebuild_testing {

inline const std::string url2 = "ws://127.0.0.1:9002/v1/peer";
inline const std::string url3 = "ws://127.0.0.1:9003/v1/peer";
inline const std::string inc_a = std::string(32, 'a');
inline const std::string inc_b = std::string(32, 'b');

/// Records what the controller asks of the world; the outbox writes complete when told.
struct recorder {
    std::vector<std::string> begun;
    std::vector<std::vector<std::string>> finishes;
    std::vector<std::string> closes;
    std::function<void(std::string, outbox::rebuild_state)> finish_done;
    bool begin_fails = false;          ///< begin_rebuild's commit fails (a full disk)
    std::vector<std::uint64_t> floors; ///< raise_floor calls
    std::function<void(std::string, std::uint64_t)> floor_done;

    lanes::rebuild_effects effects() {
        lanes::rebuild_effects fx;
        fx.begin = [this](std::string reason, std::function<void(std::string)> done) {
            begun.push_back(reason);
            done(begin_fails ? "disk I/O error" : "");
        };
        fx.finish = [this](std::vector<std::string> excluded,
                           std::function<void(std::string, outbox::rebuild_state)> done) {
            finishes.push_back(std::move(excluded));
            finish_done = std::move(done);
        };
        fx.close_sessions = [this](std::string reason) { closes.push_back(std::move(reason)); };
        fx.raise_floor = [this](std::uint64_t through,
                                std::function<void(std::string, std::uint64_t)> done) {
            floors.push_back(through);
            floor_done = std::move(done);
        };
        return fx;
    }

    /// The raise_floor commit ended: `error` empty = the own hwm is now the floor.
    void commit_floor(std::string error = {}) {
        REQUIRE(floor_done);
        auto done = std::move(floor_done);
        floor_done = nullptr;
        done(error, error.empty() ? floors.back() : 0);
    }

    /// The outbox committed finish_rebuild: a new incarnation, the trust caps given.
    void commit_finish(std::map<std::string, std::uint64_t> caps = {}) {
        REQUIRE(finish_done);
        outbox::rebuild_state st;
        st.incarnation = inc_b;
        st.excluded = std::move(caps);
        auto done = std::move(finish_done);
        finish_done = nullptr;
        done({}, st);
    }
};

inline outbox::rebuild_state normal_state() {
    outbox::rebuild_state st;
    st.incarnation = inc_a;
    return st;
}

/// Calls admit() and reports what it answered: nullopt = not yet, then go (true) or 503.
struct admission {
    std::optional<std::optional<lanes::rebuild_view>> answer;
    void ask(lanes::rebuild_controller& c) {
        c.admit([this](std::optional<lanes::rebuild_view> v) { answer = std::move(v); });
    }
    bool answered() const { return answer.has_value(); }
    bool admitted() const { return answer && !answer->has_value(); }
    bool refused() const { return answer && answer->has_value(); }
};

} // namespace lanesync::rebuild_testing
