#include "lanrelay/relay/mirror.hpp"

#include "lanrelay/base/file_io.hpp"
#include "lanrelay/base/redact.hpp"
#include "lanrelay/base/text_format.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>
#include <boost/url/parse.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <random>
#include <set>
#include <string_view>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

namespace lanrelay::relay {

namespace fs = std::filesystem;
namespace net = boost::asio;
namespace json = boost::json;
namespace au = lanrelay::activeupdate;

namespace {

using sys_clock = std::chrono::system_clock;

constexpr std::int64_t state_format = 1;
// A .sig is a few KiB; anything far larger is not a signature.
constexpr std::uint64_t max_signature_bytes = std::uint64_t{1} << 20;
// What a .sig is assumed to need on disk before it is fetched (check_space).
constexpr std::uint64_t signature_estimate = 64 * 1024;
constexpr std::string_view partial_suffix = ".partial";
constexpr std::string_view pull_suffix = ".pull";  // pull-through downloads (pull_file)
constexpr std::string_view served_index_name = "server.ini";
constexpr std::string_view history_prefix = "server.ini.";

// Fails with ELOOP when `root` or any existing component of root/relative is a symbolic link, so
// that nothing the mirror writes or removes can land outside its directory.
result<void> refuse_symlinks(const fs::path& root, std::string_view relative) {
  fs::path current = root;
  struct ::stat st {};
  if (::lstat(current.c_str(), &st) == 0 && S_ISLNK(st.st_mode)) {
    return boost::system::errc::make_error_code(boost::system::errc::too_many_symbolic_link_levels);
  }
  for (const auto& part : fs::path(relative)) {
    current /= part;
    if (::lstat(current.c_str(), &st) != 0) {
      return {};  // the rest does not exist yet
    }
    if (S_ISLNK(st.st_mode)) {
      return boost::system::errc::make_error_code(
          boost::system::errc::too_many_symbolic_link_levels);
    }
  }
  return {};
}

// Size of a regular file at `path` (not following a final link), or nothing.
std::optional<std::uint64_t> regular_file_size(const fs::path& path) {
  struct ::stat st {};
  if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return std::nullopt;
  }
  return static_cast<std::uint64_t>(st.st_size);
}

// Exclusive, non-blocking: a second sync or prune of the same directory is refused, not queued.
// The kernel drops the lock when the process dies, so kill -9 never leaves it held.
result<unique_fd> lock_directory(const fs::path& dir) {
  unique_fd fd = open_fd(dir / "lock", O_RDWR | O_CREAT | O_NOFOLLOW, 0644);
  if (!fd) {
    return last_errno();
  }
  int rc = 0;
  do {
    rc = ::flock(fd.get(), LOCK_EX | LOCK_NB);
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    return last_errno();
  }
  return fd;
}

std::int64_t to_unix(sys_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

sys_clock::time_point from_unix(std::int64_t s) {
  return sys_clock::time_point(std::chrono::seconds(s));
}

// state.json, format 1.
struct mirror_state {
  std::uint64_t generation = 0;
  std::string etag;
  std::string last_modified;
  std::optional<sys_clock::time_point> last_attempt;
  std::optional<sys_clock::time_point> last_success;
  std::optional<sys_clock::time_point> last_change;
  std::string last_error;
};

std::string serialize_state(const mirror_state& s) {
  json::object o;
  o["format"] = state_format;
  o["generation"] = s.generation;
  o["etag"] = s.etag;
  o["last_modified"] = s.last_modified;
  const auto put_time = [&](std::string_view key, const std::optional<sys_clock::time_point>& t) {
    if (t) {
      o[key] = to_unix(*t);
    }
  };
  put_time("last_attempt", s.last_attempt);
  put_time("last_success", s.last_success);
  put_time("last_change", s.last_change);
  o["last_error"] = s.last_error;
  return json::serialize(o) + "\n";
}

// Nothing when state.json does not exist; errc::corrupt_index when it cannot be understood.
result<std::optional<mirror_state>> load_state(const fs::path& dir) {
  const fs::path path = dir / "state.json";
  struct ::stat st {};
  if (::lstat(path.c_str(), &st) != 0 && errno == ENOENT) {
    return std::optional<mirror_state>{};
  }
  const auto text = read_small_file(path, au::max_document_bytes);
  if (!text) {
    return errc::corrupt_index;
  }
  boost::system::error_code ec;
  const json::value v = json::parse(*text, ec);
  if (ec || !v.is_object()) {
    return errc::corrupt_index;
  }
  const json::object& o = v.as_object();
  const auto* format = o.if_contains("format");
  if (format == nullptr || !format->is_int64() || format->as_int64() != state_format) {
    return errc::corrupt_index;
  }
  mirror_state s;
  bool bad = false;
  const auto get_string = [&](std::string_view key, std::string& out) {
    if (const auto* p = o.if_contains(key)) {
      if (!p->is_string()) {
        bad = true;
        return;
      }
      out = std::string(p->as_string());
    }
  };
  const auto get_time = [&](std::string_view key, std::optional<sys_clock::time_point>& out) {
    if (const auto* p = o.if_contains(key)) {
      if (!p->is_int64()) {
        bad = true;
        return;
      }
      out = from_unix(p->as_int64());
    }
  };
  if (const auto* p = o.if_contains("generation")) {
    if (p->is_uint64()) {
      s.generation = p->as_uint64();
    } else if (p->is_int64() && p->as_int64() >= 0) {
      s.generation = static_cast<std::uint64_t>(p->as_int64());
    } else {
      bad = true;
    }
  }
  get_string("etag", s.etag);
  get_string("last_modified", s.last_modified);
  get_string("last_error", s.last_error);
  get_time("last_attempt", s.last_attempt);
  get_time("last_success", s.last_success);
  get_time("last_change", s.last_change);
  if (bad) {
    return errc::corrupt_index;
  }
  return std::optional<mirror_state>(std::move(s));
}

result<void> save_state(const fs::path& dir, const mirror_state& s) {
  return write_atomically(dir / "staging" / ".state.json.tmp", dir / "state.json",
                          serialize_state(s));
}

std::optional<std::uint64_t> history_generation(std::string_view file_name) {
  if (!file_name.starts_with(history_prefix)) {
    return std::nullopt;
  }
  file_name.remove_prefix(history_prefix.size());
  std::uint64_t n = 0;
  const auto [end, ec] = std::from_chars(file_name.data(), file_name.data() + file_name.size(), n);
  if (ec != std::errc{} || end != file_name.data() + file_name.size() || file_name.empty()) {
    return std::nullopt;
  }
  return n;
}

// Every path `doc` names, with the .sig of each .zip.
void add_names(const au::index& doc, std::set<std::string>& names) {
  for (const auto& f : doc.files()) {
    names.insert(f.path);
    if (au::needs_signature(f.path)) {
      names.insert(au::signature_path(f.path));
    }
  }
}

bool iequals(std::string_view a, std::string_view b) {
  return std::ranges::equal(a, b, [](char x, char y) {
    return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
  });
}

// One run of sync(). Lives on the coroutine frame; not shared.
class sync_run {
 public:
  // `suffix`: of the partial files in staging/; syncs and pull-throughs use different ones so that
  // both may fetch the same path at once without sharing a file.
  sync_run(const mirror_source& source, const fs::path& dir, sync_result& out,
           std::string_view suffix = partial_suffix)
      : source_(source),
        dir_(dir),
        tree_(dir / "tree"),
        staging_(dir / "staging"),
        history_(dir / "history"),
        out_(out),
        suffix_(suffix),
        random_(std::random_device{}()) {
    base_ = std::string(source.upstream.buffer());
    if (base_.empty() || base_.back() != '/') {
      base_ += '/';
    }
  }

  // Returns the error message, empty on success.
  net::awaitable<std::string> run();
  // Writes the outcome into state.json, while the lock is still held; nothing when the run never
  // got the lock (another run owns the state).
  void record();
  // After a run that failed on the local disk (a write, an fsync, a rename): removes its partial
  // files and the files it moved into tree/ that no served index names, so that the space comes
  // back and state.json can be written. A run that failed on the network keeps them: the next
  // try resumes (the retry comes soon, mirror_source_settings::retry).
  void discard_leftovers();
  bool disk_failed() const noexcept { return disk_failed_; }

 private:
  enum class outcome { ok, transient, mismatch, fatal };

  struct attempt_result {
    outcome kind = outcome::ok;
    std::string message;
  };

  std::string prefix() const { return "mirror " + source_.name + ": "; }

  result<boost::urls::url> url_of(std::string_view relative) const {
    const std::string text = base_ + std::string(relative);
    auto parsed = boost::urls::parse_uri(text);
    if (!parsed) {
      return parsed.error();
    }
    return boost::urls::url(*parsed);
  }

  fetch_request make_request(boost::urls::url url) const {
    fetch_request r;
    r.url = std::move(url);
    r.timeouts = source_.timeouts;
    r.tls = source_.tls;
    r.proxy = source_.proxy;
    r.rate_limits = source_.rate_limits;
    return r;
  }

  net::awaitable<void> back_off(unsigned failed_attempts);

 public:
  net::awaitable<std::string> mirror_file(const std::string& path,
                                          std::optional<std::uint64_t> size, bool force,
                                          bool& fetched);

 private:
  net::awaitable<attempt_result> fetch_once(const std::string& path,
                                            std::optional<std::uint64_t> size,
                                            const fs::path& partial);
  std::string publish(const std::string& path, const fs::path& partial);
  std::string commit(const au::index& doc, const fetch_response& head);

  const mirror_source& source_;
  const fs::path dir_;
  const fs::path tree_;
  const fs::path staging_;
  const fs::path history_;
  sync_result& out_;
  const std::string_view suffix_;
  unique_fd lock_;
  std::mt19937_64 random_;
  std::string base_;
  mirror_state state_;
  std::optional<std::string> served_text_;  // the served server.ini before this run
  std::set<std::string> served_names_;      // what it names
  std::set<std::string> done_;              // paths handled this run
  // Fetched files that replace a file the served index names: renamed at commit.
  std::vector<std::pair<std::string, fs::path>> deferred_;
  std::vector<std::string> published_;  // moved into tree/ this run, named by no served index
  bool disk_failed_ = false;
};

void sync_run::discard_leftovers() {
  if (!lock_) {
    return;  // another run owns the directory
  }
  std::size_t removed = 0;
  std::uint64_t bytes = 0;
  const auto remove = [&](const fs::path& path) {
    if (const auto size = regular_file_size(path); size && ::unlink(path.c_str()) == 0) {
      ++removed;
      bytes += *size;
    }
  };
  for (const auto& path : published_) {
    remove(tree_ / path);
  }
  std::error_code fec;
  std::vector<fs::path> partials;
  for (auto it = fs::recursive_directory_iterator(staging_, fec);
       !fec && it != fs::recursive_directory_iterator(); it.increment(fec)) {
    if (it->path().filename().string().ends_with(partial_suffix)) {
      partials.push_back(it->path());  // a sync's own: pull-throughs' end in .pull
    }
  }
  for (const auto& path : partials) {
    remove(path);
  }
  spdlog::warn("event=mirror_disk_failed name={} files={} bytes={} hint=\"its files were "
               "removed\"",
               source_.name, removed, bytes);
}

void sync_run::record() {
  if (!lock_) {
    return;
  }
  // The error goes to state.json, the sync's caller and the status pages: no URL password.
  out_.error = redact_urls(out_.error);
  state_.last_error = out_.error;
  if (out_.ok()) {
    state_.last_success = sys_clock::now();
  }
  if (auto saved = save_state(dir_, state_); !saved) {
    spdlog::error("event=mirror_state_save_failed name={} path={} error=\"{}\"", source_.name,
                  (dir_ / "state.json").string(), saved.error().message());
    if (out_.ok()) {
      out_.error = prefix() + "cannot write " + (dir_ / "state.json").string() + ": " +
          saved.error().message();
    }
  }
}

net::awaitable<void> sync_run::back_off(unsigned failed_attempts) {
  const auto shift = std::min(failed_attempts - 1, 10U);
  const auto ceiling = source_.retry_delay * (std::int64_t{1} << shift);
  std::uniform_int_distribution<std::int64_t> pick(ceiling.count() / 2, ceiling.count());
  net::steady_timer timer(co_await net::this_coro::executor,
                          std::chrono::milliseconds(pick(random_)));
  co_await timer.async_wait(net::as_tuple(net::use_awaitable));
}

net::awaitable<std::string> sync_run::run() {
  std::error_code fec;
  for (const auto& d : {dir_, tree_, staging_, history_}) {
    fs::create_directories(d, fec);
    if (fec) {
      co_return prefix() + "cannot create " + d.string() + ": " + fec.message();
    }
  }
  auto lock = lock_directory(dir_);
  if (!lock) {
    co_return prefix() + "cannot lock " + (dir_ / "lock").string() + " (" +
        lock.error().message() + "); is another sync of this mirror running?";
  }
  lock_ = std::move(*lock);
  auto loaded = load_state(dir_);
  if (!loaded) {
    spdlog::warn("event=mirror_state_unreadable name={} path={} hint=\"starting afresh\"", source_.name,
                 (dir_ / "state.json").string());
    // Continue the generation count so that no history copy is overwritten.
    std::error_code ignored;
    for (const auto& entry : fs::directory_iterator(history_, ignored)) {
      if (const auto g = history_generation(entry.path().filename().string())) {
        state_.generation = std::max(state_.generation, *g);
      }
    }
  } else if (*loaded) {
    state_ = std::move(**loaded);
  }
  state_.last_attempt = sys_clock::now();
  if (auto saved = save_state(dir_, state_); !saved) {
    co_return prefix() + "cannot write " + (dir_ / "state.json").string() + ": " +
        saved.error().message();
  }

  // `dir_` itself may be a link the administrator made; nothing below it may be.
  if (!refuse_symlinks(tree_, served_index_name) || !refuse_symlinks(staging_, "") ||
      !refuse_symlinks(history_, "")) {
    co_return prefix() + "a symbolic link replaces " + tree_.string() + ", " +
        staging_.string() + ", " + history_.string() + " or " +
        (tree_ / served_index_name).string() + "; remove it (the mirror never follows links)";
  }
  served_text_ = read_small_file(tree_ / served_index_name, au::max_document_bytes);
  if (served_text_) {
    if (auto served = au::parse(*served_text_)) {
      add_names(*served, served_names_);
    } else {
      served_text_.reset();
    }
  }

  // server.ini
  auto url = url_of(served_index_name);
  if (!url) {
    co_return prefix() + "upstream URL " + base_ + " is not usable: " + url.error().message();
  }
  fetch_request request = make_request(*url);
  request.max_bytes = au::max_document_bytes;
  if (served_text_) {
    if (!state_.etag.empty()) {
      request.if_none_match = state_.etag;
    }
    if (!state_.last_modified.empty()) {
      request.if_modified_since = state_.last_modified;
    }
  }
  const unsigned attempts = std::max(source_.attempts, 1U);
  std::string index_text;
  fetch_response head;
  std::string problem;
  for (unsigned attempt = 1;; ++attempt) {
    index_text.clear();
    ++out_.requests;
    auto response = co_await http_fetch(request, [&](std::span<const std::byte> chunk) -> result<void> {
      index_text.append(reinterpret_cast<const char*>(chunk.data()), chunk.size());
      return {};
    });
    if (response && (response->status == 200 || response->status == 304)) {
      head = std::move(*response);
      break;
    }
    bool retry = true;
    if (!response) {
      problem = "GET " + base_ + "server.ini failed: " + describe_fetch_error(request, response.error());
      retry = response.error() != http_errc::too_large;
    } else {
      problem = "GET " + base_ + "server.ini answered HTTP " + std::to_string(response->status);
      retry = response->status >= 500 || response->status == 429 || response->status == 408;
    }
    if (!retry || attempt >= attempts) {
      co_return prefix() + problem;
    }
    co_await back_off(attempt);
  }
  out_.bytes_downloaded += index_text.size();

  if (head.status == 304) {
    out_.not_modified = true;
    co_return std::string{};
  }

  auto parsed = au::parse(index_text);
  if (!parsed) {
    co_return prefix() + "upstream index rejected, previous snapshot stays served: " +
        parsed.error().to_string(base_ + "server.ini");
  }
  const au::index& doc = *parsed;
  out_.upstream_versions = versions_of(doc);

  for (const auto& f : doc.files()) {
    if (iequals(f.path, served_index_name)) {
      co_return prefix() + "upstream server.ini line " + std::to_string(f.line) +
          " names server.ini itself as a file; refusing the index";
    }
    if (source_.include && !source_.include(f)) {
      ++out_.files_skipped;
      continue;
    }
    bool fetched = false;
    if (done_.insert(f.path).second) {
      if (auto failed = co_await mirror_file(f.path, f.size, false, fetched); !failed.empty()) {
        co_return failed;
      }
    }
    if (au::needs_signature(f.path)) {
      const std::string sig = au::signature_path(f.path);
      if (done_.insert(sig).second) {
        bool sig_fetched = false;
        if (auto failed = co_await mirror_file(sig, std::nullopt, fetched, sig_fetched);
            !failed.empty()) {
          co_return failed;
        }
      }
    }
  }
  co_return commit(doc, head);
}

// Makes tree/<path> hold the file. `size`: the listed size; nothing for a .sig. `force`: fetch
// even when a copy is present (a .sig whose .zip was just fetched).
net::awaitable<std::string> sync_run::mirror_file(const std::string& path,
                                                  std::optional<std::uint64_t> size, bool force,
                                                  bool& fetched) {
  if (!refuse_symlinks(tree_, path) || !refuse_symlinks(staging_, path)) {
    co_return prefix() + path + ": a symbolic link lies on its path in " + tree_.string() +
        " or " + staging_.string() + "; remove it (the mirror never follows links)";
  }
  const fs::path target = tree_ / path;
  const auto present = regular_file_size(target);
  if (!force && present && (size ? *present == *size : *present > 0)) {
    ++out_.files_kept;
    co_return std::string{};
  }

  if (auto no_room = check_space(dir_, source_.min_free, size.value_or(signature_estimate));
      !no_room.empty()) {
    co_return prefix() + path + ": not fetched: " + no_room;
  }
  const fs::path partial = staging_ / (path + std::string(suffix_));
  std::error_code fec;
  fs::create_directories(partial.parent_path(), fec);
  if (fec) {
    co_return prefix() + "cannot create " + partial.parent_path().string() + ": " + fec.message();
  }
  if (!size) {
    // A signature has no listed size to resume against: always fetched whole.
    ::unlink(partial.c_str());
  }
  const unsigned attempts = std::max(source_.attempts, 1U);
  attempt_result last;
  for (unsigned attempt = 1;; ++attempt) {
    last = co_await fetch_once(path, size, partial);
    if (last.kind == outcome::ok) {
      break;
    }
    if (last.kind == outcome::fatal || attempt >= attempts) {
      if (last.kind == outcome::mismatch) {
        ::unlink(partial.c_str());
      }
      co_return prefix() + path + ": " + last.message + " (after " + std::to_string(attempt) +
          (attempt == 1 ? " attempt" : " attempts") +
          "); not published, the previous snapshot stays served";
    }
    spdlog::info("event=mirror_fetch_retry name={} path={} attempt={} problem=\"{}\"", source_.name,
                 path, attempt, last.message);
    co_await back_off(attempt);
  }
  fetched = true;
  ++out_.files_downloaded;
  co_return publish(path, partial);
}

net::awaitable<sync_run::attempt_result> sync_run::fetch_once(const std::string& path,
                                                             std::optional<std::uint64_t> size,
                                                             const fs::path& partial) {
  const unique_fd fd = open_fd(partial, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW, 0644);
  if (!fd) {
    disk_failed_ = true;
    co_return attempt_result{outcome::fatal,
                             "cannot open " + partial.string() + ": " + last_errno().message()};
  }
  struct ::stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    co_return attempt_result{outcome::fatal, "cannot stat " + partial.string()};
  }
  std::uint64_t offset = static_cast<std::uint64_t>(st.st_size);
  if (size && offset > *size) {
    if (::ftruncate(fd.get(), 0) != 0) {
      co_return attempt_result{outcome::fatal, "cannot truncate " + partial.string()};
    }
    offset = 0;
  }
  const auto finish = [&]() -> attempt_result {
    if (auto synced = sync_fd(fd.get()); !synced) {
      disk_failed_ = true;
      return {outcome::fatal, "cannot fsync " + partial.string() + ": " + synced.error().message()};
    }
    return {};
  };
  if (size && offset == *size) {
    co_return finish();  // completed before a kill, not yet published
  }

  auto url = url_of(path);
  if (!url) {
    co_return attempt_result{outcome::fatal, "no usable URL: " + url.error().message()};
  }
  fetch_request request = make_request(*url);
  request.offset = offset;
  request.max_bytes = size ? *size : max_signature_bytes;
  boost::system::error_code disk_error;
  std::uint64_t written = 0;
  ++out_.requests;
  auto response = co_await http_fetch(request, [&](std::span<const std::byte> chunk) -> result<void> {
    if (auto w = write_all(fd.get(), chunk); !w) {
      disk_error = w.error();
      return w.error();
    }
    written += chunk.size();
    return {};
  });
  out_.bytes_downloaded += written;
  const std::string where = "GET " + redact_urls(request.url.buffer());
  const auto truncate = [&] {
    if (::ftruncate(fd.get(), 0) != 0) {
      spdlog::warn("event=mirror_truncate_failed path={}", partial.string());
    }
  };
  if (disk_error) {
    disk_failed_ = true;
    co_return attempt_result{outcome::fatal,
                             "cannot write " + partial.string() + ": " + disk_error.message()};
  }
  const std::string listed = size ? std::to_string(*size) : std::string("?");
  if (!response) {
    if (response.error() == http_errc::too_large) {
      truncate();
      co_return attempt_result{outcome::mismatch, where + ": upstream file is larger than the " +
                                                      listed + " bytes the index lists"};
    }
    co_return attempt_result{outcome::transient,
                             where + " failed at byte " + std::to_string(offset + written) + ": " +
                                 describe_fetch_error(request, response.error())};
  }
  if (response->status == 416) {
    truncate();
    co_return attempt_result{outcome::mismatch,
                             where + ": upstream refused the resume at byte " +
                                 std::to_string(offset) + " (HTTP 416); it is shorter than the " +
                                 listed + " bytes the index lists"};
  }
  if (response->status != 200 && response->status != 206) {
    co_return attempt_result{outcome::transient,
                             where + " answered HTTP " + std::to_string(response->status)};
  }
  const std::uint64_t have = offset + written;
  if (size) {
    if (have != *size || (response->total_size && *response->total_size != *size)) {
      truncate();
      co_return attempt_result{
          outcome::mismatch,
          where + ": upstream file has " +
              std::to_string(response->total_size.value_or(have)) + " bytes, the index lists " +
              listed};
    }
  } else if (have == 0) {
    co_return attempt_result{outcome::mismatch, where + ": upstream signature is empty"};
  }
  co_return finish();
}

// Moves a complete, fsynced partial into tree/, or defers it when it would replace a file the
// served index names.
std::string sync_run::publish(const std::string& path, const fs::path& partial) {
  const fs::path target = tree_ / path;
  if (served_names_.contains(path) && regular_file_size(target)) {
    deferred_.emplace_back(path, partial);
    return {};
  }
  std::error_code fec;
  fs::create_directories(target.parent_path(), fec);
  if (fec) {
    return prefix() + "cannot create " + target.parent_path().string() + ": " + fec.message();
  }
  if (::rename(partial.c_str(), target.c_str()) != 0) {
    disk_failed_ = true;
    return prefix() + "cannot move " + partial.string() + " to " + target.string() + ": " +
        last_errno().message();
  }
  if (!served_names_.contains(path)) {
    published_.push_back(path);
  }
  if (auto synced = sync_dir(target.parent_path()); !synced) {
    disk_failed_ = true;
    return prefix() + "cannot fsync " + target.parent_path().string() + ": " +
        synced.error().message();
  }
  return {};
}

std::string sync_run::commit(const au::index& doc, const fetch_response& head) {
  for (const auto& [path, partial] : deferred_) {
    const fs::path target = tree_ / path;
    if (::rename(partial.c_str(), target.c_str()) != 0) {
      disk_failed_ = true;
      return prefix() + "cannot move " + partial.string() + " to " + target.string() + ": " +
          last_errno().message();
    }
    if (auto synced = sync_dir(target.parent_path()); !synced) {
      disk_failed_ = true;
      return prefix() + "cannot fsync " + target.parent_path().string() + ": " +
          synced.error().message();
    }
  }
  auto served = au::rewrite_server_section(doc, source_.served_base_url);
  if (!served) {
    return prefix() + "served base URL \"" + source_.served_base_url +
        "\" cannot be written into [Server]: " + served.error().message();
  }
  if (!served_text_ || *served_text_ != *served) {
    const std::uint64_t generation = state_.generation + 1;
    const fs::path copy = history_ / (std::string(history_prefix) + std::to_string(generation));
    if (auto w = write_atomically(staging_ / ".server.ini.tmp", copy, *served); !w) {
      disk_failed_ = true;
      return prefix() + "cannot write " + copy.string() + ": " + w.error().message();
    }
    const fs::path index_path = tree_ / served_index_name;
    if (auto w = write_atomically(staging_ / ".server.ini.tmp", index_path, *served); !w) {
      disk_failed_ = true;
      return prefix() + "cannot write " + index_path.string() + ": " + w.error().message();
    }
    state_.generation = generation;
    state_.last_change = sys_clock::now();
    out_.changed = true;
  }
  state_.etag = head.etag;
  state_.last_modified = head.last_modified;
  return {};
}

}  // namespace

std::string check_space(const fs::path& dir, const space_floor& floor, std::uint64_t needed) {
  if (floor.bytes == 0 && floor.basis_points == 0) {
    return {};
  }
  fs::path probe = dir;
  struct ::statvfs st {};
  while (::statvfs(probe.c_str(), &st) != 0) {
    if (errno != ENOENT || !probe.has_relative_path()) {
      return {};  // cannot tell: the writes will
    }
    probe = probe.parent_path();
  }
  const std::uint64_t unit = st.f_frsize != 0 ? st.f_frsize : st.f_bsize;
  const std::uint64_t available = static_cast<std::uint64_t>(st.f_bavail) * unit;
  const std::uint64_t total = static_cast<std::uint64_t>(st.f_blocks) * unit;
  const std::uint64_t keep = floor.for_total(total);
  if (available >= keep && available - keep >= needed) {
    return {};
  }
  std::string why = "only " + human_bytes(available) + " free of " + human_bytes(total) + " on the file system of " +
                    probe.string() + ", and cache.min_free = \"" + floor.to_string() + "\" keeps " +
                    human_bytes(keep) + " free";
  if (needed != 0 && available >= keep) {
    why += "; " + human_bytes(needed) + " would be needed";
  }
  return why + " (free space, or lower cache.min_free)";
}

net::awaitable<sync_result> sync(const mirror_source& source, const fs::path& dir) {
  sync_result out;
  sync_run run(source, dir, out);
  out.error = co_await run.run();
  if (!out.ok() && run.disk_failed()) {
    run.discard_leftovers();
  }
  run.record();
  if (out.ok()) {
    spdlog::info("event=mirror_sync_done name={} changed={} not_modified={} downloaded={} "
                 "kept={} bytes={} requests={}",
                 source.name, out.changed, out.not_modified, out.files_downloaded, out.files_kept,
                 out.bytes_downloaded, out.requests);
  } else {
    spdlog::error("event=mirror_sync_failed name={} error=\"{}\"", source.name, out.error);
  }
  co_return out;
}

net::awaitable<pull_result> pull_file(const mirror_source& source, const fs::path& dir,
                                      std::string path, std::optional<std::uint64_t> size) {
  sync_result counts;
  pull_result out;
  sync_run run(source, dir, counts, pull_suffix);
  std::error_code fec;
  for (const auto& d : {dir / "tree", dir / "staging"}) {
    fs::create_directories(d, fec);
    if (fec) {
      out.error = "mirror " + source.name + ": cannot create " + d.string() + ": " + fec.message();
      co_return out;
    }
  }
  bool fetched = false;
  out.error = co_await run.mirror_file(path, size, false, fetched);
  out.bytes_downloaded = counts.bytes_downloaded;
  out.requests = counts.requests;
  if (out.error.empty()) {
    spdlog::info("event=mirror_pull_through_done name={} path={} fetched={} bytes={}", source.name,
                 path, fetched, counts.bytes_downloaded);
  } else {
    spdlog::warn("event=mirror_pull_through_failed name={} path={} error=\"{}\"", source.name, path,
                 out.error);
  }
  co_return out;
}

result<prune_result> prune(const fs::path& dir, const au::index& current, unsigned keep) {
  const fs::path tree = dir / "tree";
  const fs::path staging = dir / "staging";
  const fs::path history = dir / "history";
  auto lock = lock_directory(dir);
  if (!lock) {
    return lock.error();
  }
  for (const auto& d : {tree, staging, history}) {
    if (!refuse_symlinks(d, "")) {
      return boost::system::errc::make_error_code(
          boost::system::errc::too_many_symbolic_link_levels);
    }
  }
  auto loaded = load_state(dir);
  if (!loaded) {
    return loaded.error();
  }
  const std::uint64_t generation = *loaded ? (*loaded)->generation : 0;
  const std::uint64_t oldest_kept = generation > keep ? generation - keep : 1;

  std::set<std::string> names;
  add_names(current, names);
  const std::set<std::string> current_names = names;
  for (std::uint64_t g = oldest_kept; g < generation; ++g) {
    const fs::path copy = history / (std::string(history_prefix) + std::to_string(g));
    const auto text = read_small_file(copy, au::max_document_bytes);
    if (!text) {
      continue;  // never written (a generation counted after a lost state.json) or removed
    }
    if (auto doc = au::parse(*text)) {
      add_names(*doc, names);
    } else {
      spdlog::warn("event=mirror_prune_unreadable_copy path={}", copy.string());
    }
  }

  prune_result out;
  std::vector<fs::path> directories;
  const auto remove_entry = [&](const fs::path& path) {
    struct ::stat st {};
    if (::lstat(path.c_str(), &st) != 0) {
      return;
    }
    if (::unlink(path.c_str()) == 0) {
      ++out.files_removed;
      out.bytes_removed += S_ISREG(st.st_mode) ? static_cast<std::uint64_t>(st.st_size) : 0;
    } else {
      spdlog::warn("event=mirror_prune_remove_failed path={} error=\"{}\"", path.string(),
                   last_errno().message());
    }
  };
  std::error_code fec;
  // The iterator does not follow directory links: a link is an entry like a file and is removed
  // (the link, never its target) unless an index names its path.
  for (auto it = fs::recursive_directory_iterator(tree, fec);
       !fec && it != fs::recursive_directory_iterator(); it.increment(fec)) {
    const auto status = it->symlink_status(fec);
    if (fec) {
      break;
    }
    const std::string relative = it->path().lexically_relative(tree).generic_string();
    if (fs::is_directory(status)) {
      directories.push_back(it->path());
      continue;
    }
    if (relative == served_index_name || (names.contains(relative) && fs::is_regular_file(status))) {
      continue;
    }
    remove_entry(it->path());
  }
  if (fec) {
    return fec;
  }
  for (auto it = fs::recursive_directory_iterator(staging, fec);
       !fec && it != fs::recursive_directory_iterator(); it.increment(fec)) {
    const auto status = it->symlink_status(fec);
    if (fec) {
      break;
    }
    if (fs::is_directory(status)) {
      directories.push_back(it->path());
      continue;
    }
    std::string relative = it->path().lexically_relative(staging).generic_string();
    const auto suffix = relative.ends_with(partial_suffix) ? partial_suffix
                        : relative.ends_with(pull_suffix)  ? pull_suffix
                                                           : std::string_view{};
    if (!suffix.empty()) {
      relative.resize(relative.size() - suffix.size());
      if (current_names.contains(relative) && fs::is_regular_file(status)) {
        continue;
      }
    } else {
      continue;  // a temporary of an atomic write; replaced by the next one
    }
    remove_entry(it->path());
  }
  if (fec) {
    return fec;
  }
  for (const auto& entry : fs::directory_iterator(history, fec)) {
    const auto g = history_generation(entry.path().filename().string());
    if (g && *g < oldest_kept) {
      ::unlink(entry.path().c_str());
    }
  }
  // Deepest first, so that a directory emptied by removing its last subdirectory goes too.
  std::ranges::sort(directories, [](const fs::path& a, const fs::path& b) {
    return a.native().size() > b.native().size();
  });
  for (const auto& d : directories) {
    ::rmdir(d.c_str());  // fails, as intended, while the directory holds anything
  }
  spdlog::info("event=mirror_prune dir={} generation={} keep={} removed={} bytes={}", dir.string(),
               generation, keep, out.files_removed, out.bytes_removed);
  return out;
}

result<mirror_status> read_status(const fs::path& dir) {
  mirror_status status;
  status.has_snapshot = regular_file_size(dir / "tree" / served_index_name).has_value();
  auto loaded = load_state(dir);
  if (!loaded) {
    return loaded.error();
  }
  if (*loaded) {
    const mirror_state& s = **loaded;
    status.generation = s.generation;
    status.etag = s.etag;
    status.last_modified = s.last_modified;
    status.last_attempt = s.last_attempt;
    status.last_success = s.last_success;
    status.last_change = s.last_change;
    status.last_error = s.last_error;
  }
  return status;
}

}  // namespace lanrelay::relay
