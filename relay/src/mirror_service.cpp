#include "lanrelay/relay/mirror_service.hpp"

#include "lanrelay/proxy_resolution/address_watch.hpp"
#include "lanrelay/proxy_resolution/proxy_resolver.hpp"

#include "lanrelay/base/file_io.hpp"
#include "lanrelay/base/log.hpp"
#include "lanrelay/base/redact.hpp"
#include "lanrelay/base/secret_file.hpp"
#include "lanrelay/base/text_format.hpp"
#include "lanrelay/content/activeupdate_index.hpp"
#include "lanrelay/relay/request_target.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>
#include <boost/url/parse.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <map>
#include <mutex>
#include <random>
#include <unordered_map>
#include <unordered_set>
#include <variant>

#include <sys/stat.h>

namespace lanrelay::relay {

namespace fs = std::filesystem;
namespace net = boost::asio;
namespace json = boost::json;
namespace au = lanrelay::activeupdate;
using namespace boost::asio::experimental::awaitable_operators;

namespace {

constexpr auto use_tuple = net::as_tuple(net::use_awaitable);
// The first sync after start, when one is due, waits at most this (plus nothing else): a relay
// that restarts comes back up to date quickly, and several relays started together still spread.
constexpr std::chrono::milliseconds startup_jitter_cap{5'000};

struct digest_entry {
  std::uint64_t size = 0;
  std::int64_t mtime_ns = 0;
  sha256_digest sha256{};
};
using digest_map = std::map<std::string, digest_entry>;

// Which server.ini a snapshot was read from: a replaced file differs in inode or mtime.
struct file_identity {
  std::uint64_t device = 0;
  std::uint64_t inode = 0;
  std::uint64_t size = 0;
  std::int64_t mtime_ns = 0;

  bool operator==(const file_identity&) const = default;
};

std::optional<file_identity> identity_of(const fs::path& path) {
  struct ::stat st {};
  if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return std::nullopt;
  }
  return file_identity{static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino),
                       static_cast<std::uint64_t>(st.st_size),
                       static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec};
}

// Every path `doc` names (and the .sig of each .zip), with its listed size.
void add_listed(const au::index& doc,
                std::unordered_map<std::string, std::optional<std::uint64_t>>& names) {
  for (const auto& f : doc.files()) {
    names.emplace(f.path, f.size);
    if (au::needs_signature(f.path)) {
      names.emplace(au::signature_path(f.path), std::nullopt);
    }
  }
}

// What the served server.ini names, and the digests of the files the tree holds. Immutable once
// published; replaced as a whole. Only these files are served (docs/protocol.md): a file a sync
// put into tree/ before failing is named by no published index and stays invisible.
struct served_snapshot {
  bool has_index = false;
  std::optional<file_identity> index;  // of tree/server.ini when it was read
  std::unordered_map<std::string, std::optional<std::uint64_t>> names;  // path -> listed size
  // Paths only the `keep` indexes published before the served one name: served while present
  // (agents that read the previous index just before the change), never pulled through.
  std::unordered_map<std::string, std::optional<std::uint64_t>> kept;
  // Paths of `names` that neither `include` nor `pull_through` admits: never pulled through.
  std::unordered_set<std::string> not_pullable;
  digest_map digests;  // only paths in `names` whose file is present
  std::vector<std::pair<std::string, std::string>> versions;  // see mirror_source_view
};

std::optional<std::pair<std::uint64_t, std::int64_t>> regular_file(const fs::path& path) {
  struct ::stat st {};
  if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    return std::nullopt;
  }
  return std::pair{static_cast<std::uint64_t>(st.st_size),
                   static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec};
}

digest_map load_digests(const fs::path& file) {
  digest_map out;
  const auto text = read_small_file(file, 64U << 20);
  if (!text) {
    return out;
  }
  boost::system::error_code ec;
  const json::value v = json::parse(*text, ec);
  const auto* files = !ec && v.is_object() ? v.as_object().if_contains("files") : nullptr;
  if (files == nullptr || !files->is_object()) {
    return out;
  }
  for (const auto& [path, entry] : files->as_object()) {
    const auto* o = entry.if_object();
    if (o == nullptr) {
      continue;
    }
    const auto* size = o->if_contains("size");
    const auto* mtime = o->if_contains("mtime_ns");
    const auto* sha = o->if_contains("sha256");
    if (size == nullptr || !size->is_int64() || mtime == nullptr || !mtime->is_int64() ||
        sha == nullptr || !sha->is_string()) {
      continue;
    }
    const auto digest = parse_sha256_hex(sha->as_string());
    if (!digest || size->as_int64() < 0) {
      continue;
    }
    out[std::string(path)] = {static_cast<std::uint64_t>(size->as_int64()), mtime->as_int64(), *digest};
  }
  return out;
}

std::string serialize_digests(const digest_map& digests) {
  json::object files;
  for (const auto& [path, d] : digests) {
    files[path] = json::object{{"size", d.size}, {"mtime_ns", d.mtime_ns}, {"sha256", to_hex(d.sha256)}};
  }
  return json::serialize(json::object{{"format", 1}, {"files", std::move(files)}});
}

// Digests of every present file `names` lists: kept from `known` when size and mtime still
// match, else computed (only with `hash_missing`; blocking: then it runs on the hashing thread).
digest_map compute_digests(const fs::path& tree,
                           const std::unordered_map<std::string, std::optional<std::uint64_t>>& names,
                           const digest_map& known, bool hash_missing = true) {
  digest_map out;
  for (const auto& [path, listed] : names) {
    const auto present = regular_file(tree / path);
    if (!present || (listed && present->first != *listed)) {
      continue;
    }
    if (auto it = known.find(path);
        it != known.end() && it->second.size == present->first && it->second.mtime_ns == present->second) {
      out.emplace(path, it->second);
      continue;
    }
    if (!hash_missing) {
      continue;
    }
    auto digest = sha256_of_file(tree / path);
    if (!digest) {
      spdlog::warn("event=mirror_hash_failed path={} error=\"{}\"", (tree / path).string(),
                   digest.error().message());
      continue;
    }
    out.emplace(path, digest_entry{present->first, present->second, *digest});
  }
  return out;
}

using listed_names = std::unordered_map<std::string, std::optional<std::uint64_t>>;

// compute_digests as a coroutine to co_spawn onto the hashing thread. Pointers, not a lambda
// with captures: GCC 12 destroys captured temporaries of a co_await expression twice.
net::awaitable<digest_map> digests_of(const fs::path* tree, const listed_names* names,
                                      const digest_map* known) {
  co_return compute_digests(*tree, *names, *known);
}

std::function<bool(const au::listed_file&)> include_filter(const std::vector<std::string>& include) {
  if (include.empty()) {
    return {};
  }
  return [include](const au::listed_file& f) {
    const auto iequals = [](std::string_view a, std::string_view b) {
      return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
             });
    };
    std::string_view section;
    switch (f.kind) {
      case au::file_kind::pattern_full:
      case au::file_kind::pattern_merge:
      case au::file_kind::path_entry:
        section = "PATTERN";
        break;
      case au::file_kind::engine:
        section = "ENGINE";
        break;
      case au::file_kind::program:
        section = {};
        break;
    }
    for (const std::string& entry : include) {
      std::string_view e = entry;
      if (e.starts_with("path:")) {
        if (f.path.starts_with(e.substr(5))) {
          return true;
        }
        continue;
      }
      const auto colon = e.find(':');
      const auto want_section = e.substr(0, colon);
      const auto want_id = colon == std::string_view::npos ? std::string_view{} : e.substr(colon + 1);
      if (f.kind == au::file_kind::program) {
        // The component of a program is its section name after "Info_".
        if (iequals(want_section, "Info_" + f.component)) {
          return true;
        }
        continue;
      }
      if (iequals(want_section, section) && (want_id.empty() || iequals(want_id, f.component))) {
        return true;
      }
    }
    return false;
  };
}

std::int64_t unix_seconds(std::chrono::system_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

json::value optional_time(const std::optional<std::chrono::system_clock::time_point>& t) {
  return t ? json::value(unix_seconds(*t)) : json::value(nullptr);
}

}  // namespace

json::object to_json(const sync_result& r) {
  return {{"ok", r.ok()},
          {"changed", r.changed},
          {"not_modified", r.not_modified},
          {"files_downloaded", r.files_downloaded},
          {"files_kept", r.files_kept},
          {"files_skipped", r.files_skipped},
          {"bytes_downloaded", r.bytes_downloaded},
          {"requests", r.requests},
          {"error", r.error}};
}

json::array to_json(const std::vector<mirror_source_view>& sources) {
  json::array out;
  for (const auto& v : sources) {
    json::object o{{"name", v.name},
                   {"blocked", v.blocked},
                   {"upstream", v.upstream},
                   {"has_snapshot", v.status.has_snapshot},
                   {"generation", v.status.generation},
                   {"last_attempt", optional_time(v.status.last_attempt)},
                   {"last_success", optional_time(v.status.last_success)},
                   {"last_change", optional_time(v.status.last_change)},
                   {"last_error", v.status.last_error},
                   {"syncing", v.syncing},
                   {"next_sync", optional_time(v.next_sync)},
                   {"files", v.files},
                   {"bytes", v.bytes},
                   {"pulls_running", v.pulls_running},
                   {"route", v.route}};
    json::array versions;
    for (const auto& [component, version] : v.versions) {
      versions.push_back(json::object{{"component", component}, {"version", version}});
    }
    o["versions"] = std::move(versions);
    o["interval_seconds"] = std::chrono::duration_cast<std::chrono::seconds>(v.interval).count();
    o["freshness"] = to_json(v.freshness, std::chrono::system_clock::now());
    o["rate"] = to_json(v.rate);
    out.push_back(std::move(o));
  }
  return out;
}

// One pull-through download and the requests waiting for it. On the source's strand.
struct mirror_service::pull_state {
  explicit pull_state(net::strand<net::io_context::executor_type> ex) : done(ex), cancel(ex) {
    done.expires_at(net::steady_timer::time_point::max());
    cancel.expires_at(net::steady_timer::time_point::max());
  }
  net::steady_timer done;    // its wait ends (cancelled) when the pull is over
  net::steady_timer cancel;  // cancelled when every waiting client hung up
  std::uint64_t reservation = 0;  // pull_budget entry
  std::size_t waiting = 0;        // requests waiting now
  std::size_t told_to_retry = 0;  // requests answered 503 at pull_through_wait: they come back
  bool finished = false;
  bool ok = false;
};

// mirror.max_pulls and mirror.pull_volume, over all sources. Guarded by `mutex`, taken by the
// sources' strands and never held across I/O.
struct mirror_service::pull_budget {
  using clock = std::chrono::steady_clock;
  static constexpr std::chrono::hours window{1};
  struct spend {
    clock::time_point at;
    std::uint64_t bytes = 0;
  };

  pull_budget(std::uint32_t max, std::uint64_t bytes_per_hour) : max_pulls(max), volume(bytes_per_hour) {}

  // Reserves `bytes` for a new pull and counts it as running: its entry, or why not.
  std::variant<std::uint64_t, pull_outcome> admit(std::uint64_t bytes) {
    std::lock_guard lock(mutex);
    const auto now = clock::now();
    while (!spent.empty() && spent.begin()->second.at + window <= now) {
      spent.erase(spent.begin());
    }
    if (running >= max_pulls) {
      return pull_outcome{pull_verdict::busy,
                          "mirror.max_pulls (" + std::to_string(max_pulls) +
                              ") pull-throughs are running; retry later",
                          {}};
    }
    if (bytes > volume) {
      return pull_outcome{pull_verdict::refused,
                          "this file (" + human_bytes(bytes) +
                              ") is larger than mirror.pull_volume allows per hour (" +
                              human_bytes(volume) + "); this relay does not fetch it on demand",
                          {}};
    }
    std::uint64_t used = 0;
    for (const auto& [id, s] : spent) {
      used += s.bytes;
    }
    if (used + bytes > volume) {
      // Until enough of the last hour's pulls have aged out.
      std::uint64_t left = used;
      auto when = now;
      for (const auto& [id, s] : spent) {
        left -= s.bytes;
        when = s.at + window;
        if (left + bytes <= volume) {
          break;
        }
      }
      const auto wait = std::chrono::ceil<std::chrono::seconds>(when - now);
      return pull_outcome{pull_verdict::busy,
                          "mirror.pull_volume: " + human_bytes(used) + " of " +
                              human_bytes(volume) +
                              " per hour already pulled through; retry later",
                          std::max(wait, std::chrono::seconds{1})};
    }
    ++running;
    spent.emplace(++last_id, spend{now, bytes});
    return last_id;
  }

  // The pull is over; `bytes` it actually cost replaces its reservation.
  void settle(std::uint64_t id, std::uint64_t bytes) {
    std::lock_guard lock(mutex);
    if (auto it = spent.find(id); it != spent.end()) {
      it->second.bytes = bytes;
    }
    --running;
  }

  const std::uint32_t max_pulls;
  const std::uint64_t volume;
  std::mutex mutex;
  std::uint32_t running = 0;
  std::uint64_t last_id = 0;
  std::map<std::uint64_t, spend> spent;  // the last hour's pulls, oldest first
};

struct mirror_service::source {
  source(net::io_context& ioc, mirror_source_settings s, fs::path d)
      : settings(std::move(s)), dir(std::move(d)), strand(net::make_strand(ioc)),
        schedule(strand), stop_signal(strand) {
    stop_signal.expires_at(net::steady_timer::time_point::max());
  }

  const mirror_source_settings settings;
  mirror_source upstream;
  const scheduled_rate rate{settings.rate_limit, settings.rate_windows};  // its own limit
  std::string rate_window;  // guarded by the service's rate_mutex_: the window applied to `rate`
  // `pull_through`: what may be fetched on demand beyond `upstream.include`; unset: nothing.
  std::function<bool(const au::listed_file&)> pull_filter;
  unsigned failures = 0;  // strand: syncs failed in a row (retry backoff)
  bool replan = false;    // strand: sync_now ran a sync; the schedule's wait is planned anew
  const fs::path dir;
  net::strand<net::io_context::executor_type> strand;
  net::steady_timer schedule;     // strand
  net::steady_timer stop_signal;  // strand; its wait ends when the service stops

  // Strand only.
  struct sync_job {
    explicit sync_job(net::strand<net::io_context::executor_type> ex) : done(ex) {
      done.expires_at(net::steady_timer::time_point::max());
    }
    net::steady_timer done;
    sync_result result;
  };
  std::shared_ptr<sync_job> job;  // the sync running now
  std::map<std::string, std::shared_ptr<pull_state>> pulls;
  std::string route;  // guarded by `mutex`: proxy = "auto"'s last route, for status()
  std::mt19937_64 random{std::random_device{}()};

  // Guarded by `mutex`: read from any thread.
  mutable std::mutex mutex;
  std::shared_ptr<const served_snapshot> served = std::make_shared<served_snapshot>();
  std::optional<sync_result> last_result;
  // Of the last sync this process ran: shown even when state.json could not record it (a full
  // disk).
  std::optional<std::chrono::system_clock::time_point> last_attempt;
  std::optional<std::chrono::system_clock::time_point> last_success;
  std::optional<std::chrono::system_clock::time_point> next_sync;
  bool syncing = false;
  std::size_t pulls_running = 0;
  std::uint64_t syncs_ok = 0, syncs_not_modified = 0, syncs_failed = 0;  // since start
  std::vector<component_freshness> freshness;  // written on `strand`

  std::shared_ptr<const served_snapshot> snapshot() const {
    std::lock_guard lock(mutex);
    return served;
  }
};

// proxy = "auto": resolvers, one per CA file, since the connectivity checks verify TLS with the
// source's CA (each resolver runs its resolutions on its own strand, one at a time:
// proxy_resolver.hpp). They forget their routes when an IP address of the machine changes
// (another segment, another proxy).
struct mirror_service::route_finder {
  route_finder(net::io_context& ioc, proxy_resolution::proxy_resolver_options o)
      : executor(ioc.get_executor()), options(std::move(o)), watch_strand(net::make_strand(ioc)),
        watch(watch_strand), stop(watch_strand) {
    stop.expires_at(net::steady_timer::time_point::max());
  }

  // Any thread.
  proxy_resolution::proxy_resolver& resolver(const fs::path& ca_file) {
    std::lock_guard lock(mutex);
    auto& resolver = resolvers[ca_file];
    if (!resolver) {
      auto o = options;
      if (!ca_file.empty()) {
        o.tls.ca_file = ca_file;
      }
      resolver = std::make_unique<proxy_resolution::proxy_resolver>(executor, std::move(o));
    }
    return *resolver;
  }

  // After a failed download through the route: find it again next time (the proxy may be gone).
  // Any thread.
  void forget(const fs::path& ca_file) {
    std::lock_guard lock(mutex);
    if (auto it = resolvers.find(ca_file); it != resolvers.end()) {
      it->second->forget();
    }
  }

  // On `watch_strand`.
  net::awaitable<void> watch_addresses() {
    if (!watch.ok()) {
      spdlog::warn("event=address_watch_unavailable error=\"{}\" hint=\"mirror routes found "
                   "with proxy = auto are kept until the relay restarts\"",
                   watch.open_error().message());
      co_return;
    }
    for (;;) {
      auto raced = co_await (watch.wait() || stop.async_wait(net::as_tuple(net::use_awaitable)));
      if (raced.index() != 0 || !std::get<0>(raced)) {
        co_return;
      }
      spdlog::info("event=addresses_changed hint=\"mirror upstream routes are resolved again\"");
      std::lock_guard lock(mutex);
      for (auto& [ca, resolver] : resolvers) {
        resolver->forget();
      }
    }
  }

  net::io_context::executor_type executor;
  const proxy_resolution::proxy_resolver_options options;
  std::mutex mutex;
  std::map<fs::path, std::unique_ptr<proxy_resolution::proxy_resolver>> resolvers;  // mutex
  net::strand<net::io_context::executor_type> watch_strand;
  proxy_resolution::address_watch watch;  // watch_strand
  net::steady_timer stop;                 // watch_strand; cancelled when the service stops
};

namespace {

proxy_resolution::proxy_resolver_options resolver_options(const upstream_proxy_settings& c) {
  proxy_resolution::proxy_resolver_options o;
  o.system = proxy_resolution::system_proxy_settings::from_environment();
  if (!c.pac_url.empty()) {
    o.system.pac_url = c.pac_url;
  }
  o.ask_segment = c.ask_segment;
  o.query.port = c.port;
  o.query.window = c.window;
  for (const auto& text : c.proxyhelper_keys) {
    if (auto key = parse_public_key(text)) {  // checked by the configuration
      o.query.trust.pinned.push_back(*key);
    }
  }
  o.query.trust.accept_unsigned = c.accept_unsigned;
  o.check_timeout = c.check_timeout;
  if (!c.ca_file.empty()) {
    o.proxy_ca_file = c.ca_file;
  }
  // Checked when the configuration was loaded; a file changed since is refused the same way.
  if (!c.credentials_file.empty()) {
    std::string why;
    auto text = read_secret_file(c.credentials_file, 4096, why);
    std::string line = text ? text->substr(0, text->find('\n')) : std::string();
    if (!line.empty() && line.back() == '\r') {
      line.pop_back();
    }
    using proxy_resolution::proxy_credentials;
    auto bound = text ? proxy_credentials::bind(std::move(line), c.credentials_proxy, &why)
                      : result<proxy_credentials>(make_error_code(errc::invalid_config));
    if (!bound) {
      spdlog::error("event=proxy_credentials_unusable file={} error=\"{}\" hint=\"proxies "
                    "that need credentials are skipped\"",
                    c.credentials_file.string(), why);
    } else {
      o.credentials = std::move(*bound);
    }
  }
  const auto scheme = parse_proxy_auth_scheme(c.auth).value_or(proxy_auth_scheme::basic);
  if (c.credentials_file.empty() && !c.credentials_proxy.empty() &&
      scheme == proxy_auth_scheme::negotiate) {
    // Kerberos needs no file: credentials_proxy names the proxy that gets the Negotiate login.
    std::string why;
    if (auto bound = proxy_resolution::proxy_credentials::bind("", c.credentials_proxy, &why)) {
      o.credentials = std::move(*bound);
    } else {
      spdlog::error("event=proxy_credentials_unusable proxy={} error=\"{}\"",
                    c.credentials_proxy, why);
    }
  }
  if (o.credentials) {
    o.credentials->auth = scheme;
  }
  return o;
}

}  // namespace

mirror_service::mirror_service(net::io_context& ioc, const relay_config& config,
                               std::string public_base)
    : ioc_(ioc),
      pull_wait_(config.mirror.pull_through_wait),
      retry_after_(config.retry_after),
      min_free_(config.cache_min_free),
      budget_(std::make_unique<pull_budget>(config.mirror.max_pulls, config.mirror.pull_volume)),
      rate_strand_(net::make_strand(ioc)),
      rate_timer_(rate_strand_) {
  total_rate_ = std::make_unique<scheduled_rate>(config.mirror.rate_limit, config.mirror.rate_windows);
  for (const auto& settings : config.mirror.sources) {
    auto s = std::make_unique<source>(ioc, settings, config.state_dir / "mirror" / settings.name);
    mirror_source& up = s->upstream;
    up.name = settings.name;
    up.upstream = boost::urls::url(*boost::urls::parse_absolute_uri(settings.url));  // checked by the config

    if (!settings.ca_file.empty()) {
      up.tls.ca_file = settings.ca_file;
    }
    if (settings.proxy == "auto") {
      if (!routes_) {
        routes_ = std::make_unique<route_finder>(ioc, resolver_options(config.upstream_proxy));
      }
    } else if (!settings.proxy.empty()) {
      up.proxy = proxy_settings{boost::urls::url(*boost::urls::parse_absolute_uri(settings.proxy)),
                                parse_proxy_auth_scheme(config.upstream_proxy.auth)
                                    .value_or(proxy_auth_scheme::basic)};
      if (!config.upstream_proxy.ca_file.empty()) {
        up.proxy->ca_file = config.upstream_proxy.ca_file;
      }
    }
    if (s->rate.limiter()) {
      up.rate_limits.push_back(s->rate.limiter());
    }
    if (total_rate_->limiter()) {
      up.rate_limits.push_back(total_rate_->limiter());
    }
    up.include = include_filter(settings.include);
    up.min_free = config.cache_min_free;
    s->pull_filter = include_filter(settings.pull_through);
    sources_.push_back(std::move(s));
  }
  apply_rate_windows();  // the first sync runs at the rate in effect
  set_public_base(std::move(public_base));
}

void mirror_service::set_public_base(std::string public_base) {
  while (!public_base.empty() && public_base.back() == '/') {
    public_base.pop_back();
  }
  for (auto& s : sources_) {
    s->upstream.served_base_url = public_base + mirror_path(s->settings.name, "");
  }
}

mirror_service::~mirror_service() { hashing_.join(); }

bool mirror_service::has_sources() const noexcept { return !sources_.empty(); }

std::vector<std::string> mirror_service::source_names() const {
  std::vector<std::string> out;
  for (const auto& s : sources_) {
    out.push_back(s->settings.name);
  }
  return out;
}

mirror_service::source* mirror_service::find_source(std::string_view name) const {
  for (const auto& s : sources_) {
    if (s->settings.name == name) {
      return s.get();
    }
  }
  return nullptr;
}

void mirror_service::start() {
  if (routes_) {
    net::co_spawn(routes_->watch_strand, routes_->watch_addresses(), log_failure("address watch"));
  }
  const bool windows = !total_rate_->windows().empty() ||
                       std::any_of(sources_.begin(), sources_.end(), [](const auto& s) {
                         return !s->rate.windows().empty();
                       });
  if (windows) {
    net::co_spawn(rate_strand_, rate_window_loop(), log_failure("rate windows"));
  }
  for (auto& s : sources_) {
    net::co_spawn(
        s->strand,
        [this, &src = *s]() -> net::awaitable<void> {
          co_await refresh_snapshot(src);
          {
            auto known = load_freshness(src.dir);
            std::lock_guard lock(src.mutex);
            src.freshness = std::move(known);
          }
          if (src.freshness.empty()) {
            // A snapshot from before freshness.json: served since its last change, as far as
            // this relay knows.
            const auto status = read_status(src.dir);
            note_freshness(src, std::nullopt,
                           status && status->last_change ? *status->last_change
                                                         : std::chrono::system_clock::now());
          }
          co_await schedule_loop(src);
        },
        log_failure("mirror schedule"));
  }
}

void mirror_service::stop() {
  stopping_.store(true);
  if (routes_) {
    net::post(routes_->watch_strand, [r = routes_.get()] { r->stop.cancel(); });
  }
  net::post(rate_strand_, [this] { rate_timer_.cancel(); });
  for (auto& s : sources_) {
    net::post(s->strand, [&src = *s] {
      src.schedule.cancel();
      src.stop_signal.cancel();
    });
  }
}

net::awaitable<void> mirror_service::schedule_loop(source& s) {
  using std::chrono::milliseconds;
  const auto jitter = [&](milliseconds cap) {
    if (cap.count() <= 0) {
      return milliseconds{0};
    }
    return milliseconds{std::uniform_int_distribution<std::int64_t>(0, cap.count())(s.random)};
  };
  const auto now = std::chrono::system_clock::now();
  milliseconds wait{0};
  const auto status = read_status(s.dir);
  const bool last_failed = status && status->last_attempt &&
                           (!status->last_success || *status->last_success < *status->last_attempt);
  if (last_failed) {
    // Failed or killed (a first sync cut short leaves no server.ini): soon, not an interval later.
    wait = std::min(std::chrono::duration_cast<milliseconds>(s.settings.retry), s.settings.interval) +
           jitter(std::min(s.settings.jitter, startup_jitter_cap));
  } else if (status && status->last_attempt && *status->last_attempt + s.settings.interval > now) {
    wait = std::chrono::duration_cast<milliseconds>(*status->last_attempt + s.settings.interval - now) +
           jitter(s.settings.jitter);
  } else {
    wait = jitter(std::min(s.settings.jitter, startup_jitter_cap));
  }
  while (!stopping_.load()) {
    {
      std::lock_guard lock(s.mutex);
      s.next_sync = std::chrono::system_clock::now() + wait;
    }
    s.schedule.expires_after(wait);
    co_await s.schedule.async_wait(use_tuple);
    if (stopping_.load()) {
      co_return;
    }
    if (!s.replan) {
      co_await run_sync(s);
    }
    s.replan = false;
    if (s.failures == 0) {
      wait = s.settings.interval + jitter(s.settings.jitter);
    } else {
      // retry, 2 x retry, 4 x retry ... up to half the interval, so that a failing source is
      // always tried again before its schedule would; a little jitter so relays spread.
      const auto shift = std::min(s.failures - 1, 20U);
      wait = std::min(std::chrono::duration_cast<milliseconds>(s.settings.retry) * (std::int64_t{1} << shift),
                      std::max(s.settings.interval / 2, milliseconds{1}));
      spdlog::info("event=mirror_sync_retry name={} failures={} in_ms={}", s.settings.name, s.failures,
                   wait.count());
      wait += jitter(std::min(s.settings.jitter, wait / 4));
    }
  }
}

json::object to_json(const rate_in_effect& rate) {
  return {{"bytes_per_second", rate.bytes_per_second}, {"window", rate.window}};
}

std::optional<rate_in_effect> rate_from_json(const json::value* v) {
  const auto* o = v != nullptr ? v->if_object() : nullptr;
  const auto* rate = o != nullptr ? o->if_contains("bytes_per_second") : nullptr;
  const auto* window = o != nullptr ? o->if_contains("window") : nullptr;
  if (rate == nullptr || (!rate->is_uint64() && !rate->is_int64()) || window == nullptr ||
      !window->is_string()) {
    return std::nullopt;
  }
  return rate_in_effect{rate->to_number<std::uint64_t>(), std::string(window->get_string())};
}

std::chrono::seconds mirror_service::apply_rate_windows() {
  const auto now = to_local_time(std::chrono::system_clock::now());
  // Applies `rate` and logs a change of window; `applied` is the window text last applied.
  const auto apply = [&](const scheduled_rate& rate, std::string& applied, std::string_view name) {
    auto effect = rate.in_effect(now);
    rate.apply(now);
    if (effect.window != applied) {
      spdlog::info("event=mirror_rate_window source={} window=\"{}\" bytes_per_second={}", name,
                   effect.window.empty() ? "none" : effect.window, effect.bytes_per_second);
      applied = std::move(effect.window);
    }
    return until_next_change(rate.windows(), now);
  };
  std::lock_guard lock(rate_mutex_);
  auto wait = apply(*total_rate_, total_window_, "all");
  for (auto& s : sources_) {
    wait = std::min(wait, apply(s->rate, s->rate_window, s->settings.name));
  }
  return wait;
}

net::awaitable<void> mirror_service::rate_window_loop() {
  // Woken at each window edge, and every ten minutes besides: the wall clock may be set or the
  // time zone change (summer time) under a steady timer.
  constexpr std::chrono::seconds recheck{600};
  while (!stopping_.load()) {
    rate_timer_.expires_after(std::min(apply_rate_windows(), recheck));
    co_await rate_timer_.async_wait(use_tuple);
  }
}

rate_in_effect mirror_service::total_rate() const {
  std::lock_guard lock(rate_mutex_);
  const auto& limiter = total_rate_->limiter();
  return {limiter ? limiter->bytes_per_second() : 0, total_window_};
}

net::awaitable<sync_result> mirror_service::run_sync(source& s) {
  if (auto running = s.job) {
    co_await running->done.async_wait(use_tuple);
    co_return running->result;
  }
  auto job = std::make_shared<source::sync_job>(s.strand);
  s.job = job;
  const auto attempt = std::chrono::system_clock::now();
  {
    std::lock_guard lock(s.mutex);
    s.syncing = true;
  }
  sync_result result;
  if (stopping_.load()) {
    result.error = "mirror " + s.settings.name + ": the relay is stopping";
  } else {
    co_await find_route(s);
    auto raced = co_await (sync(s.upstream, s.dir) || s.stop_signal.async_wait(use_tuple));
    if (raced.index() == 0) {
      result = std::move(std::get<0>(raced));
    } else {
      result.error = "mirror " + s.settings.name + ": sync cancelled, the relay is stopping";
    }
  }
  upstream_bytes_.fetch_add(result.bytes_downloaded, std::memory_order_relaxed);
  if (!result.ok() && routes_ && s.settings.proxy == "auto") {
    routes_->forget(s.settings.ca_file);
  }
  if (result.ok() && (result.changed || !s.snapshot()->has_index)) {
    co_await refresh_snapshot(s);
  }
  {
    std::optional<component_versions> upstream;
    if (result.not_modified) {
      upstream = s.snapshot()->versions;  // the upstream's index is the one served
    } else if (!result.upstream_versions.empty()) {
      upstream = result.upstream_versions;
    }
    note_freshness(s, upstream, std::chrono::system_clock::now());
  }
  if (result.ok() && result.changed) {
    const auto text = read_small_file(s.dir / "tree" / "server.ini", au::max_document_bytes);
    if (auto doc = text ? au::parse(*text) : au::parse_result<au::index>(au::parse_error{}); text && doc) {
      if (auto pruned = prune(s.dir, *doc, s.settings.keep); pruned) {
        spdlog::info("event=mirror_prune name={} files_removed={} bytes_removed={}", s.settings.name,
                     pruned->files_removed, pruned->bytes_removed);
      } else {
        spdlog::warn("event=mirror_prune_skipped name={} error=\"{}\"", s.settings.name,
                     pruned.error().message());
      }
    }
  }
  {
    std::lock_guard lock(s.mutex);
    s.syncing = false;
    s.last_result = result;
    s.last_attempt = attempt;
    if (result.ok()) {
      s.last_success = std::chrono::system_clock::now();
    }
    ++(!result.ok() ? s.syncs_failed : result.not_modified ? s.syncs_not_modified : s.syncs_ok);
  }
  s.failures = result.ok() ? 0 : s.failures + 1;
  job->result = result;
  s.job.reset();
  job->done.cancel();
  co_return result;
}

void mirror_service::note_freshness(source& s, const std::optional<component_versions>& upstream,
                                    std::chrono::system_clock::time_point now) {
  std::vector<component_freshness> before;
  {
    std::lock_guard lock(s.mutex);
    before = s.freshness;
  }
  auto next = advance_freshness(before, s.snapshot()->versions, upstream, now);
  if (next == before) {
    return;
  }
  for (const auto& c : next) {
    if (c.behind()) {
      spdlog::info("event=mirror_behind name={} component={} served=\"{}\" upstream=\"{}\"",
                   s.settings.name, c.component, c.served, c.upstream);
    }
  }
  if (auto saved = save_freshness(s.dir, next); !saved) {
    // Kept in memory all the same; ages restart from the next success after a restart.
    spdlog::warn("event=mirror_freshness_not_saved name={} error=\"{}\"", s.settings.name,
                 saved.error().message());
  }
  std::lock_guard lock(s.mutex);
  s.freshness = std::move(next);
}

net::awaitable<void> mirror_service::refresh_snapshot(source& s) {
  auto next = std::make_shared<served_snapshot>();
  const fs::path tree = s.dir / "tree";
  // Identity first: should the index be replaced while it is read, lookup() sees a newer one.
  next->index = identity_of(tree / "server.ini");
  if (const auto text = read_small_file(tree / "server.ini", au::max_document_bytes)) {
    if (auto doc = au::parse(*text)) {
      next->has_index = true;
      next->versions = versions_of(*doc);
      add_listed(*doc, next->names);
      for (const auto& f : doc->files()) {
        if (s.upstream.include && !s.upstream.include(f) && !(s.pull_filter && s.pull_filter(f))) {
          next->not_pullable.insert(f.path);
          if (au::needs_signature(f.path)) {
            next->not_pullable.insert(au::signature_path(f.path));
          }
        }
      }
      // The indexes published before this one, as prune() keeps their files.
      const auto status = read_status(s.dir);
      const std::uint64_t generation = status ? status->generation : 0;
      const std::uint64_t keep = s.settings.keep;
      for (std::uint64_t g = generation > keep ? generation - keep : 1; g < generation; ++g) {
        const auto old = read_small_file(s.dir / "history" / ("server.ini." + std::to_string(g)),
                                         au::max_document_bytes);
        if (auto older = old ? au::parse(*old) : au::parse_result<au::index>(au::parse_error{});
            old && older) {
          add_listed(*older, next->kept);
        }
      }
      for (const auto& [path, size] : next->names) {
        next->kept.erase(path);
      }
    } else {
      spdlog::error("event=mirror_index_unreadable name={} error=\"{}\"", s.settings.name,
                    doc.error().to_string((tree / "server.ini").string()));
    }
  }
  digest_map known = load_digests(s.dir / "digests.json");
  {
    // Publish the new names at once (with the digests still valid): the served server.ini may
    // already be the new one, and its files must be served while new ones are hashed.
    const auto previous = s.snapshot();
    known.insert(previous->digests.begin(), previous->digests.end());
    auto quick = std::make_shared<served_snapshot>(*next);
    quick->digests = compute_digests(tree, quick->names, known, false);
    std::lock_guard lock(s.mutex);
    s.served = std::move(quick);
  }
  next->digests = co_await net::co_spawn(hashing_, digests_of(&tree, &next->names, &known),
                                         net::use_awaitable);
  if (auto w = write_atomically(s.dir / "staging" / ".digests.json.tmp", s.dir / "digests.json",
                                serialize_digests(next->digests));
      !w && fs::exists(s.dir / "staging")) {
    spdlog::warn("event=mirror_digests_save_failed name={} error=\"{}\"", s.settings.name,
                 w.error().message());
  }
  std::lock_guard lock(s.mutex);
  s.served = std::move(next);
}

mirror_lookup mirror_service::lookup(std::string_view name, std::string_view path) const {
  const source* s = find_source(name);
  if (s == nullptr) {
    return {mirror_lookup_verdict::unknown_source};
  }
  mirror_lookup out;
  out.file = s->dir / "tree" / std::string(path);
  if (path == "server.ini") {
    if (const auto present = regular_file(out.file)) {
      out.verdict = mirror_lookup_verdict::served;
      out.size = present->first;
      out.mtime_ns = present->second;
    }
    return out;
  }
  const auto snapshot = s->snapshot();
  const std::string key(path);
  const auto serve_if_present = [&](const std::optional<std::uint64_t>& listed) {
    if (const auto present = regular_file(out.file);
        present && present->first > 0 && (!listed || present->first == *listed)) {
      out.verdict = mirror_lookup_verdict::served;
      out.size = present->first;
      out.mtime_ns = present->second;
    }
  };
  const auto listed = snapshot->names.find(key);
  if (listed == snapshot->names.end()) {
    if (const auto kept = snapshot->kept.find(key); kept != snapshot->kept.end()) {
      serve_if_present(kept->second);
      return out;
    }
    // The served server.ini may have been replaced a moment ago, before this process read it
    // (run_sync refreshes the snapshot right after the sync): then that index decides. Parsed
    // only while the snapshot lags, so requests for unlisted names cost a stat, not a parse.
    if (const auto current = identity_of(s->dir / "tree" / "server.ini");
        current && current != snapshot->index) {
      const auto text = read_small_file(s->dir / "tree" / "server.ini", au::max_document_bytes);
      if (auto doc = text ? au::parse(*text) : au::parse_result<au::index>(au::parse_error{});
          text && doc) {
        std::unordered_map<std::string, std::optional<std::uint64_t>> names;
        add_listed(*doc, names);
        if (const auto it = names.find(key); it != names.end()) {
          serve_if_present(it->second);
        }
      }
    }
    return out;
  }
  const auto present = regular_file(out.file);
  if (!present || (listed->second && present->first != *listed->second) || present->first == 0) {
    out.verdict = snapshot->not_pullable.contains(key) ? mirror_lookup_verdict::not_admitted
                                                       : mirror_lookup_verdict::pullable;
    return out;
  }
  out.verdict = mirror_lookup_verdict::served;
  out.size = present->first;
  out.mtime_ns = present->second;
  if (auto d = snapshot->digests.find(listed->first);
      d != snapshot->digests.end() && d->second.size == present->first &&
      d->second.mtime_ns == present->second) {
    out.sha256 = d->second.sha256;
  }
  return out;
}

net::awaitable<pull_outcome> mirror_service::pull_through(std::string name, std::string path) {
  source* s = find_source(name);
  if (s == nullptr || stopping_.load()) {
    co_return pull_outcome{pull_verdict::failed, "the relay is stopping", {}};
  }
  co_return co_await net::co_spawn(s->strand, pull_and_wait(*s, std::move(path)), net::use_awaitable);
}

net::awaitable<pull_outcome> mirror_service::pull_and_wait(source& s, std::string path) {
  // A client that hangs up cancels this coroutine (pull_through): that is an answer here, not an
  // exception, so that its share of the pull is always withdrawn.
  co_await net::this_coro::throw_if_cancelled(false);
  std::shared_ptr<pull_state> state;
  if (auto it = s.pulls.find(path); it != s.pulls.end()) {
    state = it->second;
  } else {
    const auto found = lookup(s.settings.name, path);
    switch (found.verdict) {
      case mirror_lookup_verdict::served:
        co_return pull_outcome{pull_verdict::served, {}, {}};
      case mirror_lookup_verdict::pullable:
        break;
      case mirror_lookup_verdict::not_admitted:
        co_return pull_outcome{pull_verdict::refused,
                               "left out by the source's include and not admitted by its "
                               "pull_through: this relay does not fetch it on demand",
                               {}};
      case mirror_lookup_verdict::not_listed:
      case mirror_lookup_verdict::unknown_source:
        co_return pull_outcome{pull_verdict::refused, "not in the mirrored index", {}};
    }
    std::optional<std::uint64_t> size;
    {
      const auto snapshot = s.snapshot();
      if (auto listed = snapshot->names.find(path); listed != snapshot->names.end()) {
        size = listed->second;
      }
    }
    const std::uint64_t needed = size.value_or(64 * 1024);
    if (auto no_room = check_space(s.dir, min_free_, needed); !no_room.empty()) {
      spdlog::warn("event=mirror_pull_refused source={} path={} reason=\"{}\"", s.settings.name,
                   path, no_room);
      co_return pull_outcome{pull_verdict::busy, "the relay fetches nothing new: " + no_room,
                             std::chrono::seconds{60}};
    }
    auto admitted = budget_->admit(needed);
    if (auto* refusal = std::get_if<pull_outcome>(&admitted)) {
      spdlog::info("event=mirror_pull_refused source={} path={} reason=\"{}\"", s.settings.name,
                   path, refusal->reason);
      co_return *refusal;
    }
    state = std::make_shared<pull_state>(s.strand);
    state->reservation = std::get<std::uint64_t>(admitted);
    s.pulls.emplace(path, state);
    {
      std::lock_guard lock(s.mutex);
      ++s.pulls_running;
    }
    net::co_spawn(s.strand, pull(s, path, state), log_failure("mirror pull-through"));
  }
  ++state->waiting;
  net::steady_timer deadline(s.strand, pull_wait_);
  // Ends early when the caller cancels this coroutine: its client hung up. A cancellation that
  // came before the wait began is only recorded in the state, hence the check.
  const bool gone_already =
      (co_await net::this_coro::cancellation_state).cancelled() != net::cancellation_type::none;
  std::variant<std::tuple<boost::system::error_code>, std::tuple<boost::system::error_code>> raced;
  if (!gone_already) {
    raced = co_await (state->done.async_wait(use_tuple) || deadline.async_wait(use_tuple));
  }
  --state->waiting;
  if (state->finished) {
    co_return state->ok ? pull_outcome{pull_verdict::served, {}, {}}
                        : pull_outcome{pull_verdict::failed,
                                       "the relay could not fetch this file from upstream; "
                                       "retry later",
                                       {}};
  }
  if (!gone_already && raced.index() == 1 && !std::get<0>(std::get<1>(raced))) {
    ++state->told_to_retry;
    co_return pull_outcome{pull_verdict::failed,
                           "the relay is still fetching this file from upstream; retry later", {}};
  }
  if (state->waiting == 0 && state->told_to_retry == 0) {
    spdlog::info("event=mirror_pull_abandoned source={} path={} hint=\"every client waiting for "
                 "it hung up; the download is cancelled, its partial file kept\"",
                 s.settings.name, path);
    state->cancel.cancel();
  }
  co_return pull_outcome{pull_verdict::failed, "the client hung up", {}};
}

net::awaitable<void> mirror_service::pull(source& s, std::string path,
                                          std::shared_ptr<pull_state> state) {
  std::optional<std::uint64_t> size;
  {
    const auto snapshot = s.snapshot();
    if (auto it = snapshot->names.find(path); it != snapshot->names.end()) {
      size = it->second;
    }
  }
  // A cancelled pull reports no counts: its cost is what its partial file grew by.
  const fs::path partial = s.dir / "staging" / (path + ".pull");
  const auto partial_size = [&] {
    std::error_code ec;
    const auto n = fs::file_size(partial, ec);
    return ec ? std::uintmax_t{0} : n;
  };
  const auto before = partial_size();
  co_await find_route(s);
  auto raced = co_await (pull_file(s.upstream, s.dir, path, size) ||
                         s.stop_signal.async_wait(use_tuple) || state->cancel.async_wait(use_tuple));
  bool ok = false;
  std::uint64_t spent = 0;
  if (raced.index() == 0) {
    const pull_result& r = std::get<0>(raced);
    spent = r.bytes_downloaded;
    ok = r.ok();
  } else {
    const auto after = partial_size();
    spent = after > before ? after - before : 0;
  }
  upstream_bytes_.fetch_add(spent, std::memory_order_relaxed);
  budget_->settle(state->reservation, spent);
  if (!ok && raced.index() == 0 && routes_ && s.settings.proxy == "auto") {
    routes_->forget(s.settings.ca_file);
  }
  if (ok) {
    // Add the new file's digest so that the segment may be offered it.
    const fs::path tree = s.dir / "tree";
    const listed_names one{{path, size}};
    const digest_map known;
    auto digests = co_await net::co_spawn(hashing_, digests_of(&tree, &one, &known), net::use_awaitable);
    auto next = std::make_shared<served_snapshot>(*s.snapshot());
    for (auto& [p, d] : digests) {
      next->digests[p] = d;
    }
    std::lock_guard lock(s.mutex);
    s.served = std::move(next);
  }
  state->finished = true;
  state->ok = ok;
  s.pulls.erase(path);
  {
    std::lock_guard lock(s.mutex);
    --s.pulls_running;
  }
  state->done.cancel();
}

net::awaitable<result<sync_result>> mirror_service::sync_now(std::string name) {
  source* s = find_source(name);
  if (s == nullptr) {
    co_return errc::not_found;
  }
  co_return co_await net::co_spawn(s->strand, sync_and_replan(*s), net::use_awaitable);
}

net::awaitable<sync_result> mirror_service::sync_and_replan(source& s) {
  auto result = co_await run_sync(s);
  // The schedule plans again from this result: a failure is retried with the backoff instead of
  // an interval later, a success waits a whole interval from now.
  s.replan = true;
  s.schedule.cancel();
  co_return result;
}

std::vector<mirrored_item> mirror_service::find(item_kind kind, std::string_view name,
                                                std::string_view version) const {
  std::vector<mirrored_item> out;
  if (kind != item_kind::file) {
    return out;
  }
  const auto path = au::path_from_segment_item_name(name);
  if (!path) {
    return out;
  }
  for (const auto& s : sources_) {
    const auto snapshot = s->snapshot();
    const auto d = snapshot->digests.find(*path);
    if (d == snapshot->digests.end() || std::to_string(d->second.size) != version) {
      continue;
    }
    mirrored_item m;
    m.entry.key = item_key{item_kind::file, std::string(name), std::string(version)};
    m.entry.size = d->second.size;
    m.entry.sha256 = d->second.sha256;
    m.url_path = mirror_path(s->settings.name, *path);
    out.push_back(std::move(m));
  }
  return out;
}

std::vector<mirrored_item> mirror_service::items() const {
  std::vector<mirrored_item> out;
  for (const auto& s : sources_) {
    const auto snapshot = s->snapshot();
    for (const auto& [path, d] : snapshot->digests) {
      auto name = au::segment_item_name(path);
      if (!name) {
        continue;
      }
      mirrored_item m;
      m.entry.key = item_key{item_kind::file, std::move(*name), std::to_string(d.size)};
      m.entry.size = d.size;
      m.entry.sha256 = d.sha256;
      m.url_path = mirror_path(s->settings.name, path);
      out.push_back(std::move(m));
    }
  }
  return out;
}

net::awaitable<void> mirror_service::find_route(source& s) {
  if (s.settings.proxy != "auto" || !routes_) {
    co_return;
  }
  auto& resolver = routes_->resolver(s.settings.ca_file);
  const auto found = co_await resolver.resolve(s.upstream.upstream);
  // Back on s.strand (resolve() returns to its caller's executor): the source's downloads read
  // s.upstream there.
  s.upstream.proxy = found.settings(routes_->options.credentials, routes_->options.proxy_ca_file);
  std::string route = !found.working ? "none found"
                      : found.proxy  ? *found.proxy
                                     : std::string("direct");
  route += " (" + std::string(proxy_resolution::to_string(found.decided_by)) + ")";
  if (!found.from_cache) {
    std::string skipped;
    for (const auto& k : found.skipped) {
      skipped += (skipped.empty() ? "" : "; ") + k.route + ": " + k.reason;
    }
    for (const auto& refused : found.refused_answers) {
      skipped += (skipped.empty() ? "" : "; ") + std::string("refused answer: ") + refused;
    }
    spdlog::log(found.working ? spdlog::level::info : spdlog::level::warn,
                "event=mirror_route source={} route=\"{}\" elapsed_ms={} skipped=\"{}\"",
                s.settings.name, route, found.elapsed.count(), skipped);
  }
  std::lock_guard lock(s.mutex);
  s.route = std::move(route);
}

std::vector<mirror_source_view> mirror_service::status() const {
  std::vector<mirror_source_view> out;
  for (const auto& s : sources_) {
    mirror_source_view v;
    v.name = s->settings.name;
    // What status() returns is shown to monitoring clients: no URL keeps its password.
    v.upstream = redact_urls(s->settings.url);
    if (auto st = read_status(s->dir)) {
      v.status = std::move(*st);
      v.status.last_error = redact_urls(v.status.last_error);
    }
    const auto snapshot = s->snapshot();
    for (const auto& [path, d] : snapshot->digests) {
      ++v.files;
      v.bytes += d.size;
    }
    v.versions = snapshot->versions;
    v.blocked = check_space(s->dir, min_free_, 0);
    std::lock_guard lock(s->mutex);
    if (s->last_result && s->last_attempt) {
      // What this process saw last wins over state.json, which a full disk may have kept old.
      v.status.last_error = redact_urls(s->last_result->error);
      if (!v.status.last_attempt || *v.status.last_attempt < *s->last_attempt) {
        v.status.last_attempt = s->last_attempt;
      }
      if (s->last_success && (!v.status.last_success || *v.status.last_success < *s->last_success)) {
        v.status.last_success = s->last_success;
      }
    }
    v.syncing = s->syncing;
    v.last_result = s->last_result;
    if (v.last_result) {
      v.last_result->error = redact_urls(v.last_result->error);
    }
    v.next_sync = s->next_sync;
    v.pulls_running = s->pulls_running;
    v.route = redact_urls(s->route);
    v.syncs_ok = s->syncs_ok;
    v.syncs_not_modified = s->syncs_not_modified;
    v.syncs_failed = s->syncs_failed;
    v.freshness = s->freshness;
    v.interval = s->settings.interval;
    {
      std::lock_guard rate_lock(rate_mutex_);
      const auto& limiter = s->rate.limiter();
      v.rate = {limiter ? limiter->bytes_per_second() : 0, s->rate_window};
    }
    out.push_back(std::move(v));
  }
  return out;
}

}  // namespace lanrelay::relay
