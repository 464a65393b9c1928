#include "lanrelay/base/config_diagnostic.hpp"

#include "lanrelay/base/redact.hpp"

namespace lanrelay {

std::string config_diagnostic::to_string() const {
  std::string out = file;
  if (line != 0) {
    out += ":" + std::to_string(line) + ":" + std::to_string(column);
  }
  // A rejected URL is quoted back to the administrator, but its password stays in the file.
  return out + ": " + redact_urls(message);
}

}  // namespace lanrelay
