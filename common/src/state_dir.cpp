#include "lanrelay/common/state_dir.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <system_error>

namespace lanrelay {

default_state_dir_choice find_default_state_dir() {
  if (::geteuid() == 0) {
    return {"/var/lib/lanrelay", {}};
  }
  if (const char* xdg = std::getenv("XDG_STATE_HOME"); xdg != nullptr && xdg[0] == '/') {
    return {std::filesystem::path(xdg) / "lanrelay", {}};
  }
  if (const char* home = std::getenv("HOME"); home != nullptr && home[0] == '/') {
    return {std::filesystem::path(home) / ".local" / "state" / "lanrelay", {}};
  }
  // $XDG_RUNTIME_DIR is the user's own (0700, made by the login manager).
  if (const char* runtime = std::getenv("XDG_RUNTIME_DIR"); runtime != nullptr && runtime[0] == '/') {
    return {std::filesystem::path(runtime) / "lanrelay", {}};
  }
  // A shared directory: whoever creates the name first owns it.
  std::error_code ec;
  auto tmp = std::filesystem::temp_directory_path(ec);
  if (ec) {
    tmp = "/tmp";
  }
  const auto dir = tmp / ("lanrelay-" + std::to_string(::geteuid()));
  const std::string name = dir.string();
  const auto refuse = [&](const std::string& why) {
    return default_state_dir_choice{{}, "the state directory " + name + " " + why +
                                            ": set HOME, XDG_STATE_HOME or state.dir (or "
                                            "--state-dir) to a directory of your own"};
  };
  if (::mkdir(name.c_str(), 0700) != 0 && errno != EEXIST) {
    return refuse(std::string("cannot be created: ") + std::strerror(errno));
  }
  struct ::stat st{};
  if (::lstat(name.c_str(), &st) != 0) {
    return refuse(std::string("cannot be checked: ") + std::strerror(errno));
  }
  if (!S_ISDIR(st.st_mode)) {
    return refuse("is not a directory (a symbolic link or a file is there)");
  }
  if (st.st_uid != ::geteuid()) {
    return refuse("belongs to uid " + std::to_string(st.st_uid) + ", not to us (uid " +
                  std::to_string(::geteuid()) + ")");
  }
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return refuse(std::string("has mode ") + mode + ": others could enter it; it must be 0700");
  }
  return {dir, {}};
}

std::filesystem::path default_state_dir() {
  auto choice = find_default_state_dir();
  if (!choice.problem.empty()) {
    throw state_dir_refused(choice.problem);
  }
  return std::move(choice.dir);
}

}  // namespace lanrelay
