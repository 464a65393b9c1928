#include "lanrelay/base/machine_cookie.hpp"

#include <spdlog/spdlog.h>

#include <sys/random.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <optional>
#include <string>

namespace lanrelay {

std::uint64_t random_u64() {
  std::uint64_t value = 0;
  auto* out = reinterpret_cast<char*>(&value);
  std::size_t filled = 0;
  while (filled < sizeof value) {
    const ssize_t n = ::getrandom(out + filled, sizeof value - filled, 0);
    if (n > 0) {
      filled += static_cast<std::size_t>(n);
    }
  }
  return value;
}

namespace {

std::optional<std::uint64_t> read_cookie(const std::filesystem::path& file) {
  std::ifstream in(file);
  std::string text;
  if (in >> text && text.size() == 16 &&
      text.find_first_not_of("0123456789abcdef") == std::string::npos) {
    return std::stoull(text, nullptr, 16);
  }
  return std::nullopt;
}

}  // namespace

std::uint64_t machine_cookie(const std::filesystem::path& state_dir) {
  const auto file = state_dir / "cookie";
  if (const auto existing = read_cookie(file)) {
    return *existing;
  }
  const std::uint64_t cookie = random_u64();
  std::error_code ec;
  std::filesystem::create_directories(state_dir, ec);
  const auto temp = file.string() + ".tmp." + std::to_string(::getpid());
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(cookie));
  {
    std::ofstream out(temp, std::ios::trunc);
    out << text << "\n";
  }
  // A hard link publishes the file only if nobody else did first; then theirs wins.
  std::filesystem::create_hard_link(temp, file, ec);
  std::error_code ignored;
  std::filesystem::remove(temp, ignored);
  if (ec) {
    if (const auto theirs = read_cookie(file)) {
      return *theirs;
    }
    spdlog::warn("event=machine_cookie_not_saved file={} error=\"{}\"", file.string(), ec.message());
  }
  return cookie;
}

}  // namespace lanrelay
