#pragma once

// Files that hold a secret (proxy credentials): read only when the file is what an administrator
// who protects it would have made. The file must be
//   - a regular file, reached without following a symbolic link at its own name (O_NOFOLLOW:
//     a link planted in a writable directory cannot redirect the read),
//   - owned by the user the process runs as (the service user),
//   - mode 0600 or 0400: no group or other bits, no set-id or sticky bits.
// Anything else is refused with a message saying what is wrong and the command that fixes it.
// The checks are made on the open descriptor (fstat), so the file checked is the file read.
//
// Thread safety: plain functions, safe from any thread.

#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>

namespace lanrelay {

// The whole file, or nothing with `problem` set (what is wrong and how to fix it).
std::optional<std::string> read_secret_file(const std::filesystem::path& path,
                                            std::size_t max_bytes, std::string& problem);

}  // namespace lanrelay
