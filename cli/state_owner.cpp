#include "state_owner.hpp"

#include "command_error.hpp"

#include <spdlog/spdlog.h>

#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace lanrelay::cli {

std::optional<std::string> become_owner_of(const std::filesystem::path& dir) {
  if (::geteuid() != 0) {
    return std::nullopt;
  }
  struct ::stat st {};
  if (::stat(dir.c_str(), &st) != 0 || st.st_uid == 0) {
    return std::nullopt;
  }

  std::string name = std::to_string(st.st_uid);
  gid_t gid = st.st_gid;
  passwd entry{};
  passwd* found = nullptr;
  std::vector<char> buffer(16384);
  const bool known = ::getpwuid_r(st.st_uid, &entry, buffer.data(), buffer.size(), &found) == 0 &&
                     found != nullptr;
  if (known) {
    name = entry.pw_name;
    gid = entry.pw_gid;
  }
  const auto fail = [&](std::string_view step) {
    return command_error(fmt::format(
        "{} belongs to {}, and running as root the command writes as that user, but {} failed: "
        "{}; run it as that user instead (runuser -u {} -- lanrelay ...)",
        dir.string(), name, step, std::strerror(errno), name));
  };
  // Groups first: once the user id is gone, so is the right to change them.
  if ((known ? ::initgroups(entry.pw_name, gid) : ::setgroups(0, nullptr)) != 0) {
    throw fail("setting the groups");
  }
  if (::setgid(gid) != 0) {
    throw fail("setgid");
  }
  if (::setuid(st.st_uid) != 0) {
    throw fail("setuid");
  }
  if (::setuid(0) == 0) {
    errno = EPERM;
    throw fail("giving up root for good");
  }
  spdlog::info("event=running_as_owner user={} dir={} uid={} gid={} hint=\"so that the daemon "
               "can use what this command writes\"",
               name, dir.string(), st.st_uid, gid);
  return name;
}

}  // namespace lanrelay::cli
