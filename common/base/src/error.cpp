#include "lanrelay/base/error.hpp"

#include <string>

namespace lanrelay {
namespace {

std::string lanrelay_message(errc value) {
  switch (value) {
    case errc::invalid_name:
      return "invalid item name: use 1 to 128 characters from A-Z a-z 0-9 . _ + -, "
             "not starting with '.' or '-'";
    case errc::invalid_version:
      return "invalid item version: installers use Major.Minor[.Build[.Patch]] (e.g. 14.0.1234), "
             "patterns an ActiveUpdate number (1667900 or 16.679.00), files the name characters";
    case errc::invalid_kind:
      return "invalid item kind: use installer, pattern or file";
    case errc::not_found:
      return "no such item in the cache";
    case errc::size_mismatch:
      return "the received data is not the expected length; the transfer was incomplete or "
             "the source changed, so it was discarded";
    case errc::digest_mismatch:
      return "the SHA-256 of the received data differs from the expected one; the data was "
             "discarded (corrupt transfer or wrong source)";
    case errc::too_large:
      return "the item is larger than the cache size limit; raise cache.max_size to store it";
    case errc::store_full:
      return "the cache is full of pinned items; unpin or remove items, or raise cache.max_size";
    case errc::corrupt_index:
      return "the cache index (index.json) cannot be read; it was left untouched: restore it, "
             "or move the cache directory aside to start with an empty cache";
    case errc::invalid_config:
      return "the configuration is invalid; see the messages above for the file and line";
    case errc::already_exists:
      return "an item with this kind, name and version already exists with different content";
  }
  return "unknown lanrelay error " + std::to_string(static_cast<int>(value));
}

}  // namespace

const boost::system::error_category& lanrelay_category() noexcept {
  static const error_category_of<errc> category(
      "lanrelay", 0x6c616e72656c6179ULL, lanrelay_message);
  return category;
}

}  // namespace lanrelay
