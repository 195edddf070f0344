// Unit tests for protocol/takeover.hpp: liveness from own sessions and peers' news.seen, and
// the takeover rule every lane computes the same way.

#include "protocol/takeover.hpp"

#include <doctest/doctest.h>

using namespace lanesync::protocol;

namespace {

constexpr std::int64_t start = 1'000'000;
constexpr std::int64_t T = 300'000; // CLOUD_TAKEOVER_AFTER_S = 300

using ages_t = std::map<std::string, std::uint64_t>;

} // namespace

TEST_SUITE("takeover") {

    TEST_CASE("liveness: known lanes start at the start, sessions and reports move forward") {
        liveness l("L1", start);
        l.add_known("L2");
        l.add_known("L1"); // self is never known
        CHECK(l.known() == std::vector<std::string>{"L2"});
        CHECK(l.last_seen("L2") == start);
        CHECK_FALSE(l.last_seen("L1").has_value());
        CHECK_FALSE(l.last_seen("L9").has_value());
        l.connected("L3", start + 10);
        CHECK(l.last_seen("L3") == start + 10);
        l.report({{"L2", 500}, {"L1", 0}, {"L4", 100}}, start + 1000);
        CHECK(l.last_seen("L2") == start + 500);
        CHECK(l.last_seen("L4") == start + 900);
        CHECK_FALSE(l.last_seen("L1").has_value());
        l.report({{"L2", 900}}, start + 1000); // older news never moves it back
        CHECK(l.last_seen("L2") == start + 500);
        l.add_known("L2"); // nor does add_known
        CHECK(l.last_seen("L2") == start + 500);
        CHECK(l.known() == std::vector<std::string>{"L2", "L3", "L4"});
        CHECK(l.ages(start + 2000) == ages_t{{"L2", 1500}, {"L3", 1990}, {"L4", 1100}});
        CHECK(l.ages(start) == ages_t{{"L2", 0}, {"L3", 0}, {"L4", 0}}); // never negative
        l.report({{"L5", std::uint64_t{1} << 62}}, start); // older than the epoch: seen at 0
        CHECK(l.last_seen("L5") == 0);
    }

    TEST_CASE("holders_of: self when it holds, and every peer whose holds name the origin") {
        const holdings peers{{"L4", {"L1", "L2"}}, {"L3", {"L2"}}, {"L0", {}}};
        CHECK(holders_of("L1", "L2", true, peers) == std::vector<std::string>{"L2", "L4"});
        CHECK(holders_of("L2", "L5", false, peers) == std::vector<std::string>{"L3", "L4"});
        CHECK(holders_of("L9", "L5", false, peers).empty());
        CHECK(holders_of("L9", "L5", true, {}) == std::vector<std::string>{"L5"});
    }

    TEST_CASE("an origin seen within T is alive: nobody takes over") {
        liveness l("L2", start);
        l.add_known("L1");
        l.add_known("L3");
        const std::vector<std::string> holders{"L2", "L3"};
        CHECK(taker(l, "L1", holders, start + T - 1, T).empty()); // known since the start
        l.connected("L1", start + T);
        CHECK(taker(l, "L1", holders, start + 2 * T - 1, T).empty());
        CHECK(origins_to_cover(l, {"L1"}, {{"L3", {"L1"}}}, start + 2 * T - 1, T).empty());
        CHECK(taker(l, "L1", holders, start + 2 * T, T) == "L2"); // silent for T now
    }

    TEST_CASE("cut off from one peer only: the others' news keep it alive, no takeover") {
        // L2 lost its link to L1; L3 still talks to L1 and tells L2 in its news.
        liveness l("L2", start);
        l.add_known("L1");
        l.connected("L3", start);
        for (std::int64_t now = start; now <= start + 3 * T; now += 2000) {
            l.connected("L3", now);
            l.report({{"L1", 0}, {"L2", 0}}, now); // L3: connected to L1 now
            CHECK(taker(l, "L1", {"L2", "L3"}, now, T).empty());
        }
        CHECK(l.ages(start + 3 * T).at("L1") == 0);
    }

    TEST_CASE("all silent for T: two holders agree on the lowest, self counts") {
        liveness l2("L2", start), l3("L3", start);
        for (auto* l : {&l2, &l3})
            l->add_known("L1");
        const std::int64_t now = start + T + 5000;
        // L2 and L3 see each other and both hold L1; neither saw L1 for T.
        l2.connected("L3", now);
        l3.connected("L2", now);
        const holdings from_l3{{"L3", {"L1"}}}, from_l2{{"L2", {"L1"}}};
        CHECK(taker(l2, "L1", holders_of("L1", "L2", true, from_l3), now, T) == "L2");
        CHECK(taker(l3, "L1", holders_of("L1", "L3", true, from_l2), now, T) == "L2");
        CHECK(origins_to_cover(l2, {"L1", "L3"}, from_l3, now, T) ==
              std::vector<std::string>{"L1"});
        CHECK(origins_to_cover(l3, {"L1", "L2"}, from_l2, now, T).empty());
        // Exactly T is silent enough; a hair less is not.
        CHECK(taker(l2, "L1", {"L2", "L3"}, start + T, T) == "L2");
        CHECK(taker(l2, "L1", {"L2", "L3"}, start + T - 1, T).empty());
    }

    TEST_CASE("a lower lane that holds nothing of the origin is not the taker") {
        const std::int64_t now = start + 2 * T;
        // L2 (fresh, holds nothing of L1) and L3 (holds L1) see each other; L1 is silent.
        liveness l2("L2", start), l3("L3", start);
        l2.connected("L3", now);
        l3.connected("L2", now);
        l2.add_known("L1");
        l3.add_known("L1");
        const holdings l2_hears{{"L3", {"L1"}}}, l3_hears{{"L2", {}}};
        CHECK(taker(l3, "L1", holders_of("L1", "L3", true, l3_hears), now, T) == "L3");
        CHECK(taker(l2, "L1", holders_of("L1", "L2", false, l2_hears), now, T) == "L3");
        CHECK(origins_to_cover(l3, {"L1"}, l3_hears, now, T) == std::vector<std::string>{"L1"});
        // L2 holds nothing of L1: it is never its taker, whatever it hears.
        CHECK(origins_to_cover(l2, {}, l2_hears, now, T).empty());
        // Once L2 holds L1 too (it says so in its news), the lowest holder is L2 again.
        CHECK(origins_to_cover(l3, {"L1"}, {{"L2", {"L1"}}}, now, T).empty());
    }

    TEST_CASE("a holder silent for T is not the taker; self counts without being seen") {
        liveness l("L3", start);
        l.add_known("L1");
        l.add_known("L2");
        const std::int64_t now = start + 2 * T;
        const holdings l2_holds{{"L2", {"L1"}}};
        CHECK(taker(l, "L1", holders_of("L1", "L3", true, l2_holds), now, T) == "L3");
        CHECK(origins_to_cover(l, {"L2", "L1", "L1"}, l2_holds, now, T) ==
              std::vector<std::string>{"L1", "L2"});
        l.report({{"L2", 1000}}, now); // someone heard L2 a second ago
        CHECK(taker(l, "L1", holders_of("L1", "L3", true, l2_holds), now, T) == "L2");
        CHECK(origins_to_cover(l, {"L1", "L2"}, l2_holds, now, T).empty());
    }

    TEST_CASE("self not holding: never self; no live holder: nobody") {
        liveness l("L1", start);
        const std::int64_t now = start + 2 * T;
        l.add_known("L7");
        l.add_known("L5"); // silent since the start
        CHECK(taker(l, "L7", {}, now, T).empty());
        CHECK(taker(l, "L7", {"L5"}, now, T).empty());
        l.connected("L8", now);
        CHECK(taker(l, "L7", {"L8"}, now, T) == "L8"); // a higher live holder, not self
        CHECK(taker(l, "L7", {"L1", "L8"}, now, T) == "L1");
        // A holder this liveness never heard of counts as seen at the start.
        l.connected("L9", start - T); // last seen long before the start
        CHECK(taker(l, "L9", {"L6"}, start + T - 1, T) == "L6");
        CHECK(taker(l, "L9", {"L6"}, start + T, T).empty());
    }

    TEST_CASE("never for ourselves, and an unknown origin counts as seen at the start") {
        liveness l("L1", start);
        CHECK(taker(l, "L1", {"L1", "L2"}, start + 10 * T, T).empty());
        CHECK(origins_to_cover(l, {"L1"}, {}, start + 10 * T, T).empty());
        CHECK(taker(l, "L7", {"L1"}, start + T - 1, T).empty());
        CHECK(taker(l, "L7", {"L1"}, start + T, T) == "L1");
    }

    TEST_CASE("byte order decides, the origin is never its own taker") {
        liveness l("L2", start);
        const std::int64_t now = start + 2 * T;
        l.connected("A9", now);
        l.connected("B1", now);
        l.add_known("A0");
        CHECK(taker(l, "A0", {"L2", "B1", "A9"}, now, T) == "A9"); // in any order
        CHECK(taker(l, "A0", {"A0", "L2"}, now, T) == "L2");
        CHECK(taker(l, "B1", {"A9", "L2"}, now, T).empty()); // alive
    }

} // TEST_SUITE
