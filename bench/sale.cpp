// What the bench programs share (declared in bench/loadgen.hpp): the sale payload every one
// sends or stores, and an outbox file's size.
#include "bench/loadgen.hpp"

#include <cstdio>
#include <filesystem>

namespace lanesync::bench {

std::string sale_json(std::size_t i, std::size_t bytes) {
    char head[512];
    std::snprintf(head, sizeof head,
                  R"({"receipt":"R-%08zu","cashier":"c-%02zu","currency":"EUR",)"
                  R"("lines":[{"sku":"4006381333931","qty":2,"price":1.99},)"
                  R"({"sku":"5000112637922","qty":1,"price":4.49},)"
                  R"({"sku":"8710398512343","qty":3,"price":0.89}],)"
                  R"("total":11.14,"tender":"card","note":")",
                  i, i % 24);
    std::string s = head;
    std::size_t tail = 2; // "}
    s.append(s.size() + tail < bytes ? bytes - s.size() - tail : 1, 'x');
    s += "\"}";
    return s;
}

std::uintmax_t outbox_file_bytes(const std::string& path) {
    std::error_code ec;
    auto main = std::filesystem::file_size(path, ec);
    if (ec)
        main = 0;
    auto wal = std::filesystem::file_size(path + "-wal", ec);
    return main + (ec ? 0 : wal);
}

} // namespace lanesync::bench
