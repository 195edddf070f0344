#include "conf/file_access.hpp"

#include "conf/dotenv.hpp"

#include <cstdio>
#include <fstream>
#include <sstream>
#include <sys/stat.h>

namespace lanesync::conf {

std::optional<std::string> secret_file_warning(const std::string& path, mode_t mode,
                                               bool holds_secret) {
    if (!holds_secret || (mode & S_IROTH) == 0)
        return std::nullopt;
    char octal[8];
    std::snprintf(octal, sizeof octal, "%04o", static_cast<unsigned>(mode & 07777));
    return path + ": holds secrets but is readable by others (mode " + octal + "); run chmod 600 " +
           path + " (or 640 with group lanesync)";
}

std::optional<std::string> check_secret_file(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
        return std::nullopt;
    if ((st.st_mode & S_IROTH) == 0)
        return std::nullopt; // nothing to warn about whatever it holds: skip reading it
    std::ifstream in(path, std::ios::binary);
    if (!in)
        return std::nullopt;
    std::ostringstream text;
    text << in.rdbuf();
    bool holds_secret = false;
    try {
        for (const auto& e : detail::parse_dotenv(text.str(), path))
            holds_secret = holds_secret || (detail::is_secret_key(e.key) && !e.value.empty());
    } catch (const std::exception&) {
        return std::nullopt; // load() reports the syntax problem
    }
    return secret_file_warning(path, st.st_mode, holds_secret);
}

} // namespace lanesync::conf
