#pragma once

// The content store: whole, verified items on disk, shared by the relay daemon, the peer profile
// and the `lanrelay cache` command.
//
// Layout under `dir`:
//   index.json          the committed items (written to a temporary file, fsynced, renamed)
//   objects/<sha256>    one file per distinct content, named by its SHA-256 (hex)
//   tmp/                files being written; anything here is garbage after a crash
//   lock                flock(2) target that serialises writers across processes
//
// Crash safety: a new object is written to tmp/, fsynced, renamed into objects/ and the directory
// fsynced before the index names it. After kill -9 at any moment, `open` removes tmp/ leftovers and
// objects the index does not name, and drops index entries whose object is missing or has the
// wrong size, so the store holds whole, verified files only.
//
// Thread safety: every member function may be called from any thread; an internal mutex guards the
// in-memory index. Several processes may open the same directory: writers take the flock, and
// readers notice a newer index.json (by inode, size and mtime) and reload it before answering.

#include "lanrelay/base/error.hpp"
#include "lanrelay/base/sha256.hpp"
#include "lanrelay/base/version.hpp"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace lanrelay {

struct item_key {
  item_kind kind = item_kind::file;
  std::string name;
  std::string version;  // canonical_version(kind, ...)

  bool operator==(const item_key&) const = default;
};

struct item {
  item_key key;
  std::uint64_t size = 0;
  sha256_digest sha256{};
  bool pinned = false;
  std::chrono::system_clock::time_point added_at;
  std::chrono::system_clock::time_point last_used;
};

// An open, read-only file descriptor for a committed item. Closing it is the owner's job (RAII).
class item_file {
 public:
  item_file() = default;
  item_file(int fd, item it) noexcept : fd_(fd), item_(std::move(it)) {}
  item_file(item_file&& other) noexcept;
  item_file& operator=(item_file&& other) noexcept;
  item_file(const item_file&) = delete;
  item_file& operator=(const item_file&) = delete;
  ~item_file();

  int fd() const noexcept { return fd_; }
  const item& info() const noexcept { return item_; }

 private:
  int fd_ = -1;
  item item_;
};

class content_store;

// Streams bytes of a new item into tmp/. `commit` verifies size and digest and publishes it;
// destroying an uncommitted writer removes its temporary file.
class item_writer {
 public:
  item_writer(item_writer&&) noexcept;
  item_writer& operator=(item_writer&&) noexcept;
  ~item_writer();

  result<void> write(std::span<const std::byte> data);
  std::uint64_t bytes_written() const noexcept;
  // Publishes the item when the bytes match `expected_size` and `expected_sha256` (when given).
  result<item> commit(std::optional<std::uint64_t> expected_size,
                      std::optional<sha256_digest> expected_sha256, bool pin = false);

 private:
  friend class content_store;
  struct state;
  explicit item_writer(std::unique_ptr<state> s) noexcept;
  std::unique_ptr<state> state_;
};

class content_store {
 public:
  struct options {
    std::filesystem::path dir;
    std::uint64_t max_size = 0;  // bytes; 0 means no limit
  };

  // Creates the directory layout when missing and recovers from any interrupted write.
  static result<std::unique_ptr<content_store>> open(options opts);
  ~content_store();

  // Copies `source` into the store under `key` (the key's version is canonicalised), verifying
  // `expected_sha256` when given. Adding the same key with the same content is a no-op that
  // returns the item; the same key with other content replaces it.
  result<item> add_file(const std::filesystem::path& source, item_key key,
                        std::optional<sha256_digest> expected_sha256 = std::nullopt,
                        bool pin = false);
  // The same from a descriptor of a file opened for reading (at offset 0; not closed), for a
  // caller that opened the file with rights it has since given up.
  result<item> add_from(int fd, item_key key,
                        std::optional<sha256_digest> expected_sha256 = std::nullopt,
                        bool pin = false);
  result<item_writer> begin_add(item_key key);

  result<void> remove(const item_key& key);
  result<void> set_pinned(const item_key& key, bool pinned);

  std::optional<item> find(const item_key& key);
  // Every item of `kind` and `name` whose version satisfies `wanted` (version_satisfies), newest
  // first.
  std::vector<item> find_satisfying(item_kind kind, std::string_view name, std::string_view wanted);
  std::vector<item> list();

  // Opens the item for reading and marks it used (LRU). not_found when absent.
  result<item_file> open_item(const item_key& key);

  // Persists last-used times recorded since the last write (the daemon calls this periodically).
  result<void> flush();

  std::uint64_t total_size();
  std::uint64_t max_size() const noexcept;
  // A new size limit (configuration reload). When the store is now over it, least recently used
  // unpinned items are evicted at once; pinned items are never evicted, so the store may stay
  // over a limit smaller than they are (then adds fail with store_full).
  result<void> set_max_size(std::uint64_t max_size);
  const std::filesystem::path& dir() const noexcept;
  // Items this content_store object evicted to make room (other processes' evictions are not
  // counted).
  std::uint64_t evictions() const noexcept;

 private:
  friend class item_writer;
  struct impl;
  explicit content_store(std::unique_ptr<impl> p) noexcept;
  std::unique_ptr<impl> impl_;
};

}  // namespace lanrelay
