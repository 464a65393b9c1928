// Fuzzes the ActiveUpdate index parser: any bytes give an index or a positioned error, never a
// crash. Whatever parses must serialise back to the same bytes, name only safe relative paths
// (and safe signature paths), and survive a [Server] rewrite that re-parses to the same files.

#include "lanrelay/content/activeupdate_index.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

namespace au = lanrelay::activeupdate;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const auto parsed = au::parse(text);
  if (!parsed) {
    if (parsed.error().message.empty()) {
      std::abort();
    }
    return 0;
  }
  const auto& doc = *parsed;
  if (au::serialize(doc) != text) {
    std::abort();
  }
  for (const auto& f : doc.files()) {
    if (!au::is_safe_relative_path(f.path)) {
      std::abort();
    }
    if (au::needs_signature(f.path) && !au::is_safe_relative_path(au::signature_path(f.path))) {
      std::abort();
    }
  }
  for (const auto& p : doc.patterns()) {
    for (const std::uint64_t local : {std::uint64_t{0}, p.version.value}) {
      const auto choice = doc.choose_update(p.id, lanrelay::pattern_version{local});
      if (local == p.version.value ? choice.has_value() : !choice.has_value()) {
        std::abort();
      }
    }
    for (const auto& m : p.merges) {
      const auto choice = doc.choose_update(p.id, m.from);
      if (m.from < p.version && (!choice || !au::is_safe_relative_path(choice->path))) {
        std::abort();
      }
    }
  }
  const auto rewritten = au::rewrite_server_section(doc, "http://mirror.lan:4127/activeupdate");
  if (!rewritten) {
    std::abort();
  }
  const auto again = au::parse(*rewritten);
  if (!again || au::serialize(*again) != *rewritten || again->files().size() != doc.files().size()) {
    std::abort();
  }
  return 0;
}
