// libFuzzer target: an env file (conf/dotenv.cpp syntax, conf/config.cpp keys and rules), and
// the same bytes as a peer URL and a cloud URL. A refusal is a conf::config_error; any other
// exception or a crash is a finding.
#include "conf/config.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string text(reinterpret_cast<const char*>(data), size);
    auto no_env = [](const std::string&) -> std::optional<std::string> { return std::nullopt; };
    try {
        auto loaded = lanesync::conf::load_text(text, "fuzz.env", no_env);
        std::string why;
        (void)lanesync::conf::cloud_url_of(loaded.cfg, why);
    } catch (const lanesync::conf::config_error&) {
    }
    (void)lanesync::conf::parse_peer_url(text);
    std::string why;
    (void)lanesync::conf::parse_cloud_url(std::string_view(text), &why);
    return 0;
}
