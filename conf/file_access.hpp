#pragma once
/// Who can read an env file that holds secrets (docs/configuration.md, "File permissions").
/// The agent and `check-config` warn when others can read such a file; `init-store` writes
/// them 0600.

#include <optional>
#include <string>
#include <sys/types.h>

namespace lanesync::conf {

/// The warning for an env file at `path` with permission bits `mode` that sets a secret key
/// itself (PEER_SECRET, SUPABASE_SERVICE_KEY): readable by others (o+r) -> a warning text
/// naming the file and the fix, never a value. nullopt when fine. Pure.
std::optional<std::string> secret_file_warning(const std::string& path, mode_t mode,
                                               bool holds_secret);

/// Reads `path` (its mode and whether it sets a secret key) and applies secret_file_warning.
/// nullopt too when the file cannot be read or parsed (loading it reports that).
std::optional<std::string> check_secret_file(const std::string& path);

} // namespace lanesync::conf
