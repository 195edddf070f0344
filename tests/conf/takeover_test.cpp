// CLOUD_TAKEOVER_AFTER_S (issue 9 item 4): default, bounds, and the error text of bad values.
#include "conf_test_util.hpp"

using namespace lanesync::conf;
using namespace lanesync::conf::test;
using namespace std::chrono_literals;

TEST_CASE("CLOUD_TAKEOVER_AFTER_S defaults to 300 s") {
    CHECK(ok("TERMINAL_ID=L1\n").cfg.cloud_takeover_after == 300s);
    CHECK(config{}.cloud_takeover_after == 300s);
}

TEST_CASE("CLOUD_TAKEOVER_AFTER_S accepts 1 to 86400 seconds") {
    CHECK(good("CLOUD_TAKEOVER_AFTER_S", "1").cloud_takeover_after == 1s);
    CHECK(good("CLOUD_TAKEOVER_AFTER_S", "60").cloud_takeover_after == 60s);
    CHECK(good("CLOUD_TAKEOVER_AFTER_S", "0300").cloud_takeover_after == 300s);
    CHECK(good("CLOUD_TAKEOVER_AFTER_S", "\"120\"").cloud_takeover_after == 120s);
    CHECK(good("CLOUD_TAKEOVER_AFTER_S", "86400").cloud_takeover_after == 86400s);
}

TEST_CASE("CLOUD_TAKEOVER_AFTER_S rejects values out of range or not whole numbers") {
    CHECK(bad("CLOUD_TAKEOVER_AFTER_S", "0") ==
          "t.env:2: CLOUD_TAKEOVER_AFTER_S: 0 is too small (1..86400)");
    CHECK(bad("CLOUD_TAKEOVER_AFTER_S", "86401") ==
          "t.env:2: CLOUD_TAKEOVER_AFTER_S: 86401 is too large (1..86400)");
    CHECK(bad("CLOUD_TAKEOVER_AFTER_S", "99999999999999999999999") ==
          "t.env:2: CLOUD_TAKEOVER_AFTER_S: 99999999999999999999999 is too large (1..86400)");
    CHECK(bad("CLOUD_TAKEOVER_AFTER_S", "5m") ==
          "t.env:2: CLOUD_TAKEOVER_AFTER_S: \"5m\" is not a whole number (digits only: no sign, "
          "blanks or unit)");
    CHECK(contains(bad("CLOUD_TAKEOVER_AFTER_S", "-1"), "is not a whole number"));
    CHECK(contains(bad("CLOUD_TAKEOVER_AFTER_S", "1.5"), "is not a whole number"));
    CHECK(bad("CLOUD_TAKEOVER_AFTER_S", "") ==
          "t.env:2: CLOUD_TAKEOVER_AFTER_S: empty value; leave the line out to use the default "
          "(300)");
}

TEST_CASE("CLOUD_TAKEOVER_AFTER_S from the environment") {
    CHECK(
        ok("TERMINAL_ID=L1\n", env({{"CLOUD_TAKEOVER_AFTER_S", "45"}})).cfg.cloud_takeover_after ==
        45s);
    CHECK(contains(err("TERMINAL_ID=L1\n", env({{"CLOUD_TAKEOVER_AFTER_S", "0"}})),
                   "t.env: CLOUD_TAKEOVER_AFTER_S: 0 is too small (1..86400) (value from the "
                   "environment"));
}
