// docs/configuration.md against the key table (conf/keys.cpp): every key is documented, in
// table order, with its default and its description; every documented key exists.
#include "conf/keys.hpp"
#include "conf_test_util.hpp"

#include <fstream>
#include <sstream>
#include <vector>

using namespace lanesync::conf;
using namespace lanesync::conf::test;

namespace {

struct doc_row {
    std::string key, default_cell, rules;
};

std::string read_doc() {
    std::ifstream in(std::string(LANESYNC_SOURCE_DIR) + "/docs/configuration.md");
    REQUIRE_MESSAGE(in, "cannot open docs/configuration.md");
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

/// The rows of the table under "## Keys": | `KEY` | default | rules |
std::vector<doc_row> key_rows(const std::string& doc) {
    auto start = doc.find("\n## Keys\n");
    REQUIRE(start != std::string::npos);
    auto end = doc.find("\n#", start + 1);
    std::istringstream lines(doc.substr(start, end - start));
    std::vector<doc_row> rows;
    for (std::string line; std::getline(lines, line);) {
        if (!line.starts_with("| `"))
            continue;
        std::vector<std::string> cells;
        std::size_t pos = 1;
        for (auto bar = line.find(" | ", pos); bar != std::string::npos;
             bar = line.find(" | ", pos)) {
            cells.push_back(line.substr(pos, bar - pos));
            pos = bar + 3;
        }
        cells.push_back(line.substr(pos, line.rfind(" |") - pos));
        REQUIRE_MESSAGE(cells.size() == 3, line);
        auto trim = [](std::string s) {
            while (!s.empty() && s.front() == ' ')
                s.erase(0, 1);
            return s;
        };
        std::string key = trim(cells[0]);
        REQUIRE(key.size() > 2);
        rows.push_back({key.substr(1, key.size() - 2), trim(cells[1]), cells[2]});
    }
    return rows;
}

} // namespace

TEST_CASE("docs/configuration.md lists every key of the table, in order, and no other") {
    auto rows = key_rows(read_doc());
    auto table = detail::key_table();
    std::vector<std::string> documented, known;
    for (const auto& r : rows)
        documented.push_back(r.key);
    for (const auto& k : table)
        known.emplace_back(k.name);
    CHECK(documented == known);
    CHECK(known == known_keys());
}

TEST_CASE("docs/configuration.md shows each key's default and description") {
    auto rows = key_rows(read_doc());
    for (const auto& r : rows) {
        CAPTURE(r.key);
        const detail::key_def* k = detail::find_key(r.key);
        REQUIRE(k);
        CHECK_MESSAGE(contains(r.rules, std::string(k->description)), r.rules);
        if (k->required()) {
            CHECK(contains(r.default_cell, "required"));
            continue;
        }
        std::string shown = k->default_text();
        if (shown.empty())
            CHECK((r.default_cell.starts_with("empty") || r.default_cell == "—"));
        else
            CHECK(r.default_cell.starts_with("`" + shown + "`"));
    }
}

TEST_CASE("docs/configuration.md names exactly the keys for which empty means not set") {
    std::string doc = read_doc();
    auto start = doc.find("### Empty values");
    REQUIRE(start != std::string::npos);
    std::string para = doc.substr(start, doc.find("\n#", start + 1) - start);
    para = para.substr(0, para.find("an empty value means"));
    for (const auto& k : detail::key_table()) {
        CAPTURE(k.name);
        CHECK(contains(para, "`" + std::string(k.name) + "`") == k.empty_means_unset);
    }
}

TEST_CASE("every shown default that is a value is accepted by its own key") {
    for (const auto& k : detail::key_table()) {
        if (k.required())
            continue;
        std::string shown = k.default_text();
        if (shown.empty() || contains(shown, "TERMINAL_")) // a rule, not a value
            continue;
        CAPTURE(k.name);
        CHECK_NOTHROW(
            load_text("TERMINAL_ID=L1\n" + std::string(k.name) + "=" + shown + "\n", src, env()));
    }
}
