#include "lanrelay/content/store.hpp"

#include "lanrelay/base/file_io.hpp"

#include <boost/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cerrno>
#include <cstdio>
#include <limits>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <unordered_map>
#include <utility>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace lanrelay {

namespace fs = std::filesystem;
namespace json = boost::json;

namespace {

using sys_clock = std::chrono::system_clock;

// Copies and hashes move data in chunks this large.
constexpr std::size_t copy_chunk_size = std::size_t{1} << 20;
constexpr std::int64_t index_format = 1;
// Timestamps in index.json are unix seconds; this bound keeps them representable in nanoseconds.
constexpr std::int64_t max_unix_seconds = 9'000'000'000;

int flock_retry(int fd, int operation) {
  int rc = 0;
  do {
    rc = ::flock(fd, operation);
  } while (rc != 0 && errno == EINTR);
  return rc;
}

// Identifies one version of index.json: a rename gives a new inode, a rewrite a new size or mtime.
struct file_stamp {
  ::dev_t dev = 0;
  ::ino_t ino = 0;
  ::off_t size = 0;
  std::int64_t mtime_ns = 0;
  std::int64_t ctime_ns = 0;

  static file_stamp of(const struct ::stat& st) noexcept {
    return {st.st_dev, st.st_ino, st.st_size,
            std::int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec,
            std::int64_t{st.st_ctim.tv_sec} * 1'000'000'000 + st.st_ctim.tv_nsec};
  }
  bool operator==(const file_stamp&) const = default;
};

std::optional<file_stamp> stamp_of(const fs::path& path) {
  struct ::stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return std::nullopt;
  }
  return file_stamp::of(st);
}

sys_clock::time_point now_seconds() { return std::chrono::floor<std::chrono::seconds>(sys_clock::now()); }

std::int64_t to_unix_seconds(sys_clock::time_point t) {
  return std::chrono::floor<std::chrono::seconds>(t.time_since_epoch()).count();
}

sys_clock::time_point from_unix_seconds(std::int64_t s) {
  return sys_clock::time_point(std::chrono::seconds(s));
}

bool is_object_name(std::string_view name) {
  return name.size() == 64 && std::all_of(name.begin(), name.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

// The key with its name validated and its version canonicalised.
result<item_key> canonical_key(const item_key& key) {
  if (!is_valid_name(key.name)) {
    return errc::invalid_name;
  }
  auto version = canonical_version(key.kind, key.version);
  if (!version) {
    return version.error();
  }
  return item_key{key.kind, key.name, std::move(*version)};
}

template <typename Items>
auto find_key(Items& items, const item_key& key) {
  return std::find_if(items.begin(), items.end(), [&](const item& it) { return it.key == key; });
}

bool references(const std::vector<item>& items, const sha256_digest& digest) {
  return std::any_of(items.begin(), items.end(),
                     [&](const item& it) { return it.sha256 == digest; });
}

// Bytes on disk: content shared by several keys is stored, and counted, once.
std::uint64_t stored_bytes(const std::vector<item>& items) {
  std::set<sha256_digest> seen;
  std::uint64_t total = 0;
  for (const item& it : items) {
    if (seen.insert(it.sha256).second) {
      total += it.size;
    }
  }
  return total;
}

// ---- index.json ----------------------------------------------------------------------------------

std::string serialize_index(const std::vector<item>& items) {
  std::string out = "{\"version\":" + std::to_string(index_format) + ",\"items\":[";
  for (std::size_t i = 0; i < items.size(); ++i) {
    const item& it = items[i];
    json::object entry;
    entry["kind"] = to_string(it.key.kind);
    entry["name"] = it.key.name;
    entry["version"] = it.key.version;
    entry["size"] = it.size;
    entry["sha256"] = to_hex(it.sha256);
    entry["pinned"] = it.pinned;
    entry["added_at"] = to_unix_seconds(it.added_at);
    entry["last_used"] = to_unix_seconds(it.last_used);
    out += i == 0 ? "\n" : ",\n";
    out += json::serialize(entry);
  }
  out += items.empty() ? "]}\n" : "\n]}\n";
  return out;
}

// One index entry; on failure `problem` says which field is wrong.
std::optional<item> item_from_json(const json::value& value, std::string& problem) {
  const json::object* entry = value.if_object();
  if (entry == nullptr) {
    problem = "is not a JSON object";
    return std::nullopt;
  }
  const auto text = [&](std::string_view field) -> std::optional<std::string_view> {
    const json::value* v = entry->if_contains(field);
    if (v == nullptr || !v->is_string()) {
      problem = "field '" + std::string(field) + "' is missing or not a string";
      return std::nullopt;
    }
    return std::string_view(v->get_string());
  };
  const auto unsigned_number = [&](std::string_view field) -> std::optional<std::uint64_t> {
    const json::value* v = entry->if_contains(field);
    if (v != nullptr && v->is_uint64()) {
      return v->get_uint64();
    }
    if (v != nullptr && v->is_int64() && v->get_int64() >= 0) {
      return static_cast<std::uint64_t>(v->get_int64());
    }
    problem = "field '" + std::string(field) + "' is missing or not a non-negative integer";
    return std::nullopt;
  };
  const auto timestamp = [&](std::string_view field) -> std::optional<sys_clock::time_point> {
    const auto seconds = unsigned_number(field);
    if (!seconds || *seconds > static_cast<std::uint64_t>(max_unix_seconds)) {
      problem = "field '" + std::string(field) + "' is missing or not a unix time in seconds";
      return std::nullopt;
    }
    return from_unix_seconds(static_cast<std::int64_t>(*seconds));
  };

  item out;
  const auto kind_text = text("kind");
  if (!kind_text) {
    return std::nullopt;
  }
  const auto kind = parse_item_kind(*kind_text);
  if (!kind) {
    problem = "unknown kind '" + std::string(*kind_text) + "'";
    return std::nullopt;
  }
  out.key.kind = *kind;
  const auto name = text("name");
  if (!name) {
    return std::nullopt;
  }
  if (!is_valid_name(*name)) {
    problem = "invalid name '" + std::string(*name) + "'";
    return std::nullopt;
  }
  out.key.name = std::string(*name);
  const auto version = text("version");
  if (!version) {
    return std::nullopt;
  }
  const auto canonical = canonical_version(*kind, *version);
  if (!canonical || *canonical != *version) {
    problem = "invalid version '" + std::string(*version) + "' for kind " +
              std::string(to_string(*kind));
    return std::nullopt;
  }
  out.key.version = *canonical;
  const auto size = unsigned_number("size");
  if (!size) {
    return std::nullopt;
  }
  out.size = *size;
  const auto hex = text("sha256");
  if (!hex) {
    return std::nullopt;
  }
  const auto digest = parse_sha256_hex(*hex);
  if (!digest) {
    problem = "field 'sha256' is not 64 hex digits";
    return std::nullopt;
  }
  out.sha256 = *digest;
  const json::value* pinned = entry->if_contains("pinned");
  if (pinned == nullptr || !pinned->is_bool()) {
    problem = "field 'pinned' is missing or not true/false";
    return std::nullopt;
  }
  out.pinned = pinned->get_bool();
  const auto added_at = timestamp("added_at");
  const auto last_used = added_at ? timestamp("last_used") : std::nullopt;
  if (!added_at || !last_used) {
    return std::nullopt;
  }
  out.added_at = *added_at;
  out.last_used = *last_used;
  return out;
}

struct loaded_index {
  std::vector<item> items;  // in file order, which is least recently used first
  file_stamp stamp;
};

// Reads index.json. A system error means the file could not be read; corrupt_index means it was
// read but is not a valid index, and `problem` says why.
result<loaded_index> read_index(const fs::path& path, std::string& problem) {
  const unique_fd fd = open_fd(path, O_RDONLY | O_CLOEXEC);
  if (!fd) {
    return last_errno();
  }
  struct ::stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    return last_errno();
  }
  loaded_index out;
  out.stamp = file_stamp::of(st);

  std::string text;
  std::vector<char> chunk(64 * 1024);
  while (true) {
    const ::ssize_t n = ::read(fd.get(), chunk.data(), chunk.size());
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return last_errno();
    }
    if (n == 0) {
      break;
    }
    text.append(chunk.data(), static_cast<std::size_t>(n));
  }

  json::stream_parser parser;
  boost::system::error_code ec;
  const std::size_t consumed = parser.write(text.data(), text.size(), ec);
  if (!ec) {
    parser.finish(ec);
  }
  if (ec) {
    problem = "not valid JSON near byte " + std::to_string(consumed) + ": " + ec.message();
    return errc::corrupt_index;
  }
  const json::value root = parser.release();
  const json::object* top = root.if_object();
  if (top == nullptr) {
    problem = "the top level is not a JSON object";
    return errc::corrupt_index;
  }
  const json::value* format = top->if_contains("version");
  if (format == nullptr || !format->is_int64()) {
    problem = "field 'version' is missing or not an integer";
    return errc::corrupt_index;
  }
  if (format->get_int64() != index_format) {
    problem = "index format " + std::to_string(format->get_int64()) + " is not supported (this "
              "lanrelay reads format " + std::to_string(index_format) + "; was it written by a newer one?)";
    return errc::corrupt_index;
  }
  const json::value* items = top->if_contains("items");
  if (items == nullptr || !items->is_array()) {
    problem = "field 'items' is missing or not an array";
    return errc::corrupt_index;
  }
  const json::array& entries = items->get_array();
  out.items.reserve(entries.size());
  for (std::size_t i = 0; i < entries.size(); ++i) {
    std::string entry_problem;
    auto parsed = item_from_json(entries[i], entry_problem);
    if (!parsed) {
      problem = "items[" + std::to_string(i) + "] " + entry_problem;
      return errc::corrupt_index;
    }
    if (find_key(out.items, parsed->key) != out.items.end()) {
      problem = "items[" + std::to_string(i) + "] repeats kind=" +
                std::string(to_string(parsed->key.kind)) + " name=" + parsed->key.name +
                " version=" + parsed->key.version;
      return errc::corrupt_index;
    }
    out.items.push_back(std::move(*parsed));
  }
  return out;
}

// ---- the store's shared state ----------------------------------------------------------------------

// State behind content_store; item_writer keeps a pointer to it, so a writer must not outlive the
// store that made it. `mutex_` guards every mutable member and is held while the cross-process
// flock is taken, so one thread at a time of this process owns the lock file.
class store_core {
 public:
  explicit store_core(content_store::options opts)
      : opts_(std::move(opts)),
        objects_dir_(opts_.dir / "objects"),
        tmp_dir_(opts_.dir / "tmp"),
        index_path_(opts_.dir / "index.json"),
        index_tmp_path_(opts_.dir / "index.json.tmp"),
        lock_path_(opts_.dir / "lock"),
        rng_(std::random_device{}()) {}

  const content_store::options& options() const noexcept { return opts_; }
  // options().max_size until a reload changes it.
  std::uint64_t max_size() const noexcept { return max_size_.load(std::memory_order_relaxed); }
  std::uint64_t evictions() const noexcept { return evictions_.load(std::memory_order_relaxed); }
  result<void> set_max_size(std::uint64_t max_size);

  result<void> initialise();

  std::optional<item> find(const item_key& key);
  std::vector<item> find_satisfying(item_kind kind, std::string_view name, std::string_view wanted);
  std::vector<item> list();
  result<item_file> open_item(const item_key& key);
  std::uint64_t total_size();

  result<void> remove(const item_key& key);
  result<void> set_pinned(const item_key& key, bool pinned);
  result<void> flush();

  // Creates and locks a new temporary file for a writer.
  result<std::pair<unique_fd, fs::path>> create_temp();
  // Moves a verified, fsynced temporary file into objects/ and names it in the index. The
  // temporary file is gone afterwards, whatever the outcome.
  result<item> publish(const item_key& key, const fs::path& tmp_path, std::uint64_t size,
                       const sha256_digest& digest, bool pin);

 private:
  // Runs `body` holding `mutex_` and the flock on `lock`.
  template <typename Body>
  auto with_flock(Body&& body) -> decltype(body()) {
    std::lock_guard guard(mutex_);
    if (flock_retry(lock_fd_.get(), LOCK_EX) != 0) {
      const auto ec = last_errno();
      spdlog::error("event=cache_lock_failed path={} error=\"{}\"", lock_path_.string(), ec.message());
      return ec;
    }
    struct unlock_on_exit {
      int fd;
      ~unlock_on_exit() { ::flock(fd, LOCK_UN); }
    } unlock{lock_fd_.get()};
    return body();
  }

  fs::path object_path(const sha256_digest& digest) const { return objects_dir_ / to_hex(digest); }

  result<void> recover_locked();
  result<void> load_locked(std::string& problem);
  void refresh_locked(bool force);
  result<void> sync_for_write_locked();
  result<void> write_index_locked(std::vector<item> next);
  result<std::vector<item>> make_room(std::vector<item>& next, const item& incoming) const;
  void remove_unreferenced_locked(const std::vector<sha256_digest>& candidates);
  void touch_locked(const item_key& key);
  void apply_touches_locked();

  const content_store::options opts_;
  std::atomic<std::uint64_t> max_size_{opts_.max_size};
  std::atomic<std::uint64_t> evictions_{0};  // since this object was opened
  const fs::path objects_dir_;
  const fs::path tmp_dir_;
  const fs::path index_path_;
  const fs::path index_tmp_path_;
  const fs::path lock_path_;
  unique_fd lock_fd_;
  // The first 8 bytes of `lock`, mapped shared: a generation counter every writer bumps after
  // replacing index.json. Readers skip the stat of index.json while it is unchanged, and stat at
  // least every `index_recheck` anyway (an index.json replaced by hand). nullptr when the mapping
  // failed: then every read stats.
  struct unmap_generation {
    void operator()(std::uint64_t* p) const noexcept { ::munmap(p, sizeof *p); }
  };
  std::unique_ptr<std::uint64_t, unmap_generation> generation_;
  std::uint64_t seen_generation_ = 0;
  std::chrono::steady_clock::time_point last_check_;
  static constexpr std::chrono::seconds index_recheck{1};

  std::uint64_t generation() const noexcept {
    return generation_ == nullptr ? 0 : std::atomic_ref<std::uint64_t>(*generation_).load();
  }
  void bump_generation() noexcept {
    if (generation_ != nullptr) {
      std::atomic_ref<std::uint64_t>(*generation_).fetch_add(1);
    }
  }

  std::mutex mutex_;
  // The index as last read or written, with touches_ applied; least recently used first.
  std::vector<item> items_;
  // index.json as `items_` was read from it; nullopt when it could not be stat'ed.
  std::optional<file_stamp> stamp_;
  // index.json changed on disk into something unreadable: readers keep serving items_, writers
  // refuse with corrupt_index rather than overwrite it. Logged once per change.
  bool disk_index_bad_ = false;
  // Uses recorded by open_item and not yet in index.json, in the order they happened.
  std::vector<std::pair<item_key, sys_clock::time_point>> touches_;
  std::mt19937_64 rng_;
};

result<void> store_core::initialise() {
  for (const fs::path& d : {opts_.dir, objects_dir_, tmp_dir_}) {
    std::error_code ec;
    fs::create_directories(d, ec);
    if (ec) {
      spdlog::error("event=cache_dir_create_failed path={} error=\"{}\"", d.string(), ec.message());
      return boost::system::error_code(ec);
    }
  }
  lock_fd_ = open_fd(lock_path_, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (!lock_fd_) {
    const auto ec = last_errno();
    spdlog::error("event=cache_lock_open_failed path={} error=\"{}\"", lock_path_.string(),
                  ec.message());
    return ec;
  }
  return with_flock([&]() -> result<void> {
    struct ::stat st {};
    if (::fstat(lock_fd_.get(), &st) == 0 &&
        (st.st_size >= 8 || ::ftruncate(lock_fd_.get(), 8) == 0)) {
      void* mapped = ::mmap(nullptr, 8, PROT_READ | PROT_WRITE, MAP_SHARED, lock_fd_.get(), 0);
      if (mapped != MAP_FAILED) {
        generation_.reset(static_cast<std::uint64_t*>(mapped));
      }
    }
    return recover_locked();
  });
}

result<void> store_core::recover_locked() {
  const std::string dir = opts_.dir.string();
  bool rewrite = false;
  std::string problem;
  auto loaded = read_index(index_path_, problem);
  if (loaded) {
    items_ = std::move(loaded->items);
    stamp_ = loaded->stamp;
  } else if (loaded.error() == boost::system::errc::no_such_file_or_directory) {
    // A new store, unless objects/ holds files: then index.json was deleted, which an
    // interrupted write never does, so leave the decision to the administrator.
    std::error_code ec;
    if (fs::directory_iterator(objects_dir_, ec) != fs::directory_iterator()) {
      spdlog::error("event=cache_index_missing path={} action=\"restore index.json, or empty the "
                    "directory to start a new cache\" hint=\"objects exist without an index\"",
                    index_path_.string());
      return errc::corrupt_index;
    }
    items_.clear();
    rewrite = true;
  } else if (loaded.error() == errc::corrupt_index) {
    spdlog::error("event=cache_index_corrupt path={} problem=\"{}\" action=\"the file was left "
                  "as it is: restore it, or move the cache directory aside to start empty\"",
                  index_path_.string(), problem);
    return errc::corrupt_index;
  } else {
    spdlog::error("event=cache_index_unreadable path={} error=\"{}\"", index_path_.string(),
                  loaded.error().message());
    return loaded.error();
  }

  // tmp/: whatever no live writer holds locked is left over from a crash.
  std::error_code ec;
  for (fs::directory_iterator it(tmp_dir_, ec), end; !ec && it != end; it.increment(ec)) {
    const fs::path path = it->path();
    std::error_code type_ec;
    if (it->symlink_status(type_ec).type() == fs::file_type::regular) {
      const unique_fd fd = open_fd(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
      if (fd && flock_retry(fd.get(), LOCK_EX | LOCK_NB) != 0 && errno == EWOULDBLOCK) {
        continue;
      }
    }
    std::error_code remove_ec;
    fs::remove_all(path, remove_ec);
    if (remove_ec) {
      spdlog::warn("event=cache_tmp_remove_failed path={} error=\"{}\"", path.string(),
                   remove_ec.message());
    } else {
      spdlog::info("event=cache_tmp_removed path={}", path.string());
    }
  }
  if (ec) {
    spdlog::warn("event=cache_tmp_list_failed path={} error=\"{}\"", tmp_dir_.string(),
                 ec.message());
  }
  std::error_code tmp_index_ec;
  fs::remove(index_tmp_path_, tmp_index_ec);

  // objects/: the size of every regular file, nullopt for anything else.
  std::unordered_map<std::string, std::optional<std::uint64_t>> on_disk;
  for (fs::directory_iterator it(objects_dir_, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code entry_ec;
    std::optional<std::uint64_t> size;
    if (it->symlink_status(entry_ec).type() == fs::file_type::regular) {
      const auto bytes = it->file_size(entry_ec);
      if (!entry_ec) {
        size = bytes;
      }
    }
    on_disk.emplace(it->path().filename().string(), size);
  }
  if (ec) {
    spdlog::error("event=cache_objects_list_failed path={} error=\"{}\"", objects_dir_.string(),
                  ec.message());
    return boost::system::error_code(ec);
  }

  std::vector<item> kept;
  kept.reserve(items_.size());
  for (item& it : items_) {
    const std::string hex = to_hex(it.sha256);
    const auto found = on_disk.find(hex);
    std::string_view reason;
    if (found == on_disk.end()) {
      reason = "object_missing";
    } else if (!found->second) {
      reason = "object_not_a_regular_file";
    } else if (*found->second != it.size) {
      reason = "object_size_wrong";
    }
    if (reason.empty()) {
      kept.push_back(std::move(it));
      continue;
    }
    spdlog::warn("event=cache_item_dropped reason={} dir={} kind={} name={} version={} sha256={} "
                 "expected_size={} actual_size={}",
                 reason, dir, to_string(it.key.kind), it.key.name, it.key.version, hex, it.size,
                 found != on_disk.end() && found->second ? std::to_string(*found->second) : "none");
    rewrite = true;
  }
  for (const auto& [name, size] : on_disk) {
    const auto digest = is_object_name(name) ? parse_sha256_hex(name) : std::nullopt;
    if (digest && references(kept, *digest)) {
      continue;
    }
    const fs::path path = objects_dir_ / name;
    std::error_code remove_ec;
    fs::remove_all(path, remove_ec);
    if (remove_ec) {
      spdlog::warn("event=cache_orphan_remove_failed path={} error=\"{}\"", path.string(),
                   remove_ec.message());
    } else {
      spdlog::warn("event=cache_orphan_removed path={} size={}", path.string(),
                   size ? std::to_string(*size) : "none");
    }
  }

  if (rewrite) {
    return write_index_locked(std::move(kept));
  }
  items_ = std::move(kept);
  return {};
}

result<void> store_core::load_locked(std::string& problem) {
  auto loaded = read_index(index_path_, problem);
  if (!loaded) {
    if (problem.empty()) {
      problem = loaded.error().message();
    }
    return loaded.error();
  }
  items_ = std::move(loaded->items);
  stamp_ = loaded->stamp;
  disk_index_bad_ = false;
  apply_touches_locked();
  return {};
}

void store_core::refresh_locked(bool force) {
  const auto now = std::chrono::steady_clock::now();
  const auto generation_now = generation();
  if (!force && generation_ != nullptr && generation_now == seen_generation_ &&
      now - last_check_ < index_recheck) {
    return;
  }
  seen_generation_ = generation_now;
  last_check_ = now;
  const auto current = stamp_of(index_path_);
  if (!force && current == stamp_) {
    return;
  }
  std::string problem;
  if (load_locked(problem)) {
    return;
  }
  if (!disk_index_bad_) {
    spdlog::error("event=cache_index_changed_unreadable path={} problem=\"{}\" action=\"restore "
                  "index.json and restart lanrelayd\" hint=\"serving the last good copy\"",
                  index_path_.string(), problem);
  }
  disk_index_bad_ = true;
  stamp_ = current;
}

result<void> store_core::sync_for_write_locked() {
  const auto current = stamp_of(index_path_);
  if (current == stamp_ && !disk_index_bad_) {
    return {};
  }
  std::string problem;
  if (load_locked(problem)) {
    return {};
  }
  if (!disk_index_bad_) {
    spdlog::error("event=cache_index_changed_unreadable path={} problem=\"{}\" hint=\"refusing "
                  "to overwrite it\"",
                  index_path_.string(), problem);
  }
  disk_index_bad_ = true;
  stamp_ = current;
  return errc::corrupt_index;
}

result<void> store_core::write_index_locked(std::vector<item> next) {
  const std::string text = serialize_index(next);
  {
    const unique_fd fd =
        open_fd(index_tmp_path_, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (!fd) {
      const auto ec = last_errno();
      spdlog::error("event=cache_index_write_failed path={} error=\"{}\"", index_tmp_path_.string(),
                    ec.message());
      return ec;
    }
    auto written = write_all(fd.get(), std::as_bytes(std::span(text.data(), text.size())));
    if (written) {
      written = sync_fd(fd.get());
    }
    if (!written) {
      spdlog::error("event=cache_index_write_failed path={} error=\"{}\"", index_tmp_path_.string(),
                    written.error().message());
      ::unlink(index_tmp_path_.c_str());
      return written.error();
    }
  }
  if (::rename(index_tmp_path_.c_str(), index_path_.c_str()) != 0) {
    const auto ec = last_errno();
    spdlog::error("event=cache_index_replace_failed path={} error=\"{}\"", index_path_.string(),
                  ec.message());
    ::unlink(index_tmp_path_.c_str());
    return ec;
  }
  items_ = std::move(next);
  touches_.clear();
  disk_index_bad_ = false;
  stamp_ = stamp_of(index_path_);
  bump_generation();
  if (auto synced = sync_dir(opts_.dir); !synced) {
    spdlog::error("event=cache_dir_fsync_failed path={} error=\"{}\"", opts_.dir.string(),
                  synced.error().message());
    return synced.error();
  }
  return {};
}

// The item to evict first: unpinned, oldest last_used; among equals, earlier in the index (which
// is kept in use order). Items with content `keep` are skipped. end() when none may go.
std::vector<item>::iterator eviction_victim(std::vector<item>& items, const sha256_digest& keep) {
  auto victim = items.end();
  for (auto it = items.begin(); it != items.end(); ++it) {
    if (it->pinned || it->sha256 == keep) {
      continue;
    }
    if (victim == items.end() || it->last_used < victim->last_used) {
      victim = it;
    }
  }
  return victim;
}

// Removes least recently used unpinned items from `next` until `incoming` fits; returns them.
result<std::vector<item>> store_core::make_room(std::vector<item>& next,
                                                const item& incoming) const {
  std::vector<item> evicted;
  const std::uint64_t limit = max_size();
  if (limit == 0) {
    return evicted;
  }
  if (incoming.size > limit) {
    return errc::too_large;
  }
  const auto needed = [&] {
    std::uint64_t total = stored_bytes(next);
    if (!references(next, incoming.sha256)) {
      total += incoming.size;
    }
    return total;
  };
  while (needed() > limit) {
    // Items sharing the incoming content free nothing, so they stay.
    auto victim = eviction_victim(next, incoming.sha256);
    if (victim == next.end()) {
      return errc::store_full;
    }
    evicted.push_back(std::move(*victim));
    next.erase(victim);
  }
  return evicted;
}

result<void> store_core::set_max_size(std::uint64_t limit) {
  max_size_.store(limit, std::memory_order_relaxed);
  if (limit == 0) {
    return {};
  }
  return with_flock([&]() -> result<void> {
    if (auto synced = sync_for_write_locked(); !synced) {
      return synced.error();
    }
    auto next = items_;
    std::vector<item> evicted;
    while (stored_bytes(next) > limit) {
      auto victim = eviction_victim(next, sha256_digest{});
      if (victim == next.end()) {
        spdlog::warn("event=cache_pinned_over_max_size dir={} bytes={} max_size={} "
                     "action=\"unpin or remove items, or raise cache.max_size\"",
                     opts_.dir.string(), stored_bytes(next), limit);
        break;
      }
      evicted.push_back(std::move(*victim));
      next.erase(victim);
    }
    if (evicted.empty()) {
      return {};
    }
    if (auto written = write_index_locked(std::move(next)); !written) {
      return written.error();
    }
    std::vector<sha256_digest> released;
    for (const item& gone : evicted) {
      spdlog::info("event=cache_item_evicted reason=max_size_lowered dir={} kind={} name={} "
                   "version={} size={} max_size={}",
                   opts_.dir.string(), to_string(gone.key.kind), gone.key.name, gone.key.version,
                   gone.size, limit);
      evictions_.fetch_add(1, std::memory_order_relaxed);
      released.push_back(gone.sha256);
    }
    remove_unreferenced_locked(released);
    return {};
  });
}

void store_core::remove_unreferenced_locked(const std::vector<sha256_digest>& candidates) {
  for (const sha256_digest& digest : candidates) {
    if (references(items_, digest)) {
      continue;
    }
    const fs::path path = object_path(digest);
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      // Harmless for correctness: the next start-up removes objects the index does not name.
      spdlog::warn("event=cache_object_remove_failed path={} error=\"{}\"", path.string(),
                   last_errno().message());
    }
  }
}

void store_core::touch_locked(const item_key& key) {
  const auto now = now_seconds();
  auto it = find_key(items_, key);
  if (it != items_.end()) {
    it->last_used = std::max(it->last_used, now);
    std::rotate(it, it + 1, items_.end());
  }
  std::erase_if(touches_, [&](const auto& touch) { return touch.first == key; });
  touches_.emplace_back(key, now);
}

void store_core::apply_touches_locked() {
  for (const auto& [key, when] : touches_) {
    auto it = find_key(items_, key);
    if (it != items_.end() && when >= it->last_used) {
      it->last_used = when;
      std::rotate(it, it + 1, items_.end());
    }
  }
}

std::optional<item> store_core::find(const item_key& key) {
  const auto canonical = canonical_key(key);
  if (!canonical) {
    return std::nullopt;
  }
  std::lock_guard guard(mutex_);
  refresh_locked(false);
  const auto it = find_key(items_, *canonical);
  if (it == items_.end()) {
    return std::nullopt;
  }
  return *it;
}

std::vector<item> store_core::find_satisfying(item_kind kind, std::string_view name,
                                              std::string_view wanted) {
  std::vector<item> out;
  {
    std::lock_guard guard(mutex_);
    refresh_locked(false);
    for (const item& it : items_) {
      if (it.key.kind == kind && it.key.name == name &&
          version_satisfies(kind, it.key.version, wanted)) {
        out.push_back(it);
      }
    }
  }
  std::sort(out.begin(), out.end(), [](const item& a, const item& b) {
    const auto order = compare_versions(a.key.kind, a.key.version, b.key.version);
    return order != 0 ? order > 0 : a.key.version > b.key.version;
  });
  return out;
}

std::vector<item> store_core::list() {
  std::vector<item> out;
  {
    std::lock_guard guard(mutex_);
    refresh_locked(false);
    out = items_;
  }
  std::sort(out.begin(), out.end(), [](const item& a, const item& b) {
    if (a.key.kind != b.key.kind) {
      return a.key.kind < b.key.kind;
    }
    if (a.key.name != b.key.name) {
      return a.key.name < b.key.name;
    }
    const auto order = compare_versions(a.key.kind, a.key.version, b.key.version);
    return order != 0 ? order < 0 : a.key.version < b.key.version;
  });
  return out;
}

result<item_file> store_core::open_item(const item_key& key) {
  const auto canonical = canonical_key(key);
  if (!canonical) {
    return canonical.error();
  }
  std::lock_guard guard(mutex_);
  refresh_locked(false);
  // A second pass covers another process removing the item between our last refresh and now.
  for (int attempt = 0;; ++attempt) {
    const auto it = find_key(items_, *canonical);
    if (it == items_.end()) {
      return errc::not_found;
    }
    const fs::path path = object_path(it->sha256);
    unique_fd fd = open_fd(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (!fd) {
      if (errno == ENOENT && attempt == 0) {
        refresh_locked(true);
        continue;
      }
      const auto ec = errno == ENOENT ? make_error_code(errc::not_found) : last_errno();
      spdlog::error("event=cache_object_open_failed path={} kind={} name={} version={} "
                    "error=\"{}\"",
                    path.string(), to_string(it->key.kind), it->key.name, it->key.version,
                    ec.message());
      return ec;
    }
    struct ::stat st {};
    if (::fstat(fd.get(), &st) != 0) {
      return last_errno();
    }
    if (static_cast<std::uint64_t>(st.st_size) != it->size) {
      spdlog::error("event=cache_object_wrong_size path={} expected_size={} actual_size={} "
                    "action=\"remove the item and add it again\" hint=\"it was changed outside "
                    "lanrelay\"",
                    path.string(), it->size, st.st_size);
      return errc::size_mismatch;
    }
    touch_locked(*canonical);
    const auto used = find_key(items_, *canonical);
    return item_file(fd.release(), *used);
  }
}

std::uint64_t store_core::total_size() {
  std::lock_guard guard(mutex_);
  refresh_locked(false);
  return stored_bytes(items_);
}

result<void> store_core::remove(const item_key& key) {
  const auto canonical = canonical_key(key);
  if (!canonical) {
    return canonical.error();
  }
  return with_flock([&]() -> result<void> {
    if (auto synced = sync_for_write_locked(); !synced) {
      return synced;
    }
    auto next = items_;
    const auto it = find_key(next, *canonical);
    if (it == next.end()) {
      return errc::not_found;
    }
    const sha256_digest digest = it->sha256;
    next.erase(it);
    if (auto written = write_index_locked(std::move(next)); !written) {
      return written;
    }
    remove_unreferenced_locked({digest});
    return {};
  });
}

result<void> store_core::set_pinned(const item_key& key, bool pinned) {
  const auto canonical = canonical_key(key);
  if (!canonical) {
    return canonical.error();
  }
  return with_flock([&]() -> result<void> {
    if (auto synced = sync_for_write_locked(); !synced) {
      return synced;
    }
    auto next = items_;
    const auto it = find_key(next, *canonical);
    if (it == next.end()) {
      return errc::not_found;
    }
    if (it->pinned == pinned && touches_.empty()) {
      return {};
    }
    it->pinned = pinned;
    return write_index_locked(std::move(next));
  });
}

result<void> store_core::flush() {
  {
    std::lock_guard guard(mutex_);
    if (touches_.empty()) {
      return {};
    }
  }
  return with_flock([&]() -> result<void> {
    if (auto synced = sync_for_write_locked(); !synced) {
      return synced;
    }
    if (touches_.empty()) {
      return {};
    }
    return write_index_locked(items_);
  });
}

result<std::pair<unique_fd, fs::path>> store_core::create_temp() {
  // Under the flock so that another process's start-up recovery cannot remove the file between
  // its creation and its lock.
  return with_flock([&]() -> result<std::pair<unique_fd, fs::path>> {
    for (int attempt = 0; attempt < 16; ++attempt) {
      char name[17];
      std::snprintf(name, sizeof name, "%016llx", static_cast<unsigned long long>(rng_()));
      fs::path path = tmp_dir_ / name;
      unique_fd fd = open_fd(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
      if (!fd) {
        if (errno == EEXIST) {
          continue;
        }
        const auto ec = last_errno();
        spdlog::error("event=cache_tmp_create_failed path={} error=\"{}\"", path.string(),
                      ec.message());
        return ec;
      }
      if (flock_retry(fd.get(), LOCK_EX | LOCK_NB) != 0) {
        const auto ec = last_errno();
        ::unlink(path.c_str());
        return ec;
      }
      return std::pair(std::move(fd), std::move(path));
    }
    return make_error_code(boost::system::errc::file_exists);
  });
}

result<item> store_core::publish(const item_key& key, const fs::path& tmp_path, std::uint64_t size,
                                 const sha256_digest& digest, bool pin) {
  return with_flock([&]() -> result<item> {
    const auto discard = [&] { ::unlink(tmp_path.c_str()); };
    if (auto synced = sync_for_write_locked(); !synced) {
      discard();
      return synced.error();
    }
    auto next = items_;
    const auto old = find_key(next, key);
    if (old != next.end() && old->sha256 == digest && old->size == size) {
      discard();
      if (!pin || old->pinned) {
        return *old;
      }
      old->pinned = true;
      item same = *old;
      if (auto written = write_index_locked(std::move(next)); !written) {
        return written.error();
      }
      return same;
    }

    std::vector<sha256_digest> released;
    // A replacement keeps the pin an administrator put on the key.
    bool pinned = pin;
    if (old != next.end()) {
      pinned = pinned || old->pinned;
      released.push_back(old->sha256);
      next.erase(old);
    }
    const auto now = now_seconds();
    const item incoming{key, size, digest, pinned, now, now};
    auto evicted = make_room(next, incoming);
    if (!evicted) {
      discard();
      return evicted.error();
    }
    next.push_back(incoming);

    const fs::path object = object_path(digest);
    const bool object_was_referenced = references(items_, digest);
    if (::rename(tmp_path.c_str(), object.c_str()) != 0) {
      const auto ec = last_errno();
      spdlog::error("event=cache_object_move_failed from={} to={} error=\"{}\"",
                    tmp_path.string(), object.string(), ec.message());
      discard();
      return ec;
    }
    auto committed = sync_dir(objects_dir_);
    if (committed) {
      committed = write_index_locked(std::move(next));
    }
    if (!committed) {
      if (!object_was_referenced) {
        ::unlink(object.c_str());
      }
      return committed.error();
    }
    for (const item& gone : *evicted) {
      spdlog::info("event=cache_item_evicted reason=make_room dir={} kind={} name={} version={} "
                   "size={} max_size={}",
                   opts_.dir.string(), to_string(gone.key.kind), gone.key.name, gone.key.version,
                   gone.size, max_size());
      evictions_.fetch_add(1, std::memory_order_relaxed);
      released.push_back(gone.sha256);
    }
    remove_unreferenced_locked(released);
    return incoming;
  });
}

}  // namespace

// ---- public types ----------------------------------------------------------------------------------

item_file::item_file(item_file&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)), item_(std::move(other.item_)) {}

item_file& item_file::operator=(item_file&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) {
      ::close(fd_);
    }
    fd_ = std::exchange(other.fd_, -1);
    item_ = std::move(other.item_);
  }
  return *this;
}

item_file::~item_file() {
  if (fd_ >= 0) {
    ::close(fd_);
  }
}

struct item_writer::state {
  store_core* store = nullptr;
  item_key key;
  fs::path tmp_path;
  unique_fd fd;  // holds a flock so that start-up recovery elsewhere leaves the file alone
  sha256_hasher hasher;
  std::uint64_t bytes = 0;
  bool finished = false;  // committed or abandoned; the temporary file is gone

  state(store_core* s, item_key k, fs::path path, unique_fd file)
      : store(s), key(std::move(k)), tmp_path(std::move(path)), fd(std::move(file)) {}
  state(const state&) = delete;
  state& operator=(const state&) = delete;
  ~state() {
    if (!finished) {
      discard();
    }
  }

  void discard() noexcept {
    fd.reset();
    ::unlink(tmp_path.c_str());
    finished = true;
  }
};

item_writer::item_writer(std::unique_ptr<state> s) noexcept : state_(std::move(s)) {}
item_writer::item_writer(item_writer&&) noexcept = default;
item_writer& item_writer::operator=(item_writer&&) noexcept = default;
item_writer::~item_writer() = default;

result<void> item_writer::write(std::span<const std::byte> data) {
  if (!state_ || state_->finished) {
    return make_error_code(boost::system::errc::bad_file_descriptor);
  }
  state& s = *state_;
  const std::uint64_t limit = s.store->max_size();
  if (limit != 0 && data.size() > limit - std::min(limit, s.bytes)) {
    s.discard();
    return errc::too_large;
  }
  if (auto written = write_all(s.fd.get(), data); !written) {
    s.discard();
    return written;
  }
  s.hasher.update(data);
  s.bytes += data.size();
  return {};
}

std::uint64_t item_writer::bytes_written() const noexcept { return state_ ? state_->bytes : 0; }

result<item> item_writer::commit(std::optional<std::uint64_t> expected_size,
                                 std::optional<sha256_digest> expected_sha256, bool pin) {
  if (!state_ || state_->finished) {
    return make_error_code(boost::system::errc::bad_file_descriptor);
  }
  state& s = *state_;
  const sha256_digest digest = s.hasher.finish();
  if (expected_size && *expected_size != s.bytes) {
    s.discard();
    return errc::size_mismatch;
  }
  if (expected_sha256 && *expected_sha256 != digest) {
    s.discard();
    return errc::digest_mismatch;
  }
  if (auto synced = sync_fd(s.fd.get()); !synced) {
    s.discard();
    return synced.error();
  }
  auto published = s.store->publish(s.key, s.tmp_path, s.bytes, digest, pin);
  s.fd.reset();
  s.finished = true;
  return published;
}

struct content_store::impl : store_core {
  using store_core::store_core;
};

content_store::content_store(std::unique_ptr<impl> p) noexcept : impl_(std::move(p)) {}

content_store::~content_store() {
  if (!impl_) {
    return;
  }
  try {
    if (auto flushed = impl_->flush(); !flushed) {
      spdlog::warn("event=cache_last_used_not_saved dir={} error=\"{}\"",
                   impl_->options().dir.string(), flushed.error().message());
    }
  } catch (const std::exception& e) {
    spdlog::warn("event=cache_last_used_not_saved dir={} error=\"{}\"",
                 impl_->options().dir.string(), e.what());
  }
}

result<std::unique_ptr<content_store>> content_store::open(options opts) {
  if (opts.dir.empty()) {
    spdlog::error("event=cache_dir_missing hint=\"no cache directory given\"");
    return errc::invalid_config;
  }
  auto core = std::make_unique<impl>(std::move(opts));
  if (auto ready = core->initialise(); !ready) {
    return ready.error();
  }
  return std::unique_ptr<content_store>(new content_store(std::move(core)));
}

result<item> content_store::add_file(const fs::path& source, item_key key,
                                     std::optional<sha256_digest> expected_sha256, bool pin) {
  const unique_fd fd = open_fd(source, O_RDONLY | O_CLOEXEC);
  if (!fd) {
    return last_errno();
  }
  return add_from(fd.get(), std::move(key), expected_sha256, pin);
}

result<item> content_store::add_from(int fd, item_key key,
                                     std::optional<sha256_digest> expected_sha256, bool pin) {
  auto writer = begin_add(std::move(key));
  if (!writer) {
    return writer.error();
  }
  struct ::stat st {};
  if (::fstat(fd, &st) != 0) {
    return last_errno();
  }
  // A regular file that changes length while it is copied fails with size_mismatch.
  std::optional<std::uint64_t> expected_size;
  if (S_ISREG(st.st_mode)) {
    expected_size = static_cast<std::uint64_t>(st.st_size);
    if (impl_->max_size() != 0 && *expected_size > impl_->max_size()) {
      return errc::too_large;
    }
  }
  std::vector<std::byte> buffer(copy_chunk_size);
  while (true) {
    const ::ssize_t n = ::read(fd, buffer.data(), buffer.size());
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return last_errno();
    }
    if (n == 0) {
      break;
    }
    if (auto written = writer->write(std::span(buffer.data(), static_cast<std::size_t>(n)));
        !written) {
      return written.error();
    }
  }
  return writer->commit(expected_size, expected_sha256, pin);
}

result<item_writer> content_store::begin_add(item_key key) {
  auto canonical = canonical_key(key);
  if (!canonical) {
    return canonical.error();
  }
  auto temp = impl_->create_temp();
  if (!temp) {
    return temp.error();
  }
  return item_writer(std::make_unique<item_writer::state>(impl_.get(), std::move(*canonical),
                                                          std::move(temp->second),
                                                          std::move(temp->first)));
}

result<void> content_store::remove(const item_key& key) { return impl_->remove(key); }

result<void> content_store::set_pinned(const item_key& key, bool pinned) {
  return impl_->set_pinned(key, pinned);
}

std::optional<item> content_store::find(const item_key& key) { return impl_->find(key); }

std::vector<item> content_store::find_satisfying(item_kind kind, std::string_view name,
                                                 std::string_view wanted) {
  return impl_->find_satisfying(kind, name, wanted);
}

std::vector<item> content_store::list() { return impl_->list(); }

result<item_file> content_store::open_item(const item_key& key) { return impl_->open_item(key); }

result<void> content_store::flush() { return impl_->flush(); }

std::uint64_t content_store::total_size() { return impl_->total_size(); }

std::uint64_t content_store::max_size() const noexcept { return impl_->max_size(); }

result<void> content_store::set_max_size(std::uint64_t max_size) {
  return impl_->set_max_size(max_size);
}

const fs::path& content_store::dir() const noexcept { return impl_->options().dir; }

std::uint64_t content_store::evictions() const noexcept { return impl_->evictions(); }

}  // namespace lanrelay
