#pragma once

#include <cstdint>
#include <filesystem>

namespace lanrelay {

// A random 64-bit cookie for the daemon of this machine, kept in <state_dir>/cookie so that it
// survives restarts: a responder ignores queries carrying its own cookie. Created on first use; when the file cannot be read or written a fresh random cookie is
// returned (and logged), which only means our own queries are not recognised.
std::uint64_t machine_cookie(const std::filesystem::path& state_dir);

// A random 64-bit value from the operating system's CSPRNG (transaction ids, cookies).
std::uint64_t random_u64();

}  // namespace lanrelay
